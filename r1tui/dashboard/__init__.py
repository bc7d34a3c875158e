"""The Textual dashboard: a client of the pipeline, never imported by it.

``r1tui`` / ``r1tui attach RUN`` open it (r1tui/cli/attach.py). The app is small:
the one reducer (``r1tui.runs.reducer``) folds the run's event log, the stage registry
(``r1tui.pipeline.registry``) names the stages, ``source.py`` finds runs and tails the log,
``actions.py`` launches the same detached CLI processes a person would, ``widgets/``
draws one panel each and ``screens/`` holds the main screen and the dialogs.
"""

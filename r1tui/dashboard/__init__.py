"""The Textual dashboard: a client of the pipeline, never imported by it.

``r1tui`` / ``r1tui attach RUN`` open it (r1tui/cli/attach.py). The app is small:
``state.py`` folds the run's event log, ``source.py`` finds runs and tails the log,
``actions.py`` launches the same detached CLI processes a person would, ``widgets/``
draws one panel each and ``screens/`` holds the main screen and the dialogs.
"""

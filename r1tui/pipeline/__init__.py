"""The orchestrator: the stage registry, the one resume rule, and the pipeline process.

- ``registry``      every stage declared once (name, step, inputs, outputs, run)
- ``builtin``       the built-in stages' declarations (imported here, so importing any
                    part of this package sees the whole pipeline)
- ``orchestrator``  runs registered stages with one resume rule; plans them
- ``process``       the pipeline process of one run (``python -m r1tui.pipeline RUN_DIR``)
- ``launch``        start a run detached or in the foreground, cancel it
"""

from r1tui.pipeline import builtin as _builtin  # noqa: F401 - registers the built-in stages

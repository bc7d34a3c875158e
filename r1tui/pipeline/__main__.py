"""``python -m r1tui.pipeline RUN_DIR``: the pipeline process of one run."""

from r1tui.pipeline.process import main

raise SystemExit(main())

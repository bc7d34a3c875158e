"""Offline demo: the dry run of the 22B config and of the tiny CPU config.

    python demo.py           # dry runs only: validate, estimate, mask; < 1 s each, writes nothing
    python demo.py --full    # then the whole tiny pipeline for real on the CPU (25 s on an idle 2-core box)
"""

from __future__ import annotations

import sys
from pathlib import Path

from r1tui.cli import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    status = main(["dry-run", "--config", str(HERE / "config.toml")])
    status = status or main(["dry-run", "--config", str(HERE / "configs" / "tiny.toml")])
    if not status and "--full" in sys.argv[1:]:
        status = main(["run", "--config", str(HERE / "configs" / "tiny.toml"), "--foreground"])
    raise SystemExit(status)

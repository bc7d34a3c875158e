"""Offline demo: the dry run of the 22B config and of the tiny CPU config.

    python demo.py           # dry runs only: validate, estimate, mask; < 1 s each, writes nothing
    python demo.py --full    # then a tiny model that visibly learns, for real on the CPU
                             # (configs/learn.toml, about 3 min on an idle 2-core box): prepare,
                             # train, merge, GGUF, Q4_K_M, eval; ends with its format compliance
"""

from __future__ import annotations

import sys
from pathlib import Path

from r1tui.cli import main

HERE = Path(__file__).resolve().parent
LEARN = HERE / "configs" / "learn.toml"


def run_and_report(config_path: Path) -> int:
    """The whole pipeline in the foreground, then the eval's compliance figure of the run it made."""
    from r1tui.config import load_config
    from r1tui.eval.run import load_results
    from r1tui.runs.layout import run_folders

    runs_dir = load_config(config_path).runs.dir
    before = set(run_folders(runs_dir))
    status = main(["run", "--config", str(config_path), "--foreground"])
    new = [p for p in run_folders(runs_dir) if p not in before]
    if status or len(new) != 1:
        return status or 1
    summary = load_results(new[0])["summary"]
    print(f"format compliance of {new[0].name}'s Q4_K_M GGUF: {summary['compliance_rate']:.0%} "
          f"of {summary['count']} held-out synthetic prompts (think block closed, FINAL ANSWER line, EOS)")
    print(f"the untrained base on the same prompts: r1tui eval {new[0]} --vs base")
    return 0


if __name__ == "__main__":
    status = main(["dry-run", "--config", str(HERE / "config.toml")])
    status = status or main(["dry-run", "--config", str(HERE / "configs" / "tiny.toml")])
    if not status and "--full" in sys.argv[1:]:
        status = run_and_report(LEARN)
    raise SystemExit(status)

"""`r1tui attach [RUN]` (and bare `r1tui`): open the dashboard on a run."""

from __future__ import annotations

import argparse

from r1tui.cli._common import add_config_argument, add_runs_dir_argument

HELP = "open the dashboard on a run (default: the newest; a dry-run view when there is none)"
DESCRIPTION = """\
Open the Textual dashboard. It replays the run's event log from the start, then
follows it live: close it (or lose SSH) and open it again, and the whole history is
there. Quitting never stops a run. With no run yet it opens a dry-run view of the
config, with dry run on.

Keys: 1-9 and 0 switch panels, d toggles dry run, q quits, ctrl+p opens the command palette
(every action is there). The footer shows the keys of the panel you are on.

Examples:
  r1tui                              # newest run under runs.dir of ./config.toml
  r1tui --runs-dir /data/runs        # newest run under another runs folder
  r1tui attach 20261127-101500-tiny  # a run by id
  r1tui attach runs/20261127-101500-tiny --panel training
  r1tui attach --gguf model-Q4_K_M.gguf --panel repl
"""

PANELS = ("overview", "config", "data", "training", "resources", "export", "evaluator", "repl", "push", "generate",
          "logs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default=None, metavar="RUN",
                        help="run id, id prefix, run folder, or 'latest' (default: newest)")
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("--gguf", metavar="PATH", default=None, help="GGUF for the REPL panel (default: the run's)")
    parser.add_argument("--panel", choices=PANELS, default=None, help="panel to open on")
    dry = parser.add_mutually_exclusive_group()
    dry.add_argument("--dry-run", dest="dry_run", action="store_true", default=None,
                     help="start with dry run on (default: on when there is no run, or DRY_RUN=1)")
    dry.add_argument("--no-dry-run", dest="dry_run", action="store_false", help="start with dry run off")
    parser.add_argument("--no-gpu-sampling", action="store_true",
                        help="do not sample this machine (GPU, the run's processes, disk) from the dashboard")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.cli._common import resolve_path, runs_dir_of
    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run
    from r1tui.errors import R1Error

    config_path = resolve_path(getattr(args, "config", None))
    runs_dir = runs_dir_of(args).resolve()
    run_ref = open_run(runs_dir, getattr(args, "run", None))
    dry_run = getattr(args, "dry_run", None)
    if dry_run is None and dry_run_requested():
        dry_run = True
    gguf = resolve_path(getattr(args, "gguf", None))
    if gguf is not None and not gguf.is_file():
        raise R1Error(f"--gguf {args.gguf}: not found")
    app = DashboardApp(run=run_ref, runs_dir=runs_dir, config_path=config_path, dry_run=dry_run, gguf=gguf,
                       sample_local_gpu=not getattr(args, "no_gpu_sampling", False),
                       initial_panel=getattr(args, "panel", None))
    app.run()
    return app.return_code or 0  # a crash in the app (return code 1) is not a success

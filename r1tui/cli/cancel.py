"""`r1tui cancel RUN`: stop a running run cleanly (a checkpoint is saved, then a cancelled event)."""

from __future__ import annotations

import argparse

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    print_json,
    resolve_cli_run,
)

HELP = "stop a running run cleanly: training saves a checkpoint, the log records cancelled"
DESCRIPTION = """\
Send SIGTERM to the run's pipeline. Training finishes the step it is in, saves a
checkpoint and stops; the log gets stage_finished cancelled and run_finished
cancelled. Other stages stop at once. `r1tui run --resume RUN` continues later.
Waits up to --wait seconds (default 60) for the run to end; 0 returns at once.

Examples:
  r1tui cancel latest
  r1tui cancel 20261127-101500-ab12 --wait 0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default="latest", metavar="RUN",
                        help="run id, id prefix, run folder, or 'latest' (default)")
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("--wait", metavar="SECONDS", type=float, default=60.0,
                        help="wait this long for the run to stop (default 60; 0: do not wait)")
    parser.add_argument("--json", action="store_true", help="print the run's status afterwards as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error
    from r1tui.pipeline.launch import cancel_run, cancel_target
    from r1tui.runs.status import run_status

    if args.wait < 0:
        raise R1Error(f"--wait {args.wait:g}: must be 0 (do not wait) or more seconds")
    layout = resolve_cli_run(args)
    out = console()
    if dry_run_requested():
        target = cancel_target(layout)
        status = run_status(layout)
        what = f"pid {target}, the process writing it ({status.writer or 'its pipeline'})" if target else "nothing"
        out.print(f"[bold yellow]dry run[/]: would send SIGTERM to {what} of run {layout.run_id} "
                  f"(status: {status.status}); nothing sent")
        return 0
    target = cancel_target(layout)
    status = cancel_run(layout, wait=args.wait)
    if args.json:
        print_json(status.to_dict())
    elif status.alive:
        out.print(f"asked run {layout.run_id} to stop (pid {target}); it is finishing its current step — "
                  f"`r1tui runs` shows when it has stopped")
    elif status.status != "cancelled" and status.stage_status.get(status.stage or "") in ("cancelled", "crashed"):
        # the writer was a command on an ended run (`r1tui export` of a trained run): its stage
        # stopped; the run's own status is still its pipeline's
        out.print(f"run {layout.run_id}: {status.stage} {status.stage_status[status.stage]} "
                  f"(the run itself: {status.status})")
    else:
        out.print(f"run {layout.run_id}: {status.status}" + (f" at step {status.step}" if status.step else ""))
    return 0

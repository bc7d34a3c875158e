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

A run whose lock holder is on another machine (a --nodes run cancelled from another
node) is asked through its folder instead: a cancel-request file that every rank on
every machine watches. They see it within the shared filesystem's attribute-cache
time (NFS: up to about a minute). --via-file asks that way from any machine.

Examples:
  r1tui cancel latest
  r1tui cancel 20261127-101500-ab12 --wait 0
  r1tui cancel 20261127-101500-ab12 --via-file --wait 120   # from a login node
"""

NFS_DELAY = ("its ranks see it within the shared filesystem's attribute-cache time "
             "(NFS: up to about a minute)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default="latest", metavar="RUN",
                        help="run id, id prefix, run folder, or 'latest' (default)")
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("--wait", metavar="SECONDS", type=float, default=60.0,
                        help="wait this long for the run to stop (default 60; 0: do not wait)")
    parser.add_argument("--via-file", action="store_true",
                        help="ask through the run folder (a cancel-request file every rank watches) even when the "
                             "run's lock holder is on this machine")
    parser.add_argument("--json", action="store_true", help="print the run's status afterwards as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error
    from r1tui.pipeline.launch import cancel_plan, cancel_run
    from r1tui.runs.status import run_status

    if args.wait < 0:
        raise R1Error(f"--wait {args.wait:g}: must be 0 (do not wait) or more seconds")
    layout = resolve_cli_run(args)
    out = console()
    if dry_run_requested():
        plan = cancel_plan(layout, via_file=args.via_file)
        status = run_status(layout)
        if plan is not None and plan.how == "file":
            out.print(f"[bold yellow]dry run[/]: would ask {plan.holder.describe()} to stop through the run folder "
                      f"(by writing {plan.request}); {NFS_DELAY}; run {layout.run_id} (status: {status.status}); "
                      "nothing written")
            return 0
        target = plan.pid if plan is not None else None
        what = f"pid {target}, the process writing it ({status.writer or 'its pipeline'})" if target else "nothing"
        out.print(f"[bold yellow]dry run[/]: would send SIGTERM to {what} of run {layout.run_id} "
                  f"(status: {status.status}); nothing sent")
        return 0
    plan = cancel_plan(layout, via_file=args.via_file)
    status = cancel_run(layout, wait=args.wait, via_file=args.via_file)
    if args.json:
        print_json(status.to_dict())
    elif status.alive and plan is not None and plan.how == "file":
        out.print(f"asked run {layout.run_id} to stop through its run folder ({plan.request.name}, for "
                  f"{plan.holder.describe()}); {NFS_DELAY}, then it finishes its current step — "
                  f"`r1tui runs` shows when it has stopped")
    elif status.alive:
        target = plan.pid if plan is not None else None
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

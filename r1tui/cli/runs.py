"""`r1tui runs`: list runs with their status."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    print_json,
    runs_dir_of,
)

HELP = "list runs: status (running, finished, failed, cancelled, crashed), stage, step, loss"
DESCRIPTION = """\
List the runs under runs.dir, newest first. Status comes from each run's event log,
its pid file and whether that process is alive: running, finished, failed,
cancelled, or crashed (the process is gone without a finish event, or alive but
silent past its heartbeat).

Examples:
  r1tui runs
  r1tui runs --config configs/tiny.toml --json
"""

STATUS_STYLE = {"running": "bold cyan", "finished": "green", "failed": "bold red", "cancelled": "yellow",
                "crashed": "bold magenta"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the runs as a JSON list")


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from r1tui.present import format_duration
    from r1tui.runs.status import is_stuck_pipeline, list_runs

    runs_dir = runs_dir_of(args)
    runs = list_runs(runs_dir)
    if args.json:
        print_json([r.to_dict() for r in runs])
        return 0
    out = console()
    if not runs:
        out.print(f"no runs in {runs_dir}; start one with `r1tui run`")
        return 0
    table = Table(title=f"runs in {runs_dir}", title_justify="left")
    for column in ("run", "status", "stage", "step", "loss", "started", "took"):
        table.add_column(column, justify="right" if column in ("step", "loss", "took") else "left",
                         no_wrap=column != "stage")  # at 80 columns the stage name gives way, not the numbers
    for r in runs:
        step = f"{r.step}/{r.max_steps}" if r.step is not None else ""
        loss = f"{r.loss:.3f}" if isinstance(r.loss, (int, float)) else ""
        started = time.strftime("%m-%d %H:%M", time.localtime(r.started_at)) if r.started_at else ""
        took = format_duration(r.active_s) if r.active_s is not None else ""
        status = f"[{STATUS_STYLE.get(r.status, '')}]{r.status}[/]"
        stage = r.stage or ""
        if r.stage and r.stage_status.get(r.stage) not in (None, "running", "finished"):
            stage += f" ({r.stage_status[r.stage]})"
        table.add_row(r.run_id, status, stage, step, loss, started, took)
    out.print(table)
    for r in runs:
        if is_stuck_pipeline(r):
            out.print(f"[dim]{r.run_id}: crashed — {r.reason}; stop it with `r1tui cancel {r.run_id}`, then "
                      f"`r1tui run --resume {r.run_id}`[/]", highlight=False)
        elif r.status in ("crashed", "failed"):
            _print_diagnosis(out, r)
    return 0


def _print_diagnosis(out, r) -> None:
    """A crashed or failed run's diagnosis, without the log's tail (`r1tui logs RUN` shows it)."""
    from rich.markup import escape

    from r1tui.cli._display import diagnosis_of
    from r1tui.runs.layout import RunLayout

    found = diagnosis_of(RunLayout(Path(r.run_dir)))
    if found is None:  # it changed since the table was read
        return
    out.print(f"[bold]{r.run_id}[/]: {escape(found.status)} — {escape(found.headline)}", highlight=False,
              soft_wrap=True)
    for line in found.lines(with_tail=False)[1:]:
        out.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    if found.log_tail:
        out.print(f"[dim]  the log's last lines: r1tui logs {r.run_id}[/]", highlight=False)

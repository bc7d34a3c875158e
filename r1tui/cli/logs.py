"""`r1tui logs RUN [-f]`: print a run's events readably; -f follows them live."""

from __future__ import annotations

import argparse
import sys
import time

from r1tui.cli._common import add_config_argument, add_runs_dir_argument, console, resolve_cli_run
from r1tui.runs.status import writer_alive

HELP = "print a run's events readably (-f follows until the run ends)"
DESCRIPTION = """\
Print the run's event log (runs/<id>/events.jsonl) one readable line per event:
stages starting and finishing, training metrics, GPU samples, artifacts, errors.
It uses the same tailing reader as the dashboard, so -f shows the same thing live,
and stops when the run finishes (or its process is found gone). For a run that crashed
or failed it ends with the diagnosis: the exit code (or that the process was killed),
a hint for the common causes (CUDA out of memory, NaN loss, a full disk, a killed
process) and the last lines of pipeline.log. -f exits 0 when the run finished, 1 when
it failed or crashed (the first line of the diagnosis says why), 130 when cancelled.

Examples:
  r1tui logs latest -f
  r1tui logs 20261127-101500-ab12 --type metric
  r1tui logs 20261127 --json | jq .data.loss
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default="latest", metavar="RUN",
                        help="run id, id prefix, run folder, or 'latest' (default)")
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new events until the run ends")
    parser.add_argument("--type", metavar="TYPES", default=None,
                        help="only these event types, comma-separated (e.g. metric,error)")
    parser.add_argument("--all", action="store_true",
                        help="also show heartbeats and progress ticks (hidden by default: metrics carry the step)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON lines")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from r1tui.errors import R1Error
    from r1tui.pipeline import registry
    from r1tui.runs.events import EVENT_TYPES, EventReader
    from r1tui.runs.logs import format_event  # the dashboard's Logs panel shows the same lines
    from r1tui.runs.reducer import RunState

    types = {t.strip() for t in args.type.split(",") if t.strip()} if args.type else None
    unknown = sorted(types - EVENT_TYPES) if types else []
    if unknown:
        raise R1Error(f"--type {unknown[0]}: no such event type; use some of {', '.join(sorted(EVENT_TYPES))}")
    layout = resolve_cli_run(args)
    reader = EventReader(layout.events)
    out = console()
    state = RunState(groups=registry.groups())  # the log folded as it is printed: how the run ended

    def show(events) -> bool:
        """Print events; True once the latest attempt has finished (run_finished after run_started)."""
        finished = False
        for event in events:
            state.apply(event)
            if event.type == "run_started":
                finished = False
            elif event.type == "run_finished":
                finished = True
            if types is not None and event.type not in types:
                continue
            if types is None and event.type in QUIET and not args.all:
                continue
            if args.json:
                sys.stdout.write(event.to_json() + "\n")
                continue
            line = escape(format_event(event))
            style = STYLES.get(event.type)
            out.print(f"[{style}]{line}[/]" if style else line, highlight=False, soft_wrap=True)
        sys.stdout.flush()
        return finished

    finished = show(reader.read_new())
    if not args.follow:
        state.set_process_alive(writer_alive(layout)[0], time.time())
        if state.status in ("crashed", "failed"):
            _print_diagnosis(layout, state, args.json)
        return 0
    next_check = 0.0
    while not finished:
        events = reader.read_new()
        if events:
            finished = show(events)
            continue
        now = time.monotonic()
        if now >= next_check:
            # A cheap liveness check (the run's lock), not a re-read of the whole log:
            # a week-long run's log is large and this loop polls four times a second.
            next_check = now + 2.0
            if not writer_alive(layout)[0]:
                show(reader.read_new())  # whatever landed just before the process went away
                break
        time.sleep(0.25)
    return _ended(layout, state, args.json)


def _print_diagnosis(layout, state, to_stderr: bool) -> None:
    """The run's crash diagnosis (stderr under --json: stdout stays JSON lines)."""
    from rich.markup import escape

    from r1tui.cli._display import diagnosis_of

    found = diagnosis_of(layout, state)
    if found is None:
        return
    out = console(stderr=to_stderr)
    first, *rest = found.lines()
    out.print(f"[bold red]run {layout.run_id} {escape(first)}[/]", highlight=False, soft_wrap=True)
    for line in rest:
        out.print(escape(line), highlight=False, soft_wrap=True)


def _ended(layout, state, to_stderr: bool) -> int:
    """-f's exit status, from how the run ended: 0 finished, 130 cancelled, 1 failed or
    crashed (with the diagnosis printed, its first line the reason)."""
    state.set_process_alive(writer_alive(layout)[0], time.time())
    status = state.status
    if status in ("crashed", "failed"):
        _print_diagnosis(layout, state, to_stderr)
        return 1
    if status == "cancelled":
        return 130
    return 0


QUIET = {"heartbeat", "stage_progress"}
STYLES = {"error": "red", "run_finished": "bold", "stage_finished": "bold", "gpu": "dim", "heartbeat": "dim"}

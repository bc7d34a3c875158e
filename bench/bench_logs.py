"""The Logs panel on a long log: how long until 100k lines are read and drawn, and how long
a jump to the top and a re-filter of all of them take.

    .venv/bin/python bench/bench_logs.py            # 100,000 lines (~20 s on 2 cores)
    .venv/bin/python bench/bench_logs.py --lines 300000 --json

1. Reading alone: ``r1tui.runs.logs.EventLogSource`` over the whole file (the worker's part:
   JSON parse + ``format_event`` per event), no UI.
2. The panel: the real app headless (``run_test``), ``l`` pressed, until every line is read
   and the last one is on screen; then ``home`` until the first line shows; then ``w`` (a
   new minimum level, every line filtered again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "configs" / "tiny.toml"
sys.path.insert(0, str(REPO))


def screen_text(app) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def write_log(path: Path, lines: int) -> None:
    """Log events over four stages, a warning every tenth (as tests/dashboard/test_logs_help.py)."""
    from r1tui.runs.events import Event

    stages = ("prepare", "train", "export", "eval")
    with open(path, "w", encoding="utf-8") as log:
        for i in range(lines):
            level = "warning" if i % 10 == 9 else "info"
            event = Event("log", {"level": level, "message": f"line {i} of the long log"},
                          stages[i * len(stages) // lines], 1_800_000_000.0 + i, i + 1)
            log.write(event.to_json() + "\n")


async def until(pilot, condition, timeout: float = 300.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError
        await pilot.pause(0.01)


async def panel_timings(runs_dir: Path, run_dir: Path, lines: int) -> dict[str, float]:
    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.screens.main import PANEL_KEYS
    from r1tui.dashboard.source import RunRef
    from r1tui.dashboard.widgets.logs import LogsPanel

    app = DashboardApp(run=RunRef.at(run_dir), runs_dir=runs_dir, sample_local_gpu=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.caught_up)
        started = time.perf_counter()
        await pilot.press(PANEL_KEYS["logs"])
        panel = app.query_one(LogsPanel)
        await until(pilot, lambda: panel.caught_up and f"line {lines - 1} of" in screen_text(app))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        await pilot.press("home")
        await until(pilot, lambda: "line 0 of" in screen_text(app))
        home_s = time.perf_counter() - started
        started = time.perf_counter()
        await pilot.press("w")
        await until(pilot, lambda: "≥ warning" in screen_text(app))
        refilter_s = time.perf_counter() - started
    return {"panel_read_and_draw_s": read_s, "jump_to_top_s": home_s, "refilter_s": refilter_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from r1tui.config import dump_toml, load_config
    from r1tui.runs.layout import RunLayout
    from r1tui.runs.logs import EventLogSource

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        run = RunLayout(runs_dir / "20991231-000000-logs")
        run.root.mkdir(parents=True)
        run.config.write_text(dump_toml(load_config(TINY_CONFIG)))
        write_log(run.events, args.lines)
        size = run.events.stat().st_size

        started = time.perf_counter()
        source, read = EventLogSource(run.events), 0
        while batch := source.read():
            read += len(batch)
        reader_s = time.perf_counter() - started
        assert read == args.lines, read

        results = {"lines": args.lines, "bytes": size, "reader_s": reader_s,
                   "reader_lines_per_s": args.lines / reader_s,
                   **asyncio.run(panel_timings(runs_dir, run.root, args.lines))}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.lines:,} lines ({size / 1e6:.1f} MB)")
    print(f"  reader alone            {results['reader_s']:.2f} s ({results['reader_lines_per_s']:,.0f} lines/s)")
    print(f"  panel: read and drawn   {results['panel_read_and_draw_s']:.2f} s")
    print(f"  panel: home (to line 1) {results['jump_to_top_s'] * 1000:.0f} ms")
    print(f"  panel: re-filter all    {results['refilter_s'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()

"""Dashboard benchmarks: start-up, event ingestion, write-to-screen latency, input latency.

    .venv/bin/python bench/bench_dashboard.py            # all of it (~1 minute on 2 cores)
    .venv/bin/python bench/bench_dashboard.py --json     # the numbers as JSON

1. Start-up: a fresh interpreter runs the app headless until Textual's ``Ready``
   event (the first frame is on screen), side by side with the reference, a minimal
   Textual app (one Static) started the same way. Also: until the whole recorded
   tiny-run log is replayed and drawn.
2. Replay: a log of N events (metrics, progress, gpu samples, logs) folded by the
   dashboard (tail worker + reducer + redraws) against the reference, the bare
   EventReader + reducer with no UI.
3. Live: a writer thread appends as fast as it can while the dashboard tails; events
   per second the dashboard folds, and how long a key press takes to switch panels
   meanwhile (input must not freeze).
4. Write-to-screen: one metric event written, time until its step shows on screen
   (the training panel), at the default 0.1 s poll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from r1tui.runs.layout import RunLayout

REPO = Path(__file__).resolve().parent.parent
RECORDED = REPO / "tests" / "dashboard" / "fixtures" / "tiny_run_events.jsonl"
TINY_CONFIG = REPO / "configs" / "tiny.toml"
sys.path.insert(0, str(REPO))


def screen_text(app) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def make_run(runs_dir: Path, run_id: str, events: Path | None = RECORDED, live: bool = False) -> RunLayout:
    """A run folder with the tiny config (and the recorded log); ``live``: this process
    stands for its pipeline (its pid file), so the dashboard sees a live writer."""
    from r1tui.config import dump_toml, load_config
    from r1tui.runs.layout import RunLayout

    run = RunLayout(runs_dir / run_id)
    run.root.mkdir(parents=True)
    run.config.write_text(dump_toml(load_config(TINY_CONFIG)))
    if events is not None:
        shutil.copy(events, run.events)
    if live:
        run.pid.write_text(f"{os.getpid()}\n")
    return run


# ---------------------------------------------------------------- 1. start-up

REFERENCE_APP = """
import sys, time
from textual.app import App
from textual.widgets import Static
class Reference(App):
    def compose(self):
        yield Static("hello")
    def on_ready(self):
        print("READY", flush=True)
        self.exit()
Reference().run(headless=True, size=(80, 24))
"""

DASHBOARD_APP = """
import sys, time
from pathlib import Path
from r1tui.dashboard.app import DashboardApp
from r1tui.dashboard.source import open_run
WAIT_FOR_REPLAY = {wait}
class Timed(DashboardApp):
    def on_ready(self):
        print("READY", flush=True)
        if not WAIT_FOR_REPLAY:
            self.exit()
        else:
            self.set_interval(0.005, self._check)
    def _check(self):
        if self.caught_up and self.state.events_seen and "events · log" in self._text():
            print("REPLAYED", self.state.events_seen, flush=True)
            self.exit()
    def _text(self):
        strips = self.screen._compositor.render_strips()
        return "\\n".join("".join(s.text for s in strip) for strip in strips)
runs = Path({runs!r})
Timed(run=open_run(runs), runs_dir=runs, sample_local_gpu=False).run(headless=True, size=(80, 24))
"""


def time_child(code: str, marker: str) -> float:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(marker):
            elapsed = time.perf_counter() - started
            process.wait(timeout=60)
            return elapsed
    raise RuntimeError(f"child never printed {marker}: {process.stderr.read()[-2000:]}")


def bench_startup(repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        make_run(runs, "20261128-000000-tiny")
        reference, first_frame, replayed = [], [], []
        time_child(REFERENCE_APP, "READY")  # warm the file cache once for both
        for _ in range(repeat):
            reference.append(time_child(REFERENCE_APP, "READY"))
            first_frame.append(time_child(DASHBOARD_APP.format(wait=False, runs=str(runs)), "READY"))
            replayed.append(time_child(DASHBOARD_APP.format(wait=True, runs=str(runs)), "REPLAYED"))
    med = statistics.median
    return {
        "repeat": repeat,
        "reference_minimal_textual_app_s": round(med(reference), 3),
        "dashboard_first_frame_s": round(med(first_frame), 3),
        "dashboard_recorded_log_on_screen_s": round(med(replayed), 3),
        "first_frame_vs_reference": round(med(first_frame) / med(reference), 2),
        "all_first_frame_s": [round(x, 3) for x in first_frame],
    }


# ---------------------------------------------------------------- 2. replay throughput


def write_log(path: Path, n_events: int) -> None:
    from r1tui.runs.events import EventWriter

    with EventWriter(path) as writer:
        writer.emit("run_started", run_id=path.parent.name, pid=1, stages=["prepare", "train"], dry_run=False)
        writer.emit("stage_started", stage="train")
        step = 0
        while writer._seq < n_events - 1:
            step += 1
            writer.emit("metric", stage="train", step=step, epoch=step / 1000, loss=10 / step ** 0.1,
                        learning_rate=2e-4, grad_norm=1.0 + (step % 7) / 10, tokens_per_s=1234.5)
            writer.emit("stage_progress", stage="train", completed=step, total=10 ** 9, unit="step")
            if step % 10 == 0:
                writer.emit("gpu", stage="train", available=True, name="bench", memory_used=step, memory_total=1e12,
                            utilization=90, temperature=60)
            if step % 50 == 0:
                writer.emit("log", stage="train", level="info", message=f"step {step}")
        writer.emit("run_finished", status="finished")


async def replay_with_dashboard(runs: Path, panel_key: str) -> tuple[float, int]:
    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run

    app = DashboardApp(run=open_run(runs), runs_dir=runs, sample_local_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(panel_key)
        started = time.perf_counter()
        app.switch_run(open_run(runs))  # replay from the start, on the chosen panel
        while not (app.caught_up and app.state.events_seen):
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        return elapsed, app.state.events_seen


def bench_replay(n_events: int) -> dict:
    from r1tui.pipeline import registry
    from r1tui.runs.events import EventReader
    from r1tui.runs.reducer import RunState, reduce

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        run = make_run(runs, "20261128-000000-big", events=None)
        write_log(run.events, n_events)
        size = run.events.stat().st_size
        started = time.perf_counter()
        state = reduce(EventReader(run.events).read_new(), RunState(groups=registry.groups()))
        bare = time.perf_counter() - started
        results = {"events": state.events_seen, "log_bytes": size,
                   "reference_reader_plus_reducer_events_per_s": round(state.events_seen / bare)}
        for name, key in (("pipeline_panel", "1"), ("training_panel_plots", "4")):
            elapsed, seen = asyncio.run(replay_with_dashboard(runs, key))
            assert seen == state.events_seen, (seen, state.events_seen)
            results[f"dashboard_{name}_events_per_s"] = round(seen / elapsed)
            results[f"dashboard_{name}_s"] = round(elapsed, 3)
        results["dashboard_vs_reference"] = round(
            results["dashboard_pipeline_panel_events_per_s"] / results["reference_reader_plus_reducer_events_per_s"], 2)
        return results


# ---------------------------------------------------------------- 3. live flood + input latency


FLOOD_WRITER = """
import sys, time
from r1tui.runs.events import EventWriter
path, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
written, step = 0, 0
with EventWriter(path) as writer:
    print("GO", flush=True)
    started = time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        if rate and written >= rate * (time.perf_counter() - started):
            time.sleep(0.001)
            continue
        step += 1
        writer.emit("metric", stage="train", step=step, loss=1.0, learning_rate=1e-4, grad_norm=1.0,
                    tokens_per_s=1000.0)
        writer.emit("stage_progress", stage="train", completed=step, total=10 ** 9, unit="step")
        written += 2
print(written, flush=True)
"""


def send_key(app, key: str) -> None:
    """A key as the terminal driver delivers it (the Pilot's press() waits for idle,
    which a flooded app never is)."""
    from textual import events

    event = events.Key(key, key)
    event.set_sender(app)
    app._driver.send_message(event)


SWITCHES = [("1", "overview", "events · log:"), ("4", "training", "checkpoints")]  # key, tab, text it shows


async def timed_switch(app, tabs, switch_number: int) -> float:
    """Switch between panels 1 and 4 (alternately) and time until the new one is drawn."""
    key, target, marker = SWITCHES[switch_number % 2]
    pressed = time.perf_counter()
    send_key(app, key)
    while tabs.active != target or marker not in screen_text(app):
        await asyncio.sleep(0.001)
    return time.perf_counter() - pressed


async def live_flood(seconds: float, rate: float = 0.0) -> dict:
    """Another process writes events (at ``rate`` per second, 0: as fast as it can);
    we switch panels meanwhile."""
    from textual.widgets import TabbedContent

    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run
    from r1tui.runs.events import EventWriter

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        run = make_run(runs, "20261128-000000-live", events=None, live=True)
        with EventWriter(run.events) as writer:
            writer.emit("run_started", run_id=run.run_id, pid=os.getpid(), stages=["train"], dry_run=False)
        app = DashboardApp(run=open_run(runs), runs_dir=runs, sample_local_gpu=False)
        latencies: list[float] = []
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.caught_up:
                await asyncio.sleep(0.01)
            await pilot.press("4")
            seen_before = app.state.events_seen
            writer_process = subprocess.Popen(
                [sys.executable, "-c", FLOOD_WRITER, str(run.events), str(seconds), str(rate)],
                stdout=subprocess.PIPE, text=True, cwd=REPO)
            assert writer_process.stdout is not None
            writer_process.stdout.readline()  # GO
            started = time.perf_counter()
            tabs = app.query_one(TabbedContent)
            while writer_process.poll() is None:
                latencies.append(await timed_switch(app, tabs, len(latencies)))
                await asyncio.sleep(0.1)
            written = int(writer_process.stdout.read().strip())
            elapsed = time.perf_counter() - started
            folded_during = app.state.events_seen - seen_before
            while app.state.events_seen - seen_before < written:  # drain: nothing may be lost
                await asyncio.sleep(0.01)
            drained = time.perf_counter() - started
    latencies.sort()
    return {
        "writer": f"another process, EventWriter, {'as fast as it can' if not rate else f'{rate:,.0f} events/s'}",
        "seconds": round(elapsed, 2),
        "written_events_per_s": round(written / elapsed),
        "folded_events_per_s_while_writing": round(folded_during / elapsed),
        "all_folded_after_s": round(drained, 2),
        "key_presses": len(latencies),
        "panel_switch_latency_median_ms": round(1000 * statistics.median(latencies), 1),
        "panel_switch_latency_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "panel_switch_latency_max_ms": round(1000 * latencies[-1], 1),
    }


async def idle_cpu(seconds: float = 5.0) -> dict:
    """CPU the dashboard uses while nothing happens: a finished run, and a live run
    whose log is quiet (the tail still polls every 0.1 s, the header ticks each second)."""
    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run
    from r1tui.runs.events import EventWriter

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        make_run(runs, "20261128-000000-tiny")
        live = make_run(runs, "20261129-000000-live", events=None, live=True)
        with EventWriter(live.events) as writer:
            writer.emit("run_started", run_id=live.run_id, pid=os.getpid(), stages=["train"], dry_run=False)
        for name, run_id, panel in (("finished_run", "20261128-000000-tiny", "1"),
                                    ("live_quiet_run_training_panel", live.run_id, "4")):
            app = DashboardApp(run=open_run(runs, run_id), runs_dir=runs, sample_local_gpu=False)
            async with app.run_test(size=(80, 24)) as pilot:
                while not app.caught_up:
                    await asyncio.sleep(0.01)
                await pilot.press(panel)
                await asyncio.sleep(1.0)
                cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.sleep(seconds)
                results[f"{name}_cpu_percent"] = round(100 * (time.process_time() - cpu) / (time.perf_counter() - wall), 2)
    return results


async def cpu_share(seconds: float = 10.0, rate: float = 1000.0) -> dict:
    """Share of one core the dashboard's process uses (every thread: tail, sampler, UI),
    on the Overview panel as a person leaves it open: a finished run with nothing
    happening, and a live run another process writes ``rate`` events/s to; with this
    machine's sampling (GPU, the run's process tree, disk) on and off. Reference: a
    minimal Textual app (one ``Static``) idling under the same headless harness."""
    from textual.app import App
    from textual.widgets import Static

    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run
    from r1tui.runs.events import EventWriter

    async def measure(app, panel: str | None = None, writer_args: list[str] | None = None) -> float:
        async with app.run_test(size=(80, 24)) as pilot:
            while not getattr(app, "caught_up", True):
                await asyncio.sleep(0.01)
            if panel:
                await pilot.press(panel)
            writer = None
            if writer_args:
                writer = subprocess.Popen([sys.executable, "-c", FLOOD_WRITER, *writer_args],
                                          stdout=subprocess.PIPE, text=True, cwd=REPO)
                writer.stdout.readline()  # GO
            await asyncio.sleep(1.0)  # settle: first draws, first samples
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            share = 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
            if writer is not None:
                writer.wait()
            return round(share, 2)

    class Reference(App):
        def compose(self):
            yield Static("hello")

    results = {"reference_minimal_textual_app_cpu_percent": await measure(Reference())}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        make_run(runs, "20261128-000000-tiny")
        for sampling in (False, True):
            app = DashboardApp(run=open_run(runs, "20261128-000000-tiny"), runs_dir=runs, sample_local_gpu=sampling)
            results[f"finished_run_overview_sampling_{'on' if sampling else 'off'}_cpu_percent"] = \
                await measure(app, "1")
        live = make_run(runs, "20261129-000000-live", events=None, live=True)
        with EventWriter(live.events) as writer:
            writer.emit("run_started", run_id=live.run_id, pid=os.getpid(), stages=["train"], dry_run=False)
        for panel, name in (("1", "overview"), ("4", "training")):
            app = DashboardApp(run=open_run(runs, live.run_id), runs_dir=runs, sample_local_gpu=True)
            # the writer runs a little longer than the measurement window, at `rate` events/s
            results[f"live_run_{rate:.0f}_events_per_s_{name}_cpu_percent"] = \
                await measure(app, panel, [str(live.events), str(seconds + 2.0), str(rate)])
    return results


async def idle_switch_latency(samples: int = 20) -> dict:
    """The same panel switch with nothing being written (the baseline for the above)."""
    from textual.widgets import TabbedContent

    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        make_run(runs, "20261128-000000-tiny")
        app = DashboardApp(run=open_run(runs), runs_dir=runs, sample_local_gpu=False)
        latencies = []
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.caught_up:
                await asyncio.sleep(0.01)
            await pilot.press("4")
            tabs = app.query_one(TabbedContent)
            for i in range(samples):
                latencies.append(await timed_switch(app, tabs, i))
                await asyncio.sleep(0.1)
    return {"panel_switch_latency_median_ms": round(1000 * statistics.median(latencies), 1),
            "panel_switch_latency_max_ms": round(1000 * max(latencies), 1)}


# ---------------------------------------------------------------- 4. write-to-screen


async def write_to_screen(samples: int) -> dict:
    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import open_run
    from r1tui.runs.events import EventWriter

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        run = make_run(runs, "20261128-000000-latency", events=None, live=True)
        writer = EventWriter(run.events)
        writer.emit("run_started", run_id=run.run_id, pid=os.getpid(), stages=["train"], dry_run=False)
        app = DashboardApp(run=open_run(runs), runs_dir=runs, sample_local_gpu=False)
        latencies = []
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.caught_up:
                await asyncio.sleep(0.01)
            await pilot.press("4")
            for step in range(1, samples + 1):
                await asyncio.sleep(0.05 + (step % 5) * 0.013)  # land at different points of the poll
                marker = f"step {1000 + step}/99999"
                written = time.perf_counter()
                writer.emit("metric", stage="train", step=1000 + step, loss=1.0, learning_rate=1e-4)
                writer.emit("stage_progress", stage="train", completed=1000 + step, total=99999, unit="step")
                while marker not in screen_text(app):
                    await asyncio.sleep(0.002)
                latencies.append(time.perf_counter() - written)
        writer.close()
    latencies.sort()
    return {
        "samples": samples,
        "poll_s": 0.1,
        "median_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "max_ms": round(1000 * latencies[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="start-up repeats (median reported)")
    parser.add_argument("--events", type=int, default=200_000, help="events in the replay log")
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU share of the dashboard left open")
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.cpu_only:
        print(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu_share": asyncio.run(cpu_share(args.cpu_seconds))},
                         indent=2))
        return
    results = {
        "machine": f"{platform.node()} · {platform.machine()} · {__import__('os').cpu_count()} CPUs · "
                   f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "startup": bench_startup(args.repeat),
        "replay": bench_replay(args.events),
        "idle_cpu": asyncio.run(idle_cpu()),
        "cpu_share": asyncio.run(cpu_share(args.cpu_seconds)),
        "idle": asyncio.run(idle_switch_latency()),
        "live_5000_per_s": asyncio.run(live_flood(args.flood_seconds, 5000)),
        "live_flat_out": asyncio.run(live_flood(args.flood_seconds)),
        "write_to_screen": asyncio.run(write_to_screen(args.latency_samples)),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    from rich.console import Console
    from rich.pretty import Pretty

    Console().print(Pretty(results))


if __name__ == "__main__":
    main()

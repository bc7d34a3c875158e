"""Attach, follow, re-attach: the dashboard against logs that grow while it watches,
processes that die, and a real run started from the dashboard that outlives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from r1tui.dashboard.actions import Launcher
from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.source import RunRef, find_runs
from r1tui.runs.events import EventWriter, read_events

pytestmark = pytest.mark.anyio


async def test_follows_a_growing_log(make_app, new_run, settle, wait_for, screen_text):
    run = new_run(events=False, results=False)
    run.layout.pid.write_text(f"{os.getpid()}\n")  # a live process stands for the pipeline
    writer = EventWriter(run.layout.events)
    writer.emit("run_started", run_id=run.run_id, pid=os.getpid(), stages=["prepare", "train"], dry_run=False)
    writer.emit("stage_started", stage="train")
    app = make_app(run, clock=time.time)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            await wait_for(pilot, lambda: app.state.status == "running", what="running")
            await pilot.press(KEY["training"])
            for step in range(1, 6):
                writer.emit("metric", stage="train", step=step, loss=10.0 - step, learning_rate=1e-3,
                            grad_norm=1.0, tokens_per_s=500.0)
                writer.emit("stage_progress", stage="train", completed=step, total=10, unit="step")
            await wait_for(pilot, lambda: "step 5/10" in screen_text(app), what="step 5 on screen")
            assert list(app.state.series("loss").ys) == [9.0, 8.0, 7.0, 6.0, 5.0]
            writer.emit("stage_finished", stage="train", status="finished", duration_s=1.0)
            writer.emit("run_finished", status="finished")
            await wait_for(pilot, lambda: "finished" in screen_text(app).splitlines()[0], what="finished")
    finally:
        writer.close()


async def test_reattach_shows_the_whole_history(make_app, recorded_run, settle, wait_for, screen_text):
    """Kill the dashboard mid-run, open it again: everything is there and it continues."""
    lines = recorded_run.layout.events.read_text().splitlines(keepends=True)
    half = len(lines) // 2
    recorded_run.layout.events.write_text("".join(lines[:half]))
    first = make_app(recorded_run)
    async with first.run_test(size=(80, 24)) as pilot:
        await settle(pilot, first)
        assert first.state.events_seen == half
    with open(recorded_run.layout.events, "a") as log:
        log.write("".join(lines[half:]))
    again = make_app(recorded_run)
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot, again)
        assert again.state.events_seen == len(lines)
        assert again.state.status == "finished"
        assert len(again.state.series("loss")) == sum(1 for line in lines if '"type":"metric"' in line)


async def test_a_killed_run_shows_as_crashed(make_app, new_run, settle, wait_for, screen_text):
    run = new_run(events=False, results=False)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    run.layout.pid.write_text(f"{process.pid}\n")
    with EventWriter(run.layout.events) as writer:
        writer.emit("run_started", run_id=run.run_id, pid=process.pid, stages=["train"], dry_run=False)
        writer.emit("stage_started", stage="train")
    app = make_app(run, clock=time.time)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await wait_for(pilot, lambda: app.state.status == "running", what="running")
        process.send_signal(signal.SIGKILL)
        process.wait()
        await wait_for(pilot, lambda: "crashed" in screen_text(app).splitlines()[0], what="crashed")
        assert any(line.split()[:3] == ["train", "✗", "crashed"] for line in screen_text(app).splitlines())
        assert "the process is gone without a finish event" in screen_text(app)


async def test_malformed_lines_are_skipped(make_app, new_run, settle):
    run = new_run(events=False, results=False)
    good = json.dumps({"v": 1, "seq": 1, "ts": 1.0, "type": "log", "stage": None,
                       "data": {"level": "info", "message": "ok"}})
    run.layout.events.write_text(f"{good}\nnot json at all\n{{\"broken\": \n{good}\n")
    app = make_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert app.state.events_seen == 2


@pytest.mark.slow
async def test_start_a_real_run_then_quit_and_it_keeps_running(make_app, runs_dir, settle, wait_for, tmp_path):
    """Start from the dashboard (dry run off), follow the new run, quit: the run lives on."""
    from r1tui.pipeline.launch import cancel_run
    from r1tui.runs.status import read_pid, run_status

    launcher = Launcher(tmp_path / "real-launches")
    app = make_app(None, dry_run=False, launcher=launcher, python=sys.executable, clock=time.time)
    pid = None
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            await pilot.press(KEY["overview"], "s")
            await wait_for(pilot, lambda: app.run_ref is not None, timeout=60, what="the new run")
            run: RunRef = app.run_ref
            assert [ref.run_id for ref in find_runs(runs_dir)] == [run.run_id]
            await wait_for(pilot, lambda: app.state.status == "running", timeout=60, what="the run to start")
            await wait_for(pilot, lambda: app.state.stage("prepare").status != "pending", timeout=90,
                           what="the first stage")
            pid = read_pid(run.layout)
            await pilot.press("q")
        assert pid is not None and run_status(run.layout).status == "running"
        time.sleep(1.0)
        assert run_status(run.layout).status == "running"  # quitting the dashboard did not stop it
        final = cancel_run(run.layout, wait=120)
        assert final.status in ("cancelled", "finished"), final
        events = read_events(run.layout.events)
        assert events[0].type == "run_started" and events[-1].type == "run_finished"
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

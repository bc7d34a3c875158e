"""Alerts in the dashboard: a live run that finishes, logs a NaN loss or dies rings (a
toast here; the bell and OSC escapes are written in a real terminal: test_tmux.py);
replaying a finished run rings nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from r1tui.runs.events import EventWriter

pytestmark = pytest.mark.anyio


def toasts(app) -> list[tuple[str, str, str]]:
    return [(n.title, n.severity, n.message) for n in app._notifications if n.title.startswith(("run ", "loss",
                                                                                              "GPU"))]


def start_live(run) -> subprocess.Popen:
    """A process standing in for the pipeline: alive, with a pid file and a fresh log."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    run.layout.pid.write_text(f"{process.pid}\n")
    with EventWriter(run.layout.events) as writer:
        writer.emit("run_started", run_id=run.run_id, pid=process.pid, stages=["train"], dry_run=False,
                    heartbeat_s=10.0)
        writer.emit("stage_started", stage="train")
        writer.emit("metric", stage="train", step=1, max_steps=30, loss=10.4)
    return process


async def test_replaying_a_finished_run_rings_nothing(make_app, recorded_run, settle):
    app = make_app(recorded_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.pause(0.5)
        assert app.state.status == "finished" and app.alerts.primed
        assert toasts(app) == []


async def test_a_live_run_that_logs_nan_then_finishes_rings_each_once(make_app, new_run, settle, wait_for):
    run = new_run(events=False, results=False)
    process = start_live(run)
    try:
        app = make_app(run, clock=time.time)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            await wait_for(pilot, lambda: app.state.status == "running", what="the live run")
            assert toasts(app) == []
            with EventWriter(run.layout.events) as writer:
                writer.emit("metric", stage="train", step=2, max_steps=30, loss=float("nan"))
            await wait_for(pilot, lambda: toasts(app), what="the NaN alert")
            assert toasts(app) == [("loss is NaN/inf", "error", "loss is NaN or inf at step 2: training diverged "
                                    "(lower the learning rate, or resume from an earlier checkpoint)")]
            with EventWriter(run.layout.events) as writer:
                writer.emit("run_finished", status="finished")
            await wait_for(pilot, lambda: len(toasts(app)) == 2, what="the finish alert")
            title, severity, message = toasts(app)[1]
            assert (title, severity) == ("run finished", "information")
            assert message.startswith(f"run {run.run_id} finished in ")
            await pilot.pause(1.5)
            assert len(toasts(app)) == 2  # once each
    finally:
        process.kill()
        process.wait()


async def test_a_live_run_killed_with_sigkill_rings_crashed_with_the_diagnosis(make_app, new_run, settle, wait_for):
    run = new_run(events=False, results=False)
    process = start_live(run)
    app = make_app(run, clock=time.time)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await wait_for(pilot, lambda: app.state.status == "running", what="the live run")
        process.send_signal(signal.SIGKILL)
        process.wait()
        await wait_for(pilot, lambda: toasts(app), timeout=30, what="the crash alert")
        [(title, severity, message)] = toasts(app)
        assert (title, severity) == ("run crashed", "error")
        assert message.startswith(f"run {run.run_id} crashed in train: its process is gone without a finish event\n"
                                  "nothing was written as it ended: a signal killed it")


@pytest.mark.parametrize("spike_alerts", [True, False])
async def test_loss_spike_alerts_follow_the_config(spike_alerts, make_app, new_run, settle, wait_for):
    """A jump of the loss far above its smoothed value rings unless [alerts] loss_spike = false."""
    from r1tui.config import dump_toml, load_config

    run = new_run(events=False, results=False)
    config = load_config(run.layout.config)
    config.alerts.loss_spike = spike_alerts
    config.alerts.bell = False
    run.layout.config.write_text(dump_toml(config), encoding="utf-8")
    process = start_live(run)
    try:
        app = make_app(run, clock=time.time)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            assert (app.alerts.settings.loss_spike, app.alerts.settings.bell) == (spike_alerts, False)
            with EventWriter(run.layout.events) as writer:
                for step in range(2, 40):
                    writer.emit("metric", stage="train", step=step, max_steps=40, loss=9.0 if step == 35 else 3.0)
            await wait_for(pilot, lambda: app.state.last_metric.get("step") == 39, what="the metrics")
            await pilot.pause(0.3)
            found = toasts(app)
            if not spike_alerts:
                assert found == []
            else:  # the smoothed figure still carries the first loss (10.4): computed, not typed
                [(title, severity, message)] = found
                assert (title, severity) == ("loss spike", "warning")
                assert message.startswith("loss spike at step 35: 9 against a smoothed 3.")
    finally:
        process.kill()
        process.wait()

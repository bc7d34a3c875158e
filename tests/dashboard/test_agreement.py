"""The dashboard and `r1tui runs` read a run the same way: one reducer, one liveness.

Each log is written into a run folder with a config and a ``lock`` file (so liveness
comes from the OS lock: not held, unless a case holds it), then read twice: by
``r1tui.runs.status.run_status`` (what `r1tui runs` / `logs` / `cancel` show) and by the
dashboard as its tail worker folds it. Both must say the same run status and the same
stage states, on the screen too. A stage registered at test time shows up in the
Overview panel without touching the dashboard's code.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from r1tui.pipeline import registry
from r1tui.runs.events import Event
from r1tui.runs.lock import RunLock
from r1tui.runs.status import run_status

RECORDED_LOG = Path(__file__).resolve().parent / "fixtures" / "tiny_run_events.jsonl"
pytestmark = pytest.mark.anyio
T0 = time.time() - 600  # ten minutes ago: fresh enough that a held run is not stuck


def line(type: str, stage: str | None = None, dt: float = 0.0, **data) -> str:
    return Event(type=type, stage=stage, data=data, ts=T0 + dt).to_json() + "\n"


def started(dt: float = 0.0, **data) -> str:
    return line("run_started", dt=dt, run_id="r", pid=999_999, stages=["prepare", "train", "export"], **data)


def ran(stage: str, dt: float, status: str = "finished") -> str:
    return line("stage_started", stage, dt) + line("stage_finished", stage, dt + 1, status=status, duration_s=1.0)


FINISHED = started() + ran("prepare", 1) + ran("train", 3) + line("run_finished", dt=5, status="finished")
CRASHED = started() + ran("prepare", 1) + line("stage_started", "train", 3) + line("metric", "train", 4, step=1,
                                                                                     loss=2.0)
CASES = {
    # name: (log, hold the lock, run status, {stage: status} both must show)
    "recorded": (RECORDED_LOG.read_text(encoding="utf-8"), False, "finished",
                 {name: "finished" for name in ("prepare", "train", "merge", "gguf", "quantize", "parity", "eval")}),
    "finished": (FINISHED, False, "finished", {"prepare": "finished", "train": "finished"}),
    "crashed": (CRASHED, False, "crashed", {"prepare": "finished", "train": "crashed"}),
    "failed": (started() + line("stage_started", "prepare", 1) + line("error", "prepare", 2, message="disk full")
               + line("stage_finished", "prepare", 2, status="failed")
               + line("run_finished", dt=3, status="failed", error="disk full"),
               False, "failed", {"prepare": "failed"}),
    "cancelled": (started() + ran("prepare", 1) + ran("train", 3, status="cancelled")
                  + line("run_finished", dt=5, status="cancelled"), False, "cancelled",
                  {"prepare": "finished", "train": "cancelled"}),
    "resumed": (CRASHED + started(dt=10, resumed=True) + ran("prepare", 11, status="skipped") + ran("train", 13)
                + line("run_finished", dt=15, status="finished"), False, "finished",
                {"prepare": "skipped", "train": "finished"}),
    "torn last line": (CRASHED + line("metric", "train", 5, step=2, loss=1.5)[:25], False, "crashed",
                       {"prepare": "finished", "train": "crashed"}),
    "killed export": (FINISHED + line("stage_started", "merge", 20), False, "finished", {"merge": "crashed"}),
    "running export": (FINISHED + line("stage_started", "merge", 20), True, "finished", {"merge": "running"}),
}


def complete_lines(log: str) -> int:
    return sum(1 for text in log.splitlines(keepends=True) if text.endswith("\n"))


def stage_row(screen: str, name: str) -> str:
    return next((row for row in screen.splitlines() if row.split()[:1] == [name]), "")


@pytest.mark.parametrize("case", list(CASES))
async def test_the_dashboard_and_run_status_agree(case, make_app, new_run, screen_text, wait_for):
    log, hold, expected_status, expected_stages = CASES[case]
    run = new_run(events=False, results=False)
    run.layout.events.write_text(log, encoding="utf-8")
    run.layout.lock.touch()  # a lock file nobody holds: liveness comes from the lock, not a pid
    lock = RunLock(run.layout, "r1tui export").acquire() if hold else None
    try:
        cli = run_status(run.layout)
        assert cli.status == expected_status, cli
        assert {name: cli.stage_status.get(name) for name in expected_stages} == expected_stages

        app = make_app(run, clock=time.time)
        async with app.run_test(size=(100, 30)) as pilot:
            state = app.state
            await wait_for(pilot, lambda: app.state.events_seen == complete_lines(log)
                           and app.state.process_alive is not None, what="the log and the liveness check")
            assert state.status == cli.status
            assert {name: state.stage_status(name) for name in cli.stage_status} == cli.stage_status
            assert state.current_stage == cli.stage

            def drawn() -> bool:
                screen = screen_text(app)
                return (cli.status in screen.splitlines()[0]
                        and all(status in stage_row(screen, name) for name, status in cli.stage_status.items()))

            await wait_for(pilot, drawn, what=f"{cli.status} and {cli.stage_status} on screen")
    finally:
        if lock is not None:
            lock.release()


@pytest.fixture
def distill():
    """A stage registered at test time, between parity and eval; unregistered afterwards."""
    stage = registry.register(registry.Stage(
        name="distill", step="distill", does="distil the tuned model", writes="distilled/",
        fingerprint=lambda ctx: "", done=lambda ctx: False, run=lambda ctx: None), before="eval")
    yield stage
    registry.unregister(stage.name)


async def test_a_stage_registered_at_test_time_is_in_the_overview_panel(distill, make_app, recorded_run, settle,
                                                                       screen_text):
    app = make_app(recorded_run)
    assert "distill" in app.plan("start").details[0]  # the start plan lists it too
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        rows = [row.split()[0] for row in screen_text(app).splitlines()
                if row.split()[:1] and row.split()[0] in registry.stage_names()]
        assert rows == list(registry.stage_names())
        assert rows.index("distill") == rows.index("eval") - 1
        assert "· pending" in stage_row(screen_text(app), "distill")  # the recorded run never ran it


async def test_a_stage_the_registry_does_not_know_is_shown_after_the_known_ones(make_app, new_run, settle,
                                                                               screen_text):
    run = new_run(events=False, results=False)
    run.layout.events.write_text(started() + ran("prepare", 1) + ran("sweep", 3), encoding="utf-8")
    app = make_app(run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        rows = [row.split()[0] for row in screen_text(app).splitlines()
                if row.split()[:1] and row.split()[0] in (*registry.stage_names(), "sweep")]
        assert rows == [*registry.stage_names(), "sweep"]
        assert "✓ finished" in stage_row(screen_text(app), "sweep")


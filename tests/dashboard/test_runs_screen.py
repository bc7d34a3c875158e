"""The Runs screen: every run with its status and size, open, compare (the Training panel's
overlay), resume and cancel through the action plans, delete (refused for a live run,
confirmed with a summary otherwise), filter by status. Real run folders (the recorded tiny
run's log), real status reading, real deletion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import DataTable

from r1tui.dashboard.screens.modals import PlanScreen
from r1tui.dashboard.screens.runs import DeleteRunScreen, RunsScreen, delete_run, folder_size
from r1tui.dashboard.widgets.training import TrainingPanel
from r1tui.errors import R1Error
from r1tui.runs.status import run_status

pytestmark = pytest.mark.anyio

SMALL, LARGE = (80, 24), (120, 40)
OTHER_ID = "20261128-090000-beef"
LIVE_ID = "20261201-000000-1ive"
TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


@pytest.fixture
def runs_dir(fixed_runs_dir):
    """The same runs path on every run: the snapshots show it (or sizes of files holding it)."""
    return fixed_runs_dir


def fixed_config(run) -> None:
    """The frozen config holds absolute paths (their length varies by checkout): a fixed one
    keeps the sizes shown the same everywhere."""
    run.layout.config.write_text(TINY.read_text(encoding="utf-8"), encoding="utf-8")


@pytest.fixture
def runs(new_run, runs_dir):
    """The recorded (finished) run, another finished one, and a live one (a pid file naming
    this test process: a writer holds it)."""
    recorded = new_run()
    other = new_run(run_id=OTHER_ID, results=False)
    live = new_run(run_id=LIVE_ID, events=False, results=False)
    live.layout.pid.write_text(f"{os.getpid()}\n")
    for run in (recorded, other, live):
        fixed_config(run)
    return recorded, other, live


async def open_runs(pilot, app, wait_for) -> RunsScreen:
    await pilot.press("R")
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows is not None,
                   what="the runs")
    return app.screen


async def highlight(pilot, screen: RunsScreen, run_id: str) -> None:
    ids = [row.run_id for row in screen.shown()]
    screen.query_one(DataTable).move_cursor(row=ids.index(run_id))
    await pilot.pause(0.05)
    assert screen.highlighted().run_id == run_id


async def test_the_table_lists_every_run_with_status_and_size(make_app, runs, settle, wait_for, screen_text):
    recorded, other, live = runs
    app = make_app(recorded)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        screen = await open_runs(pilot, app, wait_for)
        assert [row.run_id for row in screen.rows] == [LIVE_ID, OTHER_ID, recorded.run_id]  # newest first
        text = screen_text(app)
        for run in runs:
            status = run_status(run.layout)
            line = next(line for line in text.splitlines() if run.run_id in line)
            assert status.status in line
            size = folder_size(run.run_dir)[0]
            from r1tui.present import format_bytes

            assert format_bytes(size) in line
        finished = run_status(recorded.layout)
        line = next(line for line in text.splitlines() if recorded.run_id in line)
        assert f"{finished.step:,}/{finished.max_steps:,}" in line and finished.stage in line
        assert f"● {recorded.run_id}" in text  # the run shown

        await pilot.press("f")  # running only
        await pilot.pause(0.05)
        assert [row.run_id for row in screen.shown()] == [LIVE_ID]
        assert "1 of 3 runs" in screen_text(app) and recorded.run_id not in screen_text(app)
        await pilot.press("f")  # finished
        await pilot.pause(0.05)
        assert {row.run_id for row in screen.shown()} == {recorded.run_id, OTHER_ID}

        await highlight(pilot, screen, OTHER_ID)
        await pilot.press("enter")  # open it
        await wait_for(pilot, lambda: app.run_ref is not None and app.run_ref.run_id == OTHER_ID, what="the switch")
        assert not isinstance(app.screen, RunsScreen)


async def test_delete_refuses_a_live_run_and_deletes_a_finished_one_after_confirming(
        make_app, runs, settle, wait_for, screen_text):
    recorded, other, live = runs
    app = make_app(recorded)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        screen = await open_runs(pilot, app, wait_for)

        await highlight(pilot, screen, LIVE_ID)
        await pilot.press("delete")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, DeleteRunScreen)
        assert live.run_dir.is_dir() and live.layout.pid.is_file()
        assert any(f"run {LIVE_ID} is live" in str(n.message) and "cancel it first" in str(n.message)
                   for n in app._notifications)

        await highlight(pilot, screen, OTHER_ID)
        size, files = folder_size(other.run_dir)
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, DeleteRunScreen), what="the confirmation")
        shown = screen_text(app)
        assert f"Delete run {OTHER_ID}?" in shown and f"{files} files" in shown and "events.jsonl" in shown
        await pilot.press("n")  # keep it
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back")
        assert other.run_dir.is_dir()

        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, DeleteRunScreen), what="the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not other.run_dir.exists(), what="the deletion")
        await wait_for(pilot, lambda: OTHER_ID not in screen_text(app), what="the table updated")
        assert sorted(p.name for p in other.run_dir.parent.iterdir()) == sorted([LIVE_ID, recorded.run_id])

        # the run shown can go too: the dashboard then shows no run
        await highlight(pilot, screen, recorded.run_id)
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, DeleteRunScreen), what="the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.run_ref is None, what="no run shown")
        assert not recorded.run_dir.exists()


def test_delete_run_refuses_a_live_folder(runs):
    _, _, live = runs
    with pytest.raises(R1Error, match=f"run {LIVE_ID} is live .*cancel it first"):
        delete_run(live.run_dir)
    assert live.run_dir.is_dir()


async def test_resume_cancel_and_compare_go_through_the_plans_and_the_overlay(
        make_app, runs, settle, wait_for, launcher):
    recorded, other, live = runs
    app = make_app(recorded, dry_run=False)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        screen = await open_runs(pilot, app, wait_for)

        await highlight(pilot, screen, OTHER_ID)
        await pilot.press("x")  # cancel a finished run: the plan says why not
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the cancel plan")
        assert app.screen.plan.blocked == "the run is not running (finished)"
        assert app.screen.plan.argv[-1] == str(other.run_dir)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back")

        await pilot.press("r")  # resume it: another run is live here, so the guard asks first, naming it
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the resume plan")
        plan = app.screen.plan
        assert plan.argv == ("python", "-m", "r1tui", "run", "--resume", str(other.run_dir))
        assert plan.confirm and LIVE_ID in plan.warning
        await pilot.press("y")
        await wait_for(pilot, lambda: launcher.argvs, what="the launch")
        assert launcher.argvs[-1] == list(plan.argv)

        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back")
        await highlight(pilot, screen, LIVE_ID)
        await pilot.press("x")  # cancel the live one: confirmed, then launched
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the cancel plan")
        assert not app.screen.plan.blocked and app.screen.plan.argv[-2:] == ("cancel", str(live.run_dir))
        await pilot.press("y")
        await wait_for(pilot, lambda: len(launcher.argvs) == 2, what="the cancel launch")

        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back")
        await highlight(pilot, screen, OTHER_ID)
        await pilot.press("c")  # compare: its loss over the run shown, on the Training panel
        panel = app.query_one(TrainingPanel)
        await wait_for(pilot, lambda: panel.overlay is not None, what="the overlay")
        assert panel.overlay.run_id == OTHER_ID and app.main.active_panel_id == "training"


def _shown(wait_for):
    async def run_before(pilot) -> None:
        app = pilot.app
        while not app.caught_up:
            await pilot.pause(0.05)
        await open_runs(pilot, app, wait_for)
        await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_runs_screen_snapshot(size, snap_compare, make_app, new_run, wait_for):
    recorded = new_run()
    other = new_run(run_id=OTHER_ID, results=False)
    for run in (recorded, other):
        fixed_config(run)
    app = make_app(recorded)
    assert snap_compare(app, terminal_size=size, run_before=_shown(wait_for))

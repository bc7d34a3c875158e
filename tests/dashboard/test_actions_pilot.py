"""Every action from the keyboard, with dry run on (a plan, nothing launched) and off
(the exact command launched, after a confirmation where one is due)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from r1tui.dashboard.actions import Launcher
from r1tui.dashboard.screens.modals import PlanScreen
from r1tui.runs.events import EventWriter

pytestmark = pytest.mark.anyio

# action -> (panel key, action key)
KEYS = {"start": ("1", "s"), "resume": ("1", "r"), "cancel": ("1", "x"), "export": ("6", "e"),
        "evaluate": ("7", "v"), "push": ("9", "p")}


def expected_argv(action: str, run, config_path, runs_dir) -> list[str]:
    run_dir = str(run.run_dir)
    return {
        "start": ["python", "-m", "r1tui", "run", "--config", str(config_path), "--runs-dir", str(runs_dir)],
        "resume": ["python", "-m", "r1tui", "run", "--resume", run_dir],
        "cancel": ["python", "-m", "r1tui", "cancel", run_dir],
        "export": ["python", "-m", "r1tui", "export", run_dir],
        "evaluate": ["python", "-m", "r1tui", "eval", run_dir],
        "push": ["python", "-m", "r1tui", "push", run_dir],
    }[action]


async def press_action(pilot, action: str) -> None:
    panel_key, action_key = KEYS[action]
    await pilot.press(panel_key)
    await pilot.pause(0.05)
    await pilot.press(action_key)
    await pilot.pause(0.1)


def plan_text(app) -> str:
    screen = app.screen
    assert isinstance(screen, PlanScreen), f"expected the plan dialog, got {type(screen).__name__}"
    return str(screen.query_one("#plan-title").content) + "\n" + str(screen.query_one("#plan-body").content)


@pytest.mark.parametrize("action", list(KEYS))
async def test_dry_run_on_shows_the_plan_and_launches_nothing(action, make_app, recorded_run, launcher, settle,
                                                              wait_for):
    app = make_app(recorded_run, dry_run=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, action)
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the plan dialog")
        text = plan_text(app)
        assert text.startswith("Dry run — ")
        config = app.config.source_path
        assert list(app.last_plan.argv) == expected_argv(action, recorded_run, config, app.runs_dir)
        shown = app.last_plan.shown(app.show_path)  # paths shortened for reading
        assert shown in text and f"runs/{recorded_run.run_id}" in shown
        assert "nothing was launched" in text
        if action == "start":
            assert f"{app.report['parameters']['total']:,} parameters" in text  # the estimates, computed
        if action == "export":
            assert "predicted GGUF sizes: Q4_K_M" in text
        await pilot.press("y")  # no launching from a dry run, even when asked
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PlanScreen), what="the dialog to close")
        assert launcher.plans == []
        assert app.last_plan.action == action


@pytest.mark.parametrize("action", ["start", "resume", "export", "evaluate"])
async def test_dry_run_off_launches_the_cli_command(action, make_app, recorded_run, launcher, settle, wait_for):
    app = make_app(recorded_run, dry_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, action)
        await wait_for(pilot, lambda: launcher.plans, what="a launch")
        assert launcher.argvs == [expected_argv(action, recorded_run, app.config.source_path, app.runs_dir)]
        assert not isinstance(app.screen, PlanScreen)


async def test_push_needs_a_repo(make_app, recorded_run, launcher, settle, wait_for, monkeypatch):
    monkeypatch.delenv("HF_REPO_ID", raising=False)
    app = make_app(recorded_run, dry_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "push")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the explanation")
        assert "cannot run now: no Hub repo to push to" in plan_text(app)
        await pilot.press("y", "escape")
        assert launcher.plans == []


async def test_push_asks_first(make_app, recorded_run, launcher, settle, wait_for, monkeypatch):
    monkeypatch.setenv("HF_REPO_ID", "someone/tiny-r1")
    app = make_app(recorded_run, dry_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "push")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the confirmation")
        assert plan_text(app).startswith("Push to the Hub?")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, PlanScreen), what="the dialog to close")
        assert launcher.plans == []
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the confirmation again")
        await pilot.press("y")
        await wait_for(pilot, lambda: launcher.plans, what="the push")
        assert launcher.argvs == [expected_argv("push", recorded_run, None, None)]


async def test_cancel_is_refused_for_a_finished_run(make_app, recorded_run, launcher, settle, wait_for):
    app = make_app(recorded_run, dry_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "cancel")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the explanation")
        assert "cannot run now: the run is not running (finished)" in plan_text(app)
        await pilot.press("y")
        await pilot.press("escape")
        assert launcher.plans == []


def start_fake_live_run(run) -> subprocess.Popen:
    """A process standing in for a pipeline: alive, with a pid file and a fresh log."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (run.run_dir / "pid").write_text(f"{process.pid}\n")
    with EventWriter(run.events_path) as writer:
        writer.emit("run_started", run_id=run.run_id, pid=process.pid, stages=["prepare", "train"],
                    dry_run=False, heartbeat_s=10.0)
        writer.emit("stage_started", stage="train")
    return process


async def test_cancel_a_live_run_for_real(make_app, new_run, settle, wait_for, screen_text, tmp_path):
    """The real `r1tui cancel` launched detached from the dashboard stops the run's process,
    and the dashboard shows the run as crashed (it died without a finish event)."""
    run = new_run(events=False, results=False)
    victim = start_fake_live_run(run)
    launcher = Launcher(tmp_path / "real-launches")
    app = make_app(run, dry_run=False, launcher=launcher, python=sys.executable, clock=time.time)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            await wait_for(pilot, lambda: app.state.status == "running", what="the live run")
            await press_action(pilot, "cancel")
            await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the confirmation")
            assert plan_text(app).startswith("Cancel the run?")
            await pilot.press("y")
            await wait_for(pilot, lambda: launcher.launched, what="the launch")
            launched = launcher.launched[0]
            assert list(launched.argv) == [sys.executable, "-m", "r1tui", "cancel", str(run.run_dir)]
            assert os.getsid(launched.pid) == launched.pid  # its own session: quitting us cannot stop it
            await wait_for(pilot, lambda: victim.poll() is not None, timeout=60, what="the run's process to stop")
            await wait_for(pilot, lambda: app.state.status == "crashed", what="the crashed status")
            await wait_for(pilot, lambda: "crashed" in screen_text(app).splitlines()[0], what="the header")
        launched.process.wait(timeout=60)
        assert victim.returncode == -15  # SIGTERM from r1tui.runs.runner.cancel_run
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


async def test_every_action_is_in_the_command_palette(make_app, recorded_run, launcher, settle, wait_for):
    from textual.command import CommandPalette

    app = make_app(recorded_run, dry_run=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Start a run", "Resume the run", "Cancel the run", "Export GGUF", "Evaluate", "Push to the Hub",
                "Toggle dry run", "Show Training", f"Open run {recorded_run.run_id}"} <= titles
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"Export GGUF")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the export plan")
        assert plan_text(app).startswith("Dry run — Export GGUF")
        assert launcher.plans == []


def test_attach_names_a_missing_run_in_one_line(runs_dir, repo_root):
    result = subprocess.run([sys.executable, "-m", "r1tui", "attach", "nope", "--runs-dir", str(runs_dir)],
                            capture_output=True, text=True, cwd=repo_root, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: no runs in {runs_dir}; start one with `r1tui run` "
                                                  "(or pass --config for another runs.dir)"]

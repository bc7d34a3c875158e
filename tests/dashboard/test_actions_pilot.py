"""Every action from the keyboard, with dry run on (a plan, nothing launched) and off
(the exact command launched, after a confirmation where one is due)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1tui.dashboard.actions import Launcher
from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.screens.modals import PlanScreen
from r1tui.runs.events import EventWriter

pytestmark = pytest.mark.anyio

# action -> (panel key, action key)
KEYS = {"start": (KEY["overview"], "s"), "resume": (KEY["overview"], "r"), "cancel": (KEY["overview"], "x"),
        "export": (KEY["export"], "e"), "evaluate": (KEY["evaluator"], "v"), "push": (KEY["push"], "p")}


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
        shown = app.last_plan.shown()  # the exact command, pasteable in the dashboard's folder
        assert shown in text and f"runs/{recorded_run.run_id}" in shown
        assert "nothing was launched" in text
        if action == "start":
            assert f"{app.report.parameters.total:,} parameters" in text  # the estimates, computed
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
    run.layout.pid.write_text(f"{process.pid}\n")
    with EventWriter(run.layout.events) as writer:
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
            try:
                assert os.getsid(launched.pid) == launched.pid  # its own session: quitting us cannot stop it
            except ProcessLookupError:
                pass  # `cancel` already finished and was reaped (test_actions checks the session too)
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



def tiny_config_with_lora_r(path, r: int):
    """The tiny config (absolute paths) with another LoRA rank, written to ``path``."""
    from r1tui.config import dump_toml, load_config

    text = dump_toml(load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"))
    assert "[lora]\nr = 16\n" in text
    path.write_text(text.replace("[lora]\nr = 16\n", f"[lora]\nr = {r}\n"), encoding="utf-8")
    return path


async def test_start_estimates_come_from_the_config_it_launches(make_app, recorded_run, launcher, settle, wait_for,
                                                               tmp_path):
    """--config names another config than the open run's frozen copy: the plan launches
    --config, and its estimates are --config's numbers, not the frozen copy's."""
    from r1tui.config import load_config
    from r1tui.dryrun import build_report

    other = tiny_config_with_lora_r(tmp_path / "other.toml", 4)
    app = make_app(recorded_run, dry_run=True, config_path=other)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "start")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the start plan")
        assert list(app.last_plan.argv)[3:6] == ["run", "--config", str(other)]
        expected = build_report(load_config(other), with_masking=False).parameters.lora_trainable
        shown = app.report.parameters.lora_trainable  # the open run's frozen config (r = 16)
        assert expected != shown
        text = plan_text(app)
        assert f"LoRA {expected:,} " in text and f"LoRA {shown:,} " not in text


@pytest.mark.parametrize("with_run", [True, False], ids=["run-open", "no-run"])
async def test_start_is_refused_when_its_config_does_not_load(with_run, make_app, new_run, launcher, settle,
                                                              wait_for, tmp_path):
    bad = tiny_config_with_lora_r(tmp_path / "bad.toml", 0)
    app = make_app(new_run() if with_run else None, dry_run=False, config_path=bad)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "start")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the explanation")
        text = plan_text(app)
        assert "cannot run now: the config does not load: " in text and "lora.r" in text
        assert "would launch:" in text and "will launch" not in text  # blocked: nothing will
        await pilot.press("y")
        await pilot.press("escape")
        assert launcher.plans == []


async def test_a_launched_command_that_fails_says_why(make_app, new_run, settle, wait_for, tmp_path):
    """The real `r1tui export` on a run without an adapter exits 1 with one `error:` line:
    the dashboard reaps it and shows that line as an error notification."""
    run = new_run()
    launcher = Launcher(tmp_path / "real-launches")
    app = make_app(run, dry_run=False, launcher=launcher, python=sys.executable)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "export")
        await wait_for(pilot, lambda: launcher.launched, what="the launch")

        def errors() -> list[str]:
            return [n.message for n in app._notifications if n.severity == "error"]

        await wait_for(pilot, errors, timeout=60, what="the failure notification")
        assert launcher.launched[0].returncode == 1
        [message] = errors()
        assert message.startswith("export failed (exit 1): error: ") and "no trained adapter" in message


async def test_d_in_the_plan_dialog_toggles_dry_run(make_app, recorded_run, launcher, settle, wait_for,
                                                    screen_text):
    app = make_app(recorded_run, dry_run=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "start")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the start plan")
        assert "d turns it off" in plan_text(app) and "d dry run" in screen_text(app)
        await pilot.press("d")
        await wait_for(pilot, lambda: plan_text(app).startswith("Start a run?"), what="the plan, dry run off")
        assert not app.dry_run and "dry run off" in screen_text(app).splitlines()[0]
        assert "will launch (detached" in plan_text(app) and app.screen.query("#launch")
        await pilot.press("d")
        await wait_for(pilot, lambda: plan_text(app).startswith("Dry run — "), what="the plan, dry run on")
        assert app.dry_run and not app.screen.query("#launch")
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: launcher.plans, what="the launch")
        assert [plan.action for plan in launcher.plans] == ["start"]


def test_attach_names_a_missing_gguf_in_one_line(runs_dir, repo_root, tmp_path):
    missing = tmp_path / "nonexistent.gguf"
    result = subprocess.run([sys.executable, "-m", "r1tui", "attach", "--runs-dir", str(runs_dir), "--gguf",
                             str(missing)], capture_output=True, text=True, cwd=repo_root, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: --gguf {missing}: not found"]


def test_attach_fails_when_the_dashboard_crashed(runs_dir, monkeypatch):
    """`r1tui attach` returns the app's return code: an exception inside the app (drawn
    headless here, the terminal being the boundary) is exit status 1, not 0."""
    from textual.app import App

    from r1tui.cli import main
    from r1tui.dashboard.app import DashboardApp

    seen = {}

    async def crash(pilot) -> None:
        seen["app"] = pilot.app
        await pilot.pause(0.1)
        pilot.app.call_next(lambda: 1 / 0)

    monkeypatch.setattr(DashboardApp, "run", lambda self: App.run(self, headless=True, size=(80, 24), auto_pilot=crash))
    config = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
    assert main(["attach", "--runs-dir", str(runs_dir), "--config", str(config), "--no-gpu-sampling"]) == 1
    assert seen["app"].return_code == 1


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_start_while_another_run_is_live_asks_first_and_names_it(make_app, recorded_run, new_run, launcher,
                                                                        settle, wait_for, screen_text):
    live = new_run(events=False, results=False, run_id="20990101-000000-live")
    victim = start_fake_live_run(live)
    try:
        app = make_app(recorded_run, dry_run=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            await press_action(pilot, "start")
            await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the guard")
            text = plan_text(app)
            assert text.startswith("Start a run?")
            assert f"another run is live on this machine: 20990101-000000-live (pid {victim.pid})" in text
            buttons = [str(button.label) for button in app.screen.query("Button")]
            assert buttons == ["Start the run (y)", "Don't start (n)"]
            assert "y Start the run" in screen_text(app) and "n Don't start" in screen_text(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, PlanScreen), what="the dialog to close")
            assert launcher.plans == []
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the guard again")
            await pilot.press("y")
            await wait_for(pilot, lambda: launcher.plans, what="the start")
            assert launcher.argvs == [expected_argv("start", recorded_run, app.config.source_path, app.runs_dir)]
    finally:
        victim.kill()
        victim.wait()


async def test_start_with_no_live_run_launches_without_asking(make_app, recorded_run, launcher, settle, wait_for):
    app = make_app(recorded_run, dry_run=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "start")
        await wait_for(pilot, lambda: launcher.plans, what="the start")
        assert not app.last_plan.warning


async def test_the_cancel_dialog_says_cancel_the_run_and_keep_it_running(make_app, new_run, launcher, settle,
                                                                        wait_for, screen_text):
    run = new_run(events=False, results=False)
    victim = start_fake_live_run(run)
    try:
        app = make_app(run, dry_run=False, clock=time.time)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            await wait_for(pilot, lambda: app.state.status == "running", what="the live run")
            await press_action(pilot, "cancel")
            await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the confirmation")
            assert [str(b.label) for b in app.screen.query("Button")] == ["Cancel the run (y)", "Keep it running (n)"]
            footer = screen_text(app).splitlines()[-1]
            assert "Cancel the run" in footer and "Keep it running" in footer and "launch" not in footer
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, PlanScreen), what="the dialog to close")
            assert launcher.plans == [] and victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


async def test_the_plan_shows_the_exact_command_with_the_runs_dir_in_use(make_app, recorded_run, settle, wait_for,
                                                                        repo_root):
    """Opened on a runs folder outside the working folder, the start plan prints that
    folder in full (not `--runs-dir runs`), and the config relative to where it would run."""
    import shlex

    app = make_app(recorded_run, dry_run=True, config_path=repo_root / "configs" / "tiny.toml")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await press_action(pilot, "start")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the start plan")
        line = f"python -m r1tui run --config configs/tiny.toml --runs-dir {app.runs_dir}"
        assert line in plan_text(app).replace("\n", "")
        assert shlex.split(app.last_plan.shown()) == [
            "python", "-m", "r1tui", "run", "--config", "configs/tiny.toml", "--runs-dir", str(app.runs_dir)]
        assert not str(app.runs_dir).startswith(str(repo_root))  # pytest's tmp folder: elsewhere


async def test_the_resume_plan_names_the_checkpoint_or_says_step_1(make_app, new_run, settle, wait_for):
    run = new_run(events=False, results=False)
    pid = dead_pid()
    run.layout.pid.write_text(f"{pid}\n")
    with EventWriter(run.layout.events) as writer:
        writer.emit("run_started", run_id=run.run_id, pid=pid, stages=["prepare", "train"], heartbeat_s=10.0)
        writer.emit("stage_started", stage="train")
        writer.emit("metric", stage="train", step=3, max_steps=30, loss=9.9)
    app = make_app(run, dry_run=True, clock=time.time)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await wait_for(pilot, lambda: app.state.status == "crashed", what="the crashed run")
        await press_action(pilot, "resume")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the resume plan")
        text = plan_text(app)
        assert "no checkpoint was saved: training starts again from step 1" in text
        assert "newest checkpoint" not in text
        await pilot.press("escape")
        checkpoint = run.layout.checkpoints / "checkpoint-2"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text("{}")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the resume plan again")
        assert "training restarts from checkpoint-2 (step 3)" in plan_text(app)

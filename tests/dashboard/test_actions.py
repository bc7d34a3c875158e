"""What each action launches, and the launcher that starts it detached."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from r1tui.dashboard.actions import (
    ACTIONS,
    ActionPlan,
    Launcher,
    guard_live,
    plan_action,
    resume_point,
)

RUN = Path("/runs/20261128-000000-tiny")
CONFIG = Path("/cfg/tiny.toml")


def plan(action: str, status: str = "finished", run: Path | None = RUN):
    return plan_action(action, run_dir=run, config_path=CONFIG, run_status=status, python="py",
                       quant_types=["Q4_K_M", "Q8_0"], runs_dir=RUN.parent)


@pytest.mark.parametrize(("action", "argv"), [
    ("start", ["py", "-m", "r1tui", "run", "--config", str(CONFIG), "--runs-dir", str(RUN.parent)]),
    ("resume", ["py", "-m", "r1tui", "run", "--resume", str(RUN)]),
    ("export", ["py", "-m", "r1tui", "export", str(RUN)]),
    ("evaluate", ["py", "-m", "r1tui", "eval", str(RUN)]),
    ("push", ["py", "-m", "r1tui", "push", str(RUN)]),
])
def test_each_action_is_the_cli_command(action, argv):
    result = plan(action)
    assert list(result.argv) == argv
    assert not result.blocked
    assert result.command_line.startswith("py -m r1tui ")


def test_cancel_needs_a_running_run_and_asks_first():
    assert plan("cancel", "finished").blocked == "the run is not running (finished)"
    running = plan("cancel", "running")
    assert not running.blocked and running.confirm
    assert list(running.argv) == ["py", "-m", "r1tui", "cancel", str(RUN)]


def test_actions_on_a_running_run_or_without_a_run_are_blocked():
    for action in ("resume", "export", "evaluate", "push"):
        assert plan(action, "running").blocked == "the run is still running"
    for action in ACTIONS:
        blocked = plan(action, "none", run=None).blocked
        assert (blocked == "") if action == "start" else blocked.startswith("no run yet")
    assert plan("push").confirm and not plan("export").confirm


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="unknown action 'train'"):
        plan("train")


def test_launcher_starts_a_detached_process_in_its_own_session(tmp_path, monkeypatch):
    """A real process: new session (a hang-up of the dashboard's terminal never reaches it),
    stdin closed, output to a log file, DRY_RUN not inherited."""
    monkeypatch.setenv("DRY_RUN", "1")
    script = ("import os, sys; print('sid', os.getsid(0) == os.getpid(), 'stdin', sys.stdin.read() == '', "
              "'dry', os.environ.get('DRY_RUN'))")
    launcher = Launcher(tmp_path / "launches")
    launched = launcher.launch(ActionPlan("start", "test", (sys.executable, "-c", script)))
    assert launched.pid > 0 and launched.log_path.parent == tmp_path / "launches"
    launched.process.wait(timeout=30)
    launcher.reap()
    deadline = time.monotonic() + 10
    while "sid" not in launched.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launched.log_path.read_text().split() == ["sid", "True", "stdin", "True", "dry", "None"]
    assert os.getsid(0) != launched.pid


def test_reap_reports_a_failed_child_with_its_error_line(tmp_path):
    """A child that exits non-zero is reported once, with the `error:` line of its log."""
    script = "import sys; print('loading'); print('error: lora.r: must be > 0'); print('bye'); sys.exit(1)"
    launcher = Launcher(tmp_path / "launches")
    ok = launcher.launch(ActionPlan("export", "ok", (sys.executable, "-c", "print('fine')")))
    bad = launcher.launch(ActionPlan("start", "bad", (sys.executable, "-c", script)))
    ok.process.wait(timeout=30)
    bad.process.wait(timeout=30)
    assert launcher.reap() == [bad]
    assert bad.returncode == 1 and ok.returncode == 0
    assert bad.last_error() == "error: lora.r: must be > 0"
    assert launcher.reap() == []  # reported once


def test_last_error_falls_back_to_the_last_line(tmp_path):
    launcher = Launcher(tmp_path / "launches")
    bad = launcher.launch(ActionPlan("evaluate", "bad", (sys.executable, "-c", "import sys; print('killed'); sys.exit(3)")))
    bad.process.wait(timeout=30)
    assert [failed.returncode for failed in launcher.reap()] == [3]
    assert bad.last_error() == "killed"


def test_every_confirming_dialog_names_what_its_buttons_do():
    assert plan("cancel", "running").buttons == ("Cancel the run", "Keep it running")
    assert plan("push").buttons == ("Push to the Hub", "Don't push")
    assert plan("start").buttons == ("Start the run", "Don't start")
    assert plan("resume").buttons == ("Resume the run", "Don't resume")
    for action in ACTIONS:
        do, dont = plan(action, "running").buttons
        assert "launch" not in do.lower() and dont


def test_the_shown_command_is_exact_from_the_dashboards_folder(tmp_path):
    """Paths under the folder the launcher runs in are relative to it, others absolute:
    pasting the line there runs what the dashboard runs (never `--runs-dir runs` for a
    runs folder elsewhere)."""
    here = tmp_path / "work"
    elsewhere = tmp_path / "elsewhere" / "runs"
    start = plan_action("start", run_dir=None, config_path=here / "configs" / "tiny.toml", python="python",
                        runs_dir=elsewhere)
    assert start.shown(here) == f"python -m r1tui run --config configs/tiny.toml --runs-dir {elsewhere}"
    inside = plan_action("start", run_dir=None, config_path=None, python="python", runs_dir=here / "runs")
    assert inside.shown(here) == "python -m r1tui run --runs-dir runs"
    spaced = plan_action("export", run_dir=tmp_path / "my runs" / "r1", config_path=None, python="python")
    assert spaced.shown(here) == f"python -m r1tui export '{tmp_path}/my runs/r1'"


def test_a_start_while_another_run_is_live_asks_first_and_names_it():
    live = [("20261201-010000-abcd", "pid 4242 (r1tui pipeline, since 05:00:00)")]
    guarded = guard_live(plan("start", "none", run=None), live)
    assert guarded.confirm and not guarded.blocked
    assert guarded.warning.startswith("another run is live on this machine: 20261201-010000-abcd "
                                      "(pid 4242 (r1tui pipeline, since 05:00:00)).")
    assert guard_live(plan("start", "none", run=None), []) == plan("start", "none", run=None)
    assert guard_live(plan("export"), live) == plan("export")  # only what starts a pipeline asks
    two = guard_live(plan("resume", "crashed"), live + [("20261201-020000-ef01", "pid 7")])
    assert two.warning.startswith("other runs are live on this machine: 20261201-010000-abcd") and two.confirm


def test_the_resume_plan_names_its_checkpoint_or_step_1(tmp_path):
    run = tmp_path / "20261201-010000-abcd"
    assert resume_point(run, "running") == "no checkpoint was saved: training starts again from step 1"
    for step in (10, 20):
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (run / "checkpoints" / "checkpoint-30").mkdir()  # half-written: no trainer_state.json
    assert resume_point(run, "crashed") == "training restarts from checkpoint-20 (step 21)"
    assert resume_point(run, "finished") == "training finished: skipped unless its inputs changed"
    assert resume_point(run, "crashed", planned=False) == ""
    resumed = plan_action("resume", run_dir=run, config_path=None, run_status="crashed",
                          resume_point=resume_point(run, "crashed"))
    assert resumed.details[-1] == "training restarts from checkpoint-20 (step 21)"
    assert "newest checkpoint" not in " ".join(resumed.details)

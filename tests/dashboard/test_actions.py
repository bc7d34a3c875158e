"""What each action launches, and the launcher that starts it detached."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from r1tui.dashboard.actions import ACTIONS, ActionPlan, Launcher, plan_action

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

"""The dashboard in a real terminal: tmux runs `python -m r1tui attach`, we type into it
and read the screen back with capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.pipeline import registry
from r1tui.runs.events import read_events
from r1tui.runs.reducer import RunState

if shutil.which("tmux") is None:  # pragma: no cover - tmux is on this project's machines
    pytest.fail("tmux is needed for the terminal test (apt-get install tmux)", pytrace=False)


class Tmux:
    def __init__(self, socket: str):
        self.socket = socket

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "dash")

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self("send-keys", "-t", "dash", key)
            time.sleep(0.15)


@pytest.fixture
def tmux():
    socket = f"r1tui-test-{uuid.uuid4().hex[:8]}"
    server = Tmux(socket)
    yield server
    server("kill-server", check=False)


def test_dashboard_in_a_real_terminal(tmux, exported_run, runs_dir, repo_root, script):
    command = shlex.join([sys.executable, "-m", "r1tui", "attach", exported_run.run_id, "--runs-dir", str(runs_dir),
                          "--no-gpu-sampling"])
    env = {"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    tmux("-f", os.devnull, "new-session", "-d", "-s", "dash", "-x", "100", "-y", "30",
         *(arg for key, value in env.items() for arg in ("-e", f"{key}={value}")),
         "-c", str(repo_root), f"{command}; echo EXIT=$?; sleep 30")
    tmux("set-option", "-g", "escape-time", "0")

    screen = tmux.wait_for("dry run off")  # started, header drawn
    header = screen.splitlines()[0]
    assert exported_run.run_id in header and "✓ finished" in header
    state = RunState(groups=registry.groups())
    state.apply_all(read_events(exported_run.layout.events))
    for stage in (name for name in registry.stage_names() if name in state.planned_stages):
        assert any(line.strip().startswith(stage) and "finished" in line for line in screen.splitlines()), stage

    tmux.keys(KEY["training"])
    screen = tmux.wait_for("checkpoints step 10, step 20, step 30")
    assert "loss" in screen and "grad norm" in screen and "learning rate" in screen

    tmux.keys(KEY["export"])
    tmux.wait_for("tokenizer parity ✓")

    tmux.keys("d")  # dry run on
    tmux.wait_for("DRY RUN")
    tmux.keys(KEY["pipeline"], "s")  # start: only the plan
    screen = tmux.wait_for("nothing was launched")
    assert "Dry run — Start a run" in screen
    tmux.keys("Escape")
    tmux.wait_for("s start")
    assert [p.name for p in runs_dir.iterdir()] == [exported_run.run_id]  # nothing launched

    tmux.keys(KEY["repl"])  # REPL: one turn with the scripted tiny GGUF
    tmux.wait_for("tiny-mistral-random-r1-Q4_K_M.gguf")
    tmux("send-keys", "-t", "dash", "-l", "What is 2+2?")
    tmux.keys("Enter")
    screen = tmux.wait_for("FINAL ANSWER: 4", timeout=90)
    tmux.wait_for("tok/s")
    think = script.split("</think>")[0].removeprefix("<think>")
    assert think.split(".")[0] in screen  # the think block, shown apart
    lines = screen.splitlines()
    think_row = next(i for i, line in enumerate(lines) if think.split(".")[0] in line)
    answer_row = next(i for i, line in enumerate(lines) if "FINAL ANSWER: 4" in line)
    assert think_row < answer_row

    tmux.keys("Escape", "q")  # leave the input, quit
    screen = tmux.wait_for("EXIT=", timeout=30)
    assert "EXIT=0" in screen


def test_sigint_quits_the_dashboard_and_restores_the_terminal(tmux, exported_run, runs_dir, repo_root):
    command = shlex.join([sys.executable, "-m", "r1tui", "attach", exported_run.run_id, "--runs-dir", str(runs_dir),
                          "--no-gpu-sampling"])
    tmux("-f", os.devnull, "new-session", "-d", "-s", "dash", "-x", "100", "-y", "30", "-e", "TERM=xterm-256color",
         "-c", str(repo_root), f"{command}; echo EXIT=$?; sleep 30")
    tmux.wait_for("dry run off")
    shell = int(tmux("list-panes", "-t", "dash", "-F", "#{pane_pid}").split()[0])
    dashboard = int(subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout.split()[0])
    os.kill(dashboard, signal.SIGINT)
    screen = tmux.wait_for("EXIT=", timeout=30)
    assert "EXIT=0" in screen and "dry run off" not in screen  # quit, and the screen is the shell's again

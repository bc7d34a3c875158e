"""The dashboard in a real terminal: tmux runs `python -m r1tui attach`, we type into it
and read the screen back with capture-pane."""

from __future__ import annotations

import json
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
    tmux.keys(KEY["overview"], "s")  # start: only the plan
    screen = tmux.wait_for("nothing was launched")
    assert "Dry run — Start a run" in screen
    tmux.keys("Escape")
    tmux.wait_for("s start")
    assert [p.name for p in runs_dir.iterdir()] == [exported_run.run_id]  # nothing launched

    tmux.keys(KEY["repl"])  # REPL: one turn with the scripted tiny GGUF
    tmux.wait_for("tiny-mistral-random-r1-Q4_K_M.gguf")
    # the run trained on replies that open with <think>, so "auto" prefills it; the scripted
    # GGUF writes its own <think>, so ctrl+g turns the prefill off (the key, in a real terminal)
    tmux.wait_for("thinking prefill <think>")
    tmux.keys("C-g")
    tmux.wait_for("thinking no prefill")
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


def test_a_live_run_that_finishes_rings_the_bell_and_sends_osc_through_tmux(tmux, runs_dir, repo_root, prepared_data,
                                                                              runs_helpers, tmp_path):
    """A real tiny run (train on a prepared dataset) started detached; the dashboard opened
    with bare `r1tui --runs-dir DIR` in tmux attaches to it while it is live. When the run
    finishes, the bytes the dashboard wrote to its terminal (tmux pipe-pane: the pane's raw
    output, before tmux interprets it) hold OSC 9 and OSC 777 wrapped in tmux's DCS
    passthrough, and the BEL."""
    config = runs_helpers.write_config(tmp_path, runs_dir)
    started = subprocess.run([sys.executable, "-m", "r1tui", "run", "--config", str(config), "--dataset",
                              str(prepared_data), "--stages", "train", "--json"], capture_output=True, text=True,
                             timeout=120, cwd=repo_root, env=runs_helpers.cli_env(tmp_path))
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    raw = tmp_path / "pane.raw"
    command = shlex.join([sys.executable, "-m", "r1tui", "--runs-dir", str(runs_dir)])
    tmux("-f", os.devnull, "new-session", "-d", "-s", "dash", "-x", "100", "-y", "30", "-e", "TERM=xterm-256color",
         "-c", str(repo_root), f"{command}; echo EXIT=$?; sleep 30")
    tmux("pipe-pane", "-o", "-t", "dash", f"cat >> {shlex.quote(str(raw))}")
    screen = tmux.wait_for(f"{run_id} │", timeout=60)  # in the header (the log path below has it first)
    try:
        assert "running" in screen.splitlines()[0], screen  # attached while live: the finish is news
        deadline = time.monotonic() + 300
        while b"\x1bPtmux;\x1b\x1b]777;notify;" not in (raw.read_bytes() if raw.exists() else b""):
            assert time.monotonic() < deadline, f"no OSC 777 in the pane's output; the screen:\n{tmux.screen()}"
            time.sleep(0.2)
        out = raw.read_bytes()
        osc9 = f"\x1bPtmux;\x1b\x1b]9;r1tui: run finished: run {run_id} finished in ".encode()
        assert osc9 in out
        osc777 = f"\x1bPtmux;\x1b\x1b]777;notify;r1tui: run finished;run {run_id} finished in ".encode()
        assert osc777 in out
        after = out[out.index(osc777):]
        assert after.index(b"\x1b\\\x07") > 0  # the passthrough closed, then the bell
        tmux.wait_for("run finished")  # the toast
    finally:
        tmux.keys("q")
    assert "EXIT=0" in tmux.wait_for("EXIT=", timeout=30)

"""Training drills: a run cancelled, sent SIGTERM twice and killed with -9, each time resumed,
ends with the same logged losses and the same adapter bytes as the uninterrupted reference
run; the dashboard killed again and again while a run trains changes nothing; a disk that
fills up while a checkpoint is saved fails the run in one line, and the resume loses nothing.

Every process here is a real one: `r1tui train` detaches the pipeline process and `r1tui
cancel` signals it; the resumes are `r1tui train --resume RUN --foreground` forked from
tests/drills/forkserver.py (the pipeline runs in that process); `r1tui attach` runs in tmux.
(tests/pipeline/test_runner.py covers kill -9 + resume on the losses alone.)
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from r1tui.runs.events import read_events
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow


def start(drills, *args) -> dict:
    proc = drills.r1tui(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def wait_for_new_step(drills, run_dir: Path, after: int, pid: int | None = None, freeze: int | None = None) -> int:
    """Wait until the run logs a step beyond ``after``; returns it. ``pid``: the process that
    must stay alive meanwhile (else the run's writer, from its status). ``freeze``: stop that
    process (SIGSTOP) the moment the step is seen; the caller signals it, then sends SIGCONT."""
    def reached():
        steps = [m["step"] for m in drills.metrics(run_dir)]
        if max(steps, default=0) > after:
            if freeze is not None:
                os.kill(freeze, signal.SIGSTOP)
            return max(steps)
        alive = _alive(pid) if pid is not None else run_status(run_dir).alive
        if not alive:
            raise AssertionError(f"the run ended before step {after + 1}: {run_status(run_dir)}")
        return None

    step = drills.wait_for(reached, timeout=300, poll=0.005, what=f"a step after {after}")
    assert step < drills.TRAIN["max_steps"], f"the run reached its last step ({step}) before it could be stopped"
    return step


def signal_pending(pid: int, signum: int) -> bool:
    """Is ``signum`` waiting to be delivered to the (stopped) process?"""
    status = Path(f"/proc/{pid}/status").read_text()
    pending = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd", "ShdPnd"))]
    return any(mask & (1 << (signum - 1)) for mask in pending)


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (waiting for its parent to collect it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def attempts(run_dir: Path) -> list[dict]:
    return [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "run_finished"]


def complete_checkpoints(run_dir: Path) -> list[str]:
    """Every checkpoint-N folder must be complete (the trainer's state is written last)."""
    folder = run_dir / "checkpoints"
    names = sorted(p.name for p in folder.iterdir() if p.name.startswith("checkpoint-"))
    assert all((folder / name / "trainer_state.json").is_file() for name in names), names
    return names


def test_cancel_two_sigterms_and_kill_9_each_resume_to_the_uninterrupted_run(tmp_path, reference, drills,
                                                                              forkserver):
    """One run stopped three ways, resumed after each: cancel (`r1tui cancel`: checkpoint, then
    cancelled), SIGTERM twice (the second stops at once, without waiting for a checkpoint),
    kill -9 (crashed). Every step is logged once with the reference's loss and learning rate,
    bit for bit, and the final adapter's weights are byte-identical."""
    config = drills.write_config(tmp_path, tmp_path / "runs")
    runs = str(tmp_path / "runs")
    info = start(drills, "train", "--config", str(config))
    run_dir = Path(info["run_dir"])

    # 1. cancel: a checkpoint at the step it stops on, then run_finished cancelled. The pipeline
    # is frozen (SIGSTOP) as soon as step 1 is logged, so the stop lands early whatever the speed.
    wait_for_new_step(drills, run_dir, 0, freeze=info["pid"])
    canceller = subprocess.Popen([sys.executable, "-m", "r1tui", "cancel", info["run_id"], "--runs-dir", runs,
                                  "--wait", "120", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=drills.env(), cwd=drills.repo)
    drills.wait_for(lambda: signal_pending(info["pid"], signal.SIGTERM), timeout=60, what="the cancel's SIGTERM")
    os.kill(info["pid"], signal.SIGCONT)
    out, err = canceller.communicate(timeout=180)
    assert canceller.returncode == 0 and json.loads(out)["status"] == "cancelled", err
    first_stop = max(m["step"] for m in drills.metrics(run_dir))
    assert f"checkpoint-{first_stop}" in complete_checkpoints(run_dir)

    # 2. SIGTERM twice: the first asks for a checkpoint at the end of the step, the second (sent
    # once the first was seen) stops at once
    resume = ("train", "--resume", info["run_id"], "--runs-dir", runs, "--foreground", "--json")
    resumed = forkserver.spawn(*resume)
    wait_for_new_step(drills, run_dir, first_stop, resumed.pid, freeze=resumed.pid)
    os.kill(resumed.pid, signal.SIGTERM)
    os.kill(resumed.pid, signal.SIGCONT)
    drills.wait_for(lambda: "received SIGTERM" in resumed.err.read_text(), timeout=60, poll=0.005,
                    what="the first SIGTERM seen")
    os.kill(resumed.pid, signal.SIGTERM)
    stopped = forkserver.wait(resumed)
    assert stopped.returncode == 130 and json.loads(stopped.stdout)["status"] == "cancelled", stopped.stderr[-2000:]
    assert "received SIGTERM: stopping now" in stopped.stderr, stopped.stderr[-2000:]
    assert attempts(run_dir)[-1] == {"status": "cancelled", "reason": "SIGTERM"}
    complete_checkpoints(run_dir)
    second_stop = max(m["step"] for m in drills.metrics(run_dir))

    # 3. kill -9: crashed, and resumable
    resumed = forkserver.spawn(*resume)
    wait_for_new_step(drills, run_dir, second_stop, resumed.pid, freeze=resumed.pid)
    os.kill(resumed.pid, signal.SIGKILL)
    assert forkserver.wait(resumed).returncode == -signal.SIGKILL
    assert run_status(run_dir).status == "crashed"
    complete_checkpoints(run_dir)

    # 4. the last resume, to the end
    final = forkserver.run(*resume)
    assert final.returncode == 0 and json.loads(final.stdout)["status"] == "finished", final.stderr[-2000:]
    assert [a["status"] for a in attempts(run_dir)] == ["cancelled", "cancelled", "finished"]  # the kill wrote none
    assert not [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]  # no staging left
    drills.assert_same_training(run_dir, reference.metrics, reference.layout.adapter,
                                context=f"stopped at steps {first_stop}, {second_stop} and a kill")
    print(f"\nDRILL training: cancelled at step {first_stop}, two SIGTERMs at step {second_stop}, kill -9 after; "
          f"{len(reference.metrics)} losses and learning rates equal bit for bit, adapter bytes equal")


def test_the_dashboard_killed_again_and_again_changes_nothing_in_the_run(tmp_path, reference, drills, tmux):
    """`r1tui attach RUN` in a real terminal, killed with -9 and started again over and over
    while a detached run trains: the run finishes with the reference's losses and adapter."""
    config = drills.write_config(tmp_path, tmp_path / "runs")
    runs = tmp_path / "runs"
    info = start(drills, "train", "--config", str(config))
    run_dir = Path(info["run_dir"])
    attach = shlex.join([sys.executable, "-m", "r1tui", "attach", info["run_id"], "--runs-dir", str(runs),
                         "--no-gpu-sampling"])
    # after a kill -9 the terminal is left raw and on the alternate screen: reset and clear it
    shell = tmux.start(f"while true; do stty sane; clear; {attach}; done",
                       {"TERM": "xterm-256color", "HF_TOKEN": drills.GOOD_TOKEN})
    kills, kills_while_running, dashboard = 0, 0, None
    while run_status(run_dir).status == "running" or kills < 3:
        dashboard = drills.wait_for(lambda last=dashboard: _new_child(shell, last), timeout=60,
                                    what="the dashboard to start")
        drills.wait_for(lambda: info["run_id"] in tmux.screen(), timeout=60, poll=0.1, what="the dashboard drawn")
        running = run_status(run_dir).status == "running"
        os.kill(dashboard, signal.SIGKILL)
        kills += 1
        kills_while_running += running
    assert drills.wait_finished(run_dir).status == "finished"
    assert kills_while_running >= 3, (kills, kills_while_running)
    drills.assert_same_training(run_dir, reference.metrics, reference.layout.adapter,
                                context=f"dashboard killed {kills} times")
    print(f"\nDRILL dashboard: killed with -9 {kills} times, {kills_while_running} while the run went on; "
          "losses and adapter bytes equal")


def _new_child(shell: int, last: int | None) -> int | None:
    """The shell's running child (the dashboard) when it is not ``last``."""
    try:
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    except OSError:
        return None
    for child in (int(c) for c in children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if child != last and b"attach" in command:  # not the shell's stty or clear
            return child
    return None


def test_a_full_disk_while_saving_a_checkpoint_fails_in_one_line_and_the_run_resumes(tmp_path, reference, drills,
                                                                                   forkserver, tmpfs):
    """checkpoints/ on a file system with room for one checkpoint: the second save meets a full
    disk. The run ends failed with one line saying so, no checkpoint-N is half-written, and once
    there is room the resume ends where the uninterrupted run did."""
    from r1tui.config import load_config
    from r1tui.pipeline.launch import create_run

    layout = create_run(load_config(drills.write_config(tmp_path, tmp_path / "runs")))
    tmpfs.mount(layout.checkpoints, "8m")  # one checkpoint is 5.4 MB (adapter, optimizer, tokenizer)
    first = forkserver.run(str(layout.root), "--stages", "prepare,train", entry="pipeline")
    assert first.returncode == 1, first.stderr[-2000:]
    status = run_status(layout)
    assert status.status == "failed" and status.stage_status["train"] == "failed", status
    assert status.error.startswith(f"saving checkpoint-4 failed: the disk holding {layout.checkpoints} is full"), (
        status.error)
    assert f"`r1tui run --resume {layout.run_id}`" in status.error
    assert complete_checkpoints(layout.root) == ["checkpoint-2"]

    tmpfs.resize(layout.checkpoints, "64m")
    again = forkserver.run(str(layout.root), "--stages", "prepare,train", "--resume", entry="pipeline")
    assert again.returncode == 0, again.stderr[-2000:]
    assert not [p.name for p in layout.checkpoints.iterdir() if p.name.startswith(".")]  # the staging is gone
    drills.assert_same_training(layout.root, reference.metrics, reference.layout.adapter, context="full disk")

"""The writers' lock, with real processes: one writer per run, -9 releases it, a dead
writer's stage reads crashed, and `seq` never repeats."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from r1tui.runs.events import EventWriter, read_events
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunBusy, RunLock, holder
from r1tui.runs.status import run_status


def test_one_writer_at_a_time_and_reentrant_within_a_process(tmp_path):
    layout = RunLayout(tmp_path)
    assert holder(layout) is None  # no lock file yet: nobody
    with RunLock(layout, "r1tui export"):
        with RunLock(layout, "r1tui pipeline"):  # a stage run by the pipeline does not lock again
            assert holder(layout).pid == os.getpid()
        other = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(f"""
                from pathlib import Path
                from r1tui.runs.layout import RunLayout
                from r1tui.runs.lock import RunLock
                RunLock(RunLayout(Path({str(tmp_path)!r})), "r1tui push").acquire()
            """)], capture_output=True, text=True, timeout=60)
        assert other.returncode == 1
        assert f"RunBusy: run {tmp_path.name} is busy: pid {os.getpid()} (r1tui export, since" in other.stderr
    assert holder(layout) is None
    with RunLock(layout, "again"):
        pass


WRITER = """
import os, sys, time
from pathlib import Path
from r1tui.runs.events import EventWriter
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock
layout = RunLayout(Path(sys.argv[1]))
RunLock(layout, "r1tui export").acquire()
writer = EventWriter(layout.events)
writer.emit("stage_started", stage="merge", inputs={})
print("ready", flush=True)
time.sleep(600)
"""


def test_a_writer_killed_with_9_releases_the_run_and_its_stage_reads_crashed(tmp_path):
    """The killed-CLI-export case: a finished run, then `r1tui export` dies mid-merge."""
    layout = RunLayout(tmp_path / "20261130-000000-kill")
    layout.root.mkdir()
    layout.config.write_text("", encoding="utf-8")
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=layout.run_id, stages=["prepare", "train"], pid=1, heartbeat_s=1.0)
        writer.emit("run_finished", status="finished")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(layout.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        live = run_status(layout)
        assert live.alive and live.status == "finished" and live.stage_status["merge"] == "running"
        assert f"pid {proc.pid} (r1tui export" in live.writer
        with pytest.raises(RunBusy, match=f"pid {proc.pid}"):
            RunLock(layout, "r1tui eval").acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    dead = run_status(layout)
    assert not dead.alive and dead.stage_status["merge"] == "crashed"
    assert holder(layout) is None
    with RunLock(layout, "r1tui export"):  # the run is free again
        pass


def _crashed_tiny_run(h, tmp_path: Path) -> RunLayout:
    """A run of the tiny config whose pipeline died before doing anything (no run_finished)."""
    config = h.write_config(tmp_path, tmp_path / "runs", train={"max_steps": 4})
    layout = RunLayout(tmp_path / "runs" / "20261130-000000-race")
    layout.root.mkdir(parents=True)
    layout.config.write_text(config.read_text(), encoding="utf-8")
    layout.lock.touch()
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=layout.run_id, stages=["prepare"], pid=1, heartbeat_s=1.0)
    assert run_status(layout).status == "crashed"
    return layout


@pytest.mark.slow
def test_two_resumes_at_the_same_instant_run_exactly_once(tmp_path, runs_helpers):
    h = runs_helpers
    layout = _crashed_tiny_run(h, tmp_path)
    command = [sys.executable, "-m", "r1tui", "run", "--resume", layout.run_id, "--runs-dir",
               str(layout.root.parent), "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.cli_env(),
                              cwd=h.repo) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    winner = next(json.loads(out) for code, out, _ in results if code == 0)
    refused = next(err for code, _, err in results if code == 1)
    lines = [line for line in refused.splitlines() if line.strip()]
    assert len(lines) == 1 and f"run {layout.run_id} is busy: pid " in lines[0] and "r1tui cancel" in lines[0], lines
    assert f"pid {winner['pid']} " in lines[0] or "r1tui run --resume" in lines[0]
    h.wait_for(lambda: run_status(layout).status != "running", timeout=300, what="the resumed run to end")
    events = read_events(layout.events)
    assert [e.data.get("resumed") for e in events if e.type == "run_started"] == [None, True]  # one resume ran
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), "seq repeated or went backwards"
    assert run_status(layout).status == "finished"


EXPORTER = """
import sys, time
from pathlib import Path
from r1tui.config import parse_config
from r1tui.pipeline.registry import Stage, register
from r1tui.pipeline.orchestrator import run_named
from r1tui.runs.events import EventWriter, stage
from r1tui.runs.layout import RunLayout

def slow(ctx):
    with stage(ctx.events, "slowstage"):
        print("held", flush=True)
        time.sleep(60)

register(Stage(name="slowstage", step="slowstage", does="waits", writes="nothing", fingerprint=lambda ctx: "x",
               done=lambda ctx: False, run=slow))
layout = RunLayout(Path(sys.argv[1]))
with EventWriter(layout.events) as events:
    run_named(parse_config({}), layout, ["slowstage"], events, what="r1tui export")
"""


def test_cancel_stops_the_process_holding_the_run_not_the_pid_file(tmp_path):
    """A CLI command writing a run (here a crashed one, whose pid file now names another
    process) is what `r1tui cancel` stops: the lock's holder. Its stage ends cancelled."""
    from r1tui.pipeline.launch import cancel_run, cancel_target

    layout = RunLayout(tmp_path / "20261130-000000-cncl")
    layout.root.mkdir()
    layout.config.write_text("", encoding="utf-8")
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=layout.run_id, stages=["train"], pid=1, heartbeat_s=1.0)
        writer.emit("stage_started", stage="train")
    bystander = subprocess.Popen(["sleep", "120"])  # took over the dead pipeline's pid, say
    layout.pid.write_text(f"{bystander.pid}\n")
    exporter = subprocess.Popen([sys.executable, "-c", EXPORTER, str(layout.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert exporter.stdout.readline().strip() == "held"
        assert cancel_target(layout) == exporter.pid
        after = cancel_run(layout, wait=30)
        assert exporter.wait(timeout=30) != 0 and not after.alive
        assert bystander.poll() is None  # never signalled
        finished = [e.data["status"] for e in read_events(layout.events)
                    if e.type == "stage_finished" and e.stage == "slowstage"]
        assert finished == ["cancelled"]
        with pytest.raises(Exception, match="is not running"):
            cancel_run(layout)
    finally:
        bystander.kill()
        exporter.kill()


PIPELINE_WITH_A_HELPER = """
import signal, subprocess, sys, time
from pathlib import Path
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock
layout = RunLayout(Path(sys.argv[1]))
lock = RunLock(layout, "r1tui pipeline").acquire()
helper = subprocess.Popen(["sleep", "120"])  # like llama.cpp's converter: same process group
signal.signal(signal.SIGTERM, lambda *a: (print("cancelled", flush=True), sys.exit(0)))
print(helper.pid, flush=True)
time.sleep(60)
"""


def test_cancel_signals_the_pipeline_not_the_converter_it_runs(tmp_path):
    """A pipeline in its own session runs helpers (the converter, the quantize worker) in its
    process group; cancel must reach the pipeline, which stops them itself (not the other
    way round, which ended an export `failed` with the converter's exit -15)."""
    from r1tui.pipeline.launch import cancel_run

    layout = RunLayout(tmp_path / "20261130-000000-conv")
    layout.root.mkdir()
    layout.config.write_text("", encoding="utf-8")
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=layout.run_id, stages=["merge", "gguf"], pid=1, heartbeat_s=1.0)
        writer.emit("heartbeat")
    pipeline = subprocess.Popen([sys.executable, "-c", PIPELINE_WITH_A_HELPER, str(layout.root)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    helper = int(pipeline.stdout.readline())
    try:
        cancel_run(layout, wait=20)
        assert pipeline.stdout.readline().strip() == "cancelled" and pipeline.wait(timeout=20) == 0
        os.kill(helper, 0)  # the helper was not signalled by cancel: still there
    finally:
        pipeline.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper, signal.SIGKILL)


def test_taking_the_lock_clears_what_a_killed_writer_left(tmp_path):
    from r1tui.runs.layout import RunLayout
    from r1tui.runs.lock import RunLock

    layout = RunLayout(tmp_path / "run")
    layout.gguf_dir.mkdir(parents=True)
    layout.checkpoints.mkdir()
    left = [layout.gguf_dir / ".m-Q4_K_M.gguf.tmp-4242", layout.root / ".stages.json.tmp-4242"]
    for path in left:
        path.write_bytes(b"half")
    (layout.checkpoints / ".checkpoint-20.tmp-saving").mkdir()
    kept = layout.gguf_dir / "m-Q4_K_M.gguf"
    kept.write_bytes(b"whole")
    lock = RunLock(layout, "test").acquire()
    try:
        assert not any(path.exists() for path in left) and not (layout.checkpoints / ".checkpoint-20.tmp-saving").exists()
        assert kept.read_bytes() == b"whole"
    finally:
        lock.release()

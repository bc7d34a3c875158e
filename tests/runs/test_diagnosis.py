"""Crash diagnosis: the exit, the log's end and a hint, from what a run folder holds.

Logs for the common causes are crafted (CUDA out of memory needs a GPU); the "killed"
case is a real process holding the run's lock, killed with SIGKILL; the exit code is
recorded by the real pipeline process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from r1tui import calculator
from r1tui.config import parse_config
from r1tui.runs.diagnosis import KILLED, diagnose, log_tail, read_exit
from r1tui.runs.events import EventWriter, read_events
from r1tui.runs.layout import RunLayout
from r1tui.runs.reducer import RunState
from r1tui.runs.status import run_status, writer_alive


def make_run(tmp_path: Path, *events: tuple[str, dict], log: str = "", pid: int = 4242) -> RunLayout:
    layout = RunLayout(tmp_path / "runs" / "20261201-050000-abcd")
    layout.root.mkdir(parents=True)
    layout.config.write_text("", encoding="utf-8")
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=layout.run_id, pid=pid, stages=["train", "export"], heartbeat_s=1.0)
        for type_, data in events:
            data = dict(data)
            writer.emit(type_, stage=data.pop("_stage", None), **data)
    layout.pipeline_log.write_text(log, encoding="utf-8")
    return layout


def state_of(layout: RunLayout, alive: bool = False) -> RunState:
    state = RunState()
    state.apply_all(read_events(layout.events))
    state.set_process_alive(alive, time.time())
    return state


def record_exit(layout: RunLayout, code: int, pid: int = 4242) -> None:
    import json

    layout.exit_record.write_text(json.dumps({"code": code, "pid": pid, "ts": time.time() + 1}), encoding="utf-8")


OOM_LOG = """\
2026-12-01 05:00:01 INFO r1tui.train.trainer: training 22B with unsloth
Traceback (most recent call last):
  File "trainer.py", line 200, in train
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of 23.55 GiB
"""


def test_cuda_out_of_memory_names_the_largest_sequence_length_that_fits(tmp_path):
    config = parse_config({"model": {"max_seq_length": 32768}})
    layout = make_run(tmp_path, ("gpu", {"available": True, "index": 0, "name": "RTX 4090", "memory_used": 23e9,
                                        "memory_total": 24e9}),
                      ("run_finished", {"status": "failed", "error": "OutOfMemoryError: CUDA out of memory."}),
                      log=OOM_LOG)
    record_exit(layout, 1)
    found = diagnose(layout, state_of(layout), config)
    fits = calculator.largest_fitting_seq_len(config, gpu_memory_bytes=24e9)
    assert 0 < fits < 32768  # computed by the calculator, never typed in
    assert (found.status, found.headline, found.cause, found.exit_code) == ("failed", "exit code 1", "cuda_oom", 1)
    assert f"largest max_seq_length that fits 24.0 GB at batch 1, rank 64 is {fits} (now 32768)" in found.hint
    assert f"set model.max_seq_length to {fits} or less" in found.hint
    assert found.log_tail[-1].startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert found.error == "OutOfMemoryError: CUDA out of memory."
    # without a config the hint still says what to lower
    assert "lower model.max_seq_length" in diagnose(layout, state_of(layout), None).hint


def test_a_full_disk_says_what_is_free_and_what_was_needed(tmp_path):
    log = ("INFO quantize: Q4_K_M\nOSError: [Errno 28] No space left on device: "
           "'/runs/x/gguf/.m-Q4_K_M.gguf.tmp'\n")
    error = ("not enough disk space for quantize 13.3 GB in /runs/x: needs 13.4 GB, 2.1 GB free; free some space "
             "or move runs.dir to a larger disk")
    layout = make_run(tmp_path, ("run_finished", {"status": "failed", "error": error}), log=log)
    found = diagnose(layout, state_of(layout))
    assert found.cause == "disk_full"
    assert "free now; the step needed 13.4 GB)" in found.hint
    assert f"the disk holding {layout.root.parent} is full (" in found.hint


def test_an_enospc_without_a_figure_still_says_disk_full(tmp_path):
    layout = make_run(tmp_path, ("stage_started", {"_stage": "train"}),
                      log="Traceback\nOSError: [Errno 28] No space left on device\n")
    found = diagnose(layout, state_of(layout))
    assert found.cause == "disk_full" and "needed" not in found.hint
    assert found.error == "OSError: [Errno 28] No space left on device"


def test_a_nan_loss_in_the_metrics_is_the_cause(tmp_path):
    layout = make_run(tmp_path, ("metric", {"_stage": "train", "step": 1, "loss": 2.0}),
                      ("metric", {"_stage": "train", "step": 2, "loss": float("nan")}),
                      ("run_finished", {"status": "failed", "error": "ValueError: loss is nan"}))
    found = diagnose(layout, state_of(layout))
    assert found.cause == "nan_loss"
    assert found.hint.startswith("the loss became NaN or inf at step 2: training diverged; lower train.learning_rate")


def test_a_native_crash_is_read_from_faulthandlers_lines(tmp_path):
    layout = make_run(tmp_path, ("stage_started", {"_stage": "train"}),
                      log="Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n")
    found = diagnose(layout, state_of(layout))
    assert (found.cause, found.headline) == ("native_crash", KILLED)
    assert "crashed in native code (Segmentation fault)" in found.hint


def test_runs_that_did_not_crash_or_fail_have_no_diagnosis(tmp_path):
    for status in ("finished", "cancelled"):
        layout = make_run(tmp_path / status, ("run_finished", {"status": status}))
        assert diagnose(layout, state_of(layout)) is None
    live = make_run(tmp_path / "live")
    assert diagnose(live, state_of(live, alive=True)) is None


def test_an_exit_record_of_an_earlier_attempt_is_not_this_ones(tmp_path):
    layout = make_run(tmp_path, ("stage_started", {"_stage": "train"}), pid=4242)
    record_exit(layout, 0, pid=999)  # another process
    state = state_of(layout)
    assert read_exit(layout, state) is None
    assert diagnose(layout, state).headline == KILLED


def test_the_log_tail_keeps_the_last_non_empty_lines(tmp_path):
    path = tmp_path / "pipeline.log"
    path.write_text("".join(f"line {i}\n\n" for i in range(100)), encoding="utf-8")
    assert log_tail(path, 3) == ["line 97", "line 98", "line 99"]
    assert log_tail(tmp_path / "missing.log") == []


STAND_IN = """
import sys, time
from pathlib import Path
from r1tui.runs.events import EventWriter
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock
import os
layout = RunLayout(Path(sys.argv[1]))
lock = RunLock(layout, "r1tui pipeline").acquire()
layout.pid.write_text(f"{os.getpid()}\\n")
with EventWriter(layout.events) as writer:
    writer.emit("run_started", run_id=layout.run_id, pid=os.getpid(), stages=["train"], heartbeat_s=1.0)
    writer.emit("stage_started", stage="train")
    print("step 1 of 30: training", flush=True)
    print("ready", flush=True)
    time.sleep(600)
"""


def test_a_process_killed_with_sigkill_is_diagnosed_as_killed(tmp_path):
    """A real process holding the run's lock, as the pipeline does, killed with -9: it
    writes nothing as it dies, so the diagnosis infers it from the missing finish."""
    layout = RunLayout(tmp_path / "20261201-050000-kill")
    layout.root.mkdir()
    layout.config.write_text("", encoding="utf-8")
    with open(layout.pipeline_log, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", STAND_IN, str(layout.root)], stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in layout.pipeline_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer_alive(layout)[0]
        assert diagnose(layout, state_of(layout, alive=True)) is None  # running: nothing to diagnose
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert run_status(layout).status == "crashed"
    state = state_of(layout, alive=writer_alive(layout)[0])
    found = diagnose(layout, state)
    assert (found.status, found.headline, found.cause) == ("crashed", KILLED, "killed")
    assert "kill -9 from a person or a script, or the kernel's OOM killer" in found.hint
    assert f"`r1tui run --resume {layout.run_id}`" in found.hint
    assert found.log_tail == ["step 1 of 30: training", "ready"]
    assert found.lines()[0] == f"crashed: {KILLED}"


def test_the_pipeline_process_records_its_exit_code(tmp_path):
    """The real pipeline on a run whose config does not load: it fails at once, and the
    exit code it leaves in exit.json is the diagnosis's headline."""
    layout = RunLayout(tmp_path / "20261201-050000-exit")
    layout.root.mkdir()
    layout.config.write_text("[lora]\nrank = 8\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "r1tui.pipeline", str(layout.root), "--stages", "prepare"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, R1TUI_HEARTBEAT_S="1"))
    assert proc.returncode == 1
    (layout.pipeline_log).write_text(proc.stdout + proc.stderr, encoding="utf-8")
    state = state_of(layout)
    assert read_exit(layout, state)["code"] == 1
    found = diagnose(layout, state)
    assert (found.status, found.headline, found.exit_code, found.cause) == ("failed", "exit code 1", 1, "error")
    assert "unknown key 'lora.rank'" in found.error


def test_the_oom_hints_sequence_length_is_the_dry_runs_estimator():
    """One estimator: the diagnosis's figure is the dry run's max_seq_len_that_fits for the
    same config, and a larger measured card fits more."""
    from r1tui.dryrun import build_report

    config = parse_config({"train": {"backend": "hf"}})
    report = build_report(config, with_masking=False)
    assert calculator.largest_fitting_seq_len(config) == report.vram.max_seq_len_that_fits
    assert calculator.largest_fitting_seq_len(config, gpu_memory_bytes=80e9) > report.vram.max_seq_len_that_fits
    assert calculator.largest_fitting_seq_len(config, backend="unsloth") != report.vram.max_seq_len_that_fits

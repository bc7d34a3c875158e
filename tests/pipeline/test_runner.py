"""The real runner as a subprocess: start, tail, hang-up, cancel, kill -9 then resume, DDP, Unsloth.

Every run here is the real pipeline process (`python -m r1tui ...`) training the tiny
random Mistral with the real v3 tokenizer; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from r1tui.runs.events import EventReader, read_events
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow


def metrics(run_dir):
    return [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "metric"]


def start_detached(h, *args):
    """Start a detached run through the CLI; returns its {run_id, run_dir, pid} and folder."""
    info = json.loads(h.r1tui(*args, "--json").stdout)
    return info, Path(info["run_dir"])


def wait_for_step(h, run_dir, step, timeout=240):
    reader = EventReader(run_dir / "events.jsonl")
    seen = []

    def reached():
        seen.extend(e for e in reader.read_new() if e.type == "metric")
        if run_status(run_dir).status not in ("running",):
            raise AssertionError(f"run ended before step {step}: {run_status(run_dir)}")
        return any(e.data["step"] >= step for e in seen)

    h.wait_for(reached, timeout=timeout, what=f"step {step}")


def test_tiny_run_detaches_survives_a_hangup_and_trains_for_real(tmp_path, runs_helpers):
    """`r1tui run --config configs/tiny.toml`: every stage, in its own session; SIGHUP to the
    launching terminal's process group does not reach it; `logs -f` tails it to the end."""
    h = runs_helpers
    config = h.write_config(tmp_path, tmp_path / "runs")  # configs/tiny.toml as it is, runs elsewhere
    launcher = subprocess.Popen(
        ["bash", "-c", f"'{sys.executable}' -m r1tui run --config '{config}' --json; exec sleep 600"],
        stdout=subprocess.PIPE, text=True, start_new_session=True, env=h.cli_env(), cwd=h.repo)
    lines = []
    while not lines or lines[-1].strip() != "}":
        lines.append(launcher.stdout.readline())
        assert lines[-1], "the launcher printed no run id"
    info = json.loads("".join(lines))
    run_dir, pid = tmp_path / "runs" / info["run_id"], info["pid"]
    assert run_dir.is_dir() and (run_dir / "config.toml").is_file()
    # Detached: its own session and process group, not the terminal's.
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid and os.getsid(launcher.pid) != pid

    os.killpg(launcher.pid, signal.SIGHUP)  # the terminal hangs up
    assert launcher.wait(timeout=30) == -signal.SIGHUP

    follow = h.r1tui("logs", info["run_id"], "--runs-dir", str(tmp_path / "runs"), "-f", timeout=900)
    assert "run finished" in follow.stdout and "step 30/30" in follow.stdout

    status = run_status(run_dir)
    assert status.status == "finished", status
    events = read_events(run_dir / "events.jsonl")
    assert [e.type for e in events][0] == "run_started" and events[-1].type == "run_finished"
    finished = {e.stage: e.data["status"] for e in events if e.type == "stage_finished"}
    assert finished == {"generate": "skipped", "prepare": "finished", "train": "finished", "merge": "finished",
                        "gguf": "finished", "quantize": "finished", "parity": "finished", "eval": "finished"}
    steps = [m["step"] for m in metrics(run_dir)]
    assert steps == list(range(1, 31))
    losses = [m["loss"] for m in metrics(run_dir)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.5, losses  # the loss falls measurably
    assert any(e.type == "heartbeat" for e in events)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert list((run_dir / "gguf").glob("*-Q4_K_M.gguf")) and (run_dir / "eval" / "results.json").is_file()
    listed = json.loads(h.r1tui("runs", "--runs-dir", str(tmp_path / "runs"), "--json").stdout)
    assert [(r["run_id"], r["status"], r["step"]) for r in listed] == [(info["run_id"], "finished", 30)]
    # runs.private (the default): the folder and everything the run wrote are the owner's alone
    shared = [str(p.relative_to(run_dir)) for p in [run_dir, *run_dir.rglob("*")]
              if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert not shared, shared


def test_kill_9_then_resume_continues_exactly(tmp_path, prepared_dataset, runs_helpers):
    """A run killed with SIGKILL shows as crashed; --resume continues from the latest
    checkpoint and lands on the same losses as an uninterrupted run (optimizer,
    scheduler, RNG and data position restored), logging every step once."""
    h = runs_helpers
    train = {"max_steps": 9, "save_steps": 3, "lr_scheduler": "cosine", "warmup_ratio": 0.1}
    config_path = h.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128}, train=train)
    runs = str(tmp_path / "runs")
    info, run_dir = start_detached(h, "train", "--config", str(config_path), "--dataset", str(prepared_dataset))
    wait_for_step(h, run_dir, 4)  # checkpoint-3 is written
    os.kill(info["pid"], signal.SIGKILL)
    h.wait_for(lambda: run_status(run_dir).status == "crashed", timeout=30, what="crashed")
    listed = json.loads(h.r1tui("runs", "--runs-dir", runs, "--json").stdout)
    assert listed[0]["status"] == "crashed" and "without a run_finished" in listed[0]["reason"]
    killed_at = max(m["step"] for m in metrics(run_dir))
    assert killed_at < 9

    resumed = h.r1tui("train", "--resume", info["run_id"], "--runs-dir", runs, "--foreground", "--json", timeout=600)
    assert json.loads(resumed.stdout)["status"] == "finished"
    logged = metrics(run_dir)
    assert [m["step"] for m in logged] == list(range(1, 10))  # every step once, in order
    events = read_events(run_dir / "events.jsonl")
    starts = [e.data for e in events if e.type == "run_started"]
    assert [s["resumed"] for s in starts] == [False, True]
    resume_note = [e.data["message"] for e in events if e.type == "log" and "resuming" in e.data["message"]]
    assert resume_note and resume_note[0].startswith("resuming from checkpoint-")
    state = json.loads((run_dir / "checkpoints" / "checkpoint-9" / "trainer_state.json").read_text())
    assert state["global_step"] == 9

    # The same training uninterrupted, in the same kind of process.
    straight = json.loads(h.r1tui("train", "--config", str(config_path), "--dataset", str(prepared_dataset),
                                  "--foreground", "--json", timeout=600).stdout)
    reference = metrics(tmp_path / "runs" / straight["run_id"])
    for got, want in zip(logged, reference, strict=True):
        assert got["learning_rate"] == pytest.approx(want["learning_rate"], rel=1e-6), got["step"]
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-4), (got["step"], killed_at)


def test_cancel_saves_a_checkpoint_and_records_cancelled(tmp_path, prepared_dataset, runs_helpers):
    h = runs_helpers
    config_path = h.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
                                 train={"max_steps": 500, "save_steps": 1000})
    runs = str(tmp_path / "runs")
    info, run_dir = start_detached(h, "train", "--config", str(config_path), "--dataset", str(prepared_dataset))
    wait_for_step(h, run_dir, 2)
    cancelled = json.loads(h.r1tui("cancel", info["run_id"], "--runs-dir", runs, "--wait", "120", "--json").stdout)
    assert cancelled["status"] == "cancelled"
    events = read_events(run_dir / "events.jsonl")
    last_step = max(m["step"] for m in metrics(run_dir))
    checkpoints = [e.data for e in events if e.type == "artifact" and e.data["kind"] == "checkpoint"]
    assert [c["step"] for c in checkpoints] == [last_step]  # saved at cancel, not on the save_steps schedule
    assert (run_dir / "checkpoints" / f"checkpoint-{last_step}" / "optimizer.pt").is_file()
    train_finished = [e.data for e in events if e.type == "stage_finished" and e.stage == "train"]
    assert train_finished[0]["status"] == "cancelled"
    assert events[-1].type == "run_finished" and events[-1].data["status"] == "cancelled"
    assert events[-1].data["reason"] == "SIGTERM"
    again = h.r1tui("cancel", info["run_id"], "--runs-dir", runs, check=False)
    assert again.returncode == 1 and "is not running (status: cancelled)" in again.stderr


def test_two_processes_under_accelerate_train_one_adapter(tmp_path, prepared_dataset, runs_helpers):
    """DDP with two CPU processes (gloo) through `accelerate launch`; rank 0 alone writes."""
    h = runs_helpers
    config_path = h.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
                                 train={"max_steps": 4, "save_steps": 2})
    info, run_dir = start_detached(h, "train", "--config", str(config_path), "--dataset", str(prepared_dataset),
                                   "--processes", "2")
    h.wait_for(lambda: run_status(run_dir).status != "running", timeout=600, what="the DDP run to end")
    status = run_status(run_dir)
    assert status.status == "finished", (status, (run_dir / "pipeline.log").read_text()[-3000:])
    events = read_events(run_dir / "events.jsonl")
    assert [e.data["world_size"] for e in events if e.type == "run_started"] == [2]
    logged = metrics(run_dir)
    assert [m["step"] for m in logged] == [1, 2, 3, 4] and {m["world_size"] for m in logged} == {2}
    assert sum(1 for e in events if e.type == "stage_finished" and e.stage == "train") == 1
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    # each optimizer step saw 2 ranks x batch 4 rows
    state = json.loads((run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 4 and state["global_step"] == 4


def test_cancel_of_a_two_process_run_checkpoints_on_every_rank(tmp_path, prepared_dataset, runs_helpers):
    """The workers get SIGTERM themselves (not only accelerate's launcher, which would
    SIGKILL them after 30 s): the run saves a checkpoint and ends cancelled."""
    h = runs_helpers
    config_path = h.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
                                 train={"max_steps": 500, "save_steps": 1000})
    info, run_dir = start_detached(h, "train", "--config", str(config_path), "--dataset", str(prepared_dataset),
                                   "--processes", "2")
    wait_for_step(h, run_dir, 2, timeout=400)
    cancelled = json.loads(h.r1tui("cancel", info["run_id"], "--runs-dir", str(tmp_path / "runs"), "--wait", "180",
                                   "--json").stdout)
    assert cancelled["status"] == "cancelled", (run_dir / "pipeline.log").read_text()[-3000:]
    last_step = max(m["step"] for m in metrics(run_dir))
    assert (run_dir / "checkpoints" / f"checkpoint-{last_step}" / "adapter_model.safetensors").is_file()
    events = read_events(run_dir / "events.jsonl")
    assert events[-1].type == "run_finished" and events[-1].data["status"] == "cancelled"


def test_unsloth_backend_trains_on_the_cpu(tmp_path, prepared_dataset, runs_helpers):
    """The unsloth backend's own code (FastLanguageModel, get_peft_model, Unsloth's
    trainer) on Unsloth's CPU fallback, in a pipeline process with HOME in a temp dir."""
    h = runs_helpers
    config_path = h.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
                                 train={"max_steps": 4, "save_steps": 100, "backend": "unsloth",
                                        "gradient_checkpointing": True})
    home = tmp_path / "home"
    home.mkdir()
    env = h.cli_env(home)
    proc = h.r1tui("train", "--config", str(config_path), "--dataset", str(prepared_dataset), "--foreground", "--json",
                   env=env, timeout=600)
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["status"] == "finished", proc.stdout[-3000:]
    run_dir = tmp_path / "runs" / result["run_id"]
    events = read_events(run_dir / "events.jsonl")
    assert [e.data["backend"] for e in events if e.type == "run_started"] == ["unsloth"]
    assert [e.data["inputs"]["backend"] for e in events if e.type == "stage_started" and e.stage == "train"] == ["unsloth"]
    logged = metrics(run_dir)
    assert [m["step"] for m in logged] == [1, 2, 3, 4]
    assert logged[-1]["loss"] < logged[0]["loss"]
    adapter_config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(run_dir / "base")
    assert adapter_config["r"] == 16


def test_dry_run_plans_and_starts_nothing(tmp_path, runs_helpers):
    h = runs_helpers
    config_path = h.write_config(tmp_path, tmp_path / "runs")
    env = dict(h.cli_env(), DRY_RUN="1")
    out = h.r1tui("run", "--config", str(config_path), env=env).stdout
    assert "dry run" in out and "Plan" in out and "prepare" in out and "eval" in out and "Training VRAM" in out
    assert not (tmp_path / "runs").exists()


def test_a_failing_stage_fails_the_run_with_one_line(tmp_path, prepared_dataset, runs_helpers):
    h = runs_helpers
    config_path = h.write_config(tmp_path, tmp_path / "runs", model={"random_init": False,
                                                                     "path": str(tmp_path / "no-model")})
    proc = h.r1tui("train", "--config", str(config_path), "--dataset", str(prepared_dataset), "--foreground", "--json",
                   check=False)
    assert proc.returncode == 1
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["status"] == "failed" and "no-model: no such folder" in result["error"]
    listed = json.loads(h.r1tui("runs", "--runs-dir", str(tmp_path / "runs"), "--json").stdout)
    assert listed[0]["status"] == "failed" and listed[0]["stage_status"]["train"] == "failed"
    missing = h.r1tui("train", "--config", str(config_path), "--dataset", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "--dataset" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

"""FSDP for real: two CPU processes over gloo shard the tiny model (FSDP2 through accelerate)
through the real runner (`r1tui train --processes 2` with train.distributed = "fsdp").

Nothing is mocked: the ranks are real processes, the shards real DTensors, the checkpoint
torch.distributed.checkpoint files written by each rank.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tui.runs.events import EventReader, read_events
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow

STEPS = 20
# fp32 on both sides; the same rows in the same order, each step's gradient a token-weighted
# mean over the same 8 rows. What differs is only the order of the floating-point sums (two
# ranks' partial gradients all-reduced vs one batch of 8). Measured here: at most 1.0e-7
# relative over the 20 steps (1.2e-7 over 40), cancel and resume included. 1e-5 leaves room for another CPU's
# summation order and still fails on any real difference (a lost, skipped or repeated batch,
# a wrong resume: those move the loss by 1e-3 or more).
LOSS_REL = 1e-5


def metrics(run_dir: Path) -> list[dict]:
    return [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "metric" and "loss" in e.data]


def test_fsdp_two_cpu_processes_match_one_process_and_resume_from_the_sharded_checkpoint(
        tmp_path, prepared_dataset, runs_helpers):
    h = runs_helpers
    runs = tmp_path / "runs"
    train = {"max_steps": STEPS, "save_steps": 1000, "lr_scheduler": "cosine", "warmup_ratio": 0.1}

    # One process, batch 8: the reference.
    (tmp_path / "single").mkdir()
    single_cfg = h.write_config(tmp_path / "single", runs, model={"max_seq_length": 128},
                                train={**train, "per_device_batch_size": 8})
    single = json.loads(h.r1tui("train", "--config", str(single_cfg), "--dataset", str(prepared_dataset),
                                "--foreground", "--json", timeout=600).stdout)
    assert single["status"] == "finished"
    reference = metrics(runs / single["run_id"])
    assert [m["step"] for m in reference] == list(range(1, STEPS + 1))

    # FSDP: two ranks x batch 4 (the same 8 rows a step), cancelled mid-run, then resumed.
    (tmp_path / "fsdp").mkdir()
    fsdp_cfg = h.write_config(tmp_path / "fsdp", runs, model={"max_seq_length": 128},
                              train={**train, "per_device_batch_size": 4, "distributed": "fsdp"})
    info = json.loads(h.r1tui("train", "--config", str(fsdp_cfg), "--dataset", str(prepared_dataset),
                              "--processes", "2", "--json").stdout)
    run_dir = Path(info["run_dir"])
    reader = EventReader(run_dir / "events.jsonl")
    seen: list = []

    def reached_step_2():
        seen.extend(e for e in reader.read_new() if e.type == "metric")
        assert run_status(run_dir).status == "running", (run_dir / "pipeline.log").read_text()[-3000:]
        return any(e.data["step"] >= 2 for e in seen)

    h.wait_for(reached_step_2, timeout=400, what="step 2 of the FSDP run")
    cancelled = json.loads(h.r1tui("cancel", info["run_id"], "--runs-dir", str(runs), "--wait", "180",
                                   "--json").stdout)
    assert cancelled["status"] == "cancelled", (run_dir / "pipeline.log").read_text()[-3000:]
    stopped_at = max(m["step"] for m in metrics(run_dir))
    assert stopped_at < STEPS
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{stopped_at}"
    # every rank wrote its own shard of the model (the adapter) and of the optimizer state
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):
        shards = sorted(p.name for p in (checkpoint / part).glob("*.distcp"))
        assert shards == ["__0_0.distcp", "__1_0.distcp"], (part, shards)
    assert not (checkpoint / "optimizer.pt").exists()  # not one gathered optimizer file

    resumed = json.loads(h.r1tui("train", "--resume", info["run_id"], "--runs-dir", str(runs), "--processes", "2",
                                 "--json").stdout)
    assert resumed["run_id"] == info["run_id"]
    def resumed_run_ended():
        finished = [e for e in read_events(run_dir / "events.jsonl") if e.type == "run_finished"]
        return len(finished) == 2 and run_status(run_dir).status != "running"

    h.wait_for(resumed_run_ended, timeout=600, poll=0.2, what="the resumed FSDP run to end")
    status = run_status(run_dir)
    assert status.status == "finished", (status, (run_dir / "pipeline.log").read_text()[-3000:])

    events = read_events(run_dir / "events.jsonl")
    starts = [e.data for e in events if e.type == "run_started"]
    assert [(s["resumed"], s["world_size"]) for s in starts] == [(False, 2), (True, 2)]
    notes = [e.data["message"] for e in events if e.type == "log" and "resuming" in e.data.get("message", "")]
    assert notes and notes[0].startswith(f"resuming from checkpoint-{stopped_at}"), notes
    logged = metrics(run_dir)
    assert [m["step"] for m in logged] == list(range(1, STEPS + 1))  # every step once: it continued, not restarted
    for got, want in zip(logged, reference, strict=True):
        assert got["learning_rate"] == pytest.approx(want["learning_rate"], rel=1e-6), got["step"]
        assert got["loss"] == pytest.approx(want["loss"], rel=LOSS_REL), (got["step"], stopped_at)
    assert logged[-1]["loss"] < logged[0]["loss"] - 0.5
    # every logged step also says how long each rank's own work took (the Resources view's table)
    windows = [e.data for e in events if e.type == "ranks"]
    assert [w["step"] for w in windows] == [m["step"] for m in logged]
    assert all(w["strategy"] == "fsdp" and [r["rank"] for r in w["ranks"]] == [0, 1] for w in windows)
    assert all(r["compute_s"] > 0 and r["tokens"] > 0 for w in windows for r in w["ranks"]), windows
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()

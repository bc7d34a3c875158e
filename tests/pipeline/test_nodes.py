"""Several machines: `r1tui train --nodes 2 ...` prints one torchrun command per node; here
both "nodes" are this machine (two node ranks meeting on 127.0.0.1, one CPU process each,
gloo), running exactly the printed lines. Real processes, real rendezvous, real FSDP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from r1tui.runs.events import EventReader, read_events
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow


async def _dashboard_header(run_dir: Path, runs: Path) -> str:
    """The dashboard's header line on a finished run (headless, the real app)."""
    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.source import RunRef
    from r1tui.runs.layout import RunLayout

    app = DashboardApp(run=RunRef(RunLayout(run_dir)), runs_dir=runs, sample_local_gpu=False, python="python")
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(300):
            strips = app.screen._compositor.render_strips()
            first = "".join(segment.text for segment in strips[0]) if strips else ""
            if app.caught_up and "finished" in first:
                return first
            await pilot.pause(0.05)
    raise AssertionError(f"the header never showed the finished run: {first!r}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_of(run_dir: Path) -> list[int]:
    """This run's launchers and ranks (their command lines name the run folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(run_dir).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


@pytest.fixture
def stop_leftovers():
    runs: list[Path] = []
    yield runs
    for run_dir in runs:  # a failed test must not leave its ranks training
        for pid in _processes_of(run_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_printed_two_node_launch_trains_and_cancel_reaches_every_rank(tmp_path, prepared_dataset, runs_helpers,
                                                                          stop_leftovers):
    h = runs_helpers
    runs = tmp_path / "runs"
    # FSDP's own activation checkpointing on (train.gradient_checkpointing)
    config = h.write_config(tmp_path, runs, model={"max_seq_length": 128},
                            train={"max_steps": 4, "save_steps": 2, "distributed": "fsdp",
                                   "gradient_checkpointing": True})
    port = _free_port()
    info = json.loads(h.r1tui("train", "--config", str(config), "--dataset", str(prepared_dataset), "--nodes", "2",
                              "--main-address", "127.0.0.1", "--main-port", str(port), "--json").stdout)
    run_dir = Path(info["run_dir"])
    stop_leftovers.append(run_dir)
    assert info["world_size"] == 2 and len(info["commands"]) == 2
    assert not (run_dir / "events.jsonl").exists()  # printed, not started
    for node, line in enumerate(info["commands"]):
        assert f"--node-rank {node} --master-addr 127.0.0.1 --master-port {port}" in line
        subprocess.run(["bash", "-c", line], check=True, env=h.cli_env(), cwd=h.repo)

    def ended():
        finished = [e for e in read_events(run_dir / "events.jsonl") if e.type == "run_finished"] \
            if (run_dir / "events.jsonl").is_file() else []
        return finished and not _processes_of(run_dir)

    h.wait_for(ended, timeout=400, poll=0.2, what="the two-node run to end")
    status = run_status(run_dir)
    assert status.status == "finished", (status, (run_dir / "pipeline.log").read_text()[-3000:])
    events = read_events(run_dir / "events.jsonl")
    # rank 0 alone wrote the log: one run_started (world size 2), every step once
    assert [e.data["world_size"] for e in events if e.type == "run_started"] == [2]
    assert [e.data["step"] for e in events if e.type == "metric"] == [1, 2, 3, 4]
    # the adapter gathered from both ranks: every LoRA matrix of the 2 layers x 7 projections,
    # under a plain model's names (no checkpoint-wrapper names), trained (lora_B left zero)
    from safetensors.torch import load_file

    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert len(adapter) == 2 * 7 * 2 and not [k for k in adapter if "_checkpoint_wrapped_module" in k]
    assert all(tensor.abs().sum() > 0 for key, tensor in adapter.items() if "lora_B" in key)
    for shard in ("__0_0.distcp", "__1_0.distcp"):  # each node's rank saved its shard
        assert (run_dir / "checkpoints" / "checkpoint-4" / "optimizer_0" / shard).is_file()
    assert (run_dir / "pipeline-node1.log").is_file()
    header = asyncio.run(_dashboard_header(run_dir, runs))
    assert info["run_id"] in header and "hf fsdp ×2" in header, header  # the strategy and world size

    # Cancel: `r1tui cancel` on node 0 signals rank 0; the ranks agree to stop at the same
    # step (an all-reduce each step), every rank saves its shard, every launcher ends.
    config = h.write_config(tmp_path, runs, model={"max_seq_length": 128},
                            train={"max_steps": 500, "save_steps": 1000, "distributed": "fsdp"})
    port = _free_port()
    info = json.loads(h.r1tui("train", "--config", str(config), "--dataset", str(prepared_dataset), "--nodes", "2",
                              "--main-address", "127.0.0.1", "--main-port", str(port), "--json").stdout)
    run_dir = Path(info["run_dir"])
    stop_leftovers.append(run_dir)
    for line in info["commands"]:
        subprocess.run(["bash", "-c", line], check=True, env=h.cli_env(), cwd=h.repo)
    reader = EventReader(run_dir / "events.jsonl")
    seen: list = []

    def step_2():
        if (run_dir / "events.jsonl").is_file():
            seen.extend(e for e in reader.read_new() if e.type == "metric")
        return any(e.data["step"] >= 2 for e in seen)

    h.wait_for(step_2, timeout=400, poll=0.2, what="step 2")
    cancelled = json.loads(h.r1tui("cancel", info["run_id"], "--runs-dir", str(runs), "--wait", "180",
                                   "--json").stdout)
    assert cancelled["status"] == "cancelled", (run_dir / "pipeline.log").read_text()[-3000:]
    h.wait_for(lambda: not _processes_of(run_dir), timeout=120, poll=0.2, what="every rank and launcher to exit")
    last = max(e.data["step"] for e in read_events(run_dir / "events.jsonl") if e.type == "metric")
    for shard in ("__0_0.distcp", "__1_0.distcp"):
        assert (run_dir / "checkpoints" / f"checkpoint-{last}" / "optimizer_0" / shard).is_file()
    # its resume is printed the same way, for the same run folder
    again = json.loads(h.r1tui("train", "--resume", info["run_id"], "--runs-dir", str(runs), "--nodes", "2",
                               "--main-address", "127.0.0.1", "--main-port", str(port), "--json").stdout)
    assert again["run_dir"] == str(run_dir) and all(
        f"-m r1tui.pipeline {run_dir} --stages prepare,train --resume" in line for line in again["commands"])


def test_sbatch_script_and_bad_node_flags(tmp_path, runs_helpers):
    h = runs_helpers
    config = h.write_config(tmp_path, tmp_path / "runs", train={"distributed": "fsdp"})
    script = tmp_path / "job.sh"
    out = h.r1tui("train", "--config", str(config), "--nodes", "2", "--gpus-per-node", "4", "--sbatch", str(script),
                  "--json")
    info = json.loads(out.stdout)
    text = script.read_text()
    assert info["world_size"] == 8 and info["sbatch"] == str(script) and info["commands"] == []
    assert "#SBATCH --nodes=2" in text and "#SBATCH --gpus-per-node=4" in text
    assert "--node-rank $SLURM_NODEID --master-addr $MAIN_ADDR" in text and info["run_dir"] in text
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    for args, says in ((["--nodes", "2"], "--main-address"),
                       (["--nodes", "2", "--main-address", "h", "--processes", "2"], "--gpus-per-node"),
                       (["--nodes", "0"], "at least 1"),
                       (["--gpus-per-node", "2"], "--processes 2"),
                       (["--nodes", "2", "--main-address", "h", "--main-port", "0"], "not a port"),
                       (["--nodes", "2", "--main-address", "h", "--submit"], "--sbatch")):
        bad = h.r1tui("train", "--config", str(config), *args, check=False)
        assert bad.returncode != 0 and says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, \
            (args, bad.stderr)


def test_distributed_flag_plans_per_gpu_and_unsloth_says_one_gpu(tmp_path, runs_helpers):
    h = runs_helpers
    config = h.write_config(tmp_path, tmp_path / "runs", model={"architecture": "mistral-small-2409",
                                                                "max_seq_length": 8192},
                            hardware={"gpu_name": "RTX 4090", "gpu_memory_gb": 24.0})
    env = dict(h.cli_env(), DRY_RUN="1", COLUMNS="200")
    plan = h.r1tui("train", "--config", str(config), "--processes", "4", "--distributed", "fsdp", env=env)
    words = " ".join(plan.stdout.split())  # Rich wraps table titles
    assert "per GPU of 4 (fsdp)" in words and "Per GPU on 4 x RTX 4090" in words
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    unsloth = h.write_config(tmp_path, tmp_path / "runs", train={"backend": "unsloth"})
    bad = h.r1tui("train", "--config", str(unsloth), "--processes", "2", "--distributed", "fsdp", check=False)
    assert bad.returncode != 0 and "trains on one GPU" in bad.stderr and "train.backend = \"hf\"" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

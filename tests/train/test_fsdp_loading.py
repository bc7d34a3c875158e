"""How the hf backend loads the base for one rank of an FSDP run, on this CPU machine:
bitsandbytes' NF4 shards only on CUDA, so a 4-bit config loads in train.dtype (with a
warning), while the same config in one process still loads NF4. Real models, real
bitsandbytes; only WORLD_SIZE says "one rank of two" (no process group is needed to load)."""

from __future__ import annotations

import logging

from r1tui.config import load_config


def test_an_fsdp_rank_on_the_cpu_loads_the_4bit_base_unquantized(tmp_path, monkeypatch, caplog, tiny_config_path):
    import torch

    from r1tui.train import hf_backend
    from r1tui.train.base import build_random_base
    from r1tui.train.trainer import fsdp_arguments

    config = load_config(tiny_config_path)
    config.model.load_in_4bit = True
    config.train.distributed = "fsdp"
    base = str(build_random_base(config, tmp_path / "base"))

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert hf_backend.fsdp_enabled(config)
    with caplog.at_level(logging.WARNING, logger="r1tui.train.hf_backend"):
        sharded, _ = hf_backend.load_model(config, base)
    assert not getattr(sharded, "is_loaded_in_4bit", False)
    assert any("needs CUDA" in r.getMessage() for r in caplog.records)
    assert {p.dtype for p in sharded.parameters()} == {torch.float32}

    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: the same config loads NF4 on the CPU
    assert not hf_backend.fsdp_enabled(config)
    single, _ = hf_backend.load_model(config, base)
    assert getattr(single, "is_loaded_in_4bit", False)

    args = fsdp_arguments(config)  # what the Trainer gets under FSDP
    assert args["fsdp"] is True and args["gradient_checkpointing"] is False
    assert args["fsdp_config"]["version"] == 2 and args["fsdp_config"]["state_dict_type"] == "SHARDED_STATE_DICT"
    assert args["fsdp_config"]["activation_checkpointing"] == config.train.gradient_checkpointing
    config.train.fsdp_offload = True
    assert fsdp_arguments(config)["fsdp_config"]["cpu_offload"] is True


def test_offload_without_cuda_is_one_line(tiny_config_path):
    from r1tui.train.trainer import fsdp_problem

    config = load_config(tiny_config_path)
    config.train.distributed = "fsdp"
    assert fsdp_problem(config, on_cuda=False) is None
    config.train.fsdp_offload = True
    problem = fsdp_problem(config, on_cuda=False)
    assert "needs CUDA" in problem and "set it to false" in problem and "\n" not in problem
    assert fsdp_problem(config, on_cuda=True) is None
    config.train.distributed = "ddp"  # offload means nothing without FSDP
    assert fsdp_problem(config, on_cuda=False) is None


def test_a_sharded_checkpoint_resumes_only_on_as_many_fsdp_ranks(tmp_path, tiny_config_path):
    from r1tui.train.trainer import checkpoint_layout_problem, sharded_by

    config = load_config(tiny_config_path)
    config.train.distributed = "fsdp"
    checkpoint = tmp_path / "checkpoint-3"
    (checkpoint / "optimizer_0").mkdir(parents=True)
    assert sharded_by(checkpoint) == 0 and checkpoint_layout_problem(checkpoint, config, 1) is None
    for rank in (0, 1):  # the file names torch.distributed.checkpoint gives each rank's shard
        (checkpoint / "optimizer_0" / f"__{rank}_0.distcp").write_bytes(b"x")
    assert sharded_by(checkpoint) == 2
    assert checkpoint_layout_problem(checkpoint, config, 2) is None
    one = checkpoint_layout_problem(checkpoint, config, 1)
    assert "saved sharded by 2 FSDP ranks" in one and "--processes 2" in one
    assert "--processes 2" in checkpoint_layout_problem(checkpoint, config, 4)
    config.train.distributed = "ddp"
    assert checkpoint_layout_problem(checkpoint, config, 2) is not None

"""The training stage in-process with the hf backend: real peft + TRL steps on the tiny model."""

from __future__ import annotations

import json

import pytest

from r1tui.config import load_config
from r1tui.runs.events import EventWriter, read_events
from r1tui.train.collator import IGNORE_INDEX, PadCollator

METRIC_KEYS = {"step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "samples_per_s",
               "elapsed_s", "eta_s", "tokens_seen", "world_size"}


def test_collator_pads_ids_and_keeps_labels_exactly():
    rows = [{"input_ids": [1, 3, 10, 4, 20, 2], "labels": [-100, -100, -100, -100, 20, 2]},
            {"input_ids": [1, 3, 11, 4], "labels": [-100, -100, -100, 7]}]
    batch = PadCollator(pad_token_id=2)(rows)
    assert batch["input_ids"].tolist() == [[1, 3, 10, 4, 20, 2], [1, 3, 11, 4, 2, 2]]
    assert batch["labels"].tolist() == [[-100, -100, -100, -100, 20, 2], [-100, -100, -100, 7, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0]]
    assert PadCollator(pad_token_id=0, pad_to_multiple_of=8)(rows)["input_ids"].shape == (2, 8)
    with pytest.raises(ValueError, match="row 0: 2 input_ids but 1 labels"):
        PadCollator(pad_token_id=0)([{"input_ids": [1, 2], "labels": [1]}])


def test_hf_backend_trains_logs_checkpoints_and_saves_the_adapter(tmp_path, prepared_dataset, runs_helpers):
    from r1tui.train import train_adapter

    config = load_config(runs_helpers.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
                                                   train={"max_steps": 6, "save_steps": 4, "backend": "hf"}))
    run_dir = tmp_path / "runs" / "r"
    with EventWriter(run_dir / "events.jsonl") as events:
        adapter = train_adapter(config, prepared_dataset, run_dir, events)
    written = read_events(run_dir / "events.jsonl")
    metrics = [e.data for e in written if e.type == "metric"]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert all(METRIC_KEYS <= set(m) for m in metrics)
    assert all(m["tokens_per_s"] > 0 and m["samples_per_s"] > 0 and m["max_steps"] == 6 for m in metrics)
    assert metrics[-1]["eta_s"] == 0 and metrics[-1]["tokens_seen"] > metrics[0]["tokens_seen"]
    assert "cuda_peak" not in metrics[0]  # CUDA memory only where there is CUDA
    assert metrics[-1]["loss"] < metrics[0]["loss"] - 0.3, [m["loss"] for m in metrics]
    assert [e.data["available"] for e in written if e.type == "gpu"] == [False]
    stage_events = [(e.type, e.data.get("status")) for e in written if e.type.startswith("stage_") and e.stage == "train"
                    and e.type != "stage_progress"]
    assert stage_events == [("stage_started", None), ("stage_finished", "finished")]
    artifacts = {e.data["kind"]: e.data for e in written if e.type == "artifact"}
    assert artifacts["adapter"]["path"] == str(adapter) and artifacts["adapter"]["bytes"] > 0
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]

    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str((run_dir / "base").resolve())
    assert adapter_config["r"] == 16 and adapter_config["lora_alpha"] == 32
    assert set(adapter_config["target_modules"]) == set(config.lora.target_modules)
    assert (adapter / "tokenizer.model").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "tokenizer_config.json").read_text())["add_prefix_space"] is False
    base_config = json.loads((run_dir / "base" / "config.json").read_text())
    assert (base_config["hidden_size"], base_config["num_hidden_layers"], base_config["vocab_size"]) == (256, 2, 32768)


def test_hf_backend_loads_the_base_in_nf4_when_asked(tmp_path, prepared_dataset, runs_helpers):
    """bitsandbytes runs NF4 on the CPU: a QLoRA step for real, not a fallback to fp32."""
    from r1tui.train import hf_backend
    from r1tui.train.base import ensure_base_model

    config = load_config(runs_helpers.write_config(
        tmp_path, tmp_path / "runs", model={"max_seq_length": 128, "load_in_4bit": True},
        train={"max_steps": 2, "save_steps": 100, "backend": "hf"}))
    base = ensure_base_model(config, tmp_path / "run")
    model, tokenizer = hf_backend.load_model(config, base)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "Linear4bit" in kinds
    quant = model.base_model.model.config.quantization_config
    assert (quant.bnb_4bit_quant_type, quant.bnb_4bit_use_double_quant) == ("nf4", True)
    from r1tui.train.trainer import load_training_dataset

    batch = PadCollator(pad_token_id=tokenizer.eos_token_id)([load_training_dataset(prepared_dataset)[i] for i in range(2)])
    loss = model(**batch).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert 9.0 < loss.item() < 11.5  # ln(32768) = 10.4 for a random model


def test_a_dataset_without_labels_is_refused(tmp_path):
    import datasets

    from r1tui.errors import R1Error
    from r1tui.train.trainer import load_training_dataset

    datasets.Dataset.from_dict({"input_ids": [[1, 2]]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(R1Error, match="lacks labels"):
        load_training_dataset(tmp_path / "ds")
    with pytest.raises(R1Error, match="no prepared dataset there"):
        load_training_dataset(tmp_path / "missing")


def test_a_dataset_for_another_tokenizer_or_a_longer_context_is_refused(tmp_path, tiny_config_path):
    import datasets

    from r1tui.config import load_config
    from r1tui.errors import R1Error
    from r1tui.train.trainer import check_dataset_fits, load_training_dataset

    config = load_config(tiny_config_path)  # v3, vocab 32768, max_seq_length 512
    datasets.Dataset.from_dict({"input_ids": [[1, 3, 100_000, 4, 2]], "labels": [[-100] * 4 + [2]]}).save_to_disk(
        str(tmp_path / "tekken"))
    with pytest.raises(R1Error, match="outside the model's vocabulary of 32768"):
        check_dataset_fits(load_training_dataset(tmp_path / "tekken"), config, tmp_path / "tekken")
    datasets.Dataset.from_dict({"input_ids": [[1] * 600], "labels": [[1] * 600]}).save_to_disk(str(tmp_path / "long"))
    with pytest.raises(R1Error, match="rows up to 600 tokens but model.max_seq_length is 512"):
        check_dataset_fits(load_training_dataset(tmp_path / "long"), config, tmp_path / "long")
    from r1tui.train import train_adapter

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(R1Error, match="rows up to 600 tokens"):  # before any model is built or loaded
        train_adapter(config, tmp_path / "long", run_dir)
    assert not (run_dir / "base").exists()
    datasets.Dataset.from_dict({"input_ids": [[1, 3, 4, 2]], "labels": [[-100] * 3 + [2]]}).save_to_disk(str(tmp_path / "ok"))
    check_dataset_fits(load_training_dataset(tmp_path / "ok"), config, tmp_path / "ok")
    (tmp_path / "ok" / "stats.json").write_text('{"tokenizer": "tekken"}')
    with pytest.raises(R1Error, match="prepared with tokenizer 'tekken'"):
        check_dataset_fits(load_training_dataset(tmp_path / "ok"), config, tmp_path / "ok")


def test_a_resumed_qlora_run_keeps_its_adapter_in_bf16(tmp_path, prepared_dataset, runs_helpers):
    """NF4 base (bitsandbytes runs 4-bit on the CPU too): SFTTrainer trains the adapter in bf16;
    resuming must not leave it in the fp32 that peft's adapter loading casts it to."""
    from collections import Counter

    from r1tui.train import hf_backend
    from r1tui.train import trainer as train_module

    config = load_config(runs_helpers.write_config(
        tmp_path, tmp_path / "runs", model={"max_seq_length": 128, "load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16"},
        train={"max_steps": 2, "save_steps": 2, "backend": "hf", "dtype": "bfloat16", "gradient_checkpointing": False}))
    base = train_module._ensure_base(config, tmp_path / "run")
    dataset = train_module.load_training_dataset(prepared_dataset)
    out = tmp_path / "checkpoints"

    def new_trainer():
        model, tokenizer = hf_backend.load_model(config, base)
        return hf_backend.trainer_class()(
            model=model, args=train_module.training_arguments(config, out, hf_backend), train_dataset=dataset,
            data_collator=PadCollator(pad_token_id=train_module._pad_id(tokenizer)), processing_class=tokenizer)

    def adapter_dtypes(trainer):
        return Counter(str(p.dtype) for p in trainer.model.parameters() if p.requires_grad)

    first = new_trainer()
    assert set(adapter_dtypes(first)) == {"torch.bfloat16"}
    first.train()
    resumed = new_trainer()
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    assert adapter_dtypes(resumed) == adapter_dtypes(first)


def test_auto_backend_with_a_faked_cuda_gpu_takes_unsloth_alone_and_hf_for_several_processes(monkeypatch):
    """CUDA cannot exist here: torch.cuda.is_available and the Unsloth check are faked."""
    import torch

    import r1tui.train as train_package
    from r1tui.errors import R1Error

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(train_package, "unsloth_installed", lambda: True)
    assert train_package.resolve_backend("auto") == "unsloth"
    assert train_package.resolve_backend("auto", world_size=4) == "hf"  # Unsloth trains on one GPU
    assert train_package.resolve_backend("unsloth", world_size=4) == "unsloth"  # named: refused later, in one line
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_package.resolve_backend("auto") == "hf"
    with pytest.raises(R1Error, match="unknown backend"):
        train_package.resolve_backend("jax")


def test_a_checkpoint_cut_short_by_a_full_disk_never_appears_under_its_name(tmp_path, prepared_dataset, runs_helpers,
                                                                              monkeypatch):
    """The disk filling up is injected at the optimizer-state write of the second checkpoint
    (a real full disk needs a tmpfs mount); the weights are already written by then."""
    import errno

    from transformers import Trainer

    from r1tui.errors import R1Error
    from r1tui.train import train_adapter
    from r1tui.train.trainer import checkpoints

    config = load_config(runs_helpers.write_config(tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
                                                   train={"max_steps": 4, "save_steps": 2, "backend": "hf"}))
    run_dir = tmp_path / "runs" / "r"
    real_save = Trainer._save_optimizer_and_scheduler

    def disk_full_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full_at_step_4)
    with EventWriter(run_dir / "events.jsonl") as events, pytest.raises(R1Error, match="saving checkpoint-4 failed: "
                                                                          "the disk holding .* is full"):
        train_adapter(config, prepared_dataset, run_dir, events)
    folder = run_dir / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [".checkpoint-4.tmp-saving", "checkpoint-2"]
    assert (folder / ".checkpoint-4.tmp-saving" / "checkpoint-4" / "adapter_model.safetensors").is_file()
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-2"]
    assert {"optimizer.pt", "trainer_state.json"} <= {p.name for p in (folder / "checkpoint-2").iterdir()}

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", real_save)
    with EventWriter(run_dir / "events.jsonl") as events:
        train_adapter(config, prepared_dataset, run_dir, events, resume=True)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_eval_steps_logs_the_loss_on_the_held_out_rows(tmp_path, runs_helpers):
    """train.eval_steps with data.eval_rows, for real: the prepare stage holds rows out, the
    trainer evaluates on them every eval_steps, and the callback writes eval_loss as a
    metric event the reducer keeps as a series. The last eval_loss equals the loss of the
    saved adapter on those rows, computed here by hand."""
    import math

    import torch
    from datasets import load_from_disk
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from r1tui.data.prepare import EVAL_DIR, prepare_dataset
    from r1tui.runs.reducer import reduce
    from r1tui.train import train_adapter

    config = load_config(runs_helpers.write_config(
        tmp_path, tmp_path / "runs", model={"max_seq_length": 256},
        train={"max_steps": 4, "save_steps": 100, "backend": "hf", "eval_steps": 2, "per_device_batch_size": 4},
        data={"num_examples": 24, "eval_rows": 6}))
    run_dir = tmp_path / "runs" / "r"
    prepare_dataset(config, run_dir / "data")
    held_out = load_from_disk(str(run_dir / "data" / EVAL_DIR))
    assert len(held_out) == 6 and len(load_from_disk(str(run_dir / "data"))) == 18
    with EventWriter(run_dir / "events.jsonl") as events:
        adapter = train_adapter(config, run_dir / "data", run_dir, events)
    written = [e for e in read_events(run_dir / "events.jsonl") if e.type == "metric"]
    assert [(e.data["step"], "eval_loss" in e.data) for e in written] == [
        (1, False), (2, False), (2, True), (3, False), (4, False), (4, True)]  # each after its step's loss
    evals = [e.data for e in written if "eval_loss" in e.data]
    assert all(set(e) == {"step", "max_steps", "eval_loss"} and e["max_steps"] == 4 for e in evals)
    assert all(math.isfinite(e["eval_loss"]) and 0 < e["eval_loss"] < 20 for e in evals)
    state = reduce(read_events(run_dir / "events.jsonl"))
    assert list(state.series("eval_loss").xs) == [2, 4] and list(state.series("loss").xs) == [1, 2, 3, 4]

    # the adapter saved at step 4 scores the held-out rows as the trainer did (batches of 4, averaged per row)
    base = AutoModelForCausalLM.from_pretrained(str(run_dir / "base"), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in held_out]
    losses, weights = [], []
    with torch.no_grad():
        for start in range(0, len(rows), 4):
            batch = PadCollator(pad_token_id=2)(rows[start:start + 4])
            losses.append(model(**batch).loss.item())
            weights.append(len(rows[start:start + 4]))
    by_hand = sum(loss * weight for loss, weight in zip(losses, weights, strict=True)) / sum(weights)
    assert evals[-1]["eval_loss"] == pytest.approx(by_hand, rel=1e-4)


def test_eval_steps_on_a_dataset_without_held_out_rows_is_one_line(tmp_path, prepared_dataset, runs_helpers):
    from r1tui.errors import R1Error
    from r1tui.train import train_adapter

    config = load_config(runs_helpers.write_config(
        tmp_path, tmp_path / "runs", model={"max_seq_length": 128},
        train={"max_steps": 2, "backend": "hf", "eval_steps": 1}, data={"eval_rows": 4}))
    with pytest.raises(R1Error) as excinfo:
        train_adapter(config, prepared_dataset, tmp_path / "runs" / "r")
    message = str(excinfo.value)
    assert "\n" not in message and "train.eval_steps = 1 but the dataset holds no held-out rows" in message
    assert "set data.eval_rows and prepare it again" in message

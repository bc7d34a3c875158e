"""The built-in stages, declared once: prepare → train → merge → gguf → quantize → parity → eval.

Each declaration only names things that live in the stage packages (what runs, how its
inputs are fingerprinted, when its outputs exist); the resume rule and the order are the
orchestrator's. ``r1tui run --stages`` takes the steps (prepare, train, export, eval);
export's four stages share the step ``export``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from r1tui.data.tokenizer import tokenizer_spec
from r1tui.export import stages as export_stages
from r1tui.pipeline.registry import Stage, register
from r1tui.runs.context import StageContext
from r1tui.runs.files import digest

# Knobs that change how a run is watched, not what it computes: never a reason to redo work.
_WATCH_ONLY = {"train": {"logging_steps", "save_steps", "gpu_sample_seconds"}}


def sections(ctx: StageContext, *names: str) -> dict[str, Any]:
    """The config sections a stage depends on, without the watch-only knobs."""
    data = ctx.config.to_toml_dict()
    out = {}
    for name in names:
        section = dict(data.get(name, {}))
        for key in _WATCH_ONLY.get(name, ()):
            section.pop(key, None)
        out[name] = section
    return out


def dataset_fingerprint(data_dir: Path) -> str:
    """The dataset's identity: the hashes of its small metadata files (they change whenever
    the rows do)."""
    parts = {name: hashlib.sha256((data_dir / name).read_bytes()).hexdigest()
             for name in ("state.json", "dataset_info.json", "stats.json") if (data_dir / name).is_file()}
    return digest(parts) if parts else digest(str(data_dir))


# ---------------------------------------------------------------- prepare


def _prepare_inputs(ctx: StageContext) -> str:
    if ctx.external_dataset:
        return dataset_fingerprint(ctx.data_dir)
    return digest({"data": sections(ctx, "data")["data"], "tokenizer": tokenizer_spec(ctx.config),
                   "max_seq_length": ctx.config.model.max_seq_length})


def _prepare_external(ctx: StageContext) -> str | None:
    return f"using the prepared dataset {ctx.data_dir}" if ctx.external_dataset else None


def _prepare(ctx: StageContext) -> dict[str, Any]:
    from r1tui.data.prepare import prepare_dataset

    def work() -> None:
        prepare_dataset(ctx.config, ctx.data_dir, events=ctx.events)

    if ctx.world_size == 1:
        work()
    else:  # every rank waits while rank 0 writes the dataset, then all read it
        import torch
        from accelerate import PartialState

        with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
            if ctx.main:
                work()
    return {"dataset": str(ctx.data_dir)}


register(Stage(
    name="prepare", step="prepare", does="render and mask the data",
    writes="data/ (Arrow dataset + stats.json)",
    fingerprint=_prepare_inputs, done=lambda ctx: (ctx.data_dir / "stats.json").is_file(), run=_prepare,
    skip_reason=_prepare_external, all_ranks=True,
))


# ---------------------------------------------------------------- train


def _train_inputs(ctx: StageContext) -> str:
    return digest({"data": dataset_fingerprint(ctx.data_dir), **sections(ctx, "model", "lora", "train")})


def _train(ctx: StageContext) -> dict[str, Any]:
    from r1tui.train import train_adapter

    inputs = _train_inputs(ctx)
    same = ctx.previous.get("inputs") == inputs
    if ctx.resume and not same and ctx.layout.checkpoints.exists() and ctx.main:
        ctx.events.emit("log", stage="train", level="warning",
                        message="the data or the model/LoRA/train config changed since the checkpoints were "
                                "written: training starts over")
        shutil.rmtree(ctx.layout.checkpoints, ignore_errors=True)
    train_adapter(ctx.config, ctx.data_dir, ctx.layout.root, events=ctx.events, resume=ctx.resume and same)
    return {"adapter": str(ctx.layout.adapter)}


register(Stage(
    name="train", step="train", does="LoRA training, checkpoints every train.save_steps",
    writes="checkpoints/, adapter/",
    fingerprint=_train_inputs, done=lambda ctx: (ctx.layout.adapter / "adapter_config.json").is_file(),
    run=_train, all_ranks=True,
))


# ---------------------------------------------------------------- export: merge, gguf, quantize, parity

for _stage in export_stages.STAGES:
    register(Stage(step="export", **_stage))


# ---------------------------------------------------------------- eval


def _eval_inputs(ctx: StageContext) -> str:
    ggufs = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in ctx.layout.gguf_files())
    return digest({"gguf": ggufs, **sections(ctx, "eval")})


def _eval(ctx: StageContext) -> dict[str, Any]:
    from r1tui.eval import evaluate_run

    evaluate_run(ctx.config, ctx.layout.root, ctx.events)
    return {"results": str(ctx.layout.eval_results)}


register(Stage(
    name="eval", step="eval", does="answer accuracy and reasoning quality", writes="eval/results.json",
    fingerprint=_eval_inputs, done=lambda ctx: ctx.layout.eval_results.is_file(), run=_eval,
))

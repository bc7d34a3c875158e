"""The built-in stages, declared once: generate → prepare → train → merge → gguf → quantize → parity → eval.

Each declaration only names things that live in the stage packages (what runs, how its
inputs are fingerprinted, when its outputs exist); the resume rule and the order are the
orchestrator's. ``r1tui run --stages`` takes the steps (generate, prepare, train, export,
eval); export's four stages share the step ``export``. ``generate`` is skipped unless a
teacher is configured; when it ran, ``prepare`` reads its traces instead of ``data.source``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from r1tui.config import is_local_source
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.export import stages as export_stages
from r1tui.pipeline.registry import Stage, register
from r1tui.runs.context import StageContext
from r1tui.runs.files import digest, fingerprint

# Knobs that change how a run is watched, not what it computes: never a reason to redo work.
# (The teacher's endpoints, concurrency, timeouts and prices change how fast and where the
# traces come from, not which ones are asked for: a resume on more replicas continues.)
# train.distributed and fsdp_offload say how the ranks share the work, not what they compute
# (FSDP's losses equal one process's to 1e-7; r1tui.train.trainer checks that a checkpoint's
# layout fits the resuming ranks), and runs made before they existed keep their fingerprint.
_WATCH_ONLY = {"train": {"logging_steps", "save_steps", "gpu_sample_seconds", "distributed", "fsdp_offload"},
               "teacher": {"base_url", "api_key_env", "concurrency", "timeout_s", "max_retries", "price_in_per_m",
                           "price_out_per_m"}}


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


# ---------------------------------------------------------------- generate


def _local_file(source: Any) -> Any:
    """A local file as its name and fingerprint (size, mtime); anything else as it is."""
    if isinstance(source, str) and is_local_source(source) and Path(source).is_file():
        return {"source": source, "file": fingerprint(Path(source))}
    return source


def _generate_inputs(ctx: StageContext) -> str:
    """The teacher section and the prompts (a local file by size and mtime), the eval sets
    the prompts are decontaminated against, and what the verdicts depend on: the student's
    tokenizer and length, the answer tolerance."""
    config = ctx.config
    data = config.data
    return digest({**sections(ctx, "teacher"), "prompts": _local_file(config.teacher.prompts),
                   "data": {"seed": data.seed, "split": data.split, "fields": data.fields,
                            "system_prompt": data.system_prompt},
                   "tokenizer": tokenizer_spec(config), "max_seq_length": config.model.max_seq_length,
                   "numeric_tolerance": config.eval.numeric_tolerance,
                   "decontaminate": {"ngram": config.decontaminate.ngram,
                                     "against": [_local_file(a) for a in config.decontaminate.against],
                                     "eval": [_local_file(config.eval.source), config.eval.seed,
                                              config.eval.num_samples]}})


def _generate_skip(ctx: StageContext) -> str | None:
    if not ctx.config.teacher.model:
        return "no teacher configured (teacher.model is empty)"
    if ctx.external_dataset:
        return f"using the prepared dataset {ctx.data_dir}"
    return None


def _generate(ctx: StageContext) -> dict[str, Any]:
    """Changed inputs never re-ask a sample the teacher answered: the traces file is rebuilt
    from the stored samples (verified again where the verdict inputs changed); only a new
    teacher model, sampling or system prompt starts the samples over."""
    from r1tui.generate.run import generate_traces, samples_reusable

    layout = ctx.layout
    inputs = _generate_inputs(ctx)
    if ctx.previous.get("inputs") not in (None, inputs) and (layout.traces.exists() or layout.samples.exists()):
        layout.traces.unlink(missing_ok=True)
        if layout.samples.exists() and not samples_reusable(ctx.config, layout.samples):
            message = ("the teacher model, its sampling or the system prompt changed since the samples were asked: "
                       "asking from the start")
            layout.samples.unlink()
        else:
            message = ("the prompts or the selection/verification settings changed: the traces are chosen again "
                       "from the stored samples; only samples not asked yet are sent")
        ctx.events.emit("log", stage="generate", level="warning", message=message)
    summary = generate_traces(ctx.config, layout.traces, events=ctx.events, samples_path=layout.samples)
    return {"traces": str(layout.traces), "samples": str(layout.samples), "kept": summary.kept,
            "unanswered": summary.unanswered, "contaminated": summary.prompts_skipped.get("contaminated", 0)}


def _generate_done(ctx: StageContext) -> bool:
    """The traces exist and every sample got an answer (a resume asks the others again)."""
    outputs = ctx.record("generate").get("outputs") or {}
    return ctx.layout.traces.is_file() and not outputs.get("unanswered")


register(Stage(
    name="generate", step="generate", does="distil traces from the teacher: generate, verify, keep the correct ones",
    writes="generated/traces.jsonl, generated/samples.jsonl",
    fingerprint=_generate_inputs, done=_generate_done, run=_generate,
    skip_reason=_generate_skip,
))


# ---------------------------------------------------------------- prepare


def _generated(ctx: StageContext) -> bool:
    """The generate stage ran in this run: prepare reads its traces."""
    return ctx.record("generate").get("status") == "finished" and ctx.layout.traces.is_file()


def _prepare_inputs(ctx: StageContext) -> str:
    if ctx.external_dataset:
        return dataset_fingerprint(ctx.data_dir)
    parts = {"data": sections(ctx, "data")["data"], "tokenizer": tokenizer_spec(ctx.config),
             "max_seq_length": ctx.config.model.max_seq_length}
    if _generated(ctx):
        parts["traces"] = fingerprint(ctx.layout.traces)
    return digest(parts)


def _prepare_external(ctx: StageContext) -> str | None:
    return f"using the prepared dataset {ctx.data_dir}" if ctx.external_dataset else None


def _prepare(ctx: StageContext) -> dict[str, Any]:
    from r1tui.data.prepare import prepare_dataset

    config, traces = ctx.config, None
    if _generated(ctx):  # the teacher's traces, in the schema they were written in (no data.fields mapping)
        config, traces = ctx.config.model_copy(deep=True), ctx.layout.traces
        config.data.fields = {}

    def work() -> None:
        prepare_dataset(config, ctx.data_dir, events=ctx.events, data_path=traces)

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
    name="prepare", step="prepare", does="render and mask the data (the generated traces when generate ran)",
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
    return digest({"gguf": ggufs, **sections(ctx, "eval", "infer")})  # [infer]: prefill and think budget


def _eval(ctx: StageContext) -> dict[str, Any]:
    from r1tui.eval import evaluate_run

    config = ctx.config
    if config.eval.base_url:
        # A server serves whatever it was started with; the stage evaluates this run's own GGUF.
        ctx.events.emit("log", stage="eval", level="info",
                        message=f"eval.base_url ({config.eval.base_url}) is for `r1tui eval`; the eval stage "
                                "evaluates the run's own GGUF here")
        config = config.model_copy(deep=True)
        config.eval.base_url = ""
    evaluate_run(config, ctx.layout.root, ctx.events)
    return {"results": str(ctx.layout.eval_results)}


register(Stage(
    name="eval", step="eval", does="answer accuracy and reasoning quality", writes="eval/results.json",
    fingerprint=_eval_inputs, done=lambda ctx: ctx.layout.eval_results.is_file(), run=_eval,
))

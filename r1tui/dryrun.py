"""The dry run: validate the config and compute every estimate, writing nothing.

``build_report`` returns a ``DryRunReport`` (its ``to_json()`` is documented in the
README and printed by ``--json``); ``report_renderables`` turns it into Rich tables for the CLI and the
dashboard. No torch, no network, no files written.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from r1tui import calculator
from r1tui.config import Config, check_backend_settings
from r1tui.present import format_bytes

REPORT_VERSION = 1


@dataclass(frozen=True)
class ConfigSummary:
    path: str | None
    model: str
    architecture: str
    licence: str
    backend: str
    backend_for_estimate: str
    max_seq_length: int
    lora: dict[str, Any]  # r, alpha, dropout, target_modules
    quant_types: list[str]
    hub_repo_id: str | None


@dataclass(frozen=True)
class ParameterCounts:
    total: int
    embedding: int
    decoder_linear: int
    norms: int
    lm_head: int
    lora_trainable: int
    lora_share_of_base: float
    lora_share_of_all: float
    # a Mistral3 checkpoint's vision tower + projector (frozen, never adapted) and the whole
    # checkpoint; 0 and ``total`` for a text model
    vision: int = 0
    checkpoint: int = 0
    mmproj_bytes: int = 0  # its F16 mmproj GGUF (tensor bytes)


@dataclass(frozen=True)
class StrategyEstimate:
    """One way of training on ``world_size`` GPUs, per GPU: DDP, FSDP, FSDP with CPU offload."""

    strategy: str  # "ddp" or "fsdp"
    offload: bool
    total: int  # bytes each GPU must hold
    fits: bool
    max_seq_len_that_fits: int
    cpu_offloaded: int  # bytes each rank keeps in CPU RAM instead (offload only)


@dataclass(frozen=True)
class VramEstimate:
    gpu: str
    gpu_bytes: int
    seq_len: int
    batch_size: int
    parts: dict[str, int]
    total: int
    fits: bool
    max_seq_len_that_fits: int
    # Several GPUs: every figure above is per GPU, for train.distributed (and fsdp_offload);
    # ``per_gpu`` compares the strategies on the same GPUs.
    world_size: int = 1
    strategy: str = "single"
    cpu_offloaded: int = 0
    per_gpu: list[StrategyEstimate] = field(default_factory=list)


@dataclass(frozen=True)
class GgufEstimate:
    quant: str
    bytes: int
    inference_bytes_at_n_ctx: int
    n_ctx: int
    configured: bool


@dataclass(frozen=True)
class EpochEstimate:
    """How many tokens one epoch trains on and how long it takes on the configured GPU.

    ``tokens`` comes from the masking statistics: exact when the dry run rendered every row,
    else their tokens per row read times the rows the source holds (``extrapolated``).
    ``tokens_per_s`` and ``hours`` are an ESTIMATE (``basis`` says from what), None when
    there is no figure for the GPU; ``tokens`` is None for a Hub source (not read in a dry run)."""

    rows: int | None  # rows trained on in one epoch (data.num_examples caps every source; eval rows left out)
    tokens: int | None
    extrapolated: bool
    tokens_per_s: float | None
    hours: float | None
    epochs: float  # train.epochs: the run takes about hours x epochs
    gpu: str
    basis: str
    note: str | None = None
    eval_rows: int = 0  # rows held out of training for the validation loss (data.eval_rows)
    eval_steps: int = 0  # the validation loss every this many steps (train.eval_steps; 0: never)


@dataclass(frozen=True)
class DryRunReport:
    """What ``r1tui dry-run`` reports; ``to_json()`` is the documented ``--json`` schema."""

    version: int
    config: ConfigSummary
    parameters: ParameterCounts
    vram: VramEstimate
    gguf: list[GgufEstimate]
    masking: dict[str, Any] | None  # the data stage's masking statistics (see docs/data.md)
    epoch: EpochEstimate | None  # tokens and hours of one epoch (None without masking stats)
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_report(config: Config, *, with_masking: bool = True, world_size: int = 1) -> DryRunReport:
    """``world_size``: the GPUs the run trains on (--processes, --nodes x --gpus-per-node);
    the VRAM figures are then per GPU, for train.distributed."""
    started = time.perf_counter()
    check_backend_settings(config)
    arch = calculator.resolve_architecture(config.model.architecture)
    params = calculator.count_parameters(arch)
    lora = calculator.count_lora(arch, config.lora.r, config.lora.target_modules)
    backend = _effective_backend(config) if world_size <= 1 else "hf"  # several processes train with hf
    vram_kwargs = dict(
        rank=config.lora.r,
        target_modules=config.lora.target_modules,
        batch_size=config.train.per_device_batch_size,
        gpu_memory_gb=config.hardware.gpu_memory_gb,
        load_in_4bit=config.model.load_in_4bit,
        optimizer=config.train.optimizer,
        backend=backend,
        gradient_checkpointing=config.train.gradient_checkpointing,
        double_quant=config.model.bnb_4bit_use_double_quant,
    )
    per_gpu = _per_gpu(arch, config, vram_kwargs, world_size) if world_size > 1 else []
    if world_size > 1:
        vram_kwargs.update(world_size=world_size, strategy=config.train.distributed,
                           offload=config.train.fsdp_offload)
    vram = calculator.estimate_training_vram(arch, seq_len=config.model.max_seq_length, **vram_kwargs)
    masking = _masking_stats(config) if with_masking else None
    return DryRunReport(
        version=REPORT_VERSION,
        config=ConfigSummary(
            path=str(config.source_path) if config.source_path else None,
            model=config.model.name,
            architecture=arch.name,
            licence=config.model.licence or arch.licence,
            backend=config.train.backend,
            backend_for_estimate=backend,
            max_seq_length=config.model.max_seq_length,
            lora={"r": config.lora.r, "alpha": config.lora.alpha, "dropout": config.lora.dropout,
                  "target_modules": config.lora.target_modules},
            quant_types=config.export.quant_types,
            hub_repo_id=config.hub_repo_id or None,
        ),
        parameters=ParameterCounts(
            total=params.total,
            embedding=params.embedding,
            decoder_linear=params.decoder_linear,
            norms=params.norms,
            lm_head=params.lm_head,
            lora_trainable=lora.trainable,
            lora_share_of_base=lora.share_of_base,
            lora_share_of_all=lora.share_of_all,
            vision=calculator.count_vision_parameters(arch),
            checkpoint=calculator.count_checkpoint_parameters(arch),
            mmproj_bytes=calculator.mmproj_size_bytes(arch),
        ),
        vram=VramEstimate(
            gpu=config.hardware.gpu_name,
            gpu_bytes=vram.gpu_bytes,
            seq_len=config.model.max_seq_length,
            batch_size=config.train.per_device_batch_size,
            parts=vram.parts(),
            total=vram.total,
            fits=vram.fits,
            max_seq_len_that_fits=calculator.max_fitting_seq_len(arch, **vram_kwargs),
            world_size=world_size,
            strategy=vram.strategy,
            cpu_offloaded=vram.cpu_offloaded,
            per_gpu=per_gpu,
        ),
        gguf=[
            GgufEstimate(
                quant=quant,
                bytes=calculator.gguf_size_bytes(arch, quant),
                inference_bytes_at_n_ctx=calculator.estimate_inference_memory(arch, quant, config.eval.n_ctx).total,
                n_ctx=config.eval.n_ctx,
                configured=quant in config.export.quant_types,
            )
            for quant in calculator.QUANT_BASE_TYPE
        ],
        masking=masking,
        epoch=epoch_estimate(config, masking, backend, arch) if masking else None,
        elapsed_s=time.perf_counter() - started,
    )


def _per_gpu(arch: calculator.Architecture, config: Config, vram_kwargs: dict, world_size: int) -> list:
    """DDP, FSDP and FSDP with CPU offload on ``world_size`` of the configured GPU, per GPU."""
    rows = []
    for strategy, offload in (("ddp", False), ("fsdp", False), ("fsdp", True)):
        kwargs = dict(vram_kwargs, world_size=world_size, strategy=strategy, offload=offload)
        estimate = calculator.estimate_training_vram(arch, seq_len=config.model.max_seq_length, **kwargs)
        rows.append(StrategyEstimate(strategy=strategy, offload=offload, total=estimate.total, fits=estimate.fits,
                                     max_seq_len_that_fits=calculator.max_fitting_seq_len(arch, **kwargs),
                                     cpu_offloaded=estimate.cpu_offloaded))
    return rows


def _effective_backend(config: Config) -> str:
    # The estimate is for the GPU box, so `auto` means Unsloth there, except for a Mistral3
    # (vision) checkpoint, which trains with hf (r1tui.train.UNSLOTH_VISION_FALLBACK).
    from r1tui.train.base import config_has_vision

    backend = "unsloth" if config.train.backend == "auto" else config.train.backend
    return "hf" if backend == "unsloth" and config_has_vision(config) else backend


def _masking_stats(config: Config) -> dict[str, Any]:
    from r1tui.data.prepare import dry_run_masking_stats

    return dry_run_masking_stats(config)


def with_masking(report: DryRunReport, config: Config, masking: dict[str, Any] | None) -> DryRunReport:
    """The report with masking statistics computed later (the dashboard computes them in a
    worker) and the epoch estimate they give."""
    if not masking:
        return replace(report, masking=None, epoch=None)
    arch = calculator.resolve_architecture(config.model.architecture)
    return replace(report, masking=masking,
                   epoch=epoch_estimate(config, masking, report.config.backend_for_estimate, arch))


def epoch_estimate(config: Config, masking: dict[str, Any], backend: str,
                   arch: calculator.Architecture) -> EpochEstimate:
    """One epoch's tokens (from the masking statistics) and hours on ``hardware.gpu_name``."""
    throughput = calculator.training_tokens_per_second(config.hardware.gpu_name, backend, arch)
    rows, tokens, extrapolated, note = None, None, False, None
    if masking.get("note"):  # a Hub source: the synthetic stand-in's tokens say nothing of it
        note = f"{config.data.source} is not read in a dry run: its tokens are unknown until `r1tui prepare`"
    else:
        rows = _rows_in_source(config)
        read = masking["rows_read"]
        extrapolated = rows is not None and rows > read
        if rows is None or not extrapolated:
            rows, tokens = read, masking["tokens"]
        else:
            tokens = round(masking["tokens"] / read * rows) if read else 0
        if config.data.eval_rows and rows:  # held out of training: not in the epoch's rows or tokens
            kept = max(0, rows - config.data.eval_rows)
            tokens, rows = round(tokens * kept / rows), kept
    return EpochEstimate(rows=rows, tokens=tokens, extrapolated=extrapolated, tokens_per_s=throughput.tokens_per_s,
                         hours=None if tokens is None else throughput.hours_for(tokens),
                         epochs=config.train.epochs, gpu=config.hardware.gpu_name, basis=throughput.basis, note=note,
                         eval_rows=config.data.eval_rows, eval_steps=config.train.eval_steps)


def _rows_in_source(config: Config) -> int | None:
    """Rows one epoch reads: data.num_examples for synthetic, else the file's rows up to that cap."""
    from pathlib import Path

    from r1tui.data.sources import parse_source

    cap = config.data.num_examples
    kind, name, _ = parse_source(config.data.source)
    if kind == "synthetic":
        return cap
    if kind != "local":
        return None
    path = Path(name)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            count = pq.ParquetFile(path).metadata.num_rows
        elif path.suffix == ".json" and path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            import json

            count = len(json.loads(path.read_bytes().decode("utf-8")))
        else:
            with open(path, "rb") as f:
                count = sum(1 for line in f if line.strip())
    except (OSError, ValueError):
        return None
    return min(count, cap)


def _gb(count: int) -> str:
    # the precision every other screen uses (Export panel, export plan, `r1tui runs`): a
    # file predicted here reads the same size there once it exists
    return format_bytes(count)


def report_renderables(report: DryRunReport) -> list[Any]:
    """Rich tables for the report (used by the CLI and the dashboard)."""
    from rich.table import Table
    from rich.text import Text

    cfg, params, vram = report.config, report.parameters, report.vram
    model = Table(title="Model and LoRA", show_header=False, title_justify="left")
    model.add_column(style="bold")
    model.add_column(justify="right")
    model.add_row("model", cfg.model)
    model.add_row("licence", cfg.licence)
    if params.vision:
        model.add_row("whole checkpoint (exact)", f"{params.checkpoint:,}")
        model.add_row("vision tower + projector (frozen)", f"{params.vision:,}")
        model.add_row("language model (exact)", f"{params.total:,}")
        model.add_row("mmproj GGUF (F16)", _gb(params.mmproj_bytes))
    else:
        model.add_row("parameters (exact)", f"{params.total:,}")
    model.add_row("LoRA", f"r={cfg.lora['r']} alpha={cfg.lora['alpha']} on {len(cfg.lora['target_modules'])} modules")
    model.add_row("LoRA trainable (exact)", f"{params.lora_trainable:,}")
    model.add_row("share of base / of all", f"{params.lora_share_of_base:.2%} / {params.lora_share_of_all:.2%}")

    several = "" if vram.world_size <= 1 else \
        f", per GPU of {vram.world_size} ({vram.strategy}{' + CPU offload' if vram.cpu_offloaded else ''})"
    memory = Table(title=f"Training VRAM estimate on {vram.gpu} ({_gb(vram.gpu_bytes)}), "
                         f"seq {vram.seq_len}, batch {vram.batch_size}, backend "
                         f"{'hf' if vram.world_size > 1 else cfg.backend_for_estimate}{several}",
                   title_justify="left")
    memory.add_column("part")
    memory.add_column("estimate", justify="right")
    for part, n in vram.parts.items():
        memory.add_row(part.replace("_", " "), _gb(n))
    verdict = Text("fits", style="bold green") if vram.fits else Text("does not fit", style="bold red")
    memory.add_row(Text("total", style="bold"), Text(_gb(vram.total), style="bold"))
    memory.add_row("verdict", verdict)
    memory.add_row("largest seq that fits", f"{vram.max_seq_len_that_fits:,}")
    if vram.cpu_offloaded:
        memory.add_row("CPU RAM per rank (offloaded)", _gb(vram.cpu_offloaded))

    gguf = Table(title="GGUF size (llama.cpp tensor types) and inference memory", title_justify="left")
    gguf.add_column("quant")
    gguf.add_column("file", justify="right")
    gguf.add_column("weights + KV cache", justify="right")
    for row in report.gguf:
        name = f"{row.quant} *" if row.configured else row.quant
        gguf.add_row(name, _gb(row.bytes), f"{_gb(row.inference_bytes_at_n_ctx)} @ {row.n_ctx} ctx")
    renderables: list[Any] = [model, memory]
    if vram.per_gpu:
        renderables.append(strategies_table(vram))
    renderables.append(gguf)
    masking = report.masking
    if masking:
        from r1tui.data.stats import stats_table

        renderables.append(stats_table(masking))
    if report.epoch is not None:
        renderables.append(epoch_table(report.epoch))
    return renderables


def strategies_table(vram: VramEstimate) -> Any:
    """Per GPU on ``world_size`` GPUs: DDP, FSDP, FSDP + CPU offload, each with its verdict."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Per GPU on {vram.world_size} x {vram.gpu} ({_gb(vram.gpu_bytes)} each), seq {vram.seq_len} "
                        "(ESTIMATE)", title_justify="left")
    for name, justify in (("strategy", "left"), ("per GPU", "right"), ("verdict", "left"),
                          ("largest seq that fits", "right"), ("CPU RAM per rank", "right")):
        table.add_column(name, justify=justify)
    for row in vram.per_gpu:
        name = "FSDP + CPU offload" if row.offload else row.strategy.upper()
        verdict = Text("fits", style="bold green") if row.fits else Text("does not fit", style="bold red")
        table.add_row(name, _gb(row.total), verdict, f"{row.max_seq_len_that_fits:,}",
                      _gb(row.cpu_offloaded) if row.offload else "-")
    return table


def epoch_table(epoch: EpochEstimate) -> Any:
    """One epoch's tokens and its training time on the configured GPU, labelled as an estimate."""
    from rich.table import Table
    from rich.text import Text

    from r1tui.present import format_duration

    table = Table(title=f"One epoch on {epoch.gpu} (time is an ESTIMATE)", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    if epoch.tokens is None:
        table.add_row("tokens", Text(epoch.note or "unknown", style="dim"))
    else:
        how = "extrapolated from the rows rendered" if epoch.extrapolated else "every row rendered"
        table.add_row("tokens", f"{epoch.tokens:,} in {epoch.rows:,} rows ({how})")
    if epoch.eval_rows:
        every = f"validation loss every {epoch.eval_steps:,} steps" if epoch.eval_steps else \
            "not evaluated (train.eval_steps = 0)"
        table.add_row("eval split", f"{epoch.eval_rows:,} rows held out of training; {every}")
    else:
        table.add_row("eval split", Text("none (data.eval_rows = 0): no validation loss", style="dim"))
    if epoch.tokens_per_s is None:
        table.add_row("time", Text(epoch.basis, style="yellow"))
    else:
        hours = f"{format_duration(epoch.hours * 3600)} ({epoch.hours:,.1f} h)" if epoch.hours is not None else "—"
        total = f"; {epoch.epochs:g} epochs: {epoch.hours * epoch.epochs:,.1f} h" if epoch.hours is not None \
            and epoch.epochs != 1 else ""
        table.add_row("time", f"{hours} at {epoch.tokens_per_s:,.0f} tokens/s{total}")
        table.add_row("basis", Text(epoch.basis, style="dim"))
    return table

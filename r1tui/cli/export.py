"""`r1tui export RUN`: merge, convert to GGUF, quantize, check tokenizer parity, write a Modelfile."""

from __future__ import annotations

import argparse
from pathlib import Path

from r1tui.cli._common import (
    EventProgress,
    add_config_argument,
    add_runs_dir_argument,
    console,
    print_json,
    run_and_config,
)

HELP = "merge the adapter, convert to GGUF, quantize, check tokenizer parity, write a Modelfile and card"
DESCRIPTION = """\
Export a trained run: fold the LoRA adapter into the base weights (merged/), convert
with llama.cpp's own converter to an F16 GGUF with the chat template embedded, quantize
to each configured type (default Q4_K_M) with per-tensor progress, read every file back
(tensor types, size next to the calculator's estimate), measure what each quant costs
against the F16 on rendered traces of the run's own data (KL divergence, top-1
agreement, perplexity ratio, also on the answer tokens after </think>: gguf/quality.json,
export.quality_tokens), check that each GGUF tokenizes the training format exactly like
the training tokenizer (gguf/parity.json), and write an Ollama Modelfile and a model
card. With --imatrix (export.imatrix) each k-quant is also written with an importance
matrix that llama-imatrix computed on the run's own training rows, and measured beside
the plain one. These are the pipeline's stages merge, gguf, quantize and parity: a stage
whose outputs exist and whose inputs did not change since it last finished (stages.json)
is skipped, so running it again after a failure resumes.
Only quant types whose file is missing or whose F16 changed are quantized again. Events
go to the run's events.jsonl; the run is locked while it is written.

RUN is a run id under runs.dir (or a unique prefix), a run folder, or "latest". The run's own config.toml
is used when it has one.

Examples:
  r1tui export latest
  r1tui export runs/20261127-tiny --quant Q4_K_M Q8_0
  r1tui export latest --imatrix        # plain and imatrix Q4_K_M side by side in the quality table
  DRY_RUN=1 r1tui export latest        # what would run, sizes, disk: nothing written
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from r1tui.quants import QUANT_TYPES

    parser.add_argument("run", metavar="RUN", help="run id, id prefix, run folder, or 'latest'")
    parser.add_argument("--quant", nargs="+", action="extend", choices=QUANT_TYPES, metavar="TYPE",
                        help=f"quant types to write (default: export.quant_types); one or more of {', '.join(QUANT_TYPES)}")
    parser.add_argument("--imatrix", action="store_true",
                        help="also write each k-quant with an importance matrix computed by llama-imatrix on the "
                             "run's own training rows (export.imatrix; the quality report puts both side by side)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (steps, sizes, disk) and write nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_argument(parser)
    add_runs_dir_argument(parser)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from r1tui.cli import dry_run_requested
    from r1tui.cli._common import progress
    from r1tui.export import stages as export_stages
    from r1tui.pipeline import orchestrator
    from r1tui.present import format_bytes
    from r1tui.runs.events import EventWriter
    from r1tui.runs.lock import RunLock

    layout, config = run_and_config(args, "export it")
    out = console()
    ctx = orchestrator.context(config, layout, options={"quant_types": args.quant, "imatrix": args.imatrix})
    export_stages.preflight(ctx)  # an unknown quant type, no adapter, no converter: one line, nothing written
    if args.dry_run or dry_run_requested():
        return _print_plan(out, ctx, args.json)

    with RunLock(layout, "r1tui export"), EventWriter(layout.events) as writer, progress() as bar:
        skipped = orchestrator.run_named(config, layout, ["export"], events=EventProgress(writer, bar),
                                         quant_types=args.quant, imatrix=args.imatrix, what="r1tui export")
    result = export_stages.export_result(layout, skipped)
    if args.json:
        print_json(result.to_dict())
        return 0
    table = Table(title=f"GGUF files of {layout.run_id}")
    for column in ("file", "size", "tensor data", "calculator", "tensor types", "types as calculated"):
        table.add_column(column)
    for report in result.gguf.values():
        table.add_row(Path(report["path"]).name, format_bytes(report["file_bytes"]),
                      f"{report['tensor_bytes']:,} B", f"{report['calculator_bytes']:,} B",
                      ", ".join(f"{k}×{v}" for k, v in report["type_counts"].items()),
                      "yes" if report["types_match_calculator"] else "[yellow]no[/]")
    out.print(table)
    parity = result.parity
    out.print(f"[bold green]tokenizer parity OK[/]: {parity.samples} samples, {parity.tokens_compared} tokens "
              f"identical ({parity.path})")
    _print_quality(out, result.quality)
    out.print(f"Modelfile: {result.modelfile}\nmodel card: {result.card}")
    if result.skipped:
        out.print(f"[dim]up to date, skipped: {', '.join(result.skipped)}[/]")
    return 0


def _print_quality(out, report: dict) -> None:
    """gguf/quality.json as a table: what each quant costs against the F16 (nothing when off)."""
    from rich.table import Table

    from r1tui.export.quality import TABLE_HEADER, summary_line, table_rows

    if not report:
        return
    if report.get("skipped"):
        out.print(f"[yellow]{summary_line(report)}[/]")
        return
    table = Table(title="quantization quality against the F16", caption=summary_line(report), caption_justify="left")
    for column in TABLE_HEADER:
        table.add_column(column, justify="left" if column in ("quant", "scope") else "right")
    for row in table_rows(report):
        table.add_row(*row)
    out.print(table)


def _print_plan(out, ctx, as_json: bool) -> int:
    """DRY_RUN: what the export would do (the orchestrator's plan), sizes and disk; writes nothing."""
    from rich.table import Table

    from r1tui.export import stages as export_stages
    from r1tui.pipeline import orchestrator, registry
    from r1tui.present import format_bytes
    from r1tui.runs.disk import free_bytes

    layout = ctx.layout
    plan = orchestrator.plan_stages(ctx, registry.expand(["export"]))
    quants = export_stages.requested_quants(ctx)
    converter = export_stages.preflight(ctx)
    base = export_stages.base_model(ctx)
    needed = sum(step.bytes or 0 for step in plan if step.runs)
    free = free_bytes(layout.root)
    if as_json:
        print_json({"steps": [{"step": step.name, "writes": registry.get(step.name).writes, "run": step.runs,
                               "reason": step.reason, "bytes": step.bytes} for step in plan],
                    "needed_bytes": needed, "free_bytes": free, "quant_types": quants,
                    "run_dir": str(layout.root), "converter": str(converter), "base": base, "dry_run": True})
        return 0
    table = Table(title=f"export plan for {layout.run_id} (dry run: nothing written)")
    table.add_column("stage", no_wrap=True)
    table.add_column("writes")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("action", no_wrap=True)
    for step in plan:
        label = step.name
        if step.name == "quantize":
            label += " " + " ".join(q for q in quants if q != "F16")
        table.add_row(label, registry.get(step.name).writes, format_bytes(step.bytes) if step.bytes else "",
                      "run" if step.runs else step.reason)
    out.print(table)
    verdict = "fits" if needed < free else "[bold red]does not fit[/]"
    out.print(f"disk: needs {format_bytes(needed)}, {format_bytes(free)} free ({verdict}); "
              f"converter: {converter}; base: {base}")
    return 0

"""`r1tui curate`: the hardest, domain-balanced rows that fit a token or GPU-time budget."""

from __future__ import annotations

import argparse

from r1tui.cli._common import (
    add_config_argument,
    console,
    load_cli_config,
    print_json,
    resolve_path,
    source_argument,
)

HELP = "choose the hardest, domain-balanced rows that fit a token or GPU-hours budget"
DESCRIPTION = """\
Choose a subset of the rows (--data: a .jsonl/.json/.parquet file, synthetic, or
hf:<dataset>) that fits a budget, s1K-style: harder prompts first (a lower teacher
pass_rate, as `r1tui generate` writes it; without one, longer rows first), round-robin
over the domains, deterministic. The sum of the chosen rows' tokens never exceeds the
budget. Tokens are the rows' own `tokens`, else counted in the student's tokenizer and
chat format.

--budget-hours turns hours of training on hardware.gpu_name into tokens with a
throughput figure that is an ESTIMATE (scaled from an H100 measurement by the GPUs'
dense BF16 TFLOPS; see docs/data.md), divided by train.epochs. The chosen rows are
written to --out in their original order, through a temporary file renamed into place.

Examples:
  r1tui curate --data traces.jsonl --out traces.10M.jsonl --budget-tokens 10000000
  r1tui curate --data traces.jsonl --out traces.6h.jsonl --budget-hours 6 --json
  DRY_RUN=1 r1tui curate --data traces.jsonl --out x.jsonl --budget-hours 6   # nothing written
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--data", metavar="SOURCE", default=None,
                        help="rows to choose from: a .jsonl/.json/.parquet file, synthetic, or hf:<owner>/<name> "
                             "(default: data.source)")
    parser.add_argument("--out", metavar="FILE.jsonl", required=True, help="where to write the chosen rows")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-tokens", metavar="N", type=int, help="at most this many tokens in all")
    budget.add_argument("--budget-hours", metavar="H", type=float,
                        help="at most this many hours of training on hardware.gpu_name (an ESTIMATE)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error
    from r1tui.generate.curate import curate_source
    from r1tui.runs.files import write_jsonl_atomic

    config = load_cli_config(args)
    if args.budget_tokens is not None and args.budget_tokens < 1:
        raise R1Error(f"--budget-tokens {args.budget_tokens}: must be 1 or more (0 chooses no row)")
    source = source_argument(args.data) if args.data else config.data.source
    out_path = resolve_path(args.out)
    report = curate_source(config, source, budget_tokens=args.budget_tokens, budget_hours=args.budget_hours)
    dry = dry_run_requested()
    if not dry:
        write_jsonl_atomic(out_path, [candidate.row for candidate in report.selected])
    if args.json:
        print_json({"source": source, "out": None if dry else str(out_path), **report.to_json()})
        return 0
    _show(config, report, source, out_path, dry)
    return 0


def _show(config, report, source: str, out_path, dry: bool) -> None:
    from rich.table import Table

    from r1tui.present import format_duration

    out = console()
    if report.throughput is not None:
        out.print(f"budget {report.budget_hours:g} h on {config.hardware.gpu_name} = {report.budget_tokens:,} tokens at "
                  f"{report.throughput.tokens_per_s:,.0f} tokens/s over {config.train.epochs:g} epoch(s)", highlight=False)
        out.print(f"[dim]{report.throughput.basis}[/]", highlight=False)
    table = Table(title=f"Curated from {source}: hardest first by {report.difficulty}, round-robin over domains",
                  title_justify="left")
    table.add_column("domain")
    table.add_column("rows available", justify="right")
    table.add_column("chosen", justify="right")
    table.add_column("tokens", justify="right")
    for name, available in sorted(report.available.items()):
        table.add_row(name, f"{available:,}", f"{report.chosen.get(name, 0):,}", f"{report.chosen_tokens.get(name, 0):,}")
    table.add_row("all", f"{sum(report.available.values()):,}", f"{len(report.selected):,}",
                  f"{report.selected_tokens:,} of {report.budget_tokens:,}", style="bold")
    out.print(table)
    notes = [f"{report.over_budget:,} rows did not fit"] if report.over_budget else []
    if report.skipped:
        notes.append("skipped: " + ", ".join(f"{reason} {count:,}" for reason, count in report.skipped.items()))
    if report.throughput is not None and report.throughput.tokens_per_s:
        hours = report.throughput.hours_for(report.selected_tokens * config.train.epochs)
        notes.append(f"about {format_duration(hours * 3600)} of training (ESTIMATE)")
    if notes:
        out.print("; ".join(notes))
    if dry:
        out.print(f"[bold]DRY_RUN[/]: would write {len(report.selected):,} rows to {out_path}; nothing written")
    else:
        out.print(f"[bold green]wrote[/] {len(report.selected):,} rows to {out_path}")

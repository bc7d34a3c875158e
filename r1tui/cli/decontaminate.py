"""`r1tui decontaminate`: drop training rows whose prompt shares a word n-gram with an eval prompt."""

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

HELP = "drop training rows whose prompt shares a word 8-gram with an eval prompt"
DESCRIPTION = """\
Read every row of a data source (--data, default data.source: a .jsonl/.json/.parquet
file, synthetic, or hf:<dataset>) and drop each one whose prompt shares a word n-gram
(decontaminate.ngram, 8 as open-r1) with a prompt of an eval set: the configured one
(eval.source), every file in decontaminate.against and every --against file. Words are
compared lower-cased with punctuation and symbols removed; a prompt shorter than n
words is compared whole. The kept rows are written to --out as JSON Lines (rows of a
local file exactly as they were, extra keys included), through a temporary file
renamed into place; the report names each eval set, how many rows matched it, and the
n-gram each dropped row shared.

Examples:
  r1tui decontaminate --data traces.jsonl --out traces.clean.jsonl
  r1tui decontaminate --data traces.jsonl --out clean.jsonl --against aime24.jsonl --against math500.jsonl
  r1tui decontaminate --data hf:simplescaling/s1K-1.1 --out s1k.clean.jsonl --json
  DRY_RUN=1 r1tui decontaminate --data traces.jsonl --out clean.jsonl   # the report, nothing written
"""

SHOWN_DROPPED = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--data", metavar="SOURCE", default=None,
                        help="rows to clean: a .jsonl/.json/.parquet file, synthetic, or hf:<owner>/<name>[:<config>] "
                             "(default: data.source)")
    parser.add_argument("--out", metavar="FILE.jsonl", required=True, help="where to write the kept rows")
    parser.add_argument("--against", metavar="FILE", action="append", default=[],
                        help="more eval prompts to keep out (.jsonl/.json/.parquet with question or messages, or "
                             "hf:<dataset>); repeat for several")
    parser.add_argument("--ngram", metavar="N", type=int, default=None,
                        help="words per n-gram (default: decontaminate.ngram)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error
    from r1tui.generate.decontaminate import decontaminate_source
    from r1tui.runs.files import write_jsonl_atomic

    config = load_cli_config(args)
    if args.ngram is not None and args.ngram < 3:
        raise R1Error(f"--ngram {args.ngram}: must be 3 or more (shorter n-grams match ordinary phrases)")
    source = source_argument(args.data) if args.data else config.data.source
    against = [source_argument(a) for a in args.against]
    out_path = resolve_path(args.out)
    report = decontaminate_source(config, source, against, ngram=args.ngram)
    dry = dry_run_requested()
    if not dry:
        write_jsonl_atomic(out_path, report.kept)
    if args.json:
        print_json({"source": source, "out": None if dry else str(out_path), **report.to_json()})
        return 0
    _show(report, source, out_path, dry)
    return 0


def _show(report, source: str, out_path, dry: bool) -> None:
    from rich.table import Table

    out = console()
    table = Table(title=f"Decontamination of {source}: word {report.ngram}-grams", title_justify="left")
    table.add_column("eval set")
    table.add_column("prompts", justify="right")
    table.add_column("training rows matched", justify="right")
    for name, size in report.eval_sets.items():
        table.add_row(name, f"{size:,}", f"{report.counts.get(name, 0):,}")
    out.print(table)
    extra = []
    if report.no_prompt:
        extra.append(f"{report.no_prompt:,} without a prompt (kept)")
    if report.malformed:
        extra.append("unreadable: " + ", ".join(f"{reason} {count:,}" for reason, count in report.malformed.items()))
    out.print(f"rows read {report.rows_read:,}, kept {len(report.kept):,}, dropped {len(report.dropped):,}"
              + (f"; {'; '.join(extra)}" if extra else ""))
    for dropped in report.dropped[:SHOWN_DROPPED]:
        out.print(f"  [yellow]row {dropped.index}[/] ~ {dropped.eval_set} {dropped.eval_id}: "
                  f"[dim]\"{dropped.ngram}\"[/]", highlight=False)
    if len(report.dropped) > SHOWN_DROPPED:
        out.print(f"  [dim]… and {len(report.dropped) - SHOWN_DROPPED:,} more (--json lists them all)[/]")
    if dry:
        out.print(f"[bold]DRY_RUN[/]: would write {len(report.kept):,} rows to {out_path}; nothing written")
    else:
        out.print(f"[bold green]wrote[/] {len(report.kept):,} rows to {out_path}")

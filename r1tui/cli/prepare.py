"""`r1tui prepare`: render and mask the configured data into an Arrow dataset."""

from __future__ import annotations

import argparse
from typing import Any

from r1tui.cli._common import (
    add_config_argument,
    console,
    load_cli_config,
    print_json,
    progress,
    resolve_path,
    source_argument,
)
from r1tui.data.tokenizer import tokenizer_spec

HELP = "render and mask the data into an Arrow dataset with stats.json"
DESCRIPTION = """\
Turn the configured data (data.source, or --data SOURCE) into Mistral chat-format
training rows: input_ids and labels built in one pass, labels -100 on every
instruction token (<s>, [INST], the user text, [/INST]) and the token id on every
response token including </s>. Rows longer than model.max_seq_length are dropped or
truncated (data.overlong); malformed rows are skipped and counted by reason.

Writes DIR as a `datasets` Arrow folder (columns input_ids, labels, domain) and
DIR/stats.json, built under a temporary name and renamed into place.

Examples:
  r1tui prepare --out data/prepared
  r1tui prepare --config configs/tiny.toml --data traces.jsonl --out /tmp/ds --preview 2 --ids
  DRY_RUN=1 r1tui prepare --out /tmp/ds        # stats on a sample, nothing written
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--data", metavar="SOURCE", default=None,
                        help="use instead of data.source: a .jsonl/.parquet file, synthetic, or hf:<owner>/<name>[:<config>]")
    parser.add_argument("--out", metavar="DIR", required=True, help="folder to write the dataset to: a new or empty folder, or an earlier prepared dataset (replaced)")
    parser.add_argument("--preview", metavar="N", type=int, default=0,
                        help="show the first N examples token by token (masked dim, trained highlighted)")
    parser.add_argument("--ids", action="store_true", help="with --preview: show each token's id")
    parser.add_argument("--json", action="store_true", help="print the stats as JSON (schema in docs/data.md)")


class _ProgressEvents:
    """Feeds the stage's events to a Rich progress bar (the same contract a run's log uses)."""

    path = None

    def __init__(self, bar: Any):
        self._bar = bar
        self._task = bar.add_task("prepare", total=None)

    def emit(self, type: str, stage: str | None = None, **data: Any) -> None:
        if type == "stage_progress":
            total = data.get("total") or None
            self._bar.update(self._task, completed=data.get("completed", 0), total=total,
                             description=f"prepare: {data.get('message', '')}")

    def close(self) -> None:
        return None


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error

    config = load_cli_config(args)
    out_dir = resolve_path(args.out)
    if args.preview < 0:
        raise R1Error(f"--preview {args.preview}: must be 0 or more")
    if args.data:
        config.data.source = source_argument(args.data)
    out = console()

    if dry_run_requested():
        from r1tui.data.prepare import dry_run_masking_stats
        from r1tui.data.stats import stats_table

        stats = dry_run_masking_stats(config)
        if args.json:
            print_json(stats)
        else:
            out.print(f"[bold]DRY_RUN[/]: would write {out_dir}; stats on {stats['rows_used']:,} rows, nothing written")
            out.print(stats_table(stats))
        return 0

    from r1tui.data.prepare import prepare_dataset
    from r1tui.data.stats import stats_table

    if args.json:
        stats = prepare_dataset(config, out_dir)
    else:
        with progress() as bar:
            stats = prepare_dataset(config, out_dir, events=_ProgressEvents(bar))
    if args.json:
        print_json(stats)
    else:
        out.print(f"[bold green]wrote[/] {stats['examples']:,} examples to {out_dir}")
        out.print(stats_table(stats))
    if args.preview:  # with --json the previews go to stderr, keeping stdout pure JSON
        _preview(console(stderr=True) if args.json else out, out_dir, args.preview, tokenizer_spec(config), args.ids)
    return 0


def _preview(out: Any, out_dir: Any, count: int, tokenizer_spec: str, show_ids: bool) -> None:
    from datasets import load_from_disk

    from r1tui.data.preview import token_preview

    dataset = load_from_disk(str(out_dir))
    for index in range(min(count, len(dataset))):
        row = dataset[index]
        out.print()
        out.print(token_preview(row["input_ids"], row["labels"], tokenizer_spec, show_ids=show_ids,
                                title=f"example {index} ({row['domain']})"))

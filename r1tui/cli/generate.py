"""`r1tui generate`: reasoning traces from a teacher, verified and curated, into a JSONL file."""

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

HELP = "distil traces from a teacher (OpenAI-compatible endpoints): generate, verify, keep the correct ones"
DESCRIPTION = """\
Send every prompt (teacher.prompts, or --prompts SOURCE: synthetic, a .jsonl/.parquet
with question/answer/domain, or hf:<dataset>) to the teacher (teacher.model at
teacher.base_url: one OpenAI-compatible server or a list of them, used at once, the
least loaded first) teacher.samples times, teacher.concurrency requests at once.
Each reply is put in r1tui's format (<think>…</think> then FINAL ANSWER: …) and
verified: the answer against the prompt's reference, complete (not cut at
max_tokens), short enough for the student (model.max_seq_length). Of a prompt's
correct samples, duplicates and near duplicates are dropped, then teacher.keep
applies; the kept conversations go to OUT, in the schema `r1tui prepare --data OUT`
reads. Every sample, accepted or rejected with its reason, goes to OUT's
.samples.jsonl beside it.

Prompts that share a word n-gram (decontaminate.ngram) with an eval set (eval.source,
decontaminate.against) are dropped before anything is sent, and counted.

Rerun the same command after an interruption (Ctrl-C, kill -9, a lost connection):
finished samples are skipped and no row is written twice; samples the teacher could
not be reached for (connection, timeout, 429, 5xx) are asked again. Two generations
into the same OUT at once: the second is refused. The API key is read from the
variable teacher.api_key_env (OPENAI_API_KEY by default; local servers need none) and
is never printed or written.

DRY_RUN=1 prints the plan (prompts, requests, tokens, time, endpoints, the most it
can cost) and sends nothing.

Examples:
  r1tui generate --out traces.jsonl
  r1tui generate --prompts hf:openai/gsm8k --out gsm8k-traces.jsonl
  DRY_RUN=1 r1tui generate --prompts prompts.jsonl --out traces.jsonl
  r1tui prepare --data traces.jsonl --out data/prepared
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--prompts", metavar="SOURCE", default=None,
                        help="use instead of teacher.prompts: synthetic, a .jsonl/.parquet file, or hf:<owner>/<name>")
    parser.add_argument("--out", metavar="FILE.jsonl", required=True,
                        help="the traces file: new, or one an earlier `r1tui generate` wrote (continued)")
    parser.add_argument("--json", action="store_true", help="print the summary (or, with DRY_RUN=1, the plan) as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error
    from r1tui.generate.run import NO_TEACHER, generate_traces, plan_generation

    config = load_cli_config(args)
    if not config.teacher.model:
        raise R1Error(NO_TEACHER)
    out_path = resolve_path(args.out)
    if out_path.is_dir():
        raise R1Error(f"--out {out_path}: is a folder; name a .jsonl file")
    source = source_argument(args.prompts) if args.prompts else None

    if dry_run_requested():
        plan = plan_generation(config, out_path, source)
        if args.json:
            print_json(plan.to_dict())
        else:
            _print_plan(plan)
        return 0

    if args.json:
        summary = generate_traces(config, out_path, prompts_source=source)
        print_json(summary.to_dict())
        return 0
    with progress() as bar:
        task = bar.add_task("generate", total=None)

        def show(summary: Any) -> None:
            rejected = sum(summary.rejected.values())
            bar.update(task, completed=summary.completed, total=summary.total or None,
                       description=f"generate: {summary.accepted} accepted · {rejected} rejected · {summary.kept} kept")

        summary = generate_traces(config, out_path, prompts_source=source, on_progress=show)
    _print_summary(summary)
    return 0


def _skipped(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in counts.items())


def _print_plan(plan: Any) -> None:
    from rich.table import Table

    from r1tui.present import MISSING, format_duration

    out = console()
    out.print("[bold yellow]dry run[/]: nothing sent to the teacher, nothing written.")
    table = Table(title="Plan", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    skipped = f" ({sum(plan.prompts_skipped.values())} rows skipped: {_skipped(plan.prompts_skipped)})" \
        if plan.prompts_skipped else ""
    table.add_row("prompts", f"{plan.prompts:,} from {plan.source}{skipped}")
    if plan.contaminated_by:
        count = plan.prompts_skipped.get("contaminated", 0)
        table.add_row("contaminated", f"{count:,} prompt{'s' if count != 1 else ''} overlapping an eval set, not "
                      f"sent: {_skipped(plan.contaminated_by)}")
    done = f"; {plan.already_done:,} samples already done in {plan.samples_file}" if plan.already_done else ""
    again = f"; {plan.asked_again:,} asked again (the teacher was not reached)" if plan.asked_again else ""
    table.add_row("requests", f"{plan.requests:,} ({plan.samples_per_prompt} per prompt{done}{again}), "
                  f"{plan.concurrency} at once")
    table.add_row("teacher", plan.model)
    table.add_row("endpoints", "\n".join(plan.endpoints))
    table.add_row("max tokens", f"{plan.max_tokens:,} per request, {plan.max_completion_tokens:,} at most in all")
    table.add_row("prompt tokens", f"about {plan.prompt_tokens:,} (the student's tokenizer)")
    table.add_row("time", plan.time_note if plan.time_s is None else f"about {format_duration(plan.time_s)} "
                  f"({plan.time_note})")
    cost = MISSING if plan.cost_upper_usd is None else f"at most ${plan.cost_upper_usd:,.2f}"
    table.add_row("cost", cost + ("" if plan.cost_upper_usd is not None else " (no teacher.price_* configured)"))
    table.add_row("writes", f"{plan.out}\n{plan.samples_file}")
    out.print(table)


def _print_summary(summary: Any) -> None:
    from rich.table import Table

    from r1tui.present import format_duration

    out = console()
    rejected = sum(summary.rejected.values())
    resumed = f" ({summary.resumed:,} from an earlier run)" if summary.resumed else ""
    out.print(f"[bold green]wrote[/] {summary.kept:,} traces to {summary.out}: {summary.accepted:,} of "
              f"{summary.completed:,} samples correct{resumed}, {summary.prompts_done:,} of {summary.prompts:,} prompts")
    contaminated = summary.prompts_skipped.get("contaminated", 0)
    if contaminated:
        out.print(f"[yellow]dropped {contaminated:,} prompt{'s' if contaminated != 1 else ''} that overlap an eval "
                  "set[/] (not sent): "
                  f"{_skipped(summary.contaminated_by)}", highlight=False)
    if summary.asked_again:
        out.print(f"asked {summary.asked_again:,} samples again: an earlier run could not reach the teacher for them",
                  highlight=False)
    if summary.reverified:
        out.print(f"verified {summary.reverified:,} stored samples again under the current settings (no request)",
                  highlight=False)
    if summary.unanswered:
        out.print(f"[yellow]{summary.unanswered:,} samples got no answer from the teacher[/] (connection, timeout, "
                  "429 or 5xx): rerun the same command to ask them again", highlight=False)
    cost = "" if summary.cost_usd is None else f", ${summary.cost_usd:,.4f}"
    out.print(f"[dim]{summary.requests:,} requests ({summary.retries:,} retries), {summary.tokens_in:,} tokens in, "
              f"{summary.tokens_out:,} out{cost}, {format_duration(summary.elapsed_s)}; every sample in "
              f"{summary.samples_file}[/]", highlight=False)
    if rejected or summary.dropped:
        table = Table(title="Not kept", title_justify="left")
        table.add_column("reason")
        table.add_column("samples", justify="right")
        table.add_column("share", justify="right")
        for reason, count in summary.rejected.items():
            table.add_row(reason, f"{count:,}", f"{count / max(1, summary.completed):.0%}")
        for reason, count in summary.dropped.items():
            table.add_row(f"{reason} (correct)", f"{count:,}", f"{count / max(1, summary.completed):.0%}")
        out.print(table)

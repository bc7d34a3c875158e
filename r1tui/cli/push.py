"""`r1tui push RUN`: upload GGUFs, adapter, Modelfile and model card to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    print_json,
)

HELP = "upload GGUFs, adapter, Modelfile and model card to the Hugging Face Hub"
DESCRIPTION = """\
Publish an exported run: the GGUF file(s), the LoRA adapter, the Ollama Modelfile,
parity.json and a generated model card (licence of the base model, training config,
LoRA size, masking statistics, evaluation table, how to run it) go to hub.repo_id
(HF_REPO_ID overrides it; a name without "user/" goes under the token's user).

The token comes from HF_TOKEN or `hf auth login`; it is never printed, logged or
written. A missing or rejected token, a repo owned by someone else or a network
failure stops with one line; running push again resumes (content already on the Hub
is not sent again). With --dry-run (or DRY_RUN=1) it prints the plan - repo,
visibility, every file and its size - and touches no network.

Examples:
  HF_REPO_ID=me/mistral-small-r1 r1tui push latest --dry-run
  r1tui push latest
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run id, id prefix, run folder, or 'latest'")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and touch no network")
    parser.add_argument("--json", action="store_true", help="print the plan or result as JSON")
    add_config_argument(parser)
    add_runs_dir_argument(parser)


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from r1tui.cli import dry_run_requested
    from r1tui.cli._common import EventProgress, run_and_config
    from r1tui.export.push import push_run
    from r1tui.present import format_bytes

    layout, config = run_and_config(args, "push it")
    out = console()
    if args.dry_run or dry_run_requested():
        plan = push_run(config, layout, dry_run=True)
        if args.json:
            print_json({**plan.to_dict(), "dry_run": True})
            return 0
        repo = plan.repo_id or "[bold red](not set: set hub.repo_id or HF_REPO_ID)[/]"
        visibility = "private" if plan.private else "public"
        table = Table(title=f"push plan (dry run: no network): {plan.repo_id or 'repo not set'} ({visibility})")
        table.add_column("file in repo")
        table.add_column("size", justify="right")
        table.add_column("from")
        for file in plan.files:
            source = ("generated model card" if file.local == str(layout.card) else file.local or "generated"
                      ) if file.generated else file.local
            table.add_row(file.path_in_repo, format_bytes(file.bytes), source)
        out.print(table)
        token = {"HF_TOKEN": "found in HF_TOKEN", "saved login": "found in the saved Hub login"}.get(
            plan.token, "[bold red]missing[/] (set HF_TOKEN or run `hf auth login`)")
        if plan.parity_ok is not True:
            state = "failed" if plan.parity_ok is False else "not checked (or a GGUF changed since)"
            out.print(f"[bold red]tokenizer parity {state}[/]: push will refuse until `r1tui export RUN` passes it")
        if plan.not_published:
            out.print(f"not published (not made by the last export): {', '.join(plan.not_published)}")
        out.print(f"repo: {repo} ({plan.repo_id_source}), {visibility}; {len(plan.files)} files, "
                  f"{format_bytes(plan.total_bytes)}; token: {token}")
        return 0

    from r1tui.runs.events import EventWriter
    from r1tui.runs.lock import RunLock

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
                   console=console(stderr=True))
    with RunLock(layout, "r1tui push"), EventWriter(layout.events) as writer, bar:
        result = push_run(config, layout, events=EventProgress(writer, bar))
    if args.json:
        print_json(result.to_dict())
        return 0
    visibility = "private" if result.private else "public"
    out.print(f"[bold green]pushed[/] {len(result.files)} files ({format_bytes(result.uploaded_bytes)}) "
              f"to {result.url} ({visibility}), commit {result.commit[:12]}")
    return 0

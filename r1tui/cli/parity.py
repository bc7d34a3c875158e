"""`r1tui parity`: check that a GGUF tokenizes the training format exactly like training did."""

from __future__ import annotations

import argparse

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    load_cli_config,
    print_json,
)
from r1tui.data.tokenizer import tokenizer_spec

HELP = "check that a run's GGUFs, chat template, Modelfile, merged/ and adapter tokenize exactly like training"
DESCRIPTION = """\
Render sample conversations (multi-turn, reasoning, accents, emoji, code, leading and
repeated spaces, a system prompt, an inference prompt) in the training format, encode
them with Mistral's own tokenizer (mistral-common) and tokenize the same text with the
GGUF through llama.cpp. The ids must be identical; on a mismatch the command fails and
shows the first differing tokens, with a hint when the file shows a known converter
trap. Works for any GGUF and tokenizer pair.

With --gguf the file's embedded chat template is checked too, rendered by
llama-cpp-python's chat formatter (what llama-server, LM Studio and its chat API do).

Give --gguf for one file, or RUN to check every artefact its export made, each through
the client that loads it: every GGUF (its tokenizer, its chat template), the Modelfile's
template (rendered as Ollama's Go template would, tokenized with the GGUF it names),
merged/ and the adapter as push publishes it (AutoTokenizer + apply_chat_template), a
kept tokenizer.json (the tokenizers library); prompts ending with a user turn and whole
conversations. That runs the run's parity stage (as `r1tui export` does; skipped
when the files and tokenizer are unchanged since the last check), which writes
gguf/parity.json and its events into the run's log, under the run's lock.

Examples:
  r1tui parity --gguf model-Q4_K_M.gguf
  r1tui parity --gguf model.gguf --tokenizer /models/Mistral-Small-Instruct-2409
  r1tui parity latest
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", nargs="?", help="check every GGUF of this run (id, id prefix, folder or 'latest')")
    parser.add_argument("--gguf", metavar="PATH", help="the GGUF file to check")
    parser.add_argument("--tokenizer", metavar="v3|tekken|tekken-v7|DIR", default=None,
                        help="training tokenizer: v3, tekken, tekken-v7 or a folder with tokenizer.model(.v3)/tekken.json "
                             "(default: model.tokenizer of the config)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_argument(parser)
    add_runs_dir_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    from r1tui.cli import dry_run_requested
    from r1tui.errors import R1Error
    from r1tui.export.clients import gguf_chat_template
    from r1tui.export.gguf import find_converter, read_gguf
    from r1tui.export.parity import (
        SAMPLE_CONVERSATIONS,
        GgufVocab,
        check_client,
        check_parity,
        describe_client_failure,
        describe_failure,
    )
    from r1tui.runs.events import EventWriter, stage

    if not args.gguf and not args.run:
        raise R1Error("nothing to check: pass --gguf PATH or a RUN (see `r1tui parity --help`)")
    layout = None
    if args.run:
        from r1tui.cli._common import run_and_config

        layout, config = run_and_config(args, "check it")
    else:
        config = load_cli_config(args)
    spec = args.tokenizer or tokenizer_spec(config)
    if args.gguf:
        files = [Path(args.gguf)]
    else:
        files = sorted(layout.gguf_files())
        if not files:
            raise R1Error(f"{layout.root}: no GGUF in {layout.gguf_dir.name}/; run `r1tui export {layout.run_id}` first")
    for file in files:
        if not file.is_file():
            raise R1Error(f"{file}: GGUF not found; pass --gguf PATH to an existing .gguf file")
    out = console()
    if dry_run_requested():
        out.print(f"dry run: would compare {len(SAMPLE_CONVERSATIONS)} sample conversations of tokenizer {spec} "
                  f"with {', '.join(str(f) for f in files)}")
        return 0

    if layout is not None:
        # A run's GGUFs are checked by its parity stage, as the export does (one resume rule,
        # the run's lock, parity.json with its fingerprint, so push trusts it afterwards).
        from r1tui.pipeline.orchestrator import run_named
        from r1tui.runs.files import read_json_object

        if args.tokenizer:
            config.model.tokenizer = args.tokenizer
        with EventWriter(layout.events) as writer:
            skipped = run_named(config, layout, ["parity"], writer, what="r1tui parity")
        parity = read_json_object(layout.parity)
        reports = list((parity.get("files") or {}).values())
        if skipped and not args.json:
            out.print("[dim]up to date: these files were checked with this tokenizer and have not changed since[/]")
        if args.json:
            print_json(parity)
        else:
            _show(out, reports, Table, False)
            _show_clients(out, parity.get("clients") or [], parity.get("clients_skipped") or [], Table)
        if not parity.get("ok"):
            failed = next((r for r in reports if not r["ok"]), None)
            if failed is not None:
                raise R1Error(f"{Path(failed['gguf']).name}: {describe_failure(failed)}")
            failed_client = next(r for r in parity.get("clients") or [] if not r["ok"])
            raise R1Error(f"tokenizer parity failed: {describe_client_failure(failed_client)}")
        return 0

    try:
        converter = find_converter(config.export.llama_cpp_dir)
    except R1Error:
        converter = None  # read_gguf then uses any importable gguf-py; only used for hints
    reports, template_reports = [], []
    with stage(None, "parity", tokenizer=spec, files=[f.name for f in files]) as outputs:
        for file in files:
            try:
                info = read_gguf(file, converter)
            except R1Error:
                info = None
            reports.append(check_parity(file, spec, gguf_info=info))
            with GgufVocab(file) as vocab:  # the embedded chat template, as llama-cpp-python renders it
                template_reports.append(check_client(gguf_chat_template(vocab), spec))
        ok = all(r["ok"] for r in reports + template_reports)
        outputs.update(ok=ok)
        if args.json:
            print_json(reports[0] | {"clients": template_reports} if len(reports) == 1
                       else [r | {"clients": [c]} for r, c in zip(reports, template_reports, strict=True)])
        else:
            _show(out, reports, Table, False)
            _show_clients(out, template_reports, [], Table)
        if not ok:
            failed = next((r for r in reports if not r["ok"]), None)
            if failed is not None:
                raise R1Error(f"{Path(failed['gguf']).name}: {describe_failure(failed)}")
            failed_client = next(r for r in template_reports if not r["ok"])
            raise R1Error(f"tokenizer parity failed: {describe_client_failure(failed_client)}")
    return 0


def _show(out, reports, Table, as_json: bool) -> None:
    from pathlib import Path

    if as_json:
        print_json(reports if len(reports) > 1 else reports[0])
        return
    for report in reports:
        table = Table(title=f"{Path(report['gguf']).name} vs tokenizer {report['tokenizer']}")
        for column in ("sample", "tokens", "identical"):
            table.add_column(column)
        for case in report["cases"]:
            table.add_row(case["name"], str(case["tokens"]), "yes" if case["ok"] else f"[bold red]no, from token {case['first_difference']['index']}[/]")
        out.print(table)
        if report["ok"]:
            out.print(f"[bold green]parity OK[/]: {report['tokens_compared']} tokens identical")


def _show_clients(out, reports, skipped, Table) -> None:
    if not reports and not skipped:
        return
    table = Table(title="each artefact through the client that loads it (prompts and whole conversations)")
    for column in ("artefact", "client", "identical", "first difference"):
        table.add_column(column)
    for report in reports:
        failed = next((case for case in report["cases"] if not case["ok"]), None)
        where = "" if failed is None else (
            f"{failed['name']}: " + (failed["error"] if "error" in failed else f"token {failed['first_difference']['index']}"))
        count = f"{report['matched']}/{report['total']}"
        if report.get("not_checked"):
            count += f" ({len(report['not_checked'])} not expressible)"
        table.add_row(report["artefact"], report["client"], count if report["ok"] else f"[bold red]{count}[/]", where)
    for entry in skipped:
        table.add_row(entry["artefact"], "", "[dim]not checked[/]", entry["reason"])
    out.print(table)

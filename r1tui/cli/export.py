"""`r1tui export RUN`: merge, convert to GGUF, quantize, check tokenizer parity, write a Modelfile."""

from __future__ import annotations

import argparse

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    load_cli_config,
    print_json,
)

HELP = "merge the adapter, convert to GGUF, quantize, check tokenizer parity, write a Modelfile and card"
DESCRIPTION = """\
Export a trained run: fold the LoRA adapter into the base weights (merged/), convert
with llama.cpp's own converter to an F16 GGUF with the chat template embedded, quantize
to each configured type (default Q4_K_M) with per-tensor progress, read every file back
(tensor types, size next to the calculator's estimate), check that each GGUF tokenizes
the training format exactly like the training tokenizer (gguf/parity.json), and write
an Ollama Modelfile and a model card. Steps whose outputs are up to date are skipped,
so running it again after a failure resumes. Events go to the run's events.jsonl.

RUN is a run id under runs.dir (or a unique prefix), a run folder, or "latest". The run's own config.toml
is used when it has one.

Examples:
  r1tui export latest
  r1tui export runs/20261127-tiny --quant Q4_K_M Q8_0
  DRY_RUN=1 r1tui export latest        # what would run, sizes, disk: nothing written
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from r1tui.config import QUANT_TYPES

    parser.add_argument("run", metavar="RUN", help="run id, id prefix, run folder, or 'latest'")
    parser.add_argument("--quant", nargs="+", action="extend", choices=QUANT_TYPES, metavar="TYPE",
                        help=f"quant types to write (default: export.quant_types); one or more of {', '.join(QUANT_TYPES)}")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (steps, sizes, disk) and write nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_argument(parser)
    add_runs_dir_argument(parser)


class EventProgress:
    """An event writer that also draws each stage's progress on a Rich progress bar."""

    def __init__(self, writer, bar):
        self.writer = writer
        self.bar = bar
        self.path = getattr(writer, "path", None)
        self._tasks: dict[str, int] = {}
        self._totals: dict[str, float] = {}

    def emit(self, type: str, stage: str | None = None, **data):
        event = self.writer.emit(type, stage=stage, **data)
        if stage is None:
            return event
        if type == "stage_started":
            self._tasks[stage] = self.bar.add_task(stage, total=None)
        elif type == "stage_progress" and stage in self._tasks:
            from r1tui.export._util import format_bytes

            message = str(data.get("message") or "")
            if data.get("unit") == "byte":
                message = f"{format_bytes(data['completed'])} / {format_bytes(data['total'])} {message}"
            self._totals[stage] = data.get("total") or 1
            self.bar.update(self._tasks[stage], completed=data.get("completed"), total=data.get("total"),
                            description=f"{stage} {message[:60]}".strip())
        elif type == "stage_finished" and stage in self._tasks:
            total = self._totals.get(stage, 1)
            self.bar.update(self._tasks[stage], completed=total, total=total,
                            description=f"{stage} ({data.get('status')})")
        return event

    def close(self) -> None:
        self.writer.close()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    from r1tui.cli import dry_run_requested
    from r1tui.cli._common import progress
    from r1tui.export._util import format_bytes
    from r1tui.export.rundir import run_for_writing

    run_dir, config = run_for_writing(args.run, load_cli_config(args), "export it")
    out = console()
    if args.dry_run or dry_run_requested():
        from r1tui.export.pipeline import plan_export

        plan = plan_export(config, run_dir, args.quant)
        if args.json:
            print_json({k: v for k, v in plan.items() if k in ("steps", "needed_bytes", "free_bytes", "quant_types")}
                       | {"run_dir": str(run_dir), "converter": str(plan["converter"]), "base": plan["base"], "dry_run": True})
            return 0
        table = Table(title=f"export plan for {run_dir.name} (dry run: nothing written)")
        for column in ("step", "output", "size", "action"):
            table.add_column(column)
        for step in plan["steps"]:
            table.add_row(step["step"], step["output"], format_bytes(step["bytes"]), "run" if step["run"] else "up to date")
        table.add_row("parity", str(run_dir / "gguf" / "parity.json"), "", "run")
        out.print(table)
        verdict = "fits" if plan["needed_bytes"] < plan["free_bytes"] else "[bold red]does not fit[/]"
        out.print(f"disk: needs {format_bytes(plan['needed_bytes'])}, {format_bytes(plan['free_bytes'])} free ({verdict}); "
                  f"converter: {plan['converter']}; base: {plan['base']}")
        return 0

    from r1tui.export import export_run
    from r1tui.runs.events import EventWriter

    with EventWriter(run_dir / "events.jsonl") as writer, progress() as bar:
        result = export_run(config, run_dir, events=EventProgress(writer, bar), quant_types=args.quant)
    if args.json:
        print_json(result)
        return 0
    table = Table(title=f"GGUF files of {run_dir.name}")
    for column in ("file", "size", "tensor data", "calculator", "tensor types", "types as calculated"):
        table.add_column(column)
    for report in result["gguf"].values():
        table.add_row(Path(report["path"]).name, format_bytes(report["file_bytes"]),
                      f"{report['tensor_bytes']:,} B", f"{report['calculator_bytes']:,} B",
                      ", ".join(f"{k}×{v}" for k, v in report["type_counts"].items()),
                      "yes" if report["types_match_calculator"] else "[yellow]no[/]")
    out.print(table)
    parity = result["parity"]
    out.print(f"[bold green]tokenizer parity OK[/]: {parity['samples']} samples, {parity['tokens_compared']} tokens "
              f"identical ({parity['path']})")
    out.print(f"Modelfile: {result['modelfile']}\nmodel card: {result['card']}")
    if result["skipped"]:
        out.print(f"[dim]up to date, skipped: {', '.join(result['skipped'])}[/]")
    return 0

"""`r1tui run`: the whole pipeline (prepare → train → export → eval) in a detached process."""

from __future__ import annotations

import argparse
from pathlib import Path

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    load_cli_config,
    print_json,
    resolve_cli_run,
    run_flags,
)
from r1tui.config import Config
from r1tui.runs.layout import RunLayout

HELP = "run the whole pipeline (prepare, train, export, eval) detached; print the run id"
DESCRIPTION = """\
Create runs/<id>/ (the id sorts by start time), freeze the config there, and start
the pipeline in its own process, detached from the terminal: closing the terminal,
losing SSH or quitting the dashboard never stops it. Prints the run id and returns.
Follow it with `r1tui logs RUN -f` or the dashboard (`r1tui`); stop it with
`r1tui cancel RUN` (training saves a checkpoint first).

--resume RUN continues a stopped, failed or crashed run: stages whose artifacts
exist and whose config did not change are skipped, and training continues from its
latest checkpoint (step count, optimizer and scheduler state included).

--processes N trains with N processes under `accelerate launch` (DDP, backend hf):
N GPUs on a GPU box, N CPU processes (gloo) without one.

DRY_RUN=1 prints the plan and the dry-run report and starts nothing.

Examples:
  r1tui run --config configs/tiny.toml
  r1tui run --resume 20261127-101500-ab12
  r1tui run --config configs/tiny.toml --foreground
  DRY_RUN=1 r1tui run
"""

def add_start_arguments(parser: argparse.ArgumentParser, *, stages_option: bool) -> None:
    add_config_argument(parser)
    parser.add_argument("--resume", metavar="RUN", default=None,
                        help="continue this run (id, id prefix, folder or 'latest') instead of starting a new one")
    parser.add_argument("--foreground", action="store_true",
                        help="stay attached: run in this terminal and return when the run ends")
    parser.add_argument("--dataset", metavar="DIR", default=None,
                        help="train on this already prepared dataset (from `r1tui prepare --out DIR`); skips prepare")
    parser.add_argument("--processes", metavar="N", type=int, default=1,
                        help="train with N processes under accelerate launch (DDP, backend hf); default 1")
    add_runs_dir_argument(parser)
    if stages_option:
        from r1tui.pipeline import registry

        parser.add_argument("--stages", metavar="LIST", default=None,
                            help=f"comma-separated subset of {','.join(registry.steps())} (default: all); "
                                 f"single stages ({','.join(registry.stage_names())}) work too")
    parser.add_argument("--json", action="store_true", help="print {run_id, run_dir, pid} as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_start_arguments(parser, stages_option=True)


def start(args: argparse.Namespace, stages: list[str], resume: RunLayout | None = None) -> int:
    """Shared by `run` and `train`. ``resume``: the run --resume named, when already found."""
    from r1tui.cli import dry_run_requested
    from r1tui.config import check_backend_settings
    from r1tui.errors import R1Error
    from r1tui.pipeline import registry
    from r1tui.pipeline.launch import start_run
    from r1tui.runs.status import read_pid, run_status

    stages = registry.expand(stages)
    if args.processes < 1:
        raise R1Error(f"--processes {args.processes}: needs at least 1")
    if args.resume and resume is None:
        resume = resolve_cli_run(args, args.resume)
    config = resume.frozen_config() if resume else load_cli_config(args)
    check_backend_settings(config)
    if dry_run_requested():
        _print_plan(config, stages, args, resume)
        return 0
    out = console()
    if args.foreground and not args.json:
        out.print(f"[bold]starting[/] stages {', '.join(registry.steps_of(stages))} in the foreground "
                  "(Ctrl-C cancels, a checkpoint is saved)")
    layout = start_run(config, stages, detach=not args.foreground, resume_run=resume,
                       dataset=Path(args.dataset).resolve() if args.dataset else None, processes=args.processes)
    run_id = layout.run_id
    if args.foreground:
        status = run_status(layout)
        if args.json:
            print_json({"run_id": run_id, "run_dir": str(layout.root), "status": status.status, "error": status.error})
        else:
            colour = {"finished": "green", "cancelled": "yellow"}.get(status.status, "red")
            out.print(f"run {run_id}: [bold {colour}]{status.status}[/]" + (f" — {status.error}" if status.error else ""))
        return {"finished": 0, "cancelled": 130}.get(status.status, 1)
    pid = read_pid(layout)
    if args.json:
        print_json({"run_id": run_id, "run_dir": str(layout.root), "pid": pid})
        return 0
    from rich.markup import escape

    verb = "resumed" if resume else "started"
    out.print(f"{run_id}")
    out.print(f"[dim]{escape(follow_hints(layout, verb, registry.steps_of(stages), pid))}[/]", highlight=False)
    return 0


def follow_hints(layout: RunLayout, verb: str, steps: list[str], pid: int | None) -> str:
    """What `r1tui run` prints after the id: commands that find this run when pasted into
    the same shell (with --runs-dir when the default lookup would not find it)."""
    run_id, flags = layout.run_id, run_flags(layout)
    return (f"{verb} {', '.join(steps)} in {layout.root} (pid {pid}), detached. "
            f"Follow: r1tui logs {run_id}{flags} -f · dashboard: r1tui attach {run_id}{flags} · "
            f"stop: r1tui cancel {run_id}{flags}")


def _print_plan(config: Config, stages: list[str], args: argparse.Namespace, resume: RunLayout | None) -> None:
    from rich.table import Table

    from r1tui.dryrun import build_report, report_renderables
    from r1tui.pipeline import registry

    out = console()
    where = resume.root if resume else (Path(config.runs.dir) / "<new id>")
    mode = "foreground" if args.foreground else "detached"
    out.print(f"[bold yellow]dry run[/]: nothing started, written or downloaded. Would {'resume' if resume else 'start'} "
              f"{where} ({mode}, {args.processes} process{'es' if args.processes > 1 else ''}).")
    plan = Table(title="Plan", title_justify="left")
    plan.add_column("stage")
    plan.add_column("does")
    plan.add_column("writes")
    backend = config.train.backend
    if backend == "auto":
        backend = "auto: unsloth with a CUDA GPU and Unsloth installed, else hf"
    for stage in (registry.get(name) for name in stages):
        does, writes = stage.does, stage.writes
        if stage.name == "prepare" and args.dataset:
            does, writes = f"skipped: uses the prepared dataset {args.dataset}", "-"
        if stage.name == "generate" and (args.dataset or not config.teacher.model):
            does, writes = ("skipped: " + ("uses the prepared dataset" if args.dataset else
                                           "no teacher configured (teacher.model is empty)")), "-"
        elif stage.name == "generate":
            does = f"{does}: {config.teacher.model}, {config.teacher.samples} per prompt from {config.teacher.prompts}"
        if stage.name == "train":
            does = f"{does}; backend {backend}; {config.train.max_steps if config.train.max_steps > 0 else str(config.train.epochs) + ' epochs'}" \
                   f"{' steps' if config.train.max_steps > 0 else ''}"
        if resume is not None:
            does += " (skipped when up to date)"
        plan.add_row(stage.name, does, writes)
    out.print(plan)
    for renderable in report_renderables(build_report(config)):
        out.print(renderable)


def run(args: argparse.Namespace) -> int:
    from r1tui.pipeline import registry
    from r1tui.pipeline.launch import started_steps

    resume = resolve_cli_run(args, args.resume) if args.resume else None
    if args.stages:
        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    elif resume is not None:
        stages = started_steps(resume) or list(registry.steps())
    else:
        stages = list(registry.steps())
    return start(args, stages, resume)

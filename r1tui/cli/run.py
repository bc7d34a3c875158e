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

--processes N trains with N processes under `accelerate launch` (backend hf): N GPUs
on a GPU box, N CPU processes (gloo) without one. --distributed ddp (a whole model on
every rank) or fsdp (FSDP2: base, LoRA, gradients and optimizer state sharded over the
ranks; train.fsdp_offload keeps them in CPU RAM); default train.distributed.

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
    parser.add_argument("--nodes", metavar="N", type=int, default=1,
                        help="train on N machines: make the run and print each node's torchrun command "
                             "(the run folder must be on a filesystem every node sees); starts nothing")
    parser.add_argument("--gpus-per-node", metavar="G", type=int, default=1,
                        help="with --nodes: processes (GPUs) on each machine; default 1")
    parser.add_argument("--main-address", metavar="HOST", default=None,
                        help="with --nodes: the first node's address, where the others meet it (not with --sbatch)")
    parser.add_argument("--main-port", metavar="PORT", type=int, default=29500,
                        help="with --nodes: the rendezvous port on the first node; default 29500")
    parser.add_argument("--sbatch", metavar="FILE", default=None,
                        help="with --nodes: write a Slurm batch script for the launch to FILE")
    parser.add_argument("--submit", action="store_true",
                        help="with --sbatch: submit the script with sbatch")
    parser.add_argument("--distributed", choices=("ddp", "fsdp"), default=None,
                        help="with several processes: ddp (a whole model per rank) or fsdp (the model, LoRA and "
                             "optimizer state sharded over the ranks); default: train.distributed")
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
    _check_node_flags(args)
    if args.resume and resume is None:
        resume = resolve_cli_run(args, args.resume)
    config = resume.frozen_config() if resume else load_cli_config(args)
    distributed = getattr(args, "distributed", None)
    if distributed and resume and distributed != config.train.distributed:
        raise R1Error(f"--distributed {distributed}: run {resume.run_id} was started with train.distributed = "
                      f"{config.train.distributed!r} and resumes with it (its checkpoints are laid out for it); "
                      "drop the flag")
    if distributed:
        config.train.distributed = distributed
    check_backend_settings(config)
    if (args.processes > 1 or getattr(args, "nodes", 1) > 1) and config.train.backend == "unsloth":
        raise R1Error(f"train.backend = \"unsloth\" trains on one GPU; several processes "
                      f"({config.train.distributed}) need train.backend = \"hf\" (or \"auto\")")
    if dry_run_requested():
        _print_plan(config, stages, args, resume)
        return 0
    if getattr(args, "nodes", 1) > 1 or getattr(args, "sbatch", None):
        return _start_on_nodes(args, config, stages, resume)
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


def _check_node_flags(args: argparse.Namespace) -> None:
    from r1tui.errors import R1Error

    if not hasattr(args, "nodes"):
        return  # a command without the node flags
    nodes, gpus = args.nodes, args.gpus_per_node
    if nodes < 1 or gpus < 1:
        raise R1Error(f"--nodes {nodes} --gpus-per-node {gpus}: both need at least 1")
    if nodes == 1 and not getattr(args, "sbatch", None):
        if gpus > 1:
            raise R1Error(f"--gpus-per-node {gpus} without --nodes: on one machine use --processes {gpus}")
        if args.submit or args.main_address:
            raise R1Error("--main-address and --submit go with --nodes N (several machines)")
        return
    if args.processes > 1:
        raise R1Error("--processes is for one machine; with --nodes give --gpus-per-node instead")
    if args.foreground:
        raise R1Error("--nodes starts nothing here (each node runs its own command); drop --foreground")
    if not (1 <= args.main_port <= 65535):
        raise R1Error(f"--main-port {args.main_port}: not a port; use 1-65535")
    if args.sbatch is None and args.submit:
        raise R1Error("--submit submits the --sbatch script; add --sbatch FILE")
    if args.sbatch is None and not args.main_address:
        raise R1Error("--nodes needs --main-address HOST (the first node's address the others can reach), "
                      "or --sbatch FILE (Slurm finds it)")


def _start_on_nodes(args: argparse.Namespace, config: Config, stages: list[str], resume: RunLayout | None) -> int:
    """--nodes N: make the run (or take the one to resume), print each node's command, write
    (and with --submit submit) the sbatch script. Nothing runs here."""
    import shlex
    import shutil
    import subprocess

    from r1tui.errors import R1Error
    from r1tui.pipeline.launch import node_commands, prepare_nodes_run, sbatch_script

    dataset = Path(args.dataset).resolve() if args.dataset else None
    if dataset is not None and not dataset.is_dir():
        raise R1Error(f"--dataset {args.dataset}: no such folder; pass a folder written by `r1tui prepare`")
    if args.submit and shutil.which("sbatch") is None:
        raise R1Error("--submit: no `sbatch` on this machine; submit the script from a Slurm login node")
    layout, names = prepare_nodes_run(config, stages, resume_run=resume, dataset=dataset)
    flags = dict(nodes=args.nodes, gpus_per_node=args.gpus_per_node, main_port=args.main_port,
                 resume=resume is not None, dataset=dataset)
    commands = node_commands(layout, names, main_address=args.main_address, **flags) if args.main_address else []
    script, job = None, None
    if args.sbatch:
        script = Path(args.sbatch).expanduser().resolve()
        script.write_text(sbatch_script(layout, names, **flags), encoding="utf-8")
        script.chmod(0o755)
        if args.submit:
            done = subprocess.run(["sbatch", str(script)], capture_output=True, text=True, check=False)  # noqa: S603
            if done.returncode != 0:
                raise R1Error(f"sbatch {script} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            job = done.stdout.strip()
    if args.json:
        print_json({"run_id": layout.run_id, "run_dir": str(layout.root), "world_size": args.nodes * args.gpus_per_node,
                    "commands": commands, "sbatch": str(script) if script else None, "submitted": job})
        return 0
    out = console()
    world = args.nodes * args.gpus_per_node
    out.print(layout.run_id)
    out.print(f"[dim]{'resume' if resume else 'new run'} in {layout.root}: {args.nodes} node(s) x "
              f"{args.gpus_per_node} process(es) = {world} ranks, train.distributed = {config.train.distributed}. "
              "The run folder must be on a filesystem every node sees.[/]", highlight=False)
    for rank, line in enumerate(commands):
        out.print(f"[bold]# node {rank}[/]" + (" (rank 0: takes the lock, writes events.jsonl)" if rank == 0 else ""))
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if script:
        out.print(f"sbatch script: {script}" + (f" — {job}" if job else f" (submit: sbatch {shlex.quote(str(script))})"),
                  highlight=False)
    out.print(f"[dim]Follow: r1tui logs {layout.run_id} -f · stop: r1tui cancel {layout.run_id} (on node 0, "
              "where rank 0 runs; every rank checkpoints and stops)[/]", highlight=False)
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
    world_size = max(args.processes, getattr(args, "nodes", 1) * getattr(args, "gpus_per_node", 1))
    for renderable in report_renderables(build_report(config, world_size=world_size)):
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

"""Starting and stopping a run's pipeline process.

``start_run`` makes ``runs/<id>/`` (or takes the run to resume), freezes the config
there and starts the pipeline in its own session (``start_new_session``), with stdin
from /dev/null and output to ``pipeline.log``: a hang-up, a closed SSH session or a
killed dashboard never reaches it. The run's lock is taken here, before anything is
checked or written, and handed to the pipeline process, so of two ``r1tui run --resume
RUN`` started together exactly one runs and the other is refused in one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error
from r1tui.pipeline import registry
from r1tui.runs import cancel
from r1tui.runs.files import write_text_atomic
from r1tui.runs.layout import RunLayout, new_run_id
from r1tui.runs.lock import Holder, RunLock, has_lock_file, holder
from r1tui.runs.status import RunStatus, is_stuck_pipeline, pid_alive, refuse_if_running, run_status

if TYPE_CHECKING:
    from r1tui.config import Config


DATASET_FILES = ("dataset_info.json", "dataset_dict.json")  # what `datasets` save_to_disk writes


def create_run(config: Config, runs_dir: str | Path | None = None) -> RunLayout:
    """Make ``runs/<id>/`` with the frozen config (and where it came from)."""
    from r1tui.config import dump_toml

    runs_dir = Path(runs_dir) if runs_dir is not None else Path(config.runs.dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        layout = RunLayout(runs_dir / new_run_id())
        try:
            layout.root.mkdir(mode=0o700 if config.runs.private else 0o777)
            break
        except FileExistsError:
            continue
    tokenizer_spec(config)  # the run freezes the tokenizer it will use, not "auto"
    write_text_atomic(layout.config, dump_toml(config))
    if config.source_path is not None:
        write_text_atomic(layout.source, str(config.source_path) + "\n")
    return layout


def pipeline_command(layout: RunLayout, stages: Sequence[str], *, resume: bool = False,
                     dataset: str | Path | None = None, processes: int = 1, python: str | None = None,
                     lock_fd: int | None = None) -> list[str]:
    """The command that runs the pipeline for a run folder (under accelerate when processes > 1)."""
    python = python or sys.executable
    args = ["-m", "r1tui.pipeline", str(layout.root), "--stages", ",".join(stages)]
    if resume:
        args.append("--resume")
    if dataset is not None:
        args += ["--dataset", str(dataset)]
    if lock_fd is not None:
        args += ["--lock-fd", str(lock_fd)]
    if processes <= 1:
        return [python, *args]
    # torchrun under accelerate; with no CUDA the ranks run DDP on the CPU over gloo.
    return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *args]


# ---------------------------------------------------------------- several machines

DEFAULT_MAIN_PORT = 29500  # torchrun's own default rendezvous port


def _pipeline_args(layout: RunLayout, stages: Sequence[str], *, resume: bool, dataset: str | Path | None) -> list[str]:
    args = ["-m", "r1tui.pipeline", str(layout.root), "--stages", ",".join(stages)]
    if resume:
        args.append("--resume")
    if dataset is not None:
        args += ["--dataset", str(dataset)]
    return args


def node_log(layout: RunLayout, node_rank: int) -> Path:
    """Where a node's launcher and ranks write their output: rank 0's node writes the run's
    own pipeline.log, the others one file each (one shared file appended to from several
    machines over a network filesystem would interleave)."""
    return layout.pipeline_log if node_rank == 0 else layout.root / f"pipeline-node{node_rank}.log"


def node_command(layout: RunLayout, stages: Sequence[str], *, node_rank: int, nodes: int, gpus_per_node: int,
                 main_address: str, main_port: int = DEFAULT_MAIN_PORT, resume: bool = False,
                 dataset: str | Path | None = None, python: str | None = None,
                 node_rank_expr: str | None = None) -> list[str]:
    """torchrun for one node of an ``nodes`` x ``gpus_per_node`` run: a static rendezvous at
    ``main_address:main_port`` (the first node), this machine's ``--node-rank``. Every rank
    runs the pipeline on the same run folder, which must be on a filesystem every node sees;
    global rank 0 takes the run's lock and writes the event log. ``node_rank_expr``: a
    shell expression instead of the number (``$SLURM_NODEID`` in an sbatch script)."""
    python = python or sys.executable
    return [python, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--nproc-per-node", str(gpus_per_node),
            "--node-rank", node_rank_expr or str(node_rank), "--master-addr", main_address,
            "--master-port", str(main_port),
            *_pipeline_args(layout, stages, resume=resume, dataset=dataset)]


def node_commands(layout: RunLayout, stages: Sequence[str], *, nodes: int, gpus_per_node: int, main_address: str,
                  main_port: int = DEFAULT_MAIN_PORT, resume: bool = False, dataset: str | Path | None = None,
                  python: str | None = None, cwd: str | Path | None = None) -> list[str]:
    """One shell line per node (node 0 first), to run on that node: each detaches from the
    terminal (nohup, its own session) and writes its output under the run folder."""
    import shlex

    cwd = Path(cwd or os.getcwd())
    lines = []
    for rank in range(nodes):
        command = node_command(layout, stages, node_rank=rank, nodes=nodes, gpus_per_node=gpus_per_node,
                               main_address=main_address, main_port=main_port, resume=resume, dataset=dataset,
                               python=python)
        lines.append(f"cd {shlex.quote(str(cwd))} && PYTHONUNBUFFERED=1 nohup setsid {shlex.join(command)} "
                     f">> {shlex.quote(str(node_log(layout, rank)))} 2>&1 < /dev/null &")
    return lines


def sbatch_script(layout: RunLayout, stages: Sequence[str], *, nodes: int, gpus_per_node: int,
                  main_port: int = DEFAULT_MAIN_PORT, resume: bool = False, dataset: str | Path | None = None,
                  python: str | None = None, cwd: str | Path | None = None) -> str:
    """A Slurm batch script for the same launch: one task per node, the first node of the
    allocation as the rendezvous address, ``$SLURM_NODEID`` as the node rank. ``scancel``
    sends SIGTERM to every task (torchrun passes it to its ranks, which checkpoint)."""
    import shlex

    cwd = Path(cwd or os.getcwd())
    command = node_command(layout, stages, node_rank=0, nodes=nodes, gpus_per_node=gpus_per_node,
                           main_address="$MAIN_ADDR", main_port=main_port, resume=resume, dataset=dataset,
                           python=python, node_rank_expr="$SLURM_NODEID")
    quoted = " ".join(part if part.startswith("$") else shlex.quote(part) for part in command)
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name=r1tui-{layout.run_id}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --output={layout.root}/slurm-%j.log",
        "#SBATCH --signal=TERM@120",
        f"# r1tui run {layout.run_id}: {nodes} node(s) x {gpus_per_node} GPU(s); the run folder must be on a",
        "# filesystem every node sees. Written by `r1tui train/run --nodes ... --sbatch`.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(cwd))}",
        'MAIN_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "export MAIN_ADDR PYTHONUNBUFFERED=1",
        f"srun --kill-on-bad-exit=1 bash -c '{quoted.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'",
        "",
    ])


def start_run(config: Config, stages: Sequence[str] | None = None, detach: bool = True, *,
              resume_run: RunLayout | None = None, dataset: str | Path | None = None, processes: int = 1,
              runs_dir: str | Path | None = None) -> RunLayout:
    """Start the pipeline for a new run (or resume ``resume_run``); returns its layout.

    ``config``: the config of a new run (ignored on a resume: a run keeps its frozen one).
    ``detach``: the pipeline runs in its own session and outlives this process; otherwise
    it runs here, attached to the terminal, and this returns when it ends.
    """
    names = registry.expand(list(stages) if stages is not None else list(registry.steps()))
    if dataset is not None and not Path(dataset).is_dir():
        raise R1Error(f"--dataset {dataset}: no such folder; pass a folder written by `r1tui prepare`")
    if dataset is not None and not any((Path(dataset) / name).is_file() for name in DATASET_FILES):
        # refused here, not by a detached run failing a minute later
        raise R1Error(f"--dataset {dataset}: not a prepared dataset (no {' or '.join(DATASET_FILES)} in it); "
                      "pass a folder written by `r1tui prepare`")
    if processes > 1 and not detach:
        raise R1Error("--processes needs a detached run (accelerate launches the ranks); drop --foreground")
    teacher = (resume_run.frozen_config() if resume_run is not None else config).teacher
    if processes > 1 and "generate" in names and teacher.model:
        # The other ranks would wait at prepare's barrier for the whole generation and time out.
        raise R1Error("--processes with a teacher configured: generate first (`r1tui run --stages generate`, "
                      "or `r1tui generate --out FILE`), then train with --processes and --resume or --dataset")
    resume = resume_run is not None
    layout = resume_run if resume else create_run(config, runs_dir)
    what = "r1tui run --resume" if resume else "r1tui run"
    if resume:
        _check_resumable(layout)
    with RunLock(layout, what) as lock:  # a second writer that got past the check stops here
        if not detach:
            from r1tui.pipeline.process import run_pipeline

            run_pipeline(layout, names, resume=resume, dataset=dataset, detached=False)
            return layout
        fd = lock.hand_over()
        command = pipeline_command(layout, registry.steps_of(names) if _whole_steps(names) else names,
                                   resume=resume, dataset=dataset, processes=processes, lock_fd=fd)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(layout.pipeline_log, "ab") as log_file, open(os.devnull, "rb") as devnull:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, stdin=devnull, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True, pass_fds=(fd,), env=env, cwd=os.getcwd(),
            )
        # Written here too so `r1tui runs` sees the run at once; the pipeline rewrites it
        # (the same pid, or under accelerate the launcher's, which is the group leader).
        write_text_atomic(layout.pid, f"{process.pid}\n")
        lock.record(process.pid)
        lock.release(unlock=False)  # the pipeline process holds the same lock from now on
    return layout


def prepare_nodes_run(config: Config, stages: Sequence[str] | None = None, *, resume_run: RunLayout | None = None,
                      dataset: str | Path | None = None, runs_dir: str | Path | None = None
                      ) -> tuple[RunLayout, list[str]]:
    """The run folder of a several-machine launch (made, with its frozen config, or the run to
    resume) and the stages its command line names. Nothing is started: every node runs its
    own command (``node_commands``, ``sbatch_script``); global rank 0 takes the run's lock."""
    names = registry.expand(list(stages) if stages is not None else list(registry.steps()))
    if dataset is not None and not any((Path(dataset) / name).is_file() for name in DATASET_FILES):
        raise R1Error(f"--dataset {dataset}: not a prepared dataset (no {' or '.join(DATASET_FILES)} in it); "
                      "pass a folder written by `r1tui prepare`")
    teacher = (resume_run.frozen_config() if resume_run is not None else config).teacher
    if "generate" in names and teacher.model:
        raise R1Error("--nodes with a teacher configured: generate first (`r1tui run --stages generate`), "
                      "then train on several machines with --resume or --dataset")
    if resume_run is not None:
        _check_resumable(resume_run)
        layout = resume_run
    else:
        layout = create_run(config, runs_dir)
    return layout, list(registry.steps_of(names) if _whole_steps(names) else names)


def _whole_steps(names: Sequence[str]) -> bool:
    """The stages are whole steps (then the command line names the steps, as a person would)."""
    chosen = set(names)
    return all(set(registry.groups().get(step, (step,))) <= chosen for step in registry.steps_of(names))


def _check_resumable(layout: RunLayout) -> None:
    refuse_if_running(layout, "resume it")
    status = run_status(layout)
    if is_stuck_pipeline(status):
        raise R1Error(f"run {layout.run_id}: {status.reason}; stop it first with `r1tui cancel {layout.run_id}`, "
                      "then resume")
    if not layout.config.is_file():
        raise R1Error(f"{layout.root}: no config.toml; this is not a run folder")


def started_steps(layout: RunLayout) -> list[str] | None:
    """The steps a run was last started with (a resumed `train` run does not grow export)."""
    from r1tui.runs.events import read_events

    started = [e for e in read_events(layout.events) if e.type == "run_started"]
    stages = started[-1].data.get("stages") if started else None
    if not isinstance(stages, list) or not stages:
        return None
    known = set(registry.steps()) | set(registry.stage_names())
    return registry.steps_of(registry.expand([s for s in stages if s in known])) or None


# ---------------------------------------------------------------- cancelling


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _rank_processes(launcher: int) -> set[int]:
    """Under --processes N the target is accelerate's launcher: the pipeline ranks it started
    (in its process group, running ``r1tui.pipeline``). Empty for a plain pipeline, whose
    group also holds the helpers it runs (llama.cpp's converter, the quantize worker):
    those are never signalled, the pipeline stops them itself."""
    if "accelerate" not in _cmdline(launcher):
        return set()
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != launcher:
            with contextlib.suppress(OSError):
                pid = int(entry.name)
                if os.getpgid(pid) == launcher and pid_alive(pid) and "r1tui.pipeline" in _cmdline(pid):
                    members.add(pid)
    return members


@dataclass(frozen=True)
class CancelPlan:
    """How ``r1tui cancel`` asks a run to stop: ``signal`` sends SIGTERM to ``pid`` (a
    process on this machine); ``file`` writes ``<run>/cancel-request`` naming ``holder``,
    which every rank of the pipeline, on every machine, watches (``r1tui.runs.cancel``)."""

    how: str  # "signal" or "file"
    pid: int | None
    holder: Holder | None = None
    request: Path | None = None  # the file a "file" plan writes


def cancel_plan(layout: RunLayout, via_file: bool = False) -> CancelPlan | None:
    """How to ask the run's writer to stop; None: nothing writes the run. The lock's holder
    on this machine (or a record too old to name its machine) is signalled; one on another
    machine, or any with ``via_file``, is asked through the run folder (its pid means
    nothing here: os.kill would hit whatever local process has that number)."""
    if not has_lock_file(layout):
        pid = _pre_lock_pipeline(layout)
        if pid is None:
            return None
        if via_file:
            raise R1Error(f"run {layout.run_id} was made before the run lock existed: its pipeline does not watch for "
                          "a cancel request; run `r1tui cancel` without --via-file on its machine")
        return CancelPlan("signal", pid)
    who = holder(layout)
    if who is None:
        return None
    if not (via_file or who.elsewhere):
        return CancelPlan("signal", who.pid, who)
    if who.since is None or not cancel.watches_requests(who):
        where = f"on {who.host}" if who.elsewhere else "on its machine"
        raise R1Error(f"run {layout.run_id} is written by {who.describe()}, which does not watch the run folder for "
                      f"a cancel request; stop it {where} (`r1tui cancel {layout.run_id}` there)")
    return CancelPlan("file", who.pid, who, layout.cancel_request)


def cancel_target(layout: RunLayout) -> int | None:
    """The process ``r1tui cancel`` asks to stop: whoever holds the run's lock (the pipeline,
    or a CLI export / eval / push writing into a finished run), possibly on another machine
    (see ``cancel_plan``); for a run made before the lock existed, its pid file when that
    process is this run's pipeline. None: nothing writes the run."""
    if has_lock_file(layout):
        who = holder(layout)
        return who.pid if who is not None else None
    return _pre_lock_pipeline(layout)


def _pre_lock_pipeline(layout: RunLayout) -> int | None:
    """For a run made before the lock existed: its pid file's process while it is this run's
    pipeline (running, or stuck), else None."""
    status = run_status(layout)
    if status.pid is not None and (status.status == "running" or is_stuck_pipeline(status)):
        return status.pid
    return None


def _written(layout: RunLayout) -> bool:
    """Does anything still write the run? The lock itself, not the pid in it: a writer letting
    go empties the lock file a moment before it unlocks."""
    if has_lock_file(layout):
        return holder(layout) is not None
    return cancel_target(layout) is not None


def cancel_run(layout: RunLayout, wait: float = 0.0, via_file: bool = False) -> RunStatus:
    """Ask the process writing a run to stop (SIGTERM, or a request in the run folder when
    it runs on another machine or ``via_file``; see ``cancel_plan``): training checkpoints
    first, every stage records cancelled, then the pipeline writes run_finished cancelled.

    With ``wait`` > 0, waits up to that many seconds for the writer to let go of the run.
    """
    plan = cancel_plan(layout, via_file=via_file)
    if plan is None or (plan.how == "signal" and plan.pid is None):
        status = run_status(layout)
        raise R1Error(f"run {layout.run_id} is not running (status: {status.status}); nothing to cancel")
    if plan.how == "file":
        cancel.ask(layout, plan.holder)
    else:
        target = plan.pid
        workers = _rank_processes(target)
        try:
            if workers:
                # --processes N: the target is accelerate's launcher, which on SIGTERM gives its
                # workers 30 s before SIGKILL; signal the workers themselves so each rank
                # checkpoints at its own pace and the launcher ends when they do.
                for worker in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signal.SIGTERM)
            else:
                os.kill(target, signal.SIGTERM)
        except ProcessLookupError:
            return run_status(layout)
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline and _written(layout):
        time.sleep(0.2)
    return run_status(layout)

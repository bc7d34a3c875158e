"""Run folders and the detached runner: start, list, inspect and cancel runs.

``start_run`` makes ``runs/<id>/`` (ids sort by start time), freezes the config
there and starts the pipeline in its own session (``start_new_session``), with
stdin from /dev/null and output to ``pipeline.log``: a hang-up, a closed SSH
session or a killed dashboard never reaches it. The run's state is read back from
its event log, its ``pid`` file and the liveness of that process.

Status of a run:

- ``running``   the process lives and the log moved recently (heartbeats)
- ``finished`` / ``failed`` / ``cancelled``  the last ``run_finished`` says so
- ``crashed``   no ``run_finished`` and the process is gone, or the heartbeat is stale
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.runs.events import EVENTS_FILE, read_events

CONFIG_FILE = "config.toml"
PID_FILE = "pid"
LOG_FILE = "pipeline.log"
ALL_STAGES = ("prepare", "train", "export", "eval")
TRAIN_STAGES = ("prepare", "train")
DEFAULT_HEARTBEAT_S = 10.0
STATUSES = ("running", "finished", "failed", "cancelled", "crashed")


def heartbeat_seconds() -> float:
    """How often a running pipeline writes a heartbeat (R1TUI_HEARTBEAT_S overrides)."""
    try:
        return max(0.2, float(os.environ.get("R1TUI_HEARTBEAT_S", DEFAULT_HEARTBEAT_S)))
    except ValueError:
        return DEFAULT_HEARTBEAT_S


def stale_after(heartbeat_s: float) -> float:
    """A log silent for this long, from a live process, means the run is stuck."""
    return max(60.0, 6 * heartbeat_s)


def new_run_id(now: float | None = None) -> str:
    """UTC start time to the second plus a random suffix: sorts by time, never collides."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- starting


def create_run(config: Any, runs_dir: str | Path | None = None) -> Path:
    """Make ``runs/<id>/`` with the frozen config; returns the folder."""
    from r1tui.config import dump_toml

    runs_dir = Path(runs_dir) if runs_dir is not None else Path(config.runs.dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        run_dir = runs_dir / new_run_id()
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    write_atomic(run_dir / CONFIG_FILE, dump_toml(config))
    return run_dir


def pipeline_command(run_dir: Path, stages: Sequence[str], *, resume: bool = False, dataset: str | Path | None = None,
                     processes: int = 1, python: str | None = None) -> list[str]:
    """The command that runs the pipeline for a run folder (under accelerate when processes > 1)."""
    python = python or sys.executable
    args = ["-m", "r1tui.runs.pipeline", str(run_dir), "--stages", ",".join(stages)]
    if resume:
        args.append("--resume")
    if dataset is not None:
        args += ["--dataset", str(dataset)]
    if processes <= 1:
        return [python, *args]
    # torchrun under accelerate; with no CUDA the ranks run DDP on the CPU over gloo.
    return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *args]


def start_run(config_path: str | Path | None, stages: Sequence[str] = ALL_STAGES, detach: bool = True, *,
              resume_run: str | Path | None = None, dataset: str | Path | None = None, processes: int = 1,
              runs_dir: str | Path | None = None) -> str:
    """Start the pipeline for a new run (or resume ``resume_run``); returns the run id.

    ``detach``: the pipeline runs in its own session and outlives this process;
    otherwise it runs here, attached to the terminal, and this returns when it ends.
    """
    from r1tui.config import load_config, parse_config

    unknown = [s for s in stages if s not in ALL_STAGES]
    if unknown:
        raise R1Error(f"unknown stage {unknown[0]!r}; stages are {', '.join(ALL_STAGES)}")
    if dataset is not None and not Path(dataset).is_dir():
        raise R1Error(f"--dataset {dataset}: no such folder; pass a folder written by `r1tui prepare`")
    if resume_run is not None:
        run_dir = Path(resume_run)
        status = run_status(run_dir)
        if status.status == "running":
            raise R1Error(f"run {run_dir.name} is still running (pid {status.pid}); cancel it first with `r1tui cancel {run_dir.name}`")
        if is_stuck_pipeline(status):
            raise R1Error(f"run {run_dir.name}: {status.reason}; stop it first with `r1tui cancel {run_dir.name}`, "
                          "then resume")
        if not (run_dir / CONFIG_FILE).is_file():
            raise R1Error(f"{run_dir}: no {CONFIG_FILE}; this is not a run folder")
    else:
        if config_path is None:
            config = parse_config({}, origin="built-in defaults")
        else:
            config = load_config(config_path)
        run_dir = create_run(config, runs_dir)
        if config.source_path is not None:
            write_atomic(run_dir / "source", str(config.source_path) + "\n")
    resume = resume_run is not None
    if not detach:
        if processes > 1:
            raise R1Error("--processes needs a detached run (accelerate launches the ranks); drop --foreground")
        from r1tui.runs.pipeline import run_pipeline

        run_pipeline(run_dir, stages, resume=resume, dataset=dataset, detached=False)
        return run_dir.name
    command = pipeline_command(run_dir, stages, resume=resume, dataset=dataset, processes=processes)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(run_dir / LOG_FILE, "ab") as log_file, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=devnull, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True, env=env, cwd=os.getcwd(),
        )
    # Written here too so `r1tui runs` sees the run at once; the pipeline rewrites it
    # (the same pid, or under accelerate the launcher's, which is the group leader).
    write_atomic(run_dir / PID_FILE, f"{process.pid}\n")
    return run_dir.name


# ---------------------------------------------------------------- inspecting


@dataclass
class RunStatus:
    run_id: str
    run_dir: str
    status: str  # running | finished | failed | cancelled | crashed
    alive: bool
    pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_event_at: float | None = None
    stages: list[str] = field(default_factory=list)
    stage: str | None = None  # the stage running now, or the last one that ran
    stage_status: dict[str, str] = field(default_factory=dict)
    step: int | None = None
    max_steps: int | None = None
    loss: float | None = None
    error: str | None = None
    reason: str | None = None  # why "crashed"
    active_s: float | None = None  # time spent running, summed over attempts (see active_seconds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_pid(run_dir: str | Path) -> int | None:
    try:
        return int((Path(run_dir) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    if pid <= 0:
        return False  # os.kill(0, ...) would signal our own process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def is_stuck_pipeline(status: RunStatus) -> bool:
    """A run reported crashed whose process is alive and is this run's pipeline: it can
    still be cancelled, not resumed. A process that took over a dead run's pid started
    after the run did, so the process must have started no later than the latest attempt
    (its start time from /proc; without /proc nothing can be told, and the answer is no)."""
    if status.status != "crashed" or not status.alive or status.pid is None or status.started_at is None:
        return False
    started = process_start_time(status.pid)
    return started is not None and started <= status.started_at + 1.0


def process_start_time(pid: int) -> float | None:
    """When a process started (epoch seconds), from /proc; None where that cannot be read."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def active_seconds(events: Sequence[Any], now: float | None = None) -> float | None:
    """How long a run has been running, summed over its attempts: each from its
    run_started to its run_finished, or to its last event when it crashed, or to ``now``
    for the live last one. The gap between a cancel and a resume does not count."""
    total, start, last = 0.0, None, None
    for event in events:
        if event.type == "run_started":
            if start is not None:  # the previous attempt crashed: it ran until its last event
                total += (last if last is not None else start) - start
            start = event.ts
        elif event.type == "run_finished" and start is not None:
            total, start = total + event.ts - start, None
        last = event.ts
    if start is not None:
        total += (now if now is not None else last) - start
    return total if last is not None and any(e.type == "run_started" for e in events) else None


def run_status(run_dir: str | Path, now: float | None = None) -> RunStatus:
    """What the event log, the pid file and the process say about a run."""
    run_dir = Path(run_dir)
    events = read_events(run_dir / EVENTS_FILE)
    pid = read_pid(run_dir)
    alive = pid_alive(pid) if pid is not None else False
    info = RunStatus(run_id=run_dir.name, run_dir=str(run_dir), status="crashed", alive=alive, pid=pid)
    # Only the latest attempt counts: a resume starts with a new run_started.
    start = max((i for i, e in enumerate(events) if e.type == "run_started"), default=None)
    if events:
        info.last_event_at = events[-1].ts
    if start is None:
        started_file = (run_dir / PID_FILE).stat().st_mtime if (run_dir / PID_FILE).exists() else None
        info.started_at = started_file
        if alive:
            info.status = "running"  # the process is starting up and has not written yet
        else:
            info.reason = "the pipeline never started" if pid is not None else "no pipeline was started"
        return info
    first = events[start]
    info.started_at = first.ts
    info.stages = list(first.data.get("stages") or [])
    heartbeat_s = float(first.data.get("heartbeat_s") or DEFAULT_HEARTBEAT_S)
    for event in events[start:]:
        if event.type == "stage_started":
            info.stage = event.stage
            info.stage_status[event.stage or "?"] = "running"
        elif event.type == "stage_finished":
            info.stage_status[event.stage or "?"] = event.data.get("status", "finished")
        elif event.type == "metric" and event.data.get("step") is not None:
            info.step = event.data.get("step")
            info.max_steps = event.data.get("max_steps")
            info.loss = event.data.get("loss")
        elif event.type == "error" and not info.error:
            info.error = event.data.get("message")
        elif event.type == "run_finished":
            info.status = event.data.get("status", "finished")
            info.finished_at = event.ts
            info.error = event.data.get("error") or info.error
            info.active_s = active_seconds(events)
            return info
    if info.step is None:  # a resume that has not logged yet: show the step it had reached
        steps = [e for e in events if e.type == "metric" and e.data.get("step") is not None]
        if steps:
            info.step, info.max_steps, info.loss = (steps[-1].data.get(k) for k in ("step", "max_steps", "loss"))
    now = time.time() if now is None else now
    silence = now - (info.last_event_at or info.started_at or now)
    if not alive:
        info.reason = f"process {pid} is gone without a run_finished event"
    elif silence > stale_after(heartbeat_s):
        info.reason = f"no heartbeat for {silence:.0f} s (process {pid} is alive but stuck)"
    else:
        info.status = "running"
    info.active_s = active_seconds(events, now if info.status == "running" else None)
    return info


def is_run_dir(path: str | Path) -> bool:
    """A run folder holds its frozen config (written first) or its event log."""
    path = Path(path)
    return path.is_dir() and ((path / CONFIG_FILE).is_file() or (path / EVENTS_FILE).is_file())


def run_folders(runs_dir: str | Path) -> list[Path]:
    """Run folders under ``runs_dir``, newest first (ids start with the UTC start time)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted((p for p in runs_dir.iterdir() if is_run_dir(p)), key=lambda p: p.name, reverse=True)


def list_runs(runs_dir: str | Path) -> list[RunStatus]:
    """Every run folder under ``runs_dir``, newest first."""
    return [run_status(p) for p in run_folders(runs_dir)]


def resolve_run(runs_dir: str | Path, ref: str | Path | None) -> Path:
    """The one way every command finds a run: a run folder's path, an id under ``runs_dir``,
    a unique id prefix, or "latest"/"last"/None for the newest."""
    runs_dir = Path(runs_dir)
    text = str(ref) if ref is not None else ""
    path = Path(text).expanduser()
    if text and path.is_dir():
        if is_run_dir(path):
            return path.resolve()
        raise R1Error(f"{text} is a folder but not a run (no {CONFIG_FILE} or {EVENTS_FILE} in it); "
                    f"pass a run id or a folder that `r1tui run` made")
    runs = run_folders(runs_dir)
    if not runs:
        raise R1Error(f"no runs in {runs_dir}; start one with `r1tui run` (or pass --config for another runs.dir)")
    if text in ("", "latest", "last"):
        return runs[0].resolve()
    matches = [p for p in runs if p.name == text] or [p for p in runs if p.name.startswith(text)]
    if len(matches) == 1:
        return matches[0].resolve()
    if not matches:
        known = ", ".join(p.name for p in runs[:3]) + (", …" if len(runs) > 3 else "")
        raise R1Error(f"no run {text!r} in {runs_dir} (newest: {known}); `r1tui runs` lists them all")
    raise R1Error(f"{text!r} matches {len(matches)} runs ({', '.join(p.name for p in matches[:3])}…); "
                  f"give more of the id")


# ---------------------------------------------------------------- cancelling


def _group_members(leader: int) -> set[int]:
    """Live processes in the process group the run's leader started (its own session)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == leader and pid_alive(int(entry.name)):
                    members.add(int(entry.name))
    return members


def cancel_run(run_dir: str | Path, wait: float = 0.0) -> RunStatus:
    """Ask a running pipeline to stop (SIGTERM): it checkpoints, then writes cancelled.

    With ``wait`` > 0, waits up to that many seconds for the run to finish.
    """
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    if status.pid is None or not (status.status == "running" or is_stuck_pipeline(status)):
        raise R1Error(f"run {run_dir.name} is not running (status: {status.status}); nothing to cancel")
    workers = _group_members(status.pid) - {status.pid}
    try:
        if workers:
            # --processes N: the pid is accelerate's launcher, which on SIGTERM gives its
            # workers 30 s before SIGKILL; signal the workers themselves so each rank
            # checkpoints at its own pace and the launcher ends when they do.
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGTERM)
        else:
            os.kill(status.pid, signal.SIGTERM)
    except ProcessLookupError:
        return run_status(run_dir)
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline:
        status = run_status(run_dir)
        if status.status != "running" and not is_stuck_pipeline(status):
            return status
        time.sleep(0.2)
    return run_status(run_dir)

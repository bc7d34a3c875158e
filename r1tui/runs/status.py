"""A run's status for the command line: the one reducer (``r1tui.runs.reducer``) over its
whole log, plus whether a writer still holds it.

Status of a run:

- ``running``   a writer holds the run and the log moved recently (heartbeats)
- ``finished`` / ``failed`` / ``cancelled``  the last ``run_finished`` says so
- ``crashed``   no ``run_finished`` and no writer holds the run, or the log went silent
                far past its heartbeat while one does (stuck: cancel it, then resume)

Whether a writer holds the run comes from the OS lock (``r1tui.runs.lock``); runs made
before the lock existed fall back to their ``pid`` file and the process table.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.runs.events import read_events
from r1tui.runs.layout import RunLayout, run_folders
from r1tui.runs.lock import busy, has_lock_file, holder
from r1tui.runs.reducer import DEFAULT_HEARTBEAT_S, RunState


def heartbeat_seconds() -> float:
    """How often a running pipeline writes a heartbeat (R1TUI_HEARTBEAT_S overrides)."""
    try:
        return max(0.2, float(os.environ.get("R1TUI_HEARTBEAT_S", DEFAULT_HEARTBEAT_S)))
    except ValueError:
        return DEFAULT_HEARTBEAT_S


@dataclass
class RunStatus:
    run_id: str
    run_dir: str
    status: str  # running | finished | failed | cancelled | crashed
    alive: bool  # a writer holds the run
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
    active_s: float | None = None  # time spent running, summed over attempts
    writer: str | None = None  # who holds the run now ("pid 123 (r1tui export, since …)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_pid(layout: RunLayout) -> int | None:
    try:
        return int(layout.pid.read_text().strip())
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


def process_start_time(pid: int) -> float | None:
    """When a process started (epoch seconds), from /proc; None where that cannot be read."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def writer_alive(layout: RunLayout) -> tuple[bool, str | None]:
    """(a writer holds the run, who) — from the lock, else from the pid file for old runs."""
    if has_lock_file(layout):
        who = holder(layout)
        return who is not None, who.describe() if who is not None else None
    pid = read_pid(layout)
    alive = pid is not None and pid_alive(pid)
    return alive, f"pid {pid}" if alive else None


def fold_run(layout: RunLayout, now: float | None = None) -> tuple[RunState, bool, str | None]:
    """(the run's whole log folded, whether a writer holds it, who): what a status and a
    crash diagnosis (``r1tui.runs.diagnosis``) are read from."""
    state = RunState()
    state.apply_all(read_events(layout.events))
    alive, who = writer_alive(layout)
    state.set_process_alive(alive, time.time() if now is None else now)
    return state, alive, who


def run_status(run_dir: str | Path | RunLayout, now: float | None = None) -> RunStatus:
    """What the event log and the run's lock say about a run."""
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
    now = time.time() if now is None else now
    state, alive, who = fold_run(layout, now)
    pid = read_pid(layout)
    info = RunStatus(run_id=layout.run_id, run_dir=str(layout.root), status="crashed", alive=alive, pid=pid,
                     last_event_at=state.last_ts, writer=who)
    if state.attempt_started_ts is None:
        info.started_at = layout.pid.stat().st_mtime if layout.pid.exists() else None
        if alive:
            info.status = "running"  # the process is starting up and has not written yet
        else:
            info.reason = "the pipeline never started" if pid is not None else "no pipeline was started"
        return info
    info.started_at = state.attempt_started_ts
    info.stages = list(state.planned_stages)
    info.stage = state.current_stage
    info.stage_status = {name: (state.stage_status(name) if status == "running" else status)
                         for name, status in state.attempt_stages.items()}
    metric = state.last_metric
    info.step = int(metric["step"]) if metric.get("step") is not None else None
    info.max_steps = int(metric["max_steps"]) if metric.get("max_steps") is not None else None
    info.loss = metric.get("loss")
    info.status = state.status
    info.finished_at = state.finished_ts
    info.error = state.finished_error or state.attempt_error
    if not state.finished_status and state.stuck:
        info.reason = f"no heartbeat for {state.silence_s(now):.0f} s (process {pid} is alive but stuck)"
    elif not state.finished_status and not alive:
        info.reason = f"process {pid} is gone without a run_finished event"
    info.active_s = state.elapsed(now)
    return info


def refuse_if_running(layout: RunLayout, doing: str) -> None:
    """A command that writes into a run must not race the process writing it now: refused
    in one line naming that process (as the lock itself names it), before anything is written."""
    status = run_status(layout)
    if status.status != "running":
        return
    if status.writer and has_lock_file(layout):
        raise busy(layout, status.writer)
    raise R1Error(f"run {layout.run_id} is still running (pid {status.pid}); {doing} when it has "
                  f"finished, or stop it first with `r1tui cancel {layout.run_id}`")


def is_stuck_pipeline(status: RunStatus) -> bool:
    """A run reported crashed whose writer is alive: it can still be cancelled, not resumed.
    For runs without a lock file (older runs) the pid must also have started no later than
    the latest attempt, or it may be a new process that took over a dead run's pid."""
    if status.status != "crashed" or not status.alive or status.pid is None or status.started_at is None:
        return False
    if has_lock_file(RunLayout(Path(status.run_dir))):
        return True
    started = process_start_time(status.pid)
    return started is not None and started <= status.started_at + 1.0


def live_runs(runs_dir: str | Path) -> list[tuple[RunLayout, str]]:
    """The runs under ``runs_dir`` a writer holds now (the pipeline, or an export, eval or
    push writing into a finished run), with who: a lock probe per run, no log is read."""
    live = []
    for folder in run_folders(runs_dir):
        layout = RunLayout(folder)
        alive, who = writer_alive(layout)
        if alive:
            live.append((layout, who or "a writer"))
    return live


def list_runs(runs_dir: str | Path) -> list[RunStatus]:
    """Every run folder under ``runs_dir``, newest first."""
    return [run_status(RunLayout(p)) for p in run_folders(runs_dir)]

"""The pipeline process of one run: the registered stages, in order, for one run folder.

Started by ``r1tui.pipeline.launch.start_run`` as ``python -m r1tui.pipeline RUN_DIR
--stages ... --lock-fd N`` (detached, holding the run's lock its launcher took), or
called in-process with ``--foreground`` (it then takes the lock itself). It writes
``run_started``, a ``heartbeat`` every few seconds, each stage's events (the stages
emit their own), and ``run_finished`` with finished / failed / cancelled.

Resume is the orchestrator's one rule (``r1tui.pipeline.orchestrator``); training
continues from its latest checkpoint. SIGTERM or Ctrl-C cancels: training saves a
checkpoint first. Under ``accelerate launch`` every rank runs this; only rank 0 writes
the log and the run folder. Every rank, on every machine, also watches the run folder for
a cancel request naming the run's lock holder (``r1tui.runs.cancel.RequestWatcher``):
that is how ``r1tui cancel`` reaches a run whose lock holder is on another machine.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from r1tui.errors import R1Error, ScrubSecrets, scrub_logging
from r1tui.pipeline import registry
from r1tui.pipeline.orchestrator import context, run_stages
from r1tui.runs import cancel
from r1tui.runs.events import EventSink, EventWriter, NullWriter, StageCancelled, read_events
from r1tui.runs.files import make_private, write_text_atomic
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock, recorded
from r1tui.runs.status import heartbeat_seconds

if TYPE_CHECKING:
    from r1tui.config import Config

log = logging.getLogger(__name__)

EXIT_CODES = {"finished": 0, "failed": 1, "cancelled": 130}  # the process's exit status, by run status


class Heartbeat(threading.Thread):
    def __init__(self, events: EventSink, interval: float):
        super().__init__(name="r1tui-heartbeat", daemon=True)
        self.events, self.interval = events, interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.events.emit("heartbeat")
            except (OSError, ValueError):
                return  # the log was closed under us: the run is ending

    def stop(self) -> None:
        self._halt.set()


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _setup_logging(layout: RunLayout, detached: bool) -> logging.Handler | None:
    """Log to pipeline.log; returns the handler a foreground run adds (removed at its end)."""
    root = logging.getLogger()
    if detached:
        # stdout and stderr already go to pipeline.log
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        scrub_logging()
        return None
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level or logging.WARNING)
    file_handler = logging.FileHandler(layout.pipeline_log, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.addFilter(ScrubSecrets())
    root.addHandler(file_handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    return file_handler


def _preload_backend(config: Config, stages: Sequence[str], world_size: int = 1) -> str | None:
    """Import unsloth before anything imports transformers (it patches them)."""
    if "train" not in stages:
        return None
    from r1tui.train import resolve_backend

    backend = resolve_backend(config, world_size)
    if backend == "unsloth":
        import r1tui.train.unsloth_backend  # noqa: F401
    return backend


def run_pipeline(run_dir: str | Path | RunLayout, stages: Sequence[str] | None = None, *, resume: bool = False,
                 dataset: str | Path | None = None, detached: bool = True, lock_fd: int | None = None) -> int:
    """Run the stages for a run folder; returns 0 finished, 1 failed, 130 cancelled.

    ``stages``: steps or stage names (default: every registered stage). ``lock_fd``: the
    run's lock, taken by the launching command and passed down; without it the lock is
    taken here (and a second writer of the run is refused before anything is written).
    """
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir).resolve())
    names = registry.expand(list(stages) if stages is not None else list(registry.steps()))
    rank, world_size = _rank()
    main = rank == 0
    if detached and _private(layout):
        os.umask(0o077)  # this process writes the run: everything it makes is the owner's alone
        if main:
            make_private(layout.root)
    lock = None
    if main:
        if lock_fd is not None:  # under accelerate only the launcher has it, and holds it for the ranks
            lock = RunLock.adopt(layout, lock_fd, "r1tui pipeline") if world_size == 1 else None
        else:
            lock = RunLock(layout, "r1tui pipeline").acquire()
    try:
        return _run_locked(layout, names, resume=resume, dataset=dataset, detached=detached, rank=rank,
                           world_size=world_size)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(layout: RunLayout, names: list[str], *, resume: bool, dataset: str | Path | None, detached: bool,
                rank: int, world_size: int) -> int:
    main = rank == 0
    cancel.clear()
    handlers = cancel.install(ignore_hangup=detached)
    if main:  # a request an earlier holder left (one naming this tenure is kept: it was asked already)
        cancel.clear_request(layout, keep=recorded(layout))
    watcher = None
    if handlers:  # signals reach the main thread only: elsewhere a SIGTERM would not be ours to send
        # other ranks may start before rank 0 holds the lock: what is there already is not for them
        watcher = cancel.RequestWatcher(layout, skip_present=not main)
        watcher.start()
    if main and world_size == 1:
        write_text_atomic(layout.pid, f"{os.getpid()}\n")
    log_handler = _setup_logging(layout, detached) if main else None
    events: EventSink = EventWriter(layout.events) if main else NullWriter()
    heartbeat = None
    status, error = "failed", None
    try:
        if dataset is None and resume:
            dataset = _dataset_started_with(layout)
        backend = None
        try:  # run_started is written even when the config cannot be loaded: the failure is this run's
            config = layout.frozen_config()
            backend = _preload_backend(config, names, world_size)
        finally:
            events.emit("run_started", run_id=layout.run_id, config_path=layout.source_config() or str(layout.config),
                        pid=os.getpid(), stages=names, dry_run=False, resumed=resume,
                        heartbeat_s=heartbeat_seconds(), world_size=world_size, backend=backend,
                        dataset=str(dataset) if dataset else None)
        if main:
            heartbeat = Heartbeat(events, heartbeat_seconds())
            heartbeat.start()
        ctx = context(config, layout, events, resume=resume, dataset=Path(dataset) if dataset else None,
                      rank=rank, world_size=world_size)
        run_stages(ctx, names)
        status = "finished"
    except (StageCancelled, KeyboardInterrupt):
        status = "cancelled"
    except R1Error as exc:
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.error("%s", error)
    except Exception as exc:  # noqa: BLE001 - recorded in the log, then the run ends failed
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.error("run failed:\n%s", traceback.format_exc())
    finally:
        if watcher is not None:
            watcher.stop()
        if main:
            cancel.clear_request(layout)  # asked of this attempt, which is ending: never of the next
        if heartbeat is not None:
            heartbeat.stop()
        finished = {"status": status}
        if error:
            finished["error"] = error
        if status == "cancelled":
            finished["reason"] = cancel.reason() or "interrupted"
        if main:
            _record_exit(layout, EXIT_CODES[status])
        events.emit("run_finished", **finished)
        events.close()
        if not detached:
            cancel.restore(handlers)
        if log_handler is not None:
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()
    return EXIT_CODES[status]


def _dataset_started_with(layout: RunLayout) -> str | None:
    """A run started on an already prepared dataset resumes on the same one (its log says which)."""
    started = [e for e in read_events(layout.events) if e.type == "run_started"]
    return started[-1].data.get("dataset") if started else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1tui.pipeline",
                                     description="Run the pipeline for a run folder (started by r1tui run/train).")
    parser.add_argument("run_dir")
    parser.add_argument("--stages", default=",".join(registry.steps()))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--lock-fd", type=int, default=None, help="the run's lock, held by the launcher")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    # A crash in native code (SIGSEGV, SIGABRT in a CUDA kernel) leaves a traceback in pipeline.log.
    faulthandler.enable()
    return run_pipeline(args.run_dir, stages, resume=args.resume, dataset=args.dataset, detached=True,
                        lock_fd=args.lock_fd)


def _record_exit(layout: RunLayout, code: int) -> None:
    """exit.json: the exit code this process ends with, for the crash diagnosis
    (r1tui.runs.diagnosis); written before run_finished, so whoever reads that finds it.
    A process killed by a signal (SIGKILL, the OOM killer) writes nothing: its absence,
    with no run_finished, is the evidence."""
    try:
        write_text_atomic(layout.exit_record,
                          json.dumps({"code": code, "pid": os.getpid(), "ts": time.time()}) + "\n")
    except OSError:
        log.warning("could not record the exit status in %s", layout.exit_record)


def _private(layout: RunLayout) -> bool:
    """runs.private of the run's frozen config (true when it cannot be read: the safe side)."""
    try:
        return layout.frozen_config().runs.private
    except R1Error:
        return True

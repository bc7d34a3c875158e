"""The pipeline process: prepare → train → export → eval for one run folder.

Started by ``r1tui.runs.runner.start_run`` as ``python -m r1tui.runs.pipeline RUN_DIR
--stages ...`` (detached), or called in-process with ``--foreground``. It writes
``run_started``, a ``heartbeat`` every few seconds, each stage's events (the stage
functions emit their own), and ``run_finished`` with finished / failed / cancelled.

Resume: a stage is skipped when its artifact exists and the hash of the config
sections it depends on (recorded in ``stages.json``) did not change; training
continues from its latest checkpoint. SIGTERM or Ctrl-C cancels: training saves a
checkpoint first. Under ``accelerate launch`` every rank runs this; only rank 0
writes the log, prepares the data and runs export and eval.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.runs import cancel
from r1tui.runs.events import EVENTS_FILE, EventWriter, NullWriter, StageCancelled, stage
from r1tui.runs.runner import (
    ALL_STAGES,
    CONFIG_FILE,
    LOG_FILE,
    PID_FILE,
    heartbeat_seconds,
    write_atomic,
)

log = logging.getLogger(__name__)

STATE_FILE = "stages.json"
DATA_DIR = "data"
# Knobs that change how a run is watched, not what it computes: never a reason to redo work.
_WATCH_ONLY = {"train": {"logging_steps", "save_steps", "gpu_sample_seconds"}}


# ---------------------------------------------------------------- stage inputs


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _sections(config: Any, *names: str) -> dict[str, Any]:
    data = config.to_toml_dict()
    out = {}
    for name in names:
        section = dict(data.get(name, {}))
        for key in _WATCH_ONLY.get(name, ()):
            section.pop(key, None)
        out[name] = section
    return out


def _dataset_fingerprint(data_dir: Path) -> str:
    parts = {}
    for name in ("state.json", "dataset_info.json", "stats.json"):
        path = data_dir / name
        if path.is_file():
            parts[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _digest(parts) if parts else _digest(str(data_dir))


def prepare_inputs(config: Any) -> str:
    model = config.model
    return _digest({"data": _sections(config, "data")["data"], "tokenizer": model.tokenizer,
                    "max_seq_length": model.max_seq_length})


def train_inputs(config: Any, data_dir: Path) -> str:
    return _digest({"data": _dataset_fingerprint(data_dir), **_sections(config, "model", "lora", "train")})


def eval_inputs(config: Any, run_dir: Path) -> str:
    ggufs = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in (run_dir / "gguf").glob("*.gguf")) \
        if (run_dir / "gguf").is_dir() else []
    return _digest({"gguf": ggufs, **_sections(config, "eval")})


# ---------------------------------------------------------------- stage state


def read_state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _record(run_dir: Path, name: str, **entry: Any) -> None:
    state = read_state(run_dir)
    state[name] = entry
    write_atomic(run_dir / STATE_FILE, json.dumps(state, indent=2))


def _skip(events: Any, name: str, reason: str) -> None:
    with stage(events, name) as outputs:
        outputs["_status"] = "skipped"
        outputs["reason"] = reason


# ---------------------------------------------------------------- heartbeat


class Heartbeat(threading.Thread):
    def __init__(self, events: Any, interval: float):
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


# ---------------------------------------------------------------- the run


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _setup_logging(run_dir: Path, detached: bool) -> None:
    root = logging.getLogger()
    if detached:
        # stdout and stderr already go to pipeline.log
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        return
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level or logging.WARNING)
    file_handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))


def _preload_backend(config: Any, stages: Sequence[str], world_size: int = 1) -> str | None:
    """Import unsloth before anything imports transformers (it patches them)."""
    if "train" not in stages:
        return None
    from r1tui.train import resolve_backend

    backend = resolve_backend(config, world_size)
    if backend == "unsloth":
        import r1tui.train.unsloth_backend  # noqa: F401
    return backend


def run_pipeline(run_dir: str | Path, stages: Sequence[str] = ALL_STAGES, *, resume: bool = False,
                 dataset: str | Path | None = None, detached: bool = True) -> int:
    """Run the stages for a run folder; returns 0 finished, 1 failed, 130 cancelled."""
    from r1tui.config import load_config

    run_dir = Path(run_dir).resolve()
    stages = [s for s in ALL_STAGES if s in stages]
    rank, world_size = _rank()
    main = rank == 0
    cancel.clear()
    cancel.install(ignore_hangup=detached)
    if main and world_size == 1:
        write_atomic(run_dir / PID_FILE, f"{os.getpid()}\n")
    if main:
        _setup_logging(run_dir, detached)
    events: Any = EventWriter(run_dir / EVENTS_FILE) if main else NullWriter()
    heartbeat = None
    status, error = "failed", None
    try:
        source = (run_dir / "source").read_text().strip() if (run_dir / "source").is_file() else None
        backend = None
        try:  # run_started is written even when the config cannot be loaded: the failure is this run's
            config = load_config(run_dir / CONFIG_FILE)
            backend = _preload_backend(config, stages, world_size)
        finally:
            events.emit("run_started", run_id=run_dir.name, config_path=source or str(run_dir / CONFIG_FILE),
                        pid=os.getpid(), stages=list(stages), dry_run=False, resumed=resume,
                        heartbeat_s=heartbeat_seconds(), world_size=world_size, backend=backend,
                        dataset=str(dataset) if dataset else None)
        if main:
            heartbeat = Heartbeat(events, heartbeat_seconds())
            heartbeat.start()
        _run_stages(config, run_dir, stages, events, resume=resume, dataset=Path(dataset) if dataset else None,
                    main=main, world_size=world_size)
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
        if heartbeat is not None:
            heartbeat.stop()
        finished = {"status": status}
        if error:
            finished["error"] = error
        if status == "cancelled":
            finished["reason"] = cancel.reason() or "interrupted"
        events.emit("run_finished", **finished)
        events.close()
    return {"finished": 0, "failed": 1, "cancelled": 130}[status]


def _run_stages(config: Any, run_dir: Path, stages: Sequence[str], events: Any, *, resume: bool,
                dataset: Path | None, main: bool, world_size: int) -> None:
    if dataset is None and resume:
        # A run started on an already prepared dataset resumes on the same one.
        recorded = read_state(run_dir).get("prepare", {}).get("dataset")
        dataset = Path(recorded) if recorded else None
    data_dir = dataset.resolve() if dataset is not None else run_dir / DATA_DIR
    if "prepare" in stages:
        _prepare(config, run_dir, data_dir, events, resume=resume, external=dataset is not None, main=main,
                 world_size=world_size)
    cancel.raise_if_requested()
    if "train" in stages:
        _train(config, run_dir, data_dir, events, resume=resume)
    if not main:
        return  # export and eval run once, on rank 0
    cancel.raise_if_requested()
    if "export" in stages:
        _export(config, run_dir, events)
    cancel.raise_if_requested()
    if "eval" in stages:
        _eval(config, run_dir, events, resume=resume)


def _prepare(config: Any, run_dir: Path, data_dir: Path, events: Any, *, resume: bool, external: bool, main: bool,
             world_size: int) -> None:
    if external:
        if main:
            _skip(events, "prepare", f"using the prepared dataset {data_dir}")
            _record(run_dir, "prepare", dataset=str(data_dir), inputs=_dataset_fingerprint(data_dir), status="external")
        return
    inputs = prepare_inputs(config)
    if resume and read_state(run_dir).get("prepare", {}).get("inputs") == inputs and (data_dir / "stats.json").is_file():
        if main:
            _skip(events, "prepare", "up to date: data/ exists and the data config did not change")
        return

    def work() -> None:
        from r1tui.data.prepare import prepare_dataset

        prepare_dataset(config, data_dir, events=events)
        _record(run_dir, "prepare", inputs=inputs, status="finished")

    if world_size == 1:
        work()
        return
    import torch
    from accelerate import PartialState

    with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
        if main:
            work()


def _train(config: Any, run_dir: Path, data_dir: Path, events: Any, *, resume: bool) -> None:
    from r1tui.train import train_adapter
    from r1tui.train.trainer import ADAPTER_DIR, CHECKPOINTS_DIR

    inputs = train_inputs(config, data_dir)
    previous = read_state(run_dir).get("train", {})
    same = previous.get("inputs") == inputs
    if resume and same and previous.get("status") == "finished" and (run_dir / ADAPTER_DIR / "adapter_config.json").is_file():
        _skip(events, "train", "up to date: adapter/ exists and the model, LoRA, train and data inputs did not change")
        return
    continue_training = resume and same
    checkpoints = run_dir / CHECKPOINTS_DIR
    if resume and not same and checkpoints.exists() and _rank()[0] == 0:
        events.emit("log", stage="train", level="warning",
                    message="the data or the model/LoRA/train config changed since the checkpoints were written: "
                            "training starts over")
        shutil.rmtree(checkpoints, ignore_errors=True)
    if _rank()[0] == 0:
        _record(run_dir, "train", inputs=inputs, status="started")
    train_adapter(config, data_dir, run_dir, events=events, resume=continue_training)
    if _rank()[0] == 0:
        _record(run_dir, "train", inputs=inputs, status="finished")


def _export(config: Any, run_dir: Path, events: Any) -> None:
    from r1tui.export import export_run

    # export_run keeps its own freshness stamps: on a resume it skips what is up to date.
    export_run(config, run_dir, events)


def _eval(config: Any, run_dir: Path, events: Any, *, resume: bool) -> None:
    from r1tui.eval import evaluate_run

    inputs = eval_inputs(config, run_dir)
    if resume and read_state(run_dir).get("eval", {}).get("inputs") == inputs and (run_dir / "eval" / "results.json").is_file():
        _skip(events, "eval", "up to date: eval/results.json exists for these GGUFs and eval settings")
        return
    evaluate_run(config, run_dir, events)
    _record(run_dir, "eval", inputs=inputs, status="finished")


# ---------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r1tui.runs.pipeline",
                                     description="Run the pipeline for a run folder (started by r1tui run/train).")
    parser.add_argument("run_dir")
    parser.add_argument("--stages", default=",".join(ALL_STAGES))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    return run_pipeline(args.run_dir, stages, resume=args.resume, dataset=args.dataset, detached=True)


if __name__ == "__main__":
    raise SystemExit(main())

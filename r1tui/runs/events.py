"""The event log: the contract between the pipeline and everything that watches it.

One JSON object per line in ``runs/<id>/events.jsonl``, appended and flushed per
event by one writer. Every event has the same envelope::

    {"v": 1, "seq": 12, "ts": 1764280000.123, "type": "metric", "stage": "train", "data": {...}}

Every type and the keys its ``data`` may hold are declared in ``EVENT_SCHEMA`` below:
the writer refuses an undeclared type or key, and readers (the reducer, the dashboard's
panels, ``r1tui logs``) read only declared keys, so a reader that expects a key no
writer writes is caught by a test instead of showing a blank forever.

A reader tails the file by byte offset and leaves a partial last line for the next
read, so it is safe against a writer that is mid-line.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from r1tui.errors import scrub

EVENT_VERSION = 1
# type -> the keys its data may hold (every one optional unless a reader says otherwise)
EVENT_SCHEMA: dict[str, frozenset[str]] = {
    "run_started": frozenset({"run_id", "config_path", "pid", "stages", "dry_run", "resumed", "heartbeat_s",
                              "world_size", "backend", "dataset"}),
    "run_finished": frozenset({"status", "error", "reason"}),  # status: finished | failed | cancelled
    "stage_started": frozenset({"inputs"}),
    "stage_progress": frozenset({"completed", "total", "unit", "message", "quant"}),
    # status: finished | skipped | failed | cancelled
    "stage_finished": frozenset({"status", "duration_s", "outputs"}),
    "metric": frozenset({"step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s",
                         "samples_per_s", "elapsed_s", "eta_s", "tokens_seen", "world_size", "mean_token_accuracy",
                         "entropy", "cuda_allocated", "cuda_reserved", "cuda_peak", "cuda_peak_reserved",
                         "eval_loss"}),  # eval_loss: on the held-out rows, every train.eval_steps
    "log": frozenset({"level", "message"}),
    # kind: dataset | checkpoint | merged | gguf | parity | modelfile | card | eval_results | hub
    "artifact": frozenset({"kind", "path", "bytes", "quant", "calculator_bytes", "type_counts", "step",
                           "accuracy", "repo_id", "examples", "tokens", "chunks", "seconds"}),
    "error": frozenset({"message", "kind"}),
    "heartbeat": frozenset(),
    # the generate stage's running totals (r1tui.generate): samples done of total, accepted,
    # rejected by reason ({reason: samples}), rows kept in the traces file, requests sent
    # (retries included), tokens in and out, cost in USD (null: no prices configured)
    "generation": frozenset({"completed", "total", "accepted", "rejected", "kept", "requests", "retries",
                             "tokens_in", "tokens_out", "elapsed_s", "cost_usd", "prompts_done", "prompts_total"}),
    # several ranks, at each logging step (r1tui.train.rank_times): the wall time per step and
    # each rank's own {rank, host, steps, compute_s, data_s, tokens} per step since the last one
    "ranks": frozenset({"step", "step_s", "strategy", "ranks"}),
    "gpu": frozenset({"available", "reason", "index", "name", "memory_used", "memory_total", "utilization",
                      "memory_utilization", "temperature", "power_w"}),
}
EVENT_TYPES = frozenset(EVENT_SCHEMA)


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    ts: float = 0.0
    seq: int = 0
    v: int = EVENT_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {"v": self.v, "seq": self.seq, "ts": self.ts, "type": self.type, "stage": self.stage, "data": self.data},
            separators=(",", ":"), default=str, allow_nan=False,
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(type=raw["type"], data=raw.get("data") or {}, stage=raw.get("stage"),
                   ts=raw.get("ts", 0.0), seq=raw.get("seq", 0), v=raw.get("v", EVENT_VERSION))


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than breaking readers; and no text
    reaches the log with a secret in it (``r1tui.errors.scrub``)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class EventSink(Protocol):
    """Where a stage reports: the run's ``EventWriter``, the ``NullWriter`` outside a run, or
    a command's progress view wrapped around a writer. Every stage takes one of these."""

    def emit(self, type: str, stage: str | None = None, **data: Any) -> Any: ...

    def close(self) -> None: ...


class EventWriter:
    """Appends events to one file, one line each, flushed as written. Thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = _last_seq(self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived
        if _ends_mid_line(self.path):
            # A writer was cut off mid-line (killed, disk full): end that torn line so our
            # first event starts on a line of its own instead of being glued to it.
            self._file.write("\n")
            self._file.flush()

    def emit(self, type: str, stage: str | None = None, **data: Any) -> Event:
        if type not in EVENT_SCHEMA:
            raise ValueError(f"unknown event type {type!r}; known: {', '.join(sorted(EVENT_SCHEMA))}")
        undeclared = set(data) - EVENT_SCHEMA[type]
        if undeclared:
            raise ValueError(f"{type} event: undeclared key {sorted(undeclared)[0]!r}; declare it in EVENT_SCHEMA")
        with self._lock:
            self._seq += 1
            event = Event(type=type, data=_finite(data), stage=stage, ts=time.time(), seq=self._seq)
            self._file.write(event.to_json() + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


def _last_seq(path: Path) -> int:
    """Continue numbering after a resume: the seq of the last complete line."""
    if not path.exists():
        return 0
    last = 0
    for event in EventReader(path).read_new():
        last = event.seq
    return last


class EventReader:
    """Reads complete lines from a byte offset on; call ``read_new`` again to tail."""

    def __init__(self, path: str | Path, offset: int = 0):
        self.path = Path(path)
        self.offset = offset
        self.bad_lines = 0

    def read_new(self, max_bytes: int | None = None) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read() if max_bytes is None else f.read(max_bytes)
                if max_bytes is not None and len(chunk) == max_bytes and b"\n" not in chunk:
                    # one line longer than the chunk: read on to its end rather than stall on it
                    while (more := f.read(max_bytes)) and b"\n" not in more:
                        chunk += more
                    chunk += more
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []  # only a partial line so far
        complete = chunk[: end + 1]
        self.offset += len(complete)
        events = []
        for line in complete.splitlines():
            if not line.strip():
                continue
            try:
                events.append(Event.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1  # a torn or foreign line: skip it, keep reading
        return events

    def follow(self, poll_s: float = 0.25, stop: threading.Event | None = None) -> Iterator[Event]:
        """Yield every event, then keep yielding new ones until ``stop`` is set."""
        while stop is None or not stop.is_set():
            events = self.read_new()
            yield from events
            if not events:
                time.sleep(poll_s)


def read_events(path: str | Path) -> list[Event]:
    return EventReader(path).read_new()


class NullWriter:
    """Stands in for an EventWriter when a stage runs outside a run (no log wanted)."""

    path = None

    def emit(self, type: str, stage: str | None = None, **data: Any) -> None:
        return None

    def close(self) -> None:
        return None


@contextlib.contextmanager
def stage(events: EventSink | None, name: str, **inputs: Any) -> Iterator[dict[str, Any]]:
    """Emit stage_started, then stage_finished with duration and status.

    Yields a dict the stage fills with its outputs (paths, sizes). An exception marks
    the stage failed (and is re-raised); a KeyboardInterrupt or ``StageCancelled``
    marks it cancelled.
    """
    events = events or NullWriter()
    outputs: dict[str, Any] = {}
    events.emit("stage_started", stage=name, inputs=inputs)
    started = time.monotonic()
    status = "failed"
    try:
        yield outputs
        status = outputs.pop("_status", "finished")
    except (KeyboardInterrupt, StageCancelled):
        status = "cancelled"
        raise
    except Exception as exc:
        events.emit("error", stage=name, message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    kind=type(exc).__name__)
        raise
    finally:
        events.emit("stage_finished", stage=name, status=status,
                    duration_s=round(time.monotonic() - started, 3), outputs=outputs)


class StageCancelled(Exception):
    """Raised inside a stage when the run was asked to stop (r1tui cancel)."""

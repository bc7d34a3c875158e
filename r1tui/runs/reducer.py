"""The one reducer over a run's event log: what everyone knows about a run.

``RunState.apply(event)`` is a deterministic function of the event sequence that does
no I/O, so tests drive it with plain lists of events, ``r1tui runs`` / ``logs`` /
``cancel`` / resume fold a whole log through it (``r1tui.runs.status``), and the
dashboard folds batches read from ``events.jsonl``. Run status, stage states, elapsed
time and stuck detection are decided here and nowhere else; the one fact from outside
the log, whether a writer still holds the run, comes in through ``set_process_alive``. It updates the state in
place (the dashboard folds thousands of events per second) and bumps ``version`` so
views can skip redrawing what did not change. Histories are capped: a week-long run
keeps the last ``HISTORY`` points of each series, never an ever-growing list.

Nothing here imports Textual or Rich: the reducer is plain Python.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from r1tui.quants import QUANT_TYPES
from r1tui.runs.events import Event

HISTORY = 2000  # points kept per plotted series
LOG_LINES = 500  # log lines kept for the pipeline panel
RANK_HISTORY = 120  # logging steps of each rank's own time kept (a sparkline)
FINAL_STATUSES = frozenset({"finished", "failed", "cancelled"})
DEFAULT_HEARTBEAT_S = 10.0
_QUANT_IN_TEXT = re.compile(r"\b(" + "|".join(map(re.escape, (*QUANT_TYPES, "BF16"))) + r")\b")


def stale_after(heartbeat_s: float | None) -> float:
    """A log silent for this long, from a live writer, means the run is stuck."""
    return max(60.0, 6 * (heartbeat_s or DEFAULT_HEARTBEAT_S))


@dataclass
class Progress:
    completed: float = 0
    total: float | None = None
    unit: str = ""
    message: str = ""
    ts: float = 0.0

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.completed / self.total))


@dataclass
class StageState:
    name: str
    status: str = "pending"  # pending | running | finished | skipped | failed | cancelled
    started_ts: float | None = None
    finished_ts: float | None = None
    duration_s: float | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    progress: Progress | None = None
    # The first progress event of the stage, to derive a rate and an ETA from the log.
    progress_first: Progress | None = None
    error: str | None = None

    def elapsed(self, now: float) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        if self.started_ts is None:
            return None
        return max(0.0, now - self.started_ts)

    def eta_s(self) -> float | None:
        """Seconds left at the rate seen so far in this stage's progress events."""
        first, last = self.progress_first, self.progress
        if self.status != "running" or first is None or last is None or not last.total:
            return None
        done, dt = last.completed - first.completed, last.ts - first.ts
        if done <= 0 or dt <= 0:
            return None
        return max(0.0, (last.total - last.completed) * dt / done)


@dataclass
class Series:
    """One plotted quantity: (x, y) pairs, the oldest dropped past ``HISTORY``."""

    xs: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    ys: deque = field(default_factory=lambda: deque(maxlen=HISTORY))

    def add(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)

    def __len__(self) -> int:
        return len(self.ys)

    @property
    def last(self) -> float | None:
        return self.ys[-1] if self.ys else None


@dataclass
class GpuState:
    available: bool | None = None  # None: no sample seen yet
    name: str = ""
    memory_used: float | None = None
    memory_total: float | None = None
    utilization: float | None = None
    temperature: float | None = None
    power: float | None = None  # watts drawn
    reason: str = ""  # why there is no GPU, when a sample says so
    ts: float = 0.0
    memory_history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    utilization_history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))

    def apply_sample(self, data: dict[str, Any], ts: float) -> None:
        self.ts = ts
        self.available = bool(data.get("available"))
        if not self.available:
            self.reason = str(data.get("reason") or "")
            return
        self.name = str(data.get("name") or self.name)
        self.memory_used = _number(data.get("memory_used"))
        self.memory_total = _number(data.get("memory_total")) or self.memory_total
        self.utilization = _number(data.get("utilization"))
        self.temperature = _number(data.get("temperature"))
        self.power = _number(data.get("power_w"))
        if self.memory_used is not None:
            self.memory_history.append(self.memory_used)
        if self.utilization is not None:
            self.utilization_history.append(self.utilization)


@dataclass
class GenerationState:
    """The generate stage's running totals (``generation`` events), and the rates between
    the first and the latest of them."""

    completed: float = 0
    total: float | None = None
    accepted: float = 0
    kept: float | None = None  # traces written after duplicates and the keep policy
    rejected: dict[str, float] = field(default_factory=dict)  # reason -> count
    requests: float = 0
    retries: float = 0
    tokens_in: float = 0
    tokens_out: float = 0
    elapsed_s: float | None = None
    cost_usd: float | None = None
    prompts_done: float | None = None
    prompts_total: float | None = None
    first: tuple[float, float, float, float] | None = None  # (ts, completed, requests, tokens_out)
    ts: float = 0.0

    @property
    def seen(self) -> bool:
        return self.ts > 0

    def _rate(self, index: int, now_value: float) -> float | None:
        if self.first is None or self.ts <= self.first[0]:
            return None
        return max(0.0, now_value - self.first[index]) / (self.ts - self.first[0])

    @property
    def samples_per_s(self) -> float | None:
        return self._rate(1, self.completed)

    @property
    def requests_per_s(self) -> float | None:
        return self._rate(2, self.requests)

    @property
    def tokens_out_per_s(self) -> float | None:
        return self._rate(3, self.tokens_out)

    def eta_s(self) -> float | None:
        rate = self.samples_per_s
        if not rate or self.total is None:
            return None
        return max(0.0, (self.total - self.completed) / rate)


SLOW_RANK_RATIO = 1.25  # a rank whose own time per step is this many times the fastest one's stands out


@dataclass(frozen=True)
class RankTime:
    """One rank's own time per step over a logging window (``r1tui.train.rank_times``)."""

    rank: int
    host: str
    compute_s: float
    data_s: float
    tokens: float

    @property
    def own_s(self) -> float:
        return self.compute_s + self.data_s


@dataclass
class RankTimes:
    """The latest ``ranks`` event: every rank's own time per step at one logging step, and
    each rank's history of it (for a sparkline)."""

    step: int | None = None
    step_s: float | None = None  # the wall time of a step: the same on every rank
    strategy: str | None = None
    ranks: list[RankTime] = field(default_factory=list)
    history: dict[int, deque[float]] = field(default_factory=dict)

    def ratios(self) -> dict[int, float]:
        """Each rank's own time over the fastest rank's (1.0 for the fastest)."""
        fastest = min((r.own_s for r in self.ranks), default=0.0)
        return {r.rank: (r.own_s / fastest if fastest > 0 else 1.0) for r in self.ranks}

    def slow_ranks(self) -> list[int]:
        """The ranks the others wait for: at least ``SLOW_RANK_RATIO`` times the fastest."""
        return [rank for rank, ratio in self.ratios().items() if ratio >= SLOW_RANK_RATIO]


@dataclass
class LogLine:
    ts: float
    level: str
    stage: str | None
    message: str


class RunState:
    """Everything the panels show about one run, folded from its events."""

    @property
    def gpu(self) -> GpuState:
        """The first device (the one the gauge and history show); empty before any sample."""
        return self.gpus[min(self.gpus)] if self.gpus else GpuState()

    def __init__(self, groups: Mapping[str, Iterable[str]] | None = None) -> None:
        # A planned step that runs as several stages (export: merge, gguf, quantize,
        # parity), from the stage registry; logs record the steps they were started with.
        self.groups = {name: tuple(parts) for name, parts in (groups or {}).items()}
        self.run_id: str | None = None
        self.config_path: str | None = None
        self.pid: int | None = None
        self.planned_stages: list[str] = []  # stage names, groups expanded
        self.backend: str | None = None
        self.dry_run = False
        self.started_ts: float | None = None
        self.attempt_started_ts: float | None = None  # the latest run_started (a resume starts one)
        self.earlier_attempts_s = 0.0  # time the earlier attempts ran (gaps between them not counted)
        self._previous_ts: float | None = None
        self.finished_ts: float | None = None
        self.finished_status: str | None = None
        self.error: str | None = None
        self.last_ts: float | None = None
        self.process_alive: bool | None = None  # None: not checked (or no process to check)
        self.heartbeat_s: float | None = None  # how often the pipeline promised a heartbeat
        self.stuck = False  # the process lives but the log went silent far past its heartbeat
        self.stages: dict[str, StageState] = {}  # every stage seen or planned, in order of appearance
        self.current_stage: str | None = None  # the stage the latest attempt is in, or last ran
        self.attempt_stages: dict[str, str] = {}  # stage -> status, in the latest attempt only
        self.attempt_error: str | None = None  # the first error of the latest attempt
        self.finished_error: str | None = None  # what its run_finished said went wrong
        self.metrics: dict[str, Series] = {}
        self.last_metric: dict[str, Any] = {}
        # (step, "NaN" | "inf" | "NaN or inf") while the latest logged loss is not a finite
        # number (the writer logs both as null); None once a finite loss follows (r1tui.runs.alerts)
        self.nonfinite_loss: tuple[float | None, str] | None = None
        self.checkpoints: list[dict[str, Any]] = []
        # one state per device index: under --processes N every rank's GPU reports
        self.gpus: dict[int, GpuState] = {}
        self.rank_times = RankTimes()  # several ranks: each one's own time per step
        self.generation = GenerationState()
        self.logs: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.quant_progress: dict[str, Progress] = {}
        # quantize runs its quant types one after another under one stage progress
        # (completed/total over all of them); these split it per quant type.
        self.quant_order: list[str] = []
        self._quant_segment: tuple[str, float, float] | None = None  # (quant, start, length)
        self._quants_left = 0
        self.artifacts: list[dict[str, Any]] = []
        self.events_seen = 0
        self.version = 0

    # -- the reducer ---------------------------------------------------------
    def apply(self, event: Event) -> None:
        self.events_seen += 1
        self.version += 1
        self._previous_ts = self.last_ts
        if event.ts:
            self.last_ts = event.ts if self.last_ts is None else max(self.last_ts, event.ts)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def set_process_alive(self, alive: bool | None, now: float | None = None) -> None:
        """Fold in whether a writer holds the run (and, given ``now``, whether the log is stale)."""
        stuck = False
        if alive and now is not None and self.started_ts is not None and not self.finished_status:
            last = self.last_ts or self.attempt_started_ts or now
            stuck = now - last > stale_after(self.heartbeat_s)
        if alive != self.process_alive or stuck != self.stuck:
            self.process_alive, self.stuck = alive, stuck
            self.version += 1

    # -- derived -------------------------------------------------------------
    @property
    def status(self) -> str:
        """none | running | finished | failed | cancelled | crashed."""
        if self.finished_status:
            return self.finished_status
        if self.started_ts is None:
            return "none"
        if self.process_alive is False or self.stuck:
            return "crashed"
        return "running"

    @property
    def is_live(self) -> bool:
        return self.status == "running"

    def elapsed(self, now: float) -> float | None:
        """Time spent running, summed over attempts (the gap between a cancel and a resume
        not counted); ``r1tui runs`` shows the same figure (``r1tui.runs.status``)."""
        if self.attempt_started_ts is None:
            return None
        end = self.finished_ts
        if end is None and self.status == "crashed":
            end = self.last_ts
        return self.earlier_attempts_s + max(0.0, (end if end is not None else now) - self.attempt_started_ts)

    def silence_s(self, now: float) -> float | None:
        """Seconds since the log last moved."""
        last = self.last_ts or self.attempt_started_ts
        return None if last is None else max(0.0, now - last)

    def stage(self, name: str) -> StageState:
        """A stage's state (a pending one for a stage not seen yet)."""
        return self.stages.get(name) or StageState(name)

    def stage_status(self, name: str) -> str:
        """A stage's status, with a running stage whose writer is gone shown as crashed: the
        run crashed, failed or was cancelled, or a later command (``r1tui export`` on a
        finished run) died without finishing the stage."""
        stage = self.stage(name)
        if stage.status != "running":
            return stage.status
        if self.status in ("crashed", "failed", "cancelled"):
            return "crashed" if self.status == "crashed" else self.status
        if self.process_alive is False:
            return "crashed"
        return stage.status

    def series(self, name: str) -> Series:
        return self.metrics.get(name) or Series()


def _number(value: Any) -> float | None:
    """A finite number, else None: json.loads accepts NaN and Infinity, and a writer may
    log a string; neither may reach a plot or an int()."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _stage(state: RunState, event: Event) -> StageState | None:
    name = event.stage
    if not name:
        return None
    if name not in state.stages:
        state.stages[name] = StageState(name)
    return state.stages[name]


def _run_started(state: RunState, event: Event) -> None:
    data = event.data
    state.run_id = data.get("run_id") or state.run_id
    state.config_path = data.get("config_path") or state.config_path
    state.pid = data.get("pid") if isinstance(data.get("pid"), int) else state.pid
    if data.get("stages"):
        state.planned_stages = list(dict.fromkeys(
            name for step in data["stages"] for name in state.groups.get(step, (step,))))
        for name in state.planned_stages:
            state.stages.setdefault(name, StageState(name))
    state.backend = data.get("backend") or state.backend
    state.dry_run = bool(data.get("dry_run", False))
    state.heartbeat_s = _number(data.get("heartbeat_s")) or state.heartbeat_s
    if state.started_ts is None:
        state.started_ts = event.ts
    if state.attempt_started_ts is not None:  # a resume: the attempt before ran until it finished or went silent
        end = state.finished_ts if state.finished_ts is not None else state._previous_ts
        state.earlier_attempts_s += max(0.0, (end or state.attempt_started_ts) - state.attempt_started_ts)
    state.attempt_started_ts = event.ts
    # A resumed run starts again: it is live until its next run_finished.
    state.finished_status = None
    state.finished_ts = None
    state.error = None
    state.current_stage = None
    state.attempt_stages = {}
    state.attempt_error = None
    state.finished_error = None


def _run_finished(state: RunState, event: Event) -> None:
    state.finished_status = str(event.data.get("status") or "finished")
    state.finished_ts = event.ts
    state.finished_error = event.data.get("error") or None
    state.error = state.finished_error or state.error


def _stage_started(state: RunState, event: Event) -> None:
    stage = _stage(state, event)
    if stage is None:
        return
    stage.status = "running"
    state.current_stage = stage.name
    state.attempt_stages[stage.name] = "running"
    stage.started_ts = event.ts
    stage.finished_ts = None
    stage.duration_s = None
    stage.inputs = dict(event.data.get("inputs") or {})
    stage.progress = stage.progress_first = None
    stage.error = None
    if stage.name == "quantize":
        state.quant_progress.clear()
        state.quant_order = [str(q) for q in stage.inputs.get("quant_types") or []]
        state._quant_segment = None
        state._quants_left = len(state.quant_order)


def _stage_finished(state: RunState, event: Event) -> None:
    stage = _stage(state, event)
    if stage is None:
        return
    stage.status = str(event.data.get("status") or "finished")
    state.attempt_stages[stage.name] = stage.status
    stage.finished_ts = event.ts
    duration = _number(event.data.get("duration_s"))
    if duration is None and stage.started_ts is not None:
        duration = event.ts - stage.started_ts
    stage.duration_s = duration
    stage.outputs = dict(event.data.get("outputs") or {})
    if stage.status == "finished" and stage.progress is not None and stage.progress.total:
        stage.progress.completed = stage.progress.total
    if stage.name == "quantize" and stage.status == "finished":
        for progress in state.quant_progress.values():
            if progress.total:
                progress.completed = progress.total


def _stage_progress(state: RunState, event: Event) -> None:
    stage = _stage(state, event)
    if stage is None:
        return
    data = event.data
    progress = Progress(
        completed=_number(data.get("completed")) or 0,
        total=_number(data.get("total")),
        unit=str(data.get("unit") or ""),
        message=str(data.get("message") or ""),
        ts=event.ts,
    )
    if stage.status == "pending":
        stage.status = "running"
        stage.started_ts = stage.started_ts or event.ts
    if stage.progress_first is None or (stage.progress and progress.completed < stage.progress.completed):
        stage.progress_first = progress
    stage.progress = progress
    if stage.name == "quantize":
        _quant_progress(state, data, progress)


def _quant_progress(state: RunState, data: dict[str, Any], progress: Progress) -> None:
    quant = data.get("quant")
    if not quant and progress.unit not in ("tensor", ""):  # the importance matrix's chunks, the report's tokens
        return
    if not quant:
        match = _QUANT_IN_TEXT.search(progress.message)
        quant = match.group(1) if match else None
    if quant:  # the event names its quant type: take it as it is
        state.quant_progress[str(quant)] = progress
        return
    current = next((q for q in state.quant_order
                    if not (state.quant_progress.get(q) and state.quant_progress[q].fraction == 1.0)), None)
    if current is None or not progress.total:
        return
    segment = state._quant_segment
    if segment is None or segment[0] != current:
        previous = state.quant_progress.get(segment[0]) if segment else None
        start = (segment[1] + previous.completed) if segment and previous else 0.0
        segment = state._quant_segment = (current, start, progress.total / max(1, state._quants_left))
    _, start, length = segment
    state.quant_progress[current] = Progress(completed=min(length, progress.completed - start), total=length,
                                             unit=progress.unit, message=progress.message, ts=progress.ts)


def _metric(state: RunState, event: Event) -> None:
    data = event.data
    step = _number(data.get("step"))
    # numbers only (ints kept as ints for display): a NaN or a string is dropped, not drawn
    state.last_metric.update({k: v if isinstance(v, int) else n for k, v in data.items()
                              if (n := _number(v)) is not None})
    if "loss" in data:
        state.nonfinite_loss = None if _number(data["loss"]) is not None else (step, _nonfinite_kind(data["loss"]))
    if step is None:
        return
    for key, value in data.items():
        if key == "step":
            continue
        number = _number(value)
        if number is None:
            continue
        series = state.metrics.get(key)
        if series is None:
            series = state.metrics[key] = Series()
        series.add(step, number)


def _nonfinite_kind(value: Any) -> str:
    """What a loss that is not a finite number was: JSON's NaN/Infinity, or null (how the
    event writer records both)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return "NaN or inf"


def _artifact(state: RunState, event: Event) -> None:
    artifact = dict(event.data)
    artifact.setdefault("stage", event.stage)
    state.artifacts.append(artifact)
    stage = _stage(state, event)
    if stage is not None:
        stage.artifacts.append(artifact)
    if artifact.get("kind") == "checkpoint":
        state.checkpoints.append(artifact)
    if event.stage == "quantize" and artifact.get("quant"):
        quant = str(artifact["quant"])
        seen = state.quant_progress.get(quant)
        if seen is None:  # already fresh on disk: quantize skipped it
            state._quants_left = max(1, state._quants_left - 1)
        total = seen.total if seen is not None and seen.total else 1
        state.quant_progress[quant] = Progress(completed=total, total=total, ts=event.ts)


def _log(state: RunState, event: Event) -> None:
    state.logs.append(LogLine(event.ts, str(event.data.get("level") or "info"), event.stage,
                              str(event.data.get("message") or "")))


def _error(state: RunState, event: Event) -> None:
    message = str(event.data.get("message") or "error")
    state.error = message
    state.attempt_error = state.attempt_error or message
    state.logs.append(LogLine(event.ts, "error", event.stage, message))
    stage = _stage(state, event)
    if stage is not None:
        stage.error = message


def _gpu(state: RunState, event: Event) -> None:
    index = event.data.get("index")
    index = index if isinstance(index, int) else 0
    state.gpus.setdefault(index, GpuState()).apply_sample(event.data, event.ts)


def _ranks(state: RunState, event: Event) -> None:
    data, times = event.data, state.rank_times
    ranks = []
    for entry in data.get("ranks") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("rank"), int):
            continue
        numbers = [_number(entry.get(key)) for key in ("compute_s", "data_s", "tokens")]
        if any(n is None for n in numbers):
            continue
        ranks.append(RankTime(entry["rank"], str(entry.get("host") or "?"), *numbers))
    if not ranks:
        return
    step = data.get("step")
    times.step = step if isinstance(step, int) else None
    times.step_s = _number(data.get("step_s"))
    times.strategy = data.get("strategy") if isinstance(data.get("strategy"), str) else None
    times.ranks = sorted(ranks, key=lambda r: r.rank)
    for rank in ranks:
        times.history.setdefault(rank.rank, deque(maxlen=RANK_HISTORY)).append(rank.own_s)


def _generation(state: RunState, event: Event) -> None:
    data, gen = event.data, state.generation
    for key in ("completed", "accepted", "requests", "retries", "tokens_in", "tokens_out"):
        number = _number(data.get(key))
        if number is not None:
            setattr(gen, key, number)
    for key in ("total", "kept", "elapsed_s", "cost_usd", "prompts_done", "prompts_total"):
        number = _number(data.get(key))
        if number is not None:
            setattr(gen, key, number)
    rejected = data.get("rejected")
    if isinstance(rejected, dict):
        gen.rejected = {str(k): n for k, v in rejected.items() if (n := _number(v)) is not None}
    if gen.first is None or gen.completed < gen.first[1]:  # the first event, or a new attempt
        gen.first = (event.ts, gen.completed, gen.requests, gen.tokens_out)
    gen.ts = event.ts


_HANDLERS = {
    "run_started": _run_started,
    "run_finished": _run_finished,
    "stage_started": _stage_started,
    "stage_finished": _stage_finished,
    "stage_progress": _stage_progress,
    "metric": _metric,
    "artifact": _artifact,
    "log": _log,
    "error": _error,
    "gpu": _gpu,
    "ranks": _ranks,
    "generation": _generation,
}


def reduce(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold events into a state (a new one unless given)."""
    state = state if state is not None else RunState()
    state.apply_all(events)
    return state

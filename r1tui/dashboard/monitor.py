"""What the Overview and Resources panels show about this machine, and the training figures
the Overview computes from the run's state. Plain Python: no Textual, no Rich.

One ``ResourceMonitor`` per app, shared by both panels: a thread worker calls ``sample``
(blocking: NVML, /proc, statvfs, the remaining stages' sizes) every ``SAMPLE_SECONDS``
while either panel is visible, and the UI thread folds each result in with ``apply``.
Sampling is decoupled from drawing: panels draw the latest sample and the histories.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.dashboard.charts import ema
from r1tui.host import (
    HostMemory,
    ProcessTreeSampler,
    TreeSample,
    disk_free,
    host_memory,
    process_name,
)
from r1tui.pipeline import registry
from r1tui.runs.context import StageContext
from r1tui.runs.disk import DiskOutlook, disk_outlook
from r1tui.runs.events import NullWriter
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import has_lock_file, holder
from r1tui.runs.reducer import RunState, Series
from r1tui.runs.status import pid_alive, read_pid

if TYPE_CHECKING:
    from r1tui.config import Config
    from r1tui.dryrun import DryRunReport

SAMPLE_SECONDS = 2.0
HISTORY = 120  # samples kept per series (four minutes at SAMPLE_SECONDS)
NEEDS_SECONDS = 10.0  # the remaining stages' sizes are asked for at most this often
TREND_POINTS = 20  # the loss trend compares the smoothed loss with its value this many points back
TREND_FLAT = 0.01  # a relative change below this is flat
SMOOTHING = 0.9  # the Overview's loss smoothing (the Training panel's key changes its own)
DONE = frozenset({"finished", "skipped"})


# ---------------------------------------------------------------- the training figures


@dataclass(frozen=True)
class LossTrend:
    smoothed: float  # the EMA of the loss at its latest point
    change: float | None  # relative change over the last TREND_POINTS points (None: too few)
    points: int  # how many points it was measured over

    @property
    def arrow(self) -> str:
        if self.change is None or abs(self.change) < TREND_FLAT:
            return "→"
        return "↑" if self.change > 0 else "↓"


def loss_trend(series: Series, weight: float = SMOOTHING, points: int = TREND_POINTS) -> LossTrend | None:
    """The smoothed loss and whether it rose or fell over the last ``points`` logged steps."""
    if not len(series):
        return None
    smoothed = ema(list(series.ys), weight)
    back = min(points, len(smoothed) - 1)
    if back < 1:
        return LossTrend(smoothed[-1], None, 0)
    before = smoothed[-1 - back]
    change = (smoothed[-1] - before) / abs(before) if before else None
    return LossTrend(smoothed[-1], change, back)


@dataclass(frozen=True)
class VramPeak:
    peak: float | None  # bytes; the most the training process (or NVML) saw
    source: str  # "CUDA peak reserved" | "CUDA peak allocated" | "NVML used" | ""
    estimate: int | None  # the calculator's training VRAM estimate
    gpu_bytes: int | None  # the card the estimate was made for

    @property
    def of_estimate(self) -> float | None:
        return self.peak / self.estimate if self.peak is not None and self.estimate else None


def vram_peak(state: RunState, report: DryRunReport | None) -> VramPeak:
    """The run's peak VRAM beside the calculator's estimate: CUDA's own peak from the
    metrics when the run logged it, else the highest NVML reading in its gpu events."""
    peak, source = None, ""
    for key, label in (("cuda_peak_reserved", "CUDA peak reserved"), ("cuda_peak", "CUDA peak allocated")):
        series = state.series(key)
        if len(series):
            peak, source = max(series.ys), label
            break
    if peak is None:
        used = [value for gpu in state.gpus.values() for value in gpu.memory_history]
        if used:
            peak, source = max(used), "NVML used"
    vram = report.vram if report is not None else None
    return VramPeak(peak, source, vram.total if vram else None, vram.gpu_bytes if vram else None)


def remaining_stages(state: RunState, names: Iterable[str]) -> tuple[str, ...]:
    """The stages of the run's plan (every stage when it has none) not finished or skipped yet."""
    planned = state.planned_stages or list(names)
    return tuple(name for name in planned if state.stage_status(name) not in DONE)


def remaining_output_bytes(layout: RunLayout, config: Config, stages: Iterable[str]) -> dict[str, int | None]:
    """What each given stage will write, from its own declaration in the stage registry
    (the orchestrator checks the same figure against free disk before the stage starts).
    A stage whose size cannot be told yet (merge before the adapter exists) maps to None;
    stages that declare no size are left out."""
    ctx = StageContext(config=config, layout=layout, events=NullWriter(), data_dir=layout.data)
    needs: dict[str, int | None] = {}
    for name in stages:
        try:
            stage = registry.get(name)
        except Exception:  # noqa: BLE001 - a stage the log names but this install does not have
            continue
        if stage.output_bytes is None:
            continue
        try:
            needs[name] = int(stage.output_bytes(ctx))
        except Exception:  # noqa: BLE001 - not knowable yet (no adapter, no converter): said as "?"
            needs[name] = None
    return needs


# ---------------------------------------------------------------- this machine


def writer_pid(layout: RunLayout) -> int | None:
    """The pid of the process on this machine writing the run now (the lock's holder, else a
    live pid file); None when the holder runs on another machine (its pid means nothing here)."""
    if has_lock_file(layout):
        who = holder(layout)
        return who.pid if who is not None and not who.elsewhere else None
    pid = read_pid(layout)
    return pid if pid is not None and pid_alive(pid) else None


@dataclass(frozen=True)
class Target:
    """What to sample, decided on the UI thread (the sampler thread reads no live state)."""

    layout: RunLayout | None
    runs_dir: Path
    config: Config | None
    remaining: tuple[str, ...]
    gpu: bool  # sample this machine's GPUs (off: --no-gpu-sampling)


@dataclass(frozen=True)
class ResourceSample:
    ts: float
    gpus: list[dict[str, Any]]  # r1tui.gpu.sample_all(detailed=True); [] when GPU sampling is off
    tree: TreeSample | None  # the run's writer and its children (None: no live writer)
    host: HostMemory | None
    disk: DiskOutlook | None


@dataclass
class GpuHistory:
    utilization: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    memory_used: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    temperature: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    power_w: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    clock_sm_mhz: deque = field(default_factory=lambda: deque(maxlen=HISTORY))

    def add(self, sample: dict[str, Any]) -> None:
        for key in ("utilization", "memory_used", "temperature", "power_w", "clock_sm_mhz"):
            value = sample.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                getattr(self, key).append(float(value))


class ResourceMonitor:
    """The latest sample of this machine and its histories; ``sample`` runs in a thread,
    everything else on the UI thread."""

    def __init__(self) -> None:
        self.latest: ResourceSample | None = None
        self.gpus: dict[int, GpuHistory] = {}
        self.tree_rss: deque = deque(maxlen=HISTORY)
        self.tree_cpu: deque = deque(maxlen=HISTORY)
        self.watchers: set[str] = set()  # the panels showing it now; sampling stops with none
        self.worker: Any = None  # the thread worker sampling now (r1tui.dashboard.widgets.resources)
        self.stop = threading.Event()
        self._trees = ProcessTreeSampler()
        self._needs: tuple[tuple[Any, ...], float, dict[str, int | None]] | None = None

    def reset(self) -> None:
        """Another run is watched: its process tree starts a new history."""
        self.latest = None
        self.tree_rss.clear()
        self.tree_cpu.clear()

    def sample(self, target: Target) -> ResourceSample:
        """Blocking: NVML, /proc, statvfs and the stage registry's sizes (a thread worker)."""
        gpus: list[dict[str, Any]] = []
        if target.gpu:
            from r1tui import gpu

            gpus = gpu.sample_all(detailed=True)
            for process in (p for g in gpus for p in g.get("processes") or []):
                process["name"] = process_name(process["pid"])
        pid = writer_pid(target.layout) if target.layout is not None else None
        tree = self._trees.sample(pid)
        try:
            host = host_memory()
        except Exception:  # noqa: BLE001 - /proc unreadable: the host side says N/A
            host = None
        folder = target.layout.root if target.layout is not None else target.runs_dir
        free = disk_free(folder)
        disk = disk_outlook(folder, free, self._stage_needs(target)) if free is not None else None
        return ResourceSample(time.time(), gpus, tree, host, disk)

    def _stage_needs(self, target: Target) -> dict[str, int | None]:
        if target.layout is None or target.config is None or not target.remaining:
            return {}
        key = (target.layout.root, id(target.config), target.remaining)
        now = time.monotonic()
        if self._needs is not None and self._needs[0] == key and now - self._needs[1] < NEEDS_SECONDS:
            return self._needs[2]
        needs = remaining_output_bytes(target.layout, target.config, target.remaining)
        self._needs = (key, now, needs)
        return needs

    def apply(self, sample: ResourceSample) -> None:
        self.latest = sample
        for index, gpu_sample in enumerate(sample.gpus):
            if gpu_sample.get("available"):
                self.gpus.setdefault(int(gpu_sample.get("index", index)), GpuHistory()).add(gpu_sample)
        if sample.tree is not None and sample.tree.alive:
            if sample.tree.rss is not None:
                self.tree_rss.append(float(sample.tree.rss))
            if sample.tree.cpu_percent is not None:
                self.tree_cpu.append(sample.tree.cpu_percent)

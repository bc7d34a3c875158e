"""What the Training panel's charts show, computed without a terminal.

The panel only draws; everything it draws comes from here: the smoothed loss
(``ema``), the points that fit the plot's width (``thin``), the x frame in whole steps
that spans the run's ``max_steps`` from its first step (``step_frame``, ``step_ticks``),
the points a log-scale axis can show (``positive``), the plot titles, and the loss of
another run read from its event log for an overlay (``read_overlay``).

No Textual, no Rich, no torch: plain Python over the reducer's series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from r1tui.present import format_number
from r1tui.runs.events import read_events
from r1tui.runs.layout import RunLayout
from r1tui.runs.reducer import RunState, Series

if TYPE_CHECKING:
    from r1tui.config import Config

# The smoothing weights the key cycles through, as W&B's slider and TensorBoard's
# smoothing use them: 0 is the raw curve, 0.99 averages over about the last 100 points.
SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.99)
DEFAULT_SMOOTHING = 0.6
OVERLAY_KEYS = ("loss", "eval_loss")


def ema(values: Sequence[float], weight: float) -> list[float]:
    """The exponential moving average of ``values`` with smoothing ``weight`` (0 <= w < 1),
    bias-corrected at the start the way TensorBoard does it (and W&B, which matches
    TensorBoard: tensorboard/components/vz_line_chart2/line-chart.ts, resetSmoothing):
    the average starts at 0 and each point is divided by ``1 - weight ** n``, so the first
    point is the first value itself instead of being pulled towards zero (the same
    debiasing as Adam's moment estimates)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight {weight!r}: must be at least 0 and below 1")
    if weight == 0.0:
        return [float(v) for v in values]
    smoothed: list[float] = []
    last = 0.0
    for count, value in enumerate(values, start=1):
        last = last * weight + (1.0 - weight) * value
        smoothed.append(last / (1.0 - weight ** count))
    return smoothed


def next_smoothing(current: float) -> float:
    """The weight after ``current`` in SMOOTHING_STEPS (wrapping round; the first for
    a weight not in the list)."""
    for index, weight in enumerate(SMOOTHING_STEPS):
        if math.isclose(weight, current):
            return SMOOTHING_STEPS[(index + 1) % len(SMOOTHING_STEPS)]
    return SMOOTHING_STEPS[0]


def thin(xs: Sequence[float], ys: Sequence[float], points: int) -> tuple[list[float], list[float]]:
    """At most ``points`` evenly spaced points (the first and the newest always kept)."""
    xs, ys = list(xs), list(ys)
    if len(xs) <= points or points < 2:
        return xs, ys
    spacing = len(xs) / points
    picks = sorted({int(i * spacing) for i in range(points)} | {len(xs) - 1})
    return [xs[i] for i in picks], [ys[i] for i in picks]


def positive(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points a log-scale axis can show (y > 0); the others are left out, not clamped."""
    kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0]
    return [x for x, _ in kept], [y for _, y in kept]


def max_steps(state: RunState, config: Config | None = None) -> int | None:
    """The run's last training step as known now: the train stage's progress total (what
    the trainer computed, epochs included), else ``max_steps`` from its metrics, else the
    frozen config's ``train.max_steps`` (None when it trains for epochs and has not
    started)."""
    progress = state.stage("train").progress
    if progress is not None and progress.total and progress.total > 0:
        return int(progress.total)
    logged = state.last_metric.get("max_steps")
    if isinstance(logged, (int, float)) and logged > 0:
        return int(logged)
    if config is not None and config.train.max_steps > 0:
        return int(config.train.max_steps)
    return None


def step_frame(total_steps: int | None, *series: Series) -> tuple[int, int]:
    """The x range of the charts, in whole steps: from 0 to the run's ``max_steps``, so the
    curve grows into a fixed frame; stretched when a series (an overlaid longer run, a
    resumed run with more steps) goes further; at least one step wide."""
    last = max((max(s.xs) for s in series if len(s)), default=0)
    upper = max(int(math.ceil(last)), total_steps or 0, 1)
    return 0, upper


def step_ticks(lower: int, upper: int, most: int = 6) -> list[int]:
    """Whole-step ticks from ``lower`` to ``upper``: at most ``most`` multiples of a round
    spacing (1, 2 or 5 times a power of ten), ``lower`` first, and ``upper`` last when it
    falls on the spacing or at least half a spacing past the last multiple."""
    if upper <= lower:
        return [lower]
    most = max(2, most)
    span = upper - lower
    spacing = 1
    for power in range(0, 12):
        for base in (1, 2, 5):
            spacing = base * 10 ** power
            if span / spacing + 1 <= most:
                break
        else:
            continue
        break
    first = -(-lower // spacing) * spacing
    ticks = [lower] * (first != lower) + list(range(first, upper + 1, spacing))
    if upper - ticks[-1] >= spacing / 2:  # the frame's end (max_steps) labelled where it has room
        ticks.append(upper)
    return ticks


def chart_title(label: str, last: float | None, *, smoothing: float = 0.0, smoothed_last: float | None = None,
                log_scale: bool = False) -> str:
    """``loss 9.43 · ema 0.9 → 9.51 · log y``: the raw last value, the smoothing weight in
    use with the smoothed last value, and the y scale when it is logarithmic."""
    if last is None:
        title = f"{label} (no data)"
    else:
        title = f"{label} {format_number(last)}"
    if smoothing > 0:
        title += f" · ema {smoothing:g}"
        if smoothed_last is not None:
            title += f" → {format_number(smoothed_last)}"
    if log_scale:
        title += " · log y"
    return title


@dataclass
class Overlay:
    """Another run's series, drawn on this run's axes."""

    run_id: str
    series: dict[str, Series] = field(default_factory=dict)

    @property
    def loss(self) -> Series:
        return self.series.get("loss") or Series()


def read_overlay(run_dir: str | Path, keys: Sequence[str] = OVERLAY_KEYS) -> Overlay:
    """Fold a run's whole ``events.jsonl`` through the reducer and keep the series in
    ``keys``. A run without a log, or whose log has no training loss, raises ValueError
    with one line saying so."""
    layout = RunLayout(Path(run_dir))
    run_dir, events_path = layout.root, layout.events
    if not events_path.is_file():
        raise ValueError(f"{run_dir.name}: no {events_path.name} in {run_dir}; nothing to overlay")
    state = RunState()
    state.apply_all(read_events(events_path))
    series = {key: state.series(key) for key in keys if len(state.series(key))}
    if "loss" not in series:
        raise ValueError(f"{run_dir.name}: its log has no training loss yet; nothing to overlay")
    return Overlay(run_id=run_dir.name, series=series)  # the name the runs list shows

"""Training: loss, grad norm and learning rate plots; progress with tokens/s and ETA;
checkpoints."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static
from textual_plotext import PlotextPlot

from r1tui.dashboard.format import bar, short_path
from r1tui.dashboard.widgets.base import Panel
from r1tui.present import format_duration, format_number
from r1tui.runs.reducer import RunState, Series

PLOTS = (("loss", "loss"), ("grad_norm", "grad norm"), ("learning_rate", "learning rate"))
PLOT_SECONDS = 0.5  # plots redraw at most twice a second (a plotext build costs ~10 ms each)


def thin(series: Series, points: int) -> tuple[list[float], list[float]]:
    """At most ``points`` evenly spaced points (always keeping the newest)."""
    xs, ys = list(series.xs), list(series.ys)
    if len(xs) <= points or points < 2:
        return xs, ys
    step = len(xs) / points
    picks = sorted({int(i * step) for i in range(points)} | {len(xs) - 1})
    return [xs[i] for i in picks], [ys[i] for i in picks]


def progress_line(state: RunState, width: int) -> Text:
    stage = state.stage("train")
    progress = stage.progress
    metric = state.last_metric
    text = Text(no_wrap=True, overflow="ellipsis")
    if progress is None and not metric:
        text.append("no training metrics yet", style="dim")
        return text
    completed = progress.completed if progress else metric.get("step", 0)
    total = progress.total if progress else None
    fraction = progress.fraction if progress else None
    text.append_text(bar(fraction, max(10, min(30, width // 4)), "green" if stage.status == "finished" else "yellow"))
    text.append(f" step {int(completed)}" + (f"/{int(total)}" if total else ""), style="bold")
    if fraction is not None:
        text.append(f" {fraction:.0%}")
    tokens_per_s = metric.get("tokens_per_s")
    if isinstance(tokens_per_s, (int, float)):
        text.append(f" · {tokens_per_s:,.0f} tok/s")
    if stage.status == "running":
        text.append(f" · ETA {format_duration(stage.eta_s())}")
    elif stage.duration_s is not None:
        text.append(f" · {stage.status} in {format_duration(stage.duration_s)}")
    for key, label in (("loss", "loss"), ("epoch", "epoch")):
        value = metric.get(key)
        if isinstance(value, (int, float)):
            text.append(f" · {label} {format_number(value)}")
    return text


class TrainingPanel(Panel):
    PANEL_ID = "training"
    TITLE = "Training"

    _drawn: tuple[int, int] | None = None
    _plotted_at = 0.0
    _plot_pending = False

    def compose(self) -> ComposeResult:
        yield Static(id="train-progress")
        yield PlotextPlot(id="plot-loss")
        with Horizontal(id="train-small-plots"):
            yield PlotextPlot(id="plot-grad_norm")
            yield PlotextPlot(id="plot-learning_rate")
        yield Static(id="train-checkpoints")

    def refresh_view(self) -> None:
        state = self.dashboard.state
        self.query_one("#train-progress", Static).update(progress_line(state, self.size.width or 80))
        self._draw_plots()
        checkpoints = Text(no_wrap=True, overflow="ellipsis")
        checkpoints.append("checkpoints ", style="bold")
        if state.checkpoints:
            checkpoints.append(", ".join(_checkpoint_label(c) for c in state.checkpoints[-6:]))
        else:
            checkpoints.append("none yet", style="dim")
        self.query_one("#train-checkpoints", Static).update(checkpoints)

    def _draw_plots(self) -> None:
        """Redraw the plots if the state moved, but not more often than PLOT_SECONDS;
        a redraw held back is done when the interval is over (the last state is drawn)."""
        state = self.dashboard.state
        if (id(state), state.version) == self._drawn:
            return
        wait = PLOT_SECONDS - (time.monotonic() - self._plotted_at)
        if wait > 0:
            if not self._plot_pending:
                self._plot_pending = True
                self.set_timer(wait, self._held_back_plots)
            return
        self._drawn = (id(state), state.version)
        self._plotted_at = time.monotonic()
        for key, title in PLOTS:
            self._draw(key, title, state.series(key))

    def _held_back_plots(self) -> None:
        self._plot_pending = False
        self._draw_plots()

    def _draw(self, key: str, title: str, series: Series) -> None:
        widget = self.query_one(f"#plot-{key}", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        last = series.last
        plt.title(f"{title} {format_number(last)}" if last is not None else f"{title} (no data)")
        if len(series):
            xs, ys = thin(series, max(8, (widget.size.width or 40) * 2))
            plt.plot(xs, ys, marker="braille")
        widget.refresh()


def _checkpoint_label(artifact: dict[str, Any]) -> str:
    step = artifact.get("step")
    return f"step {step}" if step is not None else short_path(artifact.get("path", "?"), 1)

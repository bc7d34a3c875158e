"""Training: loss, grad norm and learning rate plots; progress with tokens/s and ETA;
checkpoints.

The loss plot is the one people read: the raw loss faint behind its exponential moving
average (``m`` cycles the smoothing), a log-scale y axis (``g``), the validation loss
when the run evaluates (``train.eval_steps``), and the loss of another run picked from
the runs folder (``o``). Every plot's x axis is in whole steps and spans the run's
``max_steps`` from the start, so a curve grows into a fixed frame. What is drawn is
computed in ``r1tui.dashboard.charts``; this widget only draws it.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static
from textual_plotext import PlotextPlot

from r1tui.dashboard import charts
from r1tui.dashboard.format import bar, short_path
from r1tui.dashboard.widgets.base import Panel
from r1tui.present import format_duration, format_number
from r1tui.runs.reducer import RunState, Series

PLOTS = (("loss", "loss"), ("grad_norm", "grad norm"), ("learning_rate", "learning rate"))
PLOT_SECONDS = 0.5  # plots redraw at most twice a second (a plotext build costs ~10 ms each)
# plotext colour names: the raw loss faint behind the smoothed one; eval and the overlay apart
RAW_COLOR, LOSS_COLOR, EVAL_COLOR, OVERLAY_COLOR = "gray", "blue+", "orange+", "magenta+"


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

    _drawn: tuple[Any, ...] | None = None
    _plotted_at = 0.0
    _plot_pending = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.smoothing = charts.DEFAULT_SMOOTHING  # the loss's EMA weight (m cycles it)
        self.log_scale = False  # the loss's y axis (g toggles it)
        self.overlay: charts.Overlay | None = None  # another run's loss on the same axes (o)
        self.titles: dict[str, str] = {}  # each plot's title as last drawn

    def compose(self) -> ComposeResult:
        yield Static(id="train-progress")
        yield PlotextPlot(id="plot-loss")
        with Horizontal(id="train-small-plots"):
            yield PlotextPlot(id="plot-grad_norm")
            yield PlotextPlot(id="plot-learning_rate")
        yield Static(id="train-checkpoints")

    def reset_for_run(self) -> None:
        self.overlay = None
        self._drawn = None

    # -- the keys ------------------------------------------------------------
    def cycle_smoothing(self) -> float:
        self.smoothing = charts.next_smoothing(self.smoothing)
        self._redraw_now()
        return self.smoothing

    def toggle_log_scale(self) -> bool:
        self.log_scale = not self.log_scale
        self._redraw_now()
        return self.log_scale

    def pick_overlay(self) -> None:
        """Open the list of the other runs; picking one overlays its loss, picking the one
        shown (or "none") removes it; Esc leaves things as they are."""
        from r1tui.dashboard.screens.pick_run import NO_OVERLAY, PickRunScreen
        from r1tui.dashboard.source import find_runs

        app = self.dashboard
        current = app.run_ref.run_id if app.run_ref is not None else None
        others = [ref for ref in find_runs(app.runs_dir) if ref.run_id != current]
        if not others:
            app.notify(f"no other run under {app.show_path(str(app.runs_dir))} to compare with", severity="warning")
            return

        def picked(run_id: str | None) -> None:
            if run_id is None:  # Esc: nothing changes
                return
            if run_id == NO_OVERLAY or (self.overlay is not None and self.overlay.run_id == run_id):
                self.overlay = None
                self._redraw_now()
                return
            ref = next((r for r in others if r.run_id == run_id), None)
            if ref is not None:
                self._read_overlay(str(ref.run_dir), current)

        shown = self.overlay.run_id if self.overlay is not None else None
        app.push_screen(PickRunScreen([ref.run_id for ref in others], shown), picked)

    @work(thread=True, exclusive=True, group="training-overlay")
    def _read_overlay(self, run_dir: str, watched: str | None) -> None:
        """A long run's log takes a while to fold: read it off the UI thread."""
        try:
            overlay = charts.read_overlay(run_dir)
        except (OSError, ValueError) as exc:
            self.app.call_from_thread(self.dashboard.notify, str(exc), severity="warning")
            return
        self.app.call_from_thread(self._overlay_read, overlay, watched)

    def _overlay_read(self, overlay: charts.Overlay, watched: str | None) -> None:
        run = self.dashboard.run_ref
        if (run.run_id if run is not None else None) != watched:
            return  # the dashboard switched runs while the log was read: the pick was for the other one
        self.overlay = overlay
        self._redraw_now()

    def _redraw_now(self) -> None:
        self._drawn = None
        self._plotted_at = 0.0
        if self.is_mounted:
            self._draw_plots()

    # -- drawing -------------------------------------------------------------
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
        """Redraw the plots if the state or a chart setting moved, but not more often than
        PLOT_SECONDS; a redraw held back is done when the interval is over (the last state
        is drawn)."""
        state = self.dashboard.state
        drawn = (id(state), state.version, self.smoothing, self.log_scale, id(self.overlay))
        if drawn == self._drawn:
            return
        wait = PLOT_SECONDS - (time.monotonic() - self._plotted_at)
        if wait > 0:
            if not self._plot_pending:
                self._plot_pending = True
                self.set_timer(wait, self._held_back_plots)
            return
        self._drawn = drawn
        self._plotted_at = time.monotonic()
        overlaid = self.overlay.series.values() if self.overlay is not None else ()
        frame = charts.step_frame(charts.max_steps(state, self.dashboard.config), state.series("loss"), *overlaid)
        self._draw_loss(state, frame)
        for key, title in PLOTS[1:]:
            self._draw(key, title, state.series(key), frame)

    def _held_back_plots(self) -> None:
        self._plot_pending = False
        self._draw_plots()

    def _begin(self, key: str, title: str, frame: tuple[int, int]) -> tuple[PlotextPlot, Any]:
        """Clear a plot, set its title and its x axis: the frame in whole steps."""
        widget = self.query_one(f"#plot-{key}", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        self.titles[key] = title
        lower, upper = frame
        ticks = charts.step_ticks(lower, upper, most=max(2, (widget.size.width or 40) // 10))
        plt.xlim(lower, upper)
        plt.xticks(ticks, [str(tick) for tick in ticks])
        return widget, plt

    @staticmethod
    def _points(widget: PlotextPlot) -> int:
        return max(8, (widget.size.width or 40) * 2)  # braille: two points per cell

    def _draw_loss(self, state: RunState, frame: tuple[int, int]) -> None:
        loss, eval_loss = state.series("loss"), state.series("eval_loss")
        smoothed = charts.ema(loss.ys, self.smoothing)
        title = charts.chart_title("loss", loss.last, smoothing=self.smoothing,
                                   smoothed_last=smoothed[-1] if smoothed else None, log_scale=self.log_scale)
        if len(eval_loss):
            title += f" · eval {format_number(eval_loss.last)}"
        widget, plt = self._begin("loss", title, frame)
        if self.log_scale:
            plt.yscale("log")
        points = self._points(widget)
        legend = bool(len(eval_loss)) or self.overlay is not None

        def line(xs: Any, ys: Any, color: str, label: str | None) -> None:
            xs, ys = charts.thin(xs, ys, points)
            if self.log_scale:
                xs, ys = charts.positive(xs, ys)
            if xs:
                plt.plot(xs, ys, marker="braille", color=color, label=label)

        if len(loss):
            if self.smoothing > 0:
                line(loss.xs, loss.ys, RAW_COLOR, None)  # the raw loss, faint, behind the smoothed one
            line(loss.xs, smoothed, LOSS_COLOR, "loss" if legend else None)
        if len(eval_loss):
            line(eval_loss.xs, eval_loss.ys, EVAL_COLOR, "eval")
        if self.overlay is not None:
            other = self.overlay.loss
            line(other.xs, charts.ema(other.ys, self.smoothing), OVERLAY_COLOR, self.overlay.run_id)
        widget.refresh()

    def _draw(self, key: str, title: str, series: Series, frame: tuple[int, int]) -> None:
        last = series.last
        widget, plt = self._begin(key, f"{title} {format_number(last)}" if last is not None else f"{title} (no data)",
                                  frame)
        if len(series):
            xs, ys = charts.thin(series.xs, series.ys, self._points(widget))
            plt.plot(xs, ys, marker="braille")
        widget.refresh()


def _checkpoint_label(artifact: dict[str, Any]) -> str:
    step = artifact.get("step")
    return f"step {step}" if step is not None else short_path(artifact.get("path", "?"), 1)

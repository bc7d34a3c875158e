"""Overview: the panel a practitioner leaves open for a long run, readable at 80x24.

Every stage with its status, time and ETA; the training figures (step, epoch, smoothed
loss and its trend, tokens/s); peak VRAM against the calculator's estimate and the GPU's
utilisation, temperature and power; the RAM and swap of the run's processes; free disk
against what the stages still to run will write; active alerts; the last log lines. A
run that crashed or failed shows its diagnosis (headline, hint, the pipeline log's tail)
in place of the figures. The numbers come from ``r1tui.dashboard.monitor`` (this
machine, sampled while the panel is visible), ``r1tui.runs.alerts`` and
``r1tui.runs.diagnosis``; this module only draws.
"""

from __future__ import annotations

import textwrap
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.charts import ema
from r1tui.dashboard.format import bar, display_path, in_run, status_text
from r1tui.dashboard.monitor import (
    SMOOTHING,
    ResourceMonitor,
    ResourceSample,
    loss_trend,
    vram_peak,
)
from r1tui.dashboard.widgets.resources import NOT_SAMPLED, SamplesResources, spark
from r1tui.pipeline import registry
from r1tui.present import MISSING, format_bytes, format_duration, format_number
from r1tui.runs.alerts import AlertSettings, active_alerts
from r1tui.runs.diagnosis import diagnose
from r1tui.runs.reducer import RunState, StageState

LOG_STYLE = {"error": "bold red", "warning": "yellow", "debug": "dim"}
ALERT_STYLE = {"error": ("✗", "bold red"), "warning": ("⚠", "yellow"), "info": ("ℹ", "cyan")}
LABEL = 6  # the figures' labels are padded to this width, so their values line up
TALL = 30  # panel rows from which the Overview adds the history line (120x40 has 36)


def artifact_summary(stage: StageState, run_id: str | None = None) -> Text:
    """The stage's artifacts in one line: the first path and size, and how many more."""
    items: list[tuple[str, Any]] = []
    for artifact in stage.artifacts:
        if artifact.get("kind") == "checkpoint":
            continue
        items.append((in_run(artifact.get("path", "?"), run_id), artifact.get("bytes")))
    if not items:
        for key, value in stage.outputs.items():
            if isinstance(value, str) and ("/" in value or value.endswith((".gguf", ".json"))):
                items.append((in_run(value, run_id), None))
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith("bytes"):
                continue
    checkpoints = sum(1 for a in stage.artifacts if a.get("kind") == "checkpoint")
    text = Text(no_wrap=True, overflow="ellipsis")
    if items:
        path, n = items[0]
        text.append(path)
        if n:
            text.append(f" {format_bytes(n)}", style="dim")
        if len(items) > 1:
            text.append(f" +{len(items) - 1}", style="dim")
    if checkpoints:
        text.append(f"{' · ' if items else ''}{checkpoints} ckpt", style="dim")
    if stage.error:
        text = Text(stage.error, style="red", no_wrap=True, overflow="ellipsis")
    return text


def stage_rows(state: RunState) -> list[str]:
    """Every registered stage in pipeline order, then any other stage the log mentions."""
    known = registry.stage_names()
    return [*known, *(name for name in state.stages if name not in known)]


def stage_table(state: RunState, now: float, width: int = 80) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("stage", no_wrap=True, width=8)
    table.add_column("status", no_wrap=True, width=11)
    table.add_column("time", justify="right", no_wrap=True, width=7)
    table.add_column("ETA", justify="right", no_wrap=True, width=7)
    gauge = 6 if width < 110 else 16  # a wide terminal gives the bars room
    table.add_column("progress", no_wrap=True, width=gauge + 5)
    table.add_column("artifacts", ratio=1, no_wrap=True, overflow="ellipsis")
    planned = set(state.planned_stages) or set(registry.stage_names())
    for name in stage_rows(state):
        stage = state.stage(name)
        status = state.stage_status(name)
        label = Text(name, style="" if name in planned else "dim")
        progress = Text()
        if stage.progress is not None and stage.progress.total:
            progress = bar(stage.progress.fraction, gauge, "green" if status == "finished" else "yellow")
            progress.append(f" {stage.progress.fraction:>4.0%}")
        elapsed = stage.elapsed(now if state.status == "running" else (state.last_ts or now))
        eta = stage.eta_s() if status == "running" else None
        table.add_row(label, status_text(status), format_duration(elapsed),
                      Text(format_duration(eta) if eta is not None else "", style="yellow"), progress,
                      artifact_summary(stage, state.run_id))
    return table


def log_lines(state: RunState, limit: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    lines = list(state.logs)[-limit:] if limit > 0 else []
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        where = f"[{line.stage}] " if line.stage else ""
        text.append(f"{where}{line.message}", style=LOG_STYLE.get(line.level.lower(), ""))
    if not lines:
        text.append("no log lines yet", style="dim")
    return text


def _label(text: Text, name: str) -> None:
    text.append(name.ljust(LABEL), style="bold")


def training_line(state: RunState, width: int = 80) -> Text:
    """steps: step/max, epoch, the smoothed loss and its trend, tokens/s, ETA."""
    text = Text(no_wrap=True, overflow="ellipsis")
    _label(text, "steps")
    stage, metric = state.stage("train"), state.last_metric
    progress = stage.progress
    if progress is None and not metric:
        text.append("no training steps yet", style="dim")
        return text
    completed = progress.completed if progress else metric.get("step", 0)
    total = progress.total if progress else metric.get("max_steps")
    text.append(f"{int(completed)}" + (f"/{int(total)}" if total else ""))
    epoch = metric.get("epoch")
    if isinstance(epoch, (int, float)):
        text.append(f" · epoch {epoch:.2f}")
    trend = loss_trend(state.series("loss"))
    if trend is not None:
        text.append(f" · loss {format_number(trend.smoothed)} ")
        text.append(trend.arrow, style={"↑": "bold red", "↓": "bold green"}.get(trend.arrow, "dim"))
    tokens_per_s = metric.get("tokens_per_s")
    rate = f" · {tokens_per_s:,.0f} tok/s" if isinstance(tokens_per_s, (int, float)) else ""
    if trend is not None and trend.change is not None:
        change = f" {trend.change:+.0%}/{trend.points} steps"
        if text.cell_len + len(change) + len(rate) <= width:  # the change only where it fits whole
            text.append(change, style="dim")
    text.append(rate)
    return text


def gpu_line(state: RunState, report: Any, sample: ResourceSample | None, sampled: bool) -> Text:
    """Peak VRAM against the calculator's estimate; the GPU's utilisation, temperature and power
    (this machine's NVML when it has a GPU, else the run's own samples)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    _label(text, "VRAM")
    peak = vram_peak(state, report)
    text.append(f"peak {format_bytes(peak.peak)}" if peak.peak is not None else f"peak {MISSING}")
    if peak.estimate:
        text.append(f" / est. {format_bytes(peak.estimate)}")
        if peak.of_estimate is not None:
            ratio = peak.of_estimate
            text.append(f" ({ratio:.0%})", style="bold red" if ratio > 1 else "")
    local = [g for g in (sample.gpus if sample is not None else []) if g.get("available")]
    text.append(" · ")
    if local:
        first = local[0]
        util, temp, power, limit = (first.get(k) for k in ("utilization", "temperature", "power_w", "power_limit_w"))
        text.append("GPU ", style="bold")
        text.append(f"{'' if util is None else util}{'%' if util is not None else MISSING} "
                    f"{MISSING if temp is None else temp} °C "
                    f"{MISSING if power is None else f'{power:.0f}'}/{MISSING if limit is None else f'{limit:.0f}'} W")
        if len(local) > 1:
            text.append(f" +{len(local) - 1} GPUs", style="dim")
    elif state.gpu.available:
        gpu = state.gpu
        text.append("GPU ", style="bold")
        text.append(f"{MISSING if gpu.utilization is None else f'{gpu.utilization:.0f}'}% "
                    f"{MISSING if gpu.temperature is None else f'{gpu.temperature:.0f}'} °C "
                    f"{MISSING if gpu.power is None else f'{gpu.power:.0f}'} W (run's log)")
    else:
        reason = next((g.get("reason") for g in (sample.gpus if sample is not None else []) if g.get("reason")), None)
        if sampled and sample is not None:
            text.append("no GPU found", style="yellow")
            if reason:
                text.append(f": {reason}", style="dim")
        elif state.gpu.available is False:
            text.append("the run saw no GPU", style="yellow")
            if state.gpu.reason:
                text.append(f": {state.gpu.reason}", style="dim")
        else:
            text.append("GPU not sampled", style="dim")
    return text


def host_line(sample: ResourceSample | None, sampled: bool) -> Text:
    """The RAM and swap of the run's process tree, and this machine's."""
    text = Text(no_wrap=True, overflow="ellipsis")
    _label(text, "RAM")
    if not sampled:
        text.append(NOT_SAMPLED, style="dim")
        return text
    if sample is None:
        text.append("sampling…", style="dim")
        return text
    tree = sample.tree
    if tree is not None and tree.alive:
        text.append(f"run {format_bytes(tree.rss)} swap {format_bytes(tree.swap)}")
        if tree.cpu_percent is not None:
            text.append(f" CPU {tree.cpu_percent:.0f}%")
    else:
        text.append("run not running", style="dim")
    host = sample.host
    if host is not None:
        text.append(f" · host {format_bytes(host.used)}/{format_bytes(host.total)}"
                    f" swap {format_bytes(host.swap_used)}/{format_bytes(host.swap_total)}")
    return text


def disk_line(sample: ResourceSample | None, sampled: bool, width: int = 80) -> Text:
    """Free disk under the runs folder against what the remaining stages write."""
    text = Text(no_wrap=True, overflow="ellipsis")
    _label(text, "disk")
    disk = sample.disk if sample is not None else None
    if not sampled or disk is None:
        text.append(MISSING if sampled else "not sampled", style="dim")
        return text
    text.append(f"{format_bytes(disk.free)} free")
    if not disk.needs:
        text.append(" · no stage left to write", style="dim")
        return text
    known = {name: n for name, n in disk.needs.items() if n is not None}
    text.append(" · left to write ")
    if known:
        text.append(format_bytes(disk.needed), style="bold")
        text.append(" ✓" if disk.fits else f" ✗ {format_bytes(disk.needed - disk.free)} short",
                    style="green" if disk.fits else "bold red")
    if disk.unknown:  # not knowable yet (merge before the adapter exists): said, not guessed
        text.append(f"{' + ' if known else ''}{', '.join(disk.unknown)} ?", style="yellow")
    detail = " · " + ", ".join(f"{name} {format_bytes(n)}" for name, n in known.items())
    if known and text.cell_len + len(detail) <= width:  # the breakdown only where it fits whole
        text.append(detail, style="dim")
    return text


def history_line(state: RunState, monitor: ResourceMonitor, width: int) -> Text:
    """On a taller screen: the smoothed loss and the GPU's utilisation over time, side by side."""
    text = Text(no_wrap=True, overflow="ellipsis")
    _label(text, "trend")
    half = max(8, (width - LABEL) // 2 - 12)
    loss = state.series("loss")
    text.append("loss ")
    if len(loss):
        text.append_text(spark(ema(list(loss.ys), SMOOTHING), half, relative=True))
    else:
        text.append(MISSING, style="dim")
    local = next(iter(monitor.gpus.values()), None)
    utilization, where = (local.utilization, "GPU") if local and local.utilization else (
        state.gpu.utilization_history, "GPU (run's log)")
    if utilization:
        text.append(f"  {where} ")
        text.append_text(spark(utilization, half, 100))
    return text


def alert_lines(alerts: list[Any]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, alert in enumerate(alerts):
        icon, style = ALERT_STYLE.get(alert.level, ("·", ""))
        if i:
            text.append("\n")
        text.append(f"{icon} {alert.message}", style=style)
    return text


def diagnosis_text(diagnosis: Any, tail: int) -> Text:
    """A crashed or failed run: what happened, the likely cause's hint, the log's last lines."""
    text = Text(overflow="fold")
    text.append(f"{diagnosis.status}: {diagnosis.headline}", style="bold red")
    if diagnosis.error:
        text.append(f" — {diagnosis.error}", style="red")
    if diagnosis.hint:
        text.append("\nhint: ", style="bold yellow")
        text.append(diagnosis.hint, style="yellow")
    lines = diagnosis.log_tail[-tail:] if tail > 0 else []
    if lines:
        text.append("\npipeline.log:", style="bold")
        for line in lines:
            text.append(f"\n  {line}", style="dim")
    return text


class OverviewPanel(SamplesResources):
    PANEL_ID = "overview"
    TITLE = "Overview"

    _diagnosis: tuple[tuple[int, int, str], Any] | None = None
    _figures: Text | None = None  # the figures last drawn

    def compose(self) -> ComposeResult:
        yield Static(id="stages")
        yield Static(id="overview-figures")
        yield Static(id="overview-alerts")
        yield Static(id="run-summary")
        with VerticalScroll(id="overview-log"):
            yield Static(id="log-lines")

    def refresh_view(self) -> None:
        app = self.dashboard
        state = app.state
        now = app.clock()
        self.query_one("#stages", Static).update(stage_table(state, now, self.size.width or 80))
        diagnosis = self._diagnose()
        alerts = [a for a in active_alerts(state, now, AlertSettings.from_config(app.config))
                  if a.kind not in ("crashed", "failed") or diagnosis is None][:3]  # the diagnosis says it already
        figures = self.query_one("#overview-figures", Static)
        figures.set_class(diagnosis is None, "-figures")  # a diagnosis wraps: its hint is read whole
        log = self.query_one("#overview-log", VerticalScroll)
        log.display = diagnosis is None  # a crash's pipeline.log tail takes the event log's place
        if diagnosis is not None:
            self._figures = None
            figures.update(diagnosis_text(diagnosis, self._tail_room(diagnosis, len(stage_rows(state)), len(alerts))))
        else:
            self._draw_figures()
        box = self.query_one("#overview-alerts", Static)
        box.display = bool(alerts)
        box.update(alert_lines(alerts))
        summary = self.query_one("#run-summary", Static)
        summary.display = diagnosis is None  # the diagnosis says it, and how to resume
        summary.update(self._summary())
        self.query_one("#log-lines", Static).update(log_lines(state, 200))
        self.query_one("#overview-log", VerticalScroll).scroll_end(animate=False)

    def refresh_samples(self) -> None:
        """A new sample of this machine: only the figures that show it, and only if they moved
        (an idle dashboard on a finished run then redraws nothing every 2 s)."""
        if self._diagnosis is None or self._diagnosis[1] is None:
            self._draw_figures()

    def _draw_figures(self) -> None:
        app = self.dashboard
        state = app.state
        if app.run_ref is None:
            figures = Text("")
        else:
            sampled = app.sample_local_gpu
            sample = self.monitor.latest if sampled else None
            width = max(40, (self.size.width or 80) - 2)
            lines = [training_line(state, width), gpu_line(state, app.report, sample, sampled),
                     host_line(sample, sampled), disk_line(sample, sampled, width)]
            if (self.size.height or 0) >= TALL:
                lines.append(history_line(state, self.monitor, width))
            figures = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
        if figures != self._figures:
            self._figures = figures
            self.query_one("#overview-figures", Static).update(figures)

    def _tail_room(self, diagnosis: Any, stages: int, alerts: int) -> int:
        """How many pipeline.log lines fit under the stages, the headline and the hint."""
        width = max(20, (self.size.width or 80) - 2)
        error = f" — {diagnosis.error}" if diagnosis.error else ""
        said = len(textwrap.wrap(f"{diagnosis.status}: {diagnosis.headline}{error}", width))
        hint = len(textwrap.wrap(f"hint: {diagnosis.hint}", width)) if diagnosis.hint else 0
        used = stages + 2 + said + hint + 1 + alerts  # table and header, margin, "pipeline.log:", alert lines
        return max(0, min(12, (self.size.height or 20) - used))

    def _diagnose(self) -> Any:
        """The run's diagnosis while it is crashed or failed (read again when the log moves)."""
        app = self.dashboard
        state = app.state
        if app.run_ref is None or state.status not in ("crashed", "failed"):
            return None
        key = (id(state), state.version, state.status)
        if self._diagnosis is None or self._diagnosis[0] != key:
            try:
                found = diagnose(app.run_ref.layout, state, app.config, now=app.clock())
            except Exception:  # noqa: BLE001 - a diagnosis that cannot be made leaves the summary line
                found = None
            self._diagnosis = (key, found)
        return self._diagnosis[1]

    def _summary(self) -> Text:
        app = self.dashboard
        state = app.state
        summary = Text(no_wrap=True, overflow="ellipsis")
        if app.run_ref is None:
            config_path = app.start_config()[0]
            summary.append("No run yet. ", style="bold")
            summary.append(f"s starts one with {app.show_path(str(config_path)) if config_path else 'the built-in config'}"
                           " (dry run: the plan only).", style="dim")
        elif state.status == "crashed":
            why = ("the process lives but the log went silent" if state.stuck
                   else "the process is gone without a finish event")
            summary.append(f"crashed: {why}. ", style="bold red")
            summary.append("r resumes.", style="dim")
        elif state.error and state.status == "failed":
            summary.append(f"failed: {state.error}", style="red")
        else:
            summary.append(f"{state.events_seen:,} events · log: {display_path(app.run_ref.layout.events, app.runs_dir)}",
                           style="dim")
        return summary

"""Alerts: what about a run deserves a person's attention, computed from its folded state.

``active_alerts(state, now)`` says what is true now: the run finished, crashed or failed;
its latest loss is NaN or inf; its loss spiked; a GPU's memory is above
``alerts.vram_percent`` of the card. ``AlertWatcher`` turns that into edge-triggered
alerts: ``update`` returns only the alerts not raised before, so a dashboard rings once
per event, not once per poll.

Replay never rings. The first ``update`` primes the watcher: whatever is already true
then (a finished run opened after the fact, a spike long ago) counts as raised and
rings nothing. The dashboard calls ``update`` only once it has caught up with the log,
so opening a finished or crashed run is silent; what happens after that rings.

A loss spike, computably: the loss series is folded into an exponential moving average
(``SPIKE_ALPHA``) and an EMA of the absolute deviation from it; after ``SPIKE_WARMUP``
points, a loss above ``ema + max(SPIKE_K * deviation, SPIKE_MIN_JUMP * |ema|)`` is a
spike. Consecutive spikes are one episode (keyed by its first step); an episode is
active while its last spike is among the latest ``SPIKE_RECENT`` points.

Plain Python: no Textual, no Rich (the dashboard's Overview and the app show these).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r1tui.present import format_bytes, format_duration, format_number
from r1tui.runs.reducer import RunState

if TYPE_CHECKING:
    from r1tui.config import Config

KINDS = ("finished", "crashed", "failed", "nan_loss", "loss_spike", "vram_high")
LEVELS = ("error", "warning", "info")

SPIKE_ALPHA = 0.1  # EMA weight of each new loss point (a span of about 19 points)
SPIKE_K = 6.0  # deviations above the EMA that make a spike
SPIKE_MIN_JUMP = 0.1  # and at least this share of the EMA (a flat, noiseless loss is not spiky)
SPIKE_WARMUP = 20  # points folded before any point can be a spike (early loss falls fast)
SPIKE_RECENT = 10  # a spike episode stays active while its last spike is among the latest points


@dataclass(frozen=True)
class AlertSettings:
    """The ``[alerts]`` section of config.toml (``r1tui.config.AlertsConfig``)."""

    bell: bool = True
    desktop: bool = True
    loss_spike: bool = True
    vram_percent: float = 95.0

    @classmethod
    def from_config(cls, config: Config | None) -> AlertSettings:
        if config is None:
            return cls()
        section = config.alerts
        return cls(bell=section.bell, desktop=section.desktop, loss_spike=section.loss_spike,
                   vram_percent=float(section.vram_percent))


@dataclass(frozen=True)
class Alert:
    kind: str  # one of KINDS
    level: str  # "error" | "warning" | "info"
    message: str
    key: str = ""  # what makes this occurrence distinct (an attempt, a step, a GPU): the watcher's identity

    @property
    def title(self) -> str:
        """A short title for a desktop notification."""
        return {"finished": "run finished", "crashed": "run crashed", "failed": "run failed",
                "nan_loss": "loss is NaN/inf", "loss_spike": "loss spike",
                "vram_high": "GPU memory high"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class Spike:
    step: float  # the first step of the episode
    last_step: float  # its last spiking step
    loss: float  # the highest loss in it
    ema: float  # the smoothed loss just before it began
    index: int  # the position of its last spike in the series


def loss_spikes(steps: Iterable[float], losses: Iterable[float], *, alpha: float = SPIKE_ALPHA, k: float = SPIKE_K,
                min_jump: float = SPIKE_MIN_JUMP, warmup: int = SPIKE_WARMUP) -> list[Spike]:
    """Every spike episode in a loss series (see the module docstring for the rule)."""
    spikes: list[Spike] = []
    ema: float | None = None
    deviation = 0.0
    current: Spike | None = None
    for index, (step, loss) in enumerate(zip(steps, losses, strict=False)):
        if ema is None:
            ema = loss
            continue
        threshold = ema + max(k * deviation, min_jump * abs(ema))
        if index >= warmup and loss > threshold:
            if current is not None and current.index == index - 1:
                current = Spike(current.step, step, max(current.loss, loss), current.ema, index)
                spikes[-1] = current
            else:
                current = Spike(step, step, loss, ema, index)
                spikes.append(current)
        deviation = (1 - alpha) * deviation + alpha * abs(loss - ema)
        ema = (1 - alpha) * ema + alpha * loss
    return spikes


def _attempt(state: RunState) -> str:
    """Which attempt of the run (a resume starts a new one: its end rings again)."""
    return f"{state.attempt_started_ts or state.started_ts or 0:.3f}"


def active_alerts(state: RunState, now: float, settings: AlertSettings | None = None) -> list[Alert]:
    """What is true about the run now, most severe first."""
    settings = settings or AlertSettings()
    run = state.run_id or "the run"
    alerts: list[Alert] = []
    status = state.status
    if status == "finished":
        took = state.elapsed(now)
        alerts.append(Alert("finished", "info", f"run {run} finished" +
                            (f" in {format_duration(took)}" if took is not None else ""), _attempt(state)))
    elif status == "failed":
        error = state.finished_error or state.attempt_error or "no error recorded"
        alerts.append(Alert("failed", "error", f"run {run} failed: {error}", _attempt(state)))
    elif status == "crashed":
        if state.stuck:
            silent = state.silence_s(now)
            why = f"its process is alive but the log has been silent for {format_duration(silent)}"
        else:
            why = "its process is gone without a finish event"
        stage = f" in {state.current_stage}" if state.current_stage else ""
        alerts.append(Alert("crashed", "error", f"run {run} crashed{stage}: {why}", _attempt(state)))
    if state.nonfinite_loss is not None:
        step, kind = state.nonfinite_loss
        at = f" at step {int(step)}" if step is not None else ""
        alerts.append(Alert("nan_loss", "error", f"loss is {kind}{at}: training diverged (lower the learning "
                                                 "rate, or resume from an earlier checkpoint)", _attempt(state)))
    if settings.loss_spike:
        series = state.series("loss")
        spikes = loss_spikes(series.xs, series.ys)
        if spikes and spikes[-1].index >= len(series) - SPIKE_RECENT:
            spike = spikes[-1]
            alerts.append(Alert("loss_spike", "warning",
                                f"loss spike at step {int(spike.step)}: {format_number(spike.loss)} against a "
                                f"smoothed {format_number(spike.ema)}", f"{spike.step:g}"))
    for index, gpu in sorted(state.gpus.items()):
        used, total = gpu.memory_used, gpu.memory_total
        if not gpu.available or used is None or not total:
            continue
        percent = 100.0 * used / total
        if percent >= settings.vram_percent:
            alerts.append(Alert("vram_high", "warning",
                                f"GPU {index} memory at {percent:.0f}% ({format_bytes(used)} of {format_bytes(total)}; "
                                f"alerts at {settings.vram_percent:g}%)", f"{_attempt(state)}:{index}"))
    order = {level: rank for rank, level in enumerate(LEVELS)}
    return sorted(alerts, key=lambda alert: order.get(alert.level, len(LEVELS)))


class AlertWatcher:
    """Edge-triggered alerts: ``update`` returns each alert once, the first time it is true.

    The first ``update`` only primes (returns nothing): what is already true when a
    dashboard opens a run is history, not news. A key, once raised, never rings again
    (a GPU hovering around the threshold rings once per attempt, not every second).
    """

    def __init__(self, settings: AlertSettings | None = None) -> None:
        self.settings = settings or AlertSettings()
        self.raised: set[tuple[str, str]] = set()
        self.primed = False

    def update(self, state: RunState, now: float) -> list[Alert]:
        current = active_alerts(state, now, self.settings)
        fresh = [alert for alert in current if (alert.kind, alert.key) not in self.raised]
        self.raised.update((alert.kind, alert.key) for alert in current)
        if not self.primed:
            self.primed = True
            return []
        return fresh


# ---------------------------------------------------------------- terminal escapes


def _osc_text(text: str) -> str:
    """Text safe inside an OSC string: no control characters, no ';' (OSC 777's separator)."""
    return "".join(ch for ch in text if ch.isprintable()).replace(";", ",")


def notification_escapes(alert: Alert, settings: AlertSettings, *, tmux: bool) -> str:
    """The bytes that reach a person through a terminal, over SSH: BEL, and the desktop
    notifications OSC 9 (e.g. iTerm2, WezTerm, kitty, Ghostty) and OSC 777 (e.g.
    foot, Ghostty, urxvt); a terminal that knows neither ignores them. Inside tmux each OSC is wrapped in tmux's DCS
    passthrough (``ESC P tmux; … ESC \\`` with every ESC doubled), which tmux forwards
    to the outer terminal when ``allow-passthrough`` is on; the BEL goes to tmux itself,
    which marks the window and forwards it per ``bell-action``."""
    out = ""
    if settings.desktop:
        title, body = _osc_text(f"r1tui: {alert.title}"), _osc_text(alert.message)
        for sequence in (f"\x1b]9;{title}: {body}\x07", f"\x1b]777;notify;{title};{body}\x07"):
            out += f"\x1bPtmux;{sequence.replace(chr(27), chr(27) * 2)}\x1b\\" if tmux else sequence
    if settings.bell:
        out += "\x07"
    return out


def describe(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """Alerts as plain data (for --json and tests)."""
    return [{"kind": a.kind, "level": a.level, "message": a.message} for a in alerts]

"""Alerts from a run's folded state: finish, crash, failure, NaN/inf loss, loss spikes, VRAM;
edge-triggered, and silent on replay."""

from __future__ import annotations

import math

import pytest

from r1tui.config import parse_config
from r1tui.errors import ConfigError
from r1tui.runs.alerts import (
    SPIKE_WARMUP,
    AlertSettings,
    AlertWatcher,
    active_alerts,
    loss_spikes,
    notification_escapes,
)
from r1tui.runs.events import Event
from r1tui.runs.reducer import RunState

T0 = 1_000_000.0


def fold(*events: tuple[str, dict], state: RunState | None = None) -> RunState:
    state = state or RunState()
    for i, (type_, data) in enumerate(events):
        data = dict(data)
        state.apply(Event(type_, data, stage=data.pop("_stage", None), ts=data.pop("_ts", T0 + i), seq=i))
    return state


STARTED = ("run_started", {"run_id": "r1", "pid": 42, "stages": ["train"], "heartbeat_s": 1.0})


def metric(step: int, loss) -> tuple[str, dict]:
    return ("metric", {"_stage": "train", "step": step, "max_steps": 100, "loss": loss})


def kinds(alerts) -> list[str]:
    return [a.kind for a in alerts]


def test_a_live_run_with_a_smooth_loss_has_no_alerts():
    state = fold(STARTED, *(metric(s, 2.0 - 0.01 * s) for s in range(1, 60)))
    state.set_process_alive(True, T0 + 61)
    assert active_alerts(state, T0 + 61) == []


@pytest.mark.parametrize(("loss", "said"), [(None, "NaN or inf"), (math.nan, "NaN"), (math.inf, "inf")])
def test_a_nan_or_inf_loss_alerts_with_its_step(loss, said):
    state = fold(STARTED, metric(1, 2.0), metric(2, loss))
    alerts = active_alerts(state, T0 + 5)
    assert kinds(alerts) == ["nan_loss"] and alerts[0].level == "error"
    assert f"loss is {said} at step 2" in alerts[0].message


def test_a_finite_loss_after_a_nan_clears_the_alert():
    state = fold(STARTED, metric(1, 2.0), metric(2, None), metric(3, 1.9))
    assert active_alerts(state, T0 + 5) == []


def test_nan_and_inf_written_by_the_real_event_writer_read_back_as_a_nan_alert(tmp_path):
    from r1tui.runs.events import EventWriter, read_events

    with EventWriter(tmp_path / "events.jsonl") as writer:
        writer.emit("run_started", run_id="r1", pid=1, stages=["train"])
        writer.emit("metric", stage="train", step=1, loss=float("inf"))
    state = RunState()
    state.apply_all(read_events(tmp_path / "events.jsonl"))
    assert kinds(active_alerts(state, T0)) == ["nan_loss"]


def spiky(n: int, spike_at: int | None, spike: float = 9.0) -> tuple[list[float], list[float]]:
    steps = [float(s) for s in range(1, n + 1)]
    # a noisy, slowly falling loss
    losses = [3.0 - 0.005 * s + 0.05 * math.sin(1.7 * s) for s in range(1, n + 1)]
    if spike_at is not None:
        losses[spike_at - 1] = spike
    return steps, losses


def test_a_jump_after_the_warm_up_is_a_spike():
    steps, losses = spiky(60, spike_at=40)
    found = loss_spikes(steps, losses)
    assert [(s.step, s.loss) for s in found] == [(40.0, 9.0)]
    assert 2.7 < found[0].ema < 3.0


def test_a_jump_during_the_warm_up_is_not_a_spike():
    steps, losses = spiky(60, spike_at=SPIKE_WARMUP - 5)
    assert loss_spikes(steps, losses) == []


def test_noise_and_a_falling_loss_are_not_spikes():
    steps, losses = spiky(300, spike_at=None)
    assert loss_spikes(steps, losses) == []
    # the usual fast fall at the start (10.4 -> 9.3 in 20 steps) is no spike either
    falling = [10.4 * (0.99 ** s) for s in range(200)]
    assert loss_spikes(range(200), falling) == []


def test_consecutive_spiking_points_are_one_episode():
    steps, losses = spiky(60, spike_at=40)
    losses[40] = 8.0  # step 41 spikes too
    found = loss_spikes(steps, losses)
    assert [(s.step, s.last_step, s.loss) for s in found] == [(40.0, 41.0, 9.0)]


def test_a_spike_is_active_while_recent_and_only_when_enabled():
    steps, losses = spiky(45, spike_at=40)
    state = fold(STARTED, *(metric(int(s), v) for s, v in zip(steps, losses, strict=True)))
    state.set_process_alive(True, T0 + 50)
    alerts = active_alerts(state, T0 + 50)
    assert kinds(alerts) == ["loss_spike"] and "loss spike at step 40: 9 against a smoothed 2.8" in alerts[0].message
    assert active_alerts(state, T0 + 50, AlertSettings(loss_spike=False)) == []
    fold(*(metric(s, 2.7) for s in range(46, 70)), state=state)
    assert active_alerts(state, T0 + 80) == []  # long past: no longer "now"


def gpu(used: float, total: float = 24e9, index: int = 0) -> tuple[str, dict]:
    return ("gpu", {"_stage": "train", "available": True, "index": index, "name": "RTX 4090",
                    "memory_used": used, "memory_total": total})


def test_vram_above_the_threshold_alerts_per_gpu():
    state = fold(STARTED, gpu(23.0e9), gpu(10e9, index=1))
    state.set_process_alive(True, T0 + 3)
    alerts = active_alerts(state, T0 + 3)
    assert kinds(alerts) == ["vram_high"]
    assert alerts[0].message == "GPU 0 memory at 96% (23.0 GB of 24.0 GB; alerts at 95%)"
    assert active_alerts(state, T0 + 3, AlertSettings(vram_percent=97)) == []
    assert kinds(active_alerts(fold(STARTED, gpu(22.0e9)), T0, AlertSettings(vram_percent=90))) == ["vram_high"]


def test_a_gpu_without_samples_or_without_a_device_alerts_nothing():
    state = fold(STARTED, ("gpu", {"available": False, "reason": "no NVML"}))
    state.set_process_alive(True, T0 + 2)
    assert active_alerts(state, T0 + 2) == []


def test_finished_failed_and_crashed_runs_alert_at_their_level():
    finished = fold(STARTED, ("run_finished", {"status": "finished", "_ts": T0 + 75}))
    [alert] = active_alerts(finished, T0 + 80)
    assert (alert.kind, alert.level, alert.message) == ("finished", "info", "run r1 finished in 1:15")
    failed = fold(STARTED, ("run_finished", {"status": "failed", "error": "ValueError: bad row 3"}))
    [alert] = active_alerts(failed, T0 + 5)
    assert (alert.kind, alert.level, alert.message) == ("failed", "error", "run r1 failed: ValueError: bad row 3")
    crashed = fold(STARTED, ("stage_started", {"_stage": "train"}))
    crashed.set_process_alive(False, T0 + 5)
    [alert] = active_alerts(crashed, T0 + 5)
    assert (alert.kind, alert.level) == ("crashed", "error")
    assert alert.message == "run r1 crashed in train: its process is gone without a finish event"
    cancelled = fold(STARTED, ("run_finished", {"status": "cancelled"}))
    assert active_alerts(cancelled, T0 + 5) == []  # a person asked for it: nothing to tell them


def test_replaying_a_finished_run_rings_nothing():
    """The first update primes: what was true before the dashboard looked is history."""
    state = fold(STARTED, metric(1, 2.0), metric(2, None), gpu(23.9e9),
                 ("run_finished", {"status": "failed", "error": "loss diverged"}))
    watcher = AlertWatcher()
    assert watcher.update(state, T0 + 10) == []
    assert watcher.update(state, T0 + 11) == []  # and never later either


def test_the_watcher_rings_each_new_event_once():
    state = fold(STARTED, metric(1, 2.0))
    state.set_process_alive(True, T0 + 2)
    watcher = AlertWatcher()
    assert watcher.update(state, T0 + 2) == []  # primed on a healthy live run
    fold(gpu(23.5e9), state=state)
    assert kinds(watcher.update(state, T0 + 3)) == ["vram_high"]
    fold(gpu(23.6e9), state=state)
    assert watcher.update(state, T0 + 4) == []  # still high: already rung
    fold(metric(2, None), state=state)
    assert kinds(watcher.update(state, T0 + 5)) == ["nan_loss"]
    fold(("run_finished", {"status": "failed", "error": "nan"}), state=state)
    assert kinds(watcher.update(state, T0 + 6)) == ["failed"]
    assert watcher.update(state, T0 + 7) == []


def test_a_resumed_run_rings_again_when_it_finishes():
    state = fold(STARTED, ("run_finished", {"status": "cancelled"}))
    watcher = AlertWatcher()
    watcher.update(state, T0 + 3)
    fold(("run_started", {"run_id": "r1", "pid": 43, "stages": ["train"], "_ts": T0 + 100}),
         ("run_finished", {"status": "finished", "_ts": T0 + 130}), state=state)
    assert kinds(watcher.update(state, T0 + 131)) == ["finished"]


def test_escapes_send_bel_osc9_and_osc777_and_wrap_them_for_tmux():
    from r1tui.runs.alerts import Alert

    alert = Alert("finished", "info", "run r1 finished; in 1:15")
    plain = notification_escapes(alert, AlertSettings(), tmux=False)
    assert plain == ("\x1b]9;r1tui: run finished: run r1 finished, in 1:15\x07"
                     "\x1b]777;notify;r1tui: run finished;run r1 finished, in 1:15\x07\x07")
    wrapped = notification_escapes(alert, AlertSettings(), tmux=True)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]9;r1tui: run finished") and wrapped.endswith("\x1b\\\x07")
    assert wrapped.count("\x1bPtmux;") == 2
    assert notification_escapes(alert, AlertSettings(desktop=False), tmux=True) == "\x07"
    assert notification_escapes(alert, AlertSettings(bell=False, desktop=False), tmux=False) == ""


def test_alert_settings_come_from_the_alerts_section():
    config = parse_config({"alerts": {"bell": False, "vram_percent": 90}})
    assert AlertSettings.from_config(config) == AlertSettings(bell=False, desktop=True, loss_spike=True,
                                                              vram_percent=90.0)
    assert AlertSettings.from_config(None) == AlertSettings()


@pytest.mark.parametrize(("section", "fragment"), [
    ({"vram_percent": 0}, "alerts.vram_percent = 0: Input should be greater than 0"),
    ({"vram_percent": 101}, "alerts.vram_percent = 101: Input should be less than or equal to 100"),
    ({"bel": True}, "unknown key 'alerts.bel'; allowed here: bell, desktop, loss_spike, vram_percent"),
    ({"bell": "loud"}, "alerts.bell = 'loud'"),
])
def test_a_bad_alerts_section_is_one_line(section, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_config({"alerts": section}, origin="config.toml")
    message = str(caught.value)
    assert fragment in message and "\n" not in message

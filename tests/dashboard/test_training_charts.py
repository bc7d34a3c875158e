"""The Training panel's charts: EMA smoothing, log scale, whole-step x axis, eval loss and
another run's loss overlaid. The computations in r1tui.dashboard.charts against values
worked out by hand; the keys under the Pilot on the log recorded from a real tiny run;
SVG snapshots at 80x24 and 120x40."""

from __future__ import annotations

import json
import math

import pytest
from textual.widgets import OptionList

from r1tui.dashboard import charts
from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.screens.pick_run import PickRunScreen
from r1tui.dashboard.widgets.training import TrainingPanel
from r1tui.runs.events import read_events
from r1tui.runs.reducer import RunState, Series

SIZE = (80, 24)
OTHER_RUN = "20261130-101500-other"


# ---------------------------------------------------------------- the computations


def test_ema_is_tensorboards_debiased_average_worked_by_hand():
    # weight 0.5 over 4, 2, 8: the running sums 2, 2, 5 divided by 1-0.5, 1-0.25, 1-0.125
    assert charts.ema([4.0, 2.0, 8.0], 0.5) == pytest.approx([4.0, 8 / 3, 5 / 0.875])
    # weight 0.9: 1.0, (0.09 + 0.3) / 0.19, ((0.09 + 0.3) * 0.9 + 0.1 * 2) / 0.271
    assert charts.ema([1.0, 3.0, 2.0], 0.9) == pytest.approx([1.0, 0.39 / 0.19, (0.39 * 0.9 + 0.2) / 0.271])
    # debiased: a constant series stays constant from the first point (no pull towards 0)
    assert charts.ema([7.5] * 50, 0.99) == pytest.approx([7.5] * 50)
    assert charts.ema([3.0, 1.0], 0.0) == [3.0, 1.0]
    assert charts.ema([], 0.9) == []
    with pytest.raises(ValueError, match="below 1"):
        charts.ema([1.0], 1.0)


def test_smoothing_cycles_through_the_steps_and_wraps():
    seen = [charts.DEFAULT_SMOOTHING]
    for _ in range(len(charts.SMOOTHING_STEPS)):
        seen.append(charts.next_smoothing(seen[-1]))
    assert seen == [0.6, 0.9, 0.99, 0.0, 0.6]
    assert charts.next_smoothing(0.42) == 0.0


def test_thin_keeps_the_first_and_the_newest_and_at_most_the_points_asked():
    xs, ys = list(range(1, 1001)), [float(i) for i in range(1000)]
    thin_xs, thin_ys = charts.thin(xs, ys, 100)
    assert len(thin_xs) <= 101 and thin_xs[0] == 1 and thin_xs[-1] == 1000 and thin_ys[-1] == 999.0
    assert thin_xs == sorted(thin_xs) and thin_xs[1] - thin_xs[0] == 10
    assert charts.thin([1, 2], [3.0, 4.0], 100) == ([1, 2], [3.0, 4.0])


def test_positive_leaves_out_what_a_log_axis_cannot_show():
    assert charts.positive([1, 2, 3, 4], [2.0, 0.0, -1.0, 0.5]) == ([1, 4], [2.0, 0.5])


def test_step_ticks_are_whole_round_steps():
    assert charts.step_ticks(0, 30, 6) == [0, 10, 20, 30]
    assert charts.step_ticks(0, 30, 8) == [0, 5, 10, 15, 20, 25, 30]
    assert charts.step_ticks(0, 7, 10) == list(range(8))
    assert charts.step_ticks(0, 1, 4) == [0, 1]
    assert charts.step_ticks(0, 12_345, 5) == [0, 5000, 10000]
    assert charts.step_ticks(0, 30, 3) == [0, 20, 30]  # max_steps labelled when half a spacing away
    assert charts.step_ticks(0, 37, 6) == [0, 10, 20, 30, 37]
    assert charts.step_ticks(0, 33, 6) == [0, 10, 20, 30]  # ... and not when it would crowd the last
    assert charts.step_ticks(3, 3) == [3]
    for upper in (1, 9, 30, 101, 999, 100_000):
        ticks = charts.step_ticks(0, upper, 6)
        assert len(ticks) <= 7 and all(isinstance(t, int) for t in ticks) and ticks == sorted(set(ticks))
        assert ticks[0] == 0 and ticks[-1] <= upper


def test_the_frame_spans_max_steps_from_the_start_and_stretches_for_a_longer_series():
    short = Series()
    for step in (1, 2, 3):
        short.add(step, 1.0)
    assert charts.step_frame(30, short) == (0, 30)
    longer = Series()
    longer.add(45, 1.0)
    assert charts.step_frame(30, short, longer) == (0, 45)
    assert charts.step_frame(None, short) == (0, 3)
    assert charts.step_frame(None) == (0, 1)


def test_max_steps_from_progress_then_metrics_then_the_config(tiny_config_path):
    from r1tui.config import load_config
    from r1tui.runs.events import Event

    config = load_config(tiny_config_path)
    state = RunState()
    assert charts.max_steps(state, config) == config.train.max_steps == 30
    config.train.max_steps = -1  # trains for epochs: unknown before the trainer says
    assert charts.max_steps(state, config) is None
    state.apply(Event("metric", {"step": 1, "max_steps": 120, "loss": 2.0}, stage="train", ts=1.0))
    assert charts.max_steps(state, config) == 120
    state.apply(Event("stage_progress", {"completed": 1, "total": 125, "unit": "step"}, stage="train", ts=2.0))
    assert charts.max_steps(state, config) == 125


def test_titles_say_the_smoothing_and_the_scale():
    assert charts.chart_title("loss", 9.4321) == "loss 9.432"
    assert charts.chart_title("loss", 9.4321, smoothing=0.9, smoothed_last=9.51, log_scale=True) == \
        "loss 9.432 · ema 0.9 → 9.51 · log y"
    assert charts.chart_title("loss", None) == "loss (no data)"


def test_read_overlay_folds_another_runs_log(new_run):
    run = new_run()
    overlay = charts.read_overlay(run.run_dir)
    losses = [e.data["loss"] for e in read_events(run.layout.events) if e.type == "metric"]
    assert overlay.run_id == run.run_id and list(overlay.loss.ys) == losses
    empty = new_run(events=False, results=False, run_id="no-log")
    with pytest.raises(ValueError, match="no-log: no events.jsonl"):
        charts.read_overlay(empty.run_dir)
    empty.layout.events.write_text(json.dumps({"v": 1, "ts": 1.0, "type": "run_started", "data": {}}) + "\n")
    with pytest.raises(ValueError, match="no training loss yet"):
        charts.read_overlay(empty.run_dir)


# ---------------------------------------------------------------- the panel under the Pilot


def write_other_run(new_run, recorded_run, scale: float = 0.8, eval_every: int = 5):
    run = new_run(events=False, results=False, run_id=OTHER_RUN)
    out = []
    for event in read_events(recorded_run.layout.events):
        raw = {"v": 1, "seq": event.seq, "ts": event.ts, "type": event.type, "stage": event.stage, "data": dict(event.data)}
        if event.type == "metric":
            raw["data"]["loss"] = event.data["loss"] * scale
            out.append(raw)
            if event.data["step"] % eval_every == 0:
                out.append({**raw, "data": {"step": event.data["step"], "eval_loss": event.data["loss"] * scale + 0.1}})
            continue
        out.append(raw)
    run.layout.events.write_text("".join(json.dumps(line) + "\n" for line in out), encoding="utf-8")
    return run


async def open_training(app, pilot, settle, wait_for, screen_text) -> TrainingPanel:
    await settle(pilot, app)
    await pilot.press(KEY["training"])
    await wait_for(pilot, lambda: "checkpoints" in screen_text(app), what="the training panel")
    panel = app.query_one(TrainingPanel)
    await wait_for(pilot, lambda: "loss" in panel.titles, what="the loss plot drawn")
    return panel


@pytest.mark.anyio
async def test_m_cycles_the_smoothing_shown_in_the_title(make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    losses = [e.data["loss"] for e in read_events(recorded_run.layout.events) if e.type == "metric"]
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        assert panel.smoothing == 0.6
        smoothed = charts.ema(losses, 0.6)[-1]
        assert panel.titles["loss"] == charts.chart_title("loss", losses[-1], smoothing=0.6, smoothed_last=smoothed)
        assert " · ema 0.6 → " in panel.titles["loss"] and panel.titles["loss"] in screen_text(app)
        for expected in (0.9, 0.99, 0.0, 0.6):
            await pilot.press("m")
            await wait_for(pilot, lambda expected=expected: panel.smoothing == expected, what=f"smoothing {expected}")
            title = panel.titles["loss"]
            if expected:
                assert f" · ema {expected:g} → " in title
                assert title.endswith(charts.format_number(charts.ema(losses, expected)[-1]))
            else:
                assert "ema" not in title
        # the footer offers the chart keys here, and not on another panel
        assert " m smooth " in screen_text(app).splitlines()[-1]
        await pilot.press(KEY["overview"])
        await wait_for(pilot, lambda: " m smooth " not in screen_text(app).splitlines()[-1], what="the footer")
        await pilot.press("m")
        await pilot.pause(0.1)
        assert panel.smoothing == 0.6  # the key does nothing off the Training panel


@pytest.mark.anyio
async def test_g_toggles_a_log_scale_loss_axis(make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        assert not panel.log_scale and "log y" not in panel.titles["loss"]
        await pilot.press("g")
        await wait_for(pilot, lambda: panel.titles["loss"].endswith(" · log y"), what="the log-scale title")
        assert panel.log_scale
        await pilot.press("g")
        await wait_for(pilot, lambda: "log y" not in panel.titles["loss"], what="the linear title")


@pytest.mark.anyio
async def test_the_x_axis_spans_max_steps_in_whole_steps(make_app, new_run, recorded_run, settle, wait_for,
                                                        screen_text):
    """A run 10 steps into 30 already draws the frame up to 30 (from the frozen config)."""
    run = new_run(events=False, results=False, run_id="20261201-000000-partial")
    recorded = read_events(recorded_run.layout.events)
    kept, steps = [], 0
    for event in recorded:
        if event.type in ("stage_finished", "run_finished") or event.stage not in (None, "prepare", "train"):
            continue
        if event.type == "stage_progress" and event.stage == "train":
            continue  # the frozen config says max_steps before the trainer does
        if event.type == "metric":
            steps += 1
            if steps > 10:
                break
        kept.append(event)
    run.layout.events.write_text("".join(e.to_json() + "\n" for e in kept), encoding="utf-8")
    app = make_app(run)
    async with app.run_test(size=(120, 40)) as pilot:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        assert app.state.series("loss").xs[-1] == 10
        plot = app.query_one("#plot-loss")
        text = plot.plt.build()
        axis = [line for line in text.splitlines() if "30" in line and "0" in line][-1]
        assert "30" in axis and "." not in axis  # whole-step labels up to max_steps
        ticks = charts.step_ticks(0, 30, max(2, plot.size.width // 10))
        assert all(str(t) in axis for t in ticks)
        assert panel.titles["loss"].startswith("loss ")


@pytest.mark.anyio
async def test_o_overlays_another_runs_loss_and_picking_it_again_removes_it(make_app, new_run, recorded_run, settle,
                                                                             wait_for, screen_text):
    other = write_other_run(new_run, recorded_run)
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, PickRunScreen), what="the run picker")
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels == ["● none", f"  {OTHER_RUN}"]  # the other runs only, not the one watched
        await pilot.press("enter")  # the newest other run is highlighted
        await wait_for(pilot, lambda: panel.overlay is not None, what="the overlay read")
        expected = [e.data["loss"] for e in read_events(other.layout.events) if e.type == "metric" and "loss" in e.data]
        assert panel.overlay.run_id == OTHER_RUN and list(panel.overlay.loss.ys) == expected
        assert list(panel.overlay.series["eval_loss"].xs) == [5, 10, 15, 20, 25, 30]
        await wait_for(pilot, lambda: OTHER_RUN in app.query_one("#plot-loss").plt.build(), what="the legend")

        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, PickRunScreen), what="the run picker")
        await pilot.press("escape")  # Esc closes the list and changes nothing
        await wait_for(pilot, lambda: not isinstance(app.screen, PickRunScreen), what="the picker closed")
        assert panel.overlay is not None and panel.overlay.run_id == OTHER_RUN

        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, PickRunScreen), what="the run picker")
        options = app.screen.query_one(OptionList)
        assert str(options.get_option_at_index(1).prompt) == f"● {OTHER_RUN}"
        await pilot.press("enter")  # the one shown, picked again: removed
        await wait_for(pilot, lambda: panel.overlay is None, what="the overlay removed")
        await wait_for(pilot, lambda: OTHER_RUN not in app.query_one("#plot-loss").plt.build(), what="the legend")


@pytest.mark.anyio
async def test_o_with_no_other_run_says_so(make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        await pilot.press("o")
        notices = lambda: [n.message for n in app._notifications if n.severity == "warning"]  # noqa: E731
        await wait_for(pilot, notices, what="the notice")
        assert notices() == [f"no other run under {app.show_path(str(app.runs_dir))} to compare with"]
        assert panel.overlay is None and not isinstance(app.screen, PickRunScreen)


@pytest.mark.anyio
async def test_eval_loss_events_are_drawn_and_titled(make_app, new_run, recorded_run, settle, wait_for, screen_text):
    """A run whose trainer evaluated: its eval_loss series is kept and drawn with a legend."""
    run = write_other_run(new_run, recorded_run)
    app = make_app(run)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        eval_loss = app.state.series("eval_loss")
        assert list(eval_loss.xs) == [5, 10, 15, 20, 25, 30]
        assert panel.titles["loss"].endswith(f" · eval {charts.format_number(eval_loss.last)}")
        assert "eval" in app.query_one("#plot-loss").plt.build()
        assert not any(math.isnan(y) for y in app.state.series("loss").ys)


# ---------------------------------------------------------------- snapshots


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_training_view_smoothed_with_an_overlay(size, snap_compare, make_app, new_run, recorded_run, settle, wait_for,
                                                screen_text):
    """Smoothing 0.9 (raw loss faint behind), another run's loss and eval loss overlaid."""
    write_other_run(new_run, recorded_run)
    app = make_app(recorded_run)

    async def run_before(pilot) -> None:
        panel = await open_training(app, pilot, settle, wait_for, screen_text)
        await pilot.press("m")
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, PickRunScreen), what="the run picker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: panel.overlay is not None and OTHER_RUN in panel.app.query_one(
            "#plot-loss").plt.build(), what="the overlay drawn")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)

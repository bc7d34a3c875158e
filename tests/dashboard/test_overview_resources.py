"""The Overview and Resources panels (issue 13, items 1 and 3).

- The figures they draw, computed without a terminal (``r1tui.dashboard.monitor``).
- Both panels under the Pilot at 80x24 and 120x40, fed by a training log written into a
  run folder (GPU samples, CUDA peaks, progress), with this machine sampled for real: the
  run's writer is this test process (its pid file), so its process tree is real, and
  NVML is absent here, so "no GPU found" is real too. Only the GPU itself is faked
  (``..._with_a_fake_nvml``): no GPU can exist on this machine.
- A crashed run shows its diagnosis in place of the figures.
- SVG snapshots of both panels at 80x24 and 120x40 (fixed times, local sampling off so
  nothing on screen depends on this machine).
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from r1tui.config import load_config
from r1tui.dashboard.charts import ema
from r1tui.dashboard.monitor import (
    LossTrend,
    loss_trend,
    remaining_output_bytes,
    remaining_stages,
    vram_peak,
)
from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dryrun import build_report
from r1tui.pipeline import registry
from r1tui.present import format_bytes, format_duration, format_number
from r1tui.runs.disk import DISK_SLACK_BYTES, disk_outlook
from r1tui.runs.events import EVENT_SCHEMA, Event, EventWriter
from r1tui.runs.reducer import RunState, Series, reduce
from tests.fake_nvml import NVML_CLOCK_MEM, NVML_CLOCK_SM, fake_nvml

SMALL, LARGE = (80, 24), (120, 40)
T0 = 1_800_000_000.0
STEP_S = 2.0
MAX_STEPS = 100
CARD = 24_000_000_000  # the GPU's memory in the written samples
GPU_NAME = "NVIDIA GeForce RTX 4090"


def training_events(run_id: str, steps: int = 40, *, estimate: int, pid: int = 1) -> list[Event]:
    """run_started (prepare, train, export, eval), prepare done, then ``steps`` training steps
    STEP_S apart, each with a metric (a falling loss, CUDA's peak at 90 % of ``estimate``), its
    progress and a GPU sample whose memory climbs to 96 % of the card; fixed times."""
    events: list[Event] = []

    def add(type: str, ts: float, stage: str | None = None, **data) -> None:
        assert set(data) <= EVENT_SCHEMA[type], f"{type}: {set(data) - EVENT_SCHEMA[type]}"
        events.append(Event(type=type, data=data, stage=stage, ts=ts, seq=len(events) + 1))

    add("run_started", T0, run_id=run_id, pid=pid, stages=["prepare", "train", "export", "eval"], dry_run=False,
        resumed=False, heartbeat_s=10.0, backend="hf")
    add("stage_started", T0 + 1, stage="prepare")
    add("stage_progress", T0 + 4, stage="prepare", completed=12, total=12, unit="example")
    add("stage_finished", T0 + 5, stage="prepare", status="finished", duration_s=4.0)
    add("stage_started", T0 + 6, stage="train")
    add("log", T0 + 6.5, stage="train", level="info", message="backend hf: LoRA r=16 on 7 projections")
    for step in range(1, steps + 1):
        ts = T0 + 6 + step * STEP_S
        loss = 2.0 + 1.5 * 0.95 ** step + (0.08 if step % 3 == 0 else 0.0)
        add("metric", ts, stage="train", step=step, epoch=round(2 * step / MAX_STEPS, 4), loss=loss,
            learning_rate=2e-4, grad_norm=1.1, tokens_per_s=1234.5, cuda_peak=int(0.85 * estimate),
            cuda_peak_reserved=int(0.9 * estimate))
        add("stage_progress", ts, stage="train", completed=step, total=MAX_STEPS, unit="step")
        add("gpu", ts, stage="train", available=True, index=0, name=GPU_NAME,
            memory_used=int(CARD * (0.5 + 0.46 * step / steps)), memory_total=CARD, utilization=97,
            temperature=71, power_w=410.2)
    add("log", events[-1].ts, stage="train", level="warning", message="grad norm clipped at step 40")
    return events


def write(path, events) -> None:
    with open(path, "w", encoding="utf-8") as log:
        log.writelines(event.to_json() + "\n" for event in events)


# -------------------------------------------------------------------- the figures, no terminal


def test_loss_trend_is_the_ema_and_its_direction():
    falling = Series()
    for step in range(1, 41):
        falling.add(step, 3.0 * 0.97 ** step)
    trend = loss_trend(falling)
    assert trend.smoothed == pytest.approx(ema(list(falling.ys), 0.9)[-1])
    smoothed = ema(list(falling.ys), 0.9)
    assert trend.change == pytest.approx((smoothed[-1] - smoothed[-21]) / smoothed[-21]) and trend.points == 20
    assert trend.arrow == "↓"
    rising = Series()
    for step in range(1, 6):
        rising.add(step, float(step))
    assert loss_trend(rising).arrow == "↑" and loss_trend(rising).points == 4
    flat = Series()
    for step in range(1, 30):
        flat.add(step, 2.0)
    assert loss_trend(flat).arrow == "→"
    one = Series()
    one.add(1, 2.5)
    assert loss_trend(one) == LossTrend(2.5, None, 0) and loss_trend(Series()) is None


def test_vram_peak_prefers_cuda_then_nvml(recorded_run):
    config = load_config(recorded_run.layout.config)
    report = build_report(config, with_masking=False)
    events = training_events("x", 10, estimate=report.vram.total)
    peak = vram_peak(reduce(events), report)
    assert peak.peak == int(0.9 * report.vram.total) and peak.source == "CUDA peak reserved"
    assert peak.of_estimate == pytest.approx(0.9, abs=1e-6) and peak.gpu_bytes == report.vram.gpu_bytes
    without_cuda = [e for e in events if not (e.type == "metric")]
    nvml = vram_peak(reduce(without_cuda), None)
    assert nvml.source == "NVML used" and nvml.peak == max(e.data["memory_used"] for e in events if e.type == "gpu")
    assert nvml.estimate is None and nvml.of_estimate is None
    assert vram_peak(RunState(), None).peak is None


def test_remaining_stages_and_what_they_write(recorded_run):
    """The stages left to run, and what each declares it writes (the registry's own figure,
    the one the orchestrator checks before the stage starts)."""
    config = load_config(recorded_run.layout.config)
    state = RunState(groups=registry.groups())
    state.apply_all(training_events("x", 5, estimate=1))
    left = remaining_stages(state, registry.stage_names())
    assert left == ("train", "merge", "gguf", "quantize", "parity", "eval")
    needs = remaining_output_bytes(recorded_run.layout, config, left)
    ctx_free = {name: registry.get(name).output_bytes for name in left}
    assert set(needs) == {name for name, size in ctx_free.items() if size is not None}
    # each size is the stage's own figure, asked of it directly here
    from r1tui.runs.context import StageContext
    from r1tui.runs.events import NullWriter

    ctx = StageContext(config=config, layout=recorded_run.layout, events=NullWriter(),
                       data_dir=recorded_run.layout.data)

    def asked(name: str) -> int | None:
        try:
            return registry.get(name).output_bytes(ctx)
        except Exception:  # noqa: BLE001 - merge without an adapter (the folder holds none)
            return None

    assert needs == {name: asked(name) for name in needs}
    assert needs["gguf"] > 0 and needs["quantize"] > 0 and needs["merge"] is None
    outlook = disk_outlook(recorded_run.layout.root, 10**15, needs)
    known = needs["gguf"] + needs["quantize"]
    assert outlook.needed == known + DISK_SLACK_BYTES and outlook.fits and outlook.unknown == ["merge"]
    assert not disk_outlook(recorded_run.layout.root, 10, needs).fits
    assert disk_outlook(recorded_run.layout.root, 10, {}).needed == 0


def test_a_stage_whose_size_is_not_known_yet_is_none(new_run):
    run = new_run(events=False, results=False)  # no adapter: merge cannot say what it writes
    needs = remaining_output_bytes(run.layout, load_config(run.layout.config), ("merge", "gguf", "nope"))
    assert needs["merge"] is None and needs["gguf"] > 0 and "nope" not in needs
    assert disk_outlook(run.layout.root, 10**15, needs).unknown == ["merge"]


# -------------------------------------------------------------------- under the Pilot


@pytest.fixture
def training_run(new_run):
    """A run folder mid-training: the written log, and this process as its live writer."""

    def build(steps: int = 40, live: bool = True):
        run = new_run(events=False, results=False)
        report = build_report(load_config(run.layout.config), with_masking=False)
        events = training_events(run.run_id, steps, estimate=report.vram.total, pid=os.getpid())
        write(run.layout.events, events)
        if live:
            run.layout.pid.write_text(f"{os.getpid()}\n")
        return run, events, report

    return build


def _figures(app, events, report):
    """What the Overview must show for the written log, computed here from the events."""
    metrics = [e.data for e in events if e.type == "metric"]
    last = metrics[-1]
    smoothed = ema([m["loss"] for m in metrics], 0.9)
    return {
        "steps": f"{last['step']}/{MAX_STEPS}",
        "epoch": f"epoch {last['epoch']:.2f}",
        "loss": f"loss {format_number(smoothed[-1])} ↓",
        "tokens": f"{last['tokens_per_s']:,.0f} tok/s",
        "peak": f"peak {format_bytes(last['cuda_peak_reserved'])} / est. {format_bytes(report.vram.total)} (90%)",
    }


async def _overview_sampled(pilot, app, wait_for):
    await wait_for(pilot, lambda: app.monitor.latest is not None and app.monitor.latest.tree is not None,
                   what="this machine sampled")
    await pilot.pause(0.2)


@pytest.mark.anyio
@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
async def test_overview_of_a_live_run_fits(size, make_app, training_run, settle, screen_text, wait_for):
    run, events, report = training_run()
    app = make_app(run, sample_local_gpu=True, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        assert app.state.status == "running"
        await _overview_sampled(pilot, app, wait_for)
        await wait_for(pilot, lambda: "left to write" in screen_text(app), what="the disk outlook")
        text = screen_text(app)
        lines = text.splitlines()
        # every stage, each on its own row, in pipeline order
        rows = [line.split()[0] for line in lines if line.split()[:1] and line.split()[0] in registry.stage_names()]
        assert rows == list(registry.stage_names())
        train = next(line for line in lines if line.split()[:1] == ["train"])
        eta = app.state.stage("train").eta_s()
        assert "▶ running" in train and format_duration(eta) in train and "40%" in train
        assert eta == pytest.approx((MAX_STEPS - 40) * STEP_S, rel=0.05)
        for figure in _figures(app, events, report).values():
            assert figure in text, figure
        # the GPU: this machine has none (real: no NVML here), so the run's own samples say it
        assert "GPU 97% 71 °C 410 W (run's log)" in text
        # the run's processes: this test process is the writer (real psutil figures)
        tree = app.monitor.latest.tree
        assert tree.alive and tree.root == os.getpid() and tree.rss > 0
        assert re.search(r"RAM +run \d+(\.\d)? [kMG]?B swap", text)
        disk = app.monitor.latest.disk
        assert disk.unknown == ["merge"]  # no adapter yet: said, not guessed
        assert f"{format_bytes(disk.free)} free · left to write {format_bytes(disk.needed)} ✓ + merge ?" in text
        # the alert the log calls for: GPU memory at 96 % of the card
        assert "⚠ GPU 0 memory at 96%" in text
        assert "[train] grad norm clipped at step 40" in text  # the last log line
        for line in lines[3:-1]:  # the panel: nothing cut off mid-figure
            assert not line.rstrip().endswith("…") or line.split()[:1] in (["[train]"], ["⚠"]), line
        assert "s start" in lines[-1] and "x cancel" in lines[-1]  # the actions' keys live here


@pytest.mark.anyio
async def test_overview_shows_the_gpu_with_a_fake_nvml(make_app, training_run, settle, screen_text, wait_for,
                                                        fake_rtx_4090):
    run, events, report = training_run()
    app = make_app(run, sample_local_gpu=True, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await wait_for(pilot, lambda: "410/450 W" in screen_text(app), what="the local GPU")
        assert "GPU 97% 71 °C 410/450 W" in screen_text(app)


@pytest.mark.anyio
async def test_a_crashed_run_shows_its_diagnosis(make_app, training_run, settle, screen_text, wait_for):
    from r1tui.runs.diagnosis import diagnose

    run, events, report = training_run(steps=12, live=False)  # no writer: the process is gone
    run.layout.pipeline_log.write_text("".join(f"step {i}\n" for i in range(30)) + (
        "Traceback (most recent call last):\n  File \"train.py\", line 1, in <module>\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"), encoding="utf-8")
    app = make_app(run, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        assert app.state.status == "crashed"
        found = diagnose(run.layout, app.state, app.config)
        assert found.cause == "cuda_oom"
        await wait_for(pilot, lambda: "hint:" in screen_text(app), what="the diagnosis")
        text = " ".join(screen_text(app).split())
        assert f"crashed: {found.headline}" in text and " ".join(found.hint.split())[:60] in text
        assert "CUDA out of memory. Tried to allocate 2.00 GiB" in text  # the log's tail
        panel = screen_text(app).splitlines()[3:-1]
        assert panel[-1].strip().startswith("⚠ GPU 0 memory at 96%")  # the last row shown whole: nothing cut
        assert "pipeline.log:" in text
        assert "steps 12/" not in text  # the figures gave it their place
        rows = [line.split()[0] for line in screen_text(app).splitlines()
                if line.split()[:1] and line.split()[0] in registry.stage_names()]
        assert rows == list(registry.stage_names())  # still every stage


@pytest.fixture
def fake_rtx_4090(monkeypatch):
    """FakeNvml (tests/fake_nvml.py) in place of ``pynvml``: one RTX 4090 on which this test
    process holds 3 GB (the run's own, as its writer) and pid 1 holds 1 GB (the fake's
    default processes). r1tui.gpu forgets it afterwards."""
    from r1tui import gpu

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(
        name=GPU_NAME, memory_total=CARD, memory_used=20_000_000_000, power_mw=410_200, power_limit_mw=450_000,
        clocks={NVML_CLOCK_SM: 2520, NVML_CLOCK_MEM: 10501}, max_clocks={NVML_CLOCK_SM: 3105, NVML_CLOCK_MEM: 10501}))
    gpu.reset()
    yield
    gpu.reset()


@pytest.mark.anyio
@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
async def test_resources_marks_the_runs_own_gpu_process_with_a_fake_nvml(size, make_app, training_run, settle,
                                                                          screen_text, wait_for, fake_rtx_4090):
    run, events, report = training_run()
    app = make_app(run, sample_local_gpu=True, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["resources"])
        await wait_for(pilot, lambda: "◀ run" in screen_text(app), what="the run's own GPU process")
        await wait_for(pilot, lambda: len(app.monitor.gpus[0].utilization) >= 2, what="a second sample")
        text = screen_text(app)
        mine = next(line for line in text.splitlines() if "◀ run" in line)
        assert str(os.getpid()) in mine and "3.0 GB" in mine
        other = next(line for line in text.splitlines() if re.match(r"\s*0\s+1\s", line))
        assert "1.0 GB" in other and "◀ run" not in other
        assert f"GPU 0 {GPU_NAME}" in text and "20.0 GB/24.0 GB" in text and "97%" in text
        assert "POWER 410/450 W" in text and "SM 2520/3105 MHz" in text and "MEM 10501/10501 MHz" in text
        tree = app.monitor.latest.tree
        assert f"(pid {os.getpid()})" in text and f"RSS {format_bytes(tree.rss)}" in text
        assert "this machine" in text and "CPUs" in text
        if size == LARGE:  # room for the history and the run's own samples below
            assert "▁" in text or "█" in text
            assert "from the run's log" in text and GPU_NAME in text


@pytest.mark.anyio
async def test_resources_without_a_gpu_still_shows_the_host(make_app, training_run, settle, screen_text, wait_for):
    """This machine really has no GPU (no NVML library): the panel says so, with the reason,
    and still shows the run's processes and this machine's memory."""
    from r1tui import gpu

    gpu.reset()
    run, events, report = training_run()
    app = make_app(run, sample_local_gpu=True, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["resources"])
        await wait_for(pilot, lambda: "no GPU found" in screen_text(app), what="no GPU")
        await wait_for(pilot, lambda: "RSS" in screen_text(app), what="the run's processes")
        text = screen_text(app)
        assert f"no GPU found on this machine — {gpu.unavailable_reason()}" in " ".join(text.split())
        assert f"(pid {os.getpid()})" in text and "this machine" in text and "RAM" in text


@pytest.mark.anyio
async def test_resources_gauge_and_history_from_the_runs_gpu_events(make_app, new_run, settle, screen_text,
                                                                     wait_for):
    run = new_run()
    with EventWriter(run.layout.events) as writer:  # appended to the recorded run's log
        for used in (4e9, 8e9, 12e9):
            writer.emit("gpu", stage="train", available=True, name="NVIDIA H100", memory_used=used,
                        memory_total=80e9, utilization=93, temperature=64)
    app = make_app(run)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["resources"])
        await wait_for(pilot, lambda: "from the run's log" in screen_text(app), what="the resources panel")
        text = screen_text(app)
        assert "NVIDIA H100" in text and "12.0 GB / 80.0 GB (15%)" in text
        assert "93%" in text and "64 °C" in text
        assert list(app.state.gpu.memory_history) == [4e9, 8e9, 12e9]
        history = next(line for line in text.splitlines() if "VRAM history" in line)
        assert "▁" in history and "▂" in history  # 4, 8, 12 GB of 80 GB, scaled to the card
        assert "not sampled" in text  # the dashboard's own sampling is off in this test


@pytest.mark.anyio
async def test_this_machine_is_sampled_only_while_a_panel_shows_it(make_app, training_run, settle, wait_for):
    run, events, report = training_run()
    app = make_app(run, sample_local_gpu=True, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await wait_for(pilot, lambda: app.monitor.latest is not None, what="a sample on the Overview")
        assert app.monitor.watchers == {"overview"}
        await pilot.press(KEY["resources"])
        await pilot.pause(0.1)
        assert app.monitor.watchers == {"resources"}
        worker = app.monitor.worker
        await pilot.press(KEY["training"])
        await wait_for(pilot, lambda: worker.is_finished, timeout=10, what="the sampler to stop")
        assert app.monitor.watchers == set()
        before = app.monitor.latest
        await pilot.pause(2.5)
        assert app.monitor.latest is before  # nothing sampled while neither panel shows
        await pilot.press(KEY["overview"])
        await wait_for(pilot, lambda: app.monitor.latest is not before, what="sampling again")


# -------------------------------------------------------------------- SVG snapshots


def _snapshot_before(settle, wait_for, screen_text, keys: str, marker: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(pilot, app)
        for key in keys:
            await pilot.press(key)
        await wait_for(pilot, lambda: marker in screen_text(app), what=repr(marker))
        await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
@pytest.mark.parametrize(("panel", "marker"), [pytest.param("overview", "tok/s", id="overview"),
                                               pytest.param("resources", "VRAM history", id="resources")])
def test_snapshot(panel, marker, size, snap_compare, make_app, training_run, settle, wait_for, screen_text):
    """A live run mid-training at fixed times; this machine not sampled (its figures change)."""
    run, events, report = training_run()
    app = make_app(run, clock=lambda: events[-1].ts + 1)
    keys = "" if panel == "overview" else KEY[panel]
    assert snap_compare(app, terminal_size=size, run_before=_snapshot_before(settle, wait_for, screen_text, keys,
                                                                                marker))


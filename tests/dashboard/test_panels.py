"""Every panel under the Pilot, fed by the log recorded from a real tiny run."""

from __future__ import annotations

import json
import sys

import pytest
from textual.widgets import TabbedContent
from textual_plotext import PlotextPlot

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.widgets.data import DataPanel
from r1tui.dashboard.widgets.push import PushPanel
from r1tui.pipeline import registry
from r1tui.present import format_bytes
from r1tui.quants import quant_of
from r1tui.runs.events import EventWriter, read_events
from tests.fake_nvml import FakeNvmlError, fake_nvml

pytestmark = pytest.mark.anyio
SIZE = (80, 24)


def recorded(run):
    return read_events(run.layout.events)


async def test_attach_replays_the_whole_log(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.state.events_seen == len(recorded(recorded_run))
        text = screen_text(app)
        header = text.splitlines()[0]
        assert recorded_run.run_id in header and "finished" in header and "hf" in header
        assert "dry run off" in header  # a run was found: dry run starts off
        assert app.query_one(TabbedContent).active == "overview"


async def test_overview_panel_lists_every_stage(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        text = screen_text(app)
        rows = [line.split()[0] for line in text.splitlines() if line.split()[1:3] == ["✓", "finished"]]
        ran = [name for name in registry.stage_names() if name in app.state.planned_stages]
        assert len(ran) >= 7  # prepare, train, the four export stages, eval (generate: no teacher)
        assert rows == ran  # every registered stage the run ran, in pipeline order
        for stage in ran:
            line = next(line for line in text.splitlines() if line.strip().startswith(stage))
            duration = app.state.stage(stage).duration_s
            assert (f"{duration:.1f}s" if duration < 60 else "") in line
        assert not any(line.strip().startswith("push") for line in text.splitlines())  # a command, not a stage
        assert "adapter" in text and "eval/results.json" in text and "3 ckpt" in text
        assert f"{len(recorded(recorded_run))} events" in text
        assert "s start" in text and "r resume" in text and "x cancel" in text  # this panel's keys


async def test_config_panel_shows_the_calculator(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["config"])
        await wait_for(pilot, lambda: "Training VRAM estimate" in screen_text(app), what="the config panel")
        text = screen_text(app)
        params = app.report.parameters
        assert f"{params.total:,}" in text and f"{params.lora_trainable:,}" in text
        assert "Training VRAM estimate" in text and "fits" in text
        assert "Q4_K_M *" in text  # the configured quant is marked
        assert f"runs/{recorded_run.run_id}/config.toml" in text
        # once the masking statistics arrive (a worker), the epoch's tokens and hours on the GPU
        await wait_for(pilot, lambda: app.masking_stats is not None, timeout=60, what="the masking statistics")
        await wait_for(pilot, lambda: "One epoch on" in screen_text(app), what="the epoch estimate")
        from r1tui.dryrun import with_masking

        epoch = with_masking(app.report, app.config, app.masking_stats).epoch
        text = screen_text(app)
        assert f"{epoch.tokens:,} in {epoch.rows:,} rows" in text
        assert app.config.hardware.gpu_name == "CPU (no GPU)" and epoch.tokens_per_s is None  # the tiny config's
        assert "no throughput figure for GPU 'CPU (no GPU)'" in " ".join(text.split())  # said, not guessed


async def test_dry_run_view_without_a_run(make_app, settle, screen_text, wait_for):
    app = make_app(None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.dry_run  # no run yet: the dry-run view starts with dry run on
        assert app.query_one(TabbedContent).active == "config"
        total = f"{app.report.parameters.total:,}"
        await wait_for(pilot, lambda: total in screen_text(app), what="the calculator's tables")
        text = screen_text(app)
        assert "no run yet" in text and "DRY RUN" in text.splitlines()[0]
        await wait_for(pilot, lambda: app.masking_stats is not None, what="masking stats")
        assert app.masking_stats["dry_run"] and app.masking_stats["examples"] > 0
        await pilot.press(KEY["overview"])
        await wait_for(pilot, lambda: "No run yet" in screen_text(app), what="overview panel")
        assert "s starts one with configs/tiny.toml" in screen_text(app)  # the config start launches


async def test_data_panel_pages_through_real_examples(make_app, exported_run, settle, screen_text, wait_for):
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["data"])
        panel = app.query_one(DataPanel)
        await wait_for(pilot, lambda: panel.examples is not None, what="examples")
        stats = json.loads(exported_run.layout.data_stats.read_text())
        assert len(panel.examples) == stats["examples"]
        await wait_for(pilot, lambda: "[INST]" in screen_text(app), what="token preview")
        text = screen_text(app)
        assert f"example 1/{stats['examples']}" in text
        assert "token lengths vs max length 512" in text
        assert "trained" in text and "masked" in text
        first = panel.examples.example(0)
        await pilot.press("n")
        await wait_for(pilot, lambda: f"example 2/{stats['examples']}" in screen_text(app), what="page 2")
        assert panel.examples.example(1) != first
        await pilot.press("b", "b")
        await wait_for(pilot, lambda: f"example {stats['examples']}/{stats['examples']}" in screen_text(app),
                       what="wrap to the last example")
        await pilot.press("i")
        await wait_for(pilot, lambda: "ids shown" in screen_text(app), what="ids on")
        assert panel.show_ids
        ids = panel.examples.example(panel.index)[0]
        subscript = str(ids[0]).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
        await wait_for(pilot, lambda: subscript in screen_text(app), what="token ids")


async def test_data_panel_previews_from_the_config_before_prepare(make_app, settle, screen_text, wait_for):
    app = make_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["data"])
        await wait_for(pilot, lambda: "preview from config" in screen_text(app), what="config preview")
        await wait_for(pilot, lambda: "dry-run estimate" in screen_text(app), what="dry-run stats")
        assert "[INST]" in screen_text(app)


async def test_training_panel_plots_the_recorded_metrics(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["training"])
        await wait_for(pilot, lambda: "checkpoints" in screen_text(app), what="the training panel")
        metrics = [e.data for e in recorded(recorded_run) if e.type == "metric"]
        text = screen_text(app)
        assert f"step {metrics[-1]['step']}/{metrics[-1]['step']}" in text and "100%" in text
        assert f"{metrics[-1]['tokens_per_s']:,.0f} tok/s" in text
        assert "checkpoints step 10, step 20, step 30" in text
        for key in ("loss", "grad_norm", "learning_rate"):
            plot = app.query_one(f"#plot-{key}", PlotextPlot)
            assert len(app.state.series(key)) == len(metrics)
            assert "⠀" in plot.plt.build() or any(ch in plot.plt.build() for ch in "⡀⣀⠉⠒⠤")


@pytest.fixture
def fake_nvml_installed(monkeypatch):
    """FakeNvml (tests/fake_nvml.py) in place of ``pynvml``, so the Resources panel's local
    sampling through r1tui.gpu answers the same on any machine: no driver, or one H100 on
    which this test process holds 3 GB (so the panel marks it as the run's own when the
    run's writer is this process) and another process 1 GB (the fake's defaults)."""
    from r1tui import gpu

    def install(with_gpu: bool) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", fake_nvml() if with_gpu else
                            fake_nvml(init_error=FakeNvmlError("NVML Shared Library Not Found")))
        gpu.reset()

    yield install
    gpu.reset()


async def test_resources_panel_says_clearly_there_is_no_gpu_with_nvml_faked_absent(make_app, recorded_run, settle,
                                                                                   screen_text, wait_for, fake_nvml_installed):
    fake_nvml_installed(with_gpu=False)
    app = make_app(recorded_run, sample_local_gpu=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["resources"])
        await wait_for(pilot, lambda: app.monitor.latest is not None, what="a local sample")
        await wait_for(pilot, lambda: "NVML Shared Library" in screen_text(app), what="the local reason")
        text = screen_text(app)
        recorded_sample = next(e.data for e in recorded(recorded_run) if e.type == "gpu")
        assert recorded_sample["available"] is False
        assert "no GPU found on this machine" in text  # this machine, as the fake NVML answers
        assert text.count("no GPU") == 2  # ... and the run's log
        assert recorded_sample["reason"] in text
        assert "this machine" in text and "RAM" in text  # the host side is still shown


async def test_resources_panel_shows_this_machines_gpu_with_nvml_faked_present(make_app, recorded_run, settle,
                                                                               screen_text, wait_for, fake_nvml_installed):
    fake_nvml_installed(with_gpu=True)
    app = make_app(recorded_run, sample_local_gpu=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["resources"])
        await wait_for(pilot, lambda: "NVIDIA H100 80GB HBM3" in screen_text(app), what="the local GPU")
        text = screen_text(app)
        assert text.count("no GPU") == 1  # only the recorded run (a CPU run) had none
        assert "20.0 GB/80.0 GB" in text and "97%" in text and "71 °C" in text
        assert "POWER 350/700 W" in text and "SM 1980/1980 MHz" in text and "MEM 2619/2619 MHz" in text
        assert "3.0 GB" in text and "1.0 GB" in text  # both processes on the GPU
        assert "◀ run" not in text  # the recorded run is not running: none of them is its own
        assert app.monitor.gpus[0].utilization[-1] == 97


async def test_export_panel_sizes_and_parity(make_app, exported_run, settle, screen_text, wait_for):
    app = make_app(exported_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["export"])
        await wait_for(pilot, lambda: "tokenizer parity" in screen_text(app), what="the export panel")
        text = screen_text(app)
        predicted = {row.quant: row.bytes for row in app.report.gguf}
        assert format_bytes(predicted["Q4_K_M"]) in text and format_bytes(predicted["F16"]) in text
        assert " kB" in text or " MB" in text  # decimal SI units, as every command shows them
        actual = next(p for p in exported_run.layout.gguf_files() if quant_of(p) == "Q4_K_M").stat().st_size
        q4_line = next(line for line in text.splitlines() if line.strip().startswith("Q4_K_M"))
        assert format_bytes(actual) in q4_line and "100%" in q4_line
        assert f"{100 * (actual - predicted['Q4_K_M']) / predicted['Q4_K_M']:+.1f}%" in q4_line
        assert "merge → gguf → quantize → parity" in text  # the export stages, from the registry
        parity = json.loads(exported_run.layout.parity.read_text())
        assert parity["ok"] and f"✓ GGUF tokenizes exactly like training · {len(parity['cases'])} cases" in text


async def test_evaluator_panel_per_domain_table(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"])
        await wait_for(pilot, lambda: "eval " in screen_text(app), what="the evaluator panel")
        text = screen_text(app)
        results = json.loads(recorded_run.layout.eval_results.read_text())
        for domain, stats in results["domains"].items():
            answers, reasoning = [line for line in text.splitlines() if line.strip().startswith(domain)][:2]
            assert f"{stats['pass@1'] * 100:.1f}%" in answers and f" {stats['outcomes']['truncated']} " in answers
            assert f"{stats['avg_depth']:.4f}" in reasoning
        assert f"{results['summary']['count']}/{results['summary']['count']} samples" in text


async def test_evaluator_panel_base_vs_tuned(make_app, recorded_run, settle, screen_text, wait_for):
    results_path = recorded_run.layout.eval_results
    results = json.loads(results_path.read_text())
    from r1tui.eval.run import compare_results

    base = json.loads(json.dumps(results))
    base["model"]["name"] = "base-Q4_K_M.gguf"
    base["summary"]["pass@1"] = 0.5
    results["comparison"] = compare_results(results, base)
    results_path.write_text(json.dumps(results))
    app = make_app(recorded_run)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"])
        await wait_for(pilot, lambda: "eval " in screen_text(app), what="the evaluator panel")
        text = screen_text(app)
        assert "base-Q4_K_M.gguf (B)" in text
        assert "-50.0 pt" in text  # pass@1 A − B, computed by r1tui.eval


async def test_push_panel_plan(make_app, exported_run, settle, screen_text, wait_for, monkeypatch):
    monkeypatch.setenv("HF_REPO_ID", "someone/tiny-r1")
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["push"])
        panel = app.query_one(PushPanel)
        await wait_for(pilot, lambda: panel.plan is not None, what="the push plan")
        text = screen_text(app)
        assert "repo someone/tiny-r1 · private" in text
        assert "tiny-mistral-random-r1-Q4_K_M.gguf" in text and "README.md" in text
        assert format_bytes(panel.plan.total_bytes) in text and panel.plan_error is None


async def test_push_panel_progress_and_url(make_app, new_run, settle, screen_text, wait_for):
    run = new_run()
    with EventWriter(run.layout.events) as writer:
        writer.emit("stage_started", stage="push")
        writer.emit("stage_progress", stage="push", completed=5_000_000, total=20_000_000, unit="byte")
    app = make_app(run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["push"])
        await wait_for(pilot, lambda: "push " in screen_text(app), what="the push panel")
        assert "5.0 MB / 20.0 MB" in screen_text(app)
        with EventWriter(run.layout.events) as writer:
            writer.emit("artifact", stage="push", kind="hub", path="https://huggingface.co/me/tiny-r1", bytes=1)
            writer.emit("stage_finished", stage="push", status="finished", duration_s=3.0,
                        outputs={"url": "https://huggingface.co/me/tiny-r1"})
        for _ in range(100):
            if "https://huggingface.co/me/tiny-r1" in screen_text(app):
                break
            await pilot.pause(0.05)
        assert "https://huggingface.co/me/tiny-r1" in screen_text(app)


async def test_push_plan_is_made_again_when_export_finishes(make_app, new_run, scripted_gguf, settle, screen_text,
                                                            wait_for, monkeypatch):
    """The plan lists what is on disk: made before the export (no GGUF), it is made again
    once the export's stages finish, without leaving the panel."""
    import shutil

    from r1tui.export.gguf import gguf_stem

    monkeypatch.setenv("HF_REPO_ID", "someone/tiny-r1")
    run = new_run()
    app = make_app(run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["push"])
        panel = app.query_one(PushPanel)
        await wait_for(pilot, lambda: panel.plan_error is not None, what="the first plan")
        assert panel.plan is None and "no exported GGUF" in panel.plan_error
        await wait_for(pilot, lambda: "exported GGUF in gguf/" in screen_text(app), what="no GGUF, shown")
        target = run.layout.gguf(gguf_stem(app.config), "Q4_K_M")
        assert run.layout.frozen_config().model.name == app.config.model.name
        shutil.copy(scripted_gguf, target)
        with EventWriter(run.layout.events) as writer:
            writer.emit("stage_started", stage="quantize")
            writer.emit("artifact", stage="quantize", kind="gguf", quant="Q4_K_M", path=str(target),
                        bytes=target.stat().st_size)
            writer.emit("stage_finished", stage="quantize", status="finished", duration_s=1.0)
        await wait_for(pilot, lambda: panel.plan is not None, what="the plan made again")
        assert panel.plan_error is None
        await wait_for(pilot, lambda: target.name in screen_text(app), what="the GGUF in the plan")
        assert "exported GGUF in gguf/" not in screen_text(app)


async def test_nan_and_non_numeric_metrics_are_ignored(make_app, new_run, settle, screen_text, wait_for):
    """json.loads accepts NaN and Infinity, and a writer may log a string: none of them is
    plotted or parsed as a step, and the dashboard keeps running."""
    run = new_run(events=False, results=False)
    run.layout.events.write_text(
        '{"v": 1, "ts": 1.0, "type": "run_started", "data": {"run_id": "x", "stages": ["train"]}}\n'
        '{"v": 1, "ts": 2.0, "type": "stage_started", "stage": "train", "data": {}}\n'
        '{"v": 1, "ts": 3.0, "type": "metric", "stage": "train", "data": {"step": 1, "loss": 2.5}}\n'
        '{"v": 1, "ts": 4.0, "type": "metric", "stage": "train", "data": {"step": 2, "loss": NaN, '
        '"grad_norm": Infinity, "learning_rate": "abc"}}\n'
        '{"v": 1, "ts": 5.0, "type": "metric", "stage": "train", "data": {"step": "abc", "loss": 1.5, '
        '"tokens_per_s": -Infinity}}\n'
        '{"v": 1, "ts": 6.0, "type": "stage_progress", "stage": "train", "data": {"completed": NaN, "total": 10}}\n',
        encoding="utf-8")
    app = make_app(run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.state.events_seen == 6
        await pilot.press(KEY["training"])
        await wait_for(pilot, lambda: "checkpoints" in screen_text(app), what="the training panel")
        await pilot.pause(0.7)  # past the plots' redraw interval
        assert list(app.state.series("loss").ys) == [2.5]
        assert len(app.state.series("grad_norm")) == 0 and len(app.state.series("learning_rate")) == 0
        assert app.state.last_metric == {"step": 2, "loss": 1.5}
        text = screen_text(app)
        assert "step 0/10" in text and "nan" not in text.lower() and "inf" not in text
        assert app.is_running and app.return_code is None
        await pilot.press(KEY["overview"])
        await wait_for(pilot, lambda: "train" in screen_text(app), what="the overview panel")
        assert app.is_running


async def test_header_without_a_run_and_dry_run_off(make_app, settle, screen_text):
    app = make_app(None, dry_run=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        header = screen_text(app).splitlines()[0]
        assert "no run yet" in header and "dry run off" in header and "dry-run view" not in header
        await pilot.press("d")
        await pilot.pause(0.1)
        header = screen_text(app).splitlines()[0]
        assert "no run yet · dry-run view" in header and "DRY RUN" in header


async def test_evaluator_table_fits_80_columns(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"])
        await wait_for(pilot, lambda: "eval: tiny" in screen_text(app), what="the evaluator panel")
        text = screen_text(app)
        answers, reasoning = [line for line in text.splitlines() if "domain" in line][:2]
        for column in ("domain", "pass@1 ± SE", "right", "wrong", "trunc.", "none"):
            assert column in answers, answers
        for column in ("domain", "depth", "steps", "think p50", "p90", "think", "answer", "eos", "format"):
            assert column in reasoning, reasoning
        results = json.loads(recorded_run.layout.eval_results.read_text())
        for domain in results["domains"]:
            assert any(line.split() and line.split()[0] == domain for line in text.splitlines()), domain
        assert "…" not in "\n".join(text.splitlines()[3:-1])


@pytest.mark.parametrize("last_key", ["1", "l"], ids=["first-tab", "last-tab"])
async def test_every_tab_title_is_whole_at_80_columns(last_key, make_app, recorded_run, settle, screen_text):
    """Eleven tabs in 80 columns: no title is cut or scrolled away, whichever tab is active."""
    from r1tui.dashboard.screens.main import PANELS

    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(last_key)
        await pilot.pause(0.2)
        tabs = screen_text(app).splitlines()[1]
        assert tabs.split() == [panel.TITLE for panel in PANELS], tabs

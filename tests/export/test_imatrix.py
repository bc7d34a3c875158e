"""The importance matrix (issue 17): llama.cpp's own llama-imatrix, built by install.sh from the
pinned sources, run on the run's own training rows; each k-quant written with it beside the
plain one, both checked for parity and measured side by side (r1tui.export.imatrix)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

from r1tui.errors import R1Error
from r1tui.runs.events import StageCancelled

STEM = "tiny-mistral-random-r1"


def prepared(run_dir: Path, tokenizer_dir: Path, helpers, rows: int, held_out: int) -> Path:
    stats = (run_dir / "data" / "stats.json").read_bytes()
    shutil.rmtree(run_dir / "data")
    helpers.build_dataset(run_dir / "data", tokenizer_dir, rows=rows, seed=0)
    if held_out:
        helpers.build_dataset(run_dir / "data" / "eval", tokenizer_dir, rows=held_out, seed=1)
    (run_dir / "data" / "stats.json").write_bytes(stats)
    return run_dir / "data"


def _metadata(path: Path, converter_dir: Path) -> dict:
    from r1tui.export.gguf import _field, _gguf_reader

    reader = _gguf_reader(converter_dir)(str(path))
    return {key: _field(reader, key) for key in reader.fields if key.startswith("quantize.")}


@pytest.fixture(scope="module")
def imatrix_export(tmp_path_factory, tiny_run_template, run_export, v3_tokenizer_dir, runs_helpers):
    """One export of the tiny run with --imatrix: (run_dir, result, events)."""
    from r1tui.config import dump_toml
    from r1tui.runs.events import EventWriter
    from r1tui.runs.layout import RunLayout

    run_dir = tmp_path_factory.mktemp("imatrix") / "run"
    shutil.copytree(tiny_run_template, run_dir)
    prepared(run_dir, v3_tokenizer_dir, runs_helpers, rows=24, held_out=4)
    layout = RunLayout(run_dir)
    config = layout.frozen_config()
    config.export.quality_tokens = 400
    layout.config.write_text(dump_toml(config), encoding="utf-8")
    with EventWriter(layout.events) as events:
        result = run_export(run_dir, events=events, config=config, imatrix=True)
    logged = [json.loads(line) for line in layout.events.read_text().splitlines()]
    return run_dir, result, logged


def test_imatrix_export_writes_both_twins_checked_and_measured_side_by_side(imatrix_export, converter_dir):
    from r1tui.export.imatrix import imatrix_path, load_imatrix
    from r1tui.export.quality import quality_path
    from r1tui.runs.layout import RunLayout

    run_dir, result, logged = imatrix_export
    layout = RunLayout(run_dir)
    plain, twin = layout.gguf(STEM, "Q4_K_M"), layout.gguf(STEM, "imatrix-Q4_K_M")
    matrix_file = imatrix_path(run_dir, STEM)
    assert plain.is_file() and twin.is_file() and matrix_file.is_file()
    assert plain.read_bytes() != twin.read_bytes()  # the matrix changed how blocks were rounded
    assert set(result.gguf) == {"F16", "Q4_K_M", "imatrix-Q4_K_M"}
    assert result.gguf["imatrix-Q4_K_M"]["types_match_calculator"]  # same tensor types as the plain Q4_K_M

    # llama-imatrix ran on the F16 in chunks and reported each; the matrix covers every matrix multiply
    chunks = [e["data"] for e in logged if e["type"] == "stage_progress" and e["data"].get("unit") == "chunk"]
    assert chunks and chunks[-1]["completed"] == chunks[-1]["total"] >= 2
    artifact = next(e["data"] for e in logged if e["type"] == "artifact" and e["data"]["kind"] == "imatrix")
    assert artifact["path"] == str(matrix_file) and artifact["chunks"] == chunks[-1]["total"]
    matrix = load_imatrix(matrix_file, converter_dir)
    assert len([n for n in matrix.entries if n.startswith("blk.0.")]) == 7  # q k v o gate up down
    assert matrix.dataset == "r1tui-training-traces" and matrix.chunks == chunks[-1]["total"]
    stored = json.loads(layout.stages_record.read_text())["quantize"]["outputs"]["imatrix"]
    assert stored["calibration"]["tokens"] >= 2 * 256 and stored["chunks"] == matrix.chunks
    assert math.isfinite(stored["calibration_ppl"]) and stored["calibration_ppl"] > 1
    assert str(run_dir) not in json.dumps(_metadata(twin, converter_dir))  # nothing local in what ships
    assert _metadata(twin, converter_dir) == {
        "quantize.imatrix.file": matrix_file.name, "quantize.imatrix.dataset": "r1tui-training-traces",
        "quantize.imatrix.entries_count": len(matrix.entries), "quantize.imatrix.chunks_count": matrix.chunks}
    assert _metadata(plain, converter_dir) == {}

    # parity checked both; the quality report puts them side by side, both finite and > 0
    parity = json.loads(layout.parity.read_text())
    assert sorted(parity["files"]) == sorted(f"{STEM}-{q}.gguf" for q in ("F16", "Q4_K_M", "imatrix-Q4_K_M"))
    assert all(check["ok"] for check in parity["files"].values())
    report = json.loads(quality_path(layout).read_text())
    assert list(report["quants"]) == ["imatrix-Q4_K_M", "Q4_K_M"]
    for label in ("imatrix-Q4_K_M", "Q4_K_M"):
        figures = report["quants"][label]["all"]
        assert math.isfinite(figures["kld_mean"]) and figures["kld_mean"] > 0
    assert report["quants"]["imatrix-Q4_K_M"]["all"] != report["quants"]["Q4_K_M"]["all"]
    assert "| imatrix-Q4_K_M | answer |" in layout.card.read_text()


def test_push_publishes_the_twin_the_user_picks(imatrix_export):
    from r1tui.export.card import published_ggufs
    from r1tui.runs.layout import RunLayout

    run_dir, _, _ = imatrix_export
    layout = RunLayout(run_dir)
    config = layout.frozen_config()
    names = {}
    for choice in ("imatrix", "plain", "both"):
        config.export.imatrix_publish = choice
        names[choice] = [p.name for p in published_ggufs(layout, config)]
    assert names == {"imatrix": [f"{STEM}-imatrix-Q4_K_M.gguf"], "plain": [f"{STEM}-Q4_K_M.gguf"],
                     "both": [f"{STEM}-imatrix-Q4_K_M.gguf", f"{STEM}-Q4_K_M.gguf"]}
    modelfile = layout.modelfile.read_text()
    assert f"FROM ./{STEM}-imatrix-Q4_K_M.gguf" in modelfile


def test_export_again_with_imatrix_redoes_nothing_and_prints_both(imatrix_export, runs_helpers):
    from r1tui.export.imatrix import imatrix_path

    run_dir, _, _ = imatrix_export
    matrix = imatrix_path(run_dir, STEM)
    before = matrix.stat().st_mtime_ns
    printed = runs_helpers.r1tui("export", str(run_dir), "--imatrix",
                                 env={**runs_helpers.cli_env(), "COLUMNS": "200"}).stdout
    assert "up to date, skipped: merge, gguf, quantize, parity" in printed
    assert matrix.stat().st_mtime_ns == before
    assert re.search(r"│ imatrix-Q4_K_M\s+│ all\s+│", printed) and re.search(r"│ Q4_K_M\s+│ all\s+│", printed)


def test_calibration_is_whole_training_rows_never_the_measured_ones_and_reads_back_as_the_same_ids(
        tmp_path, v3_tokenizer_dir, runs_helpers, random_gguf):
    import datasets

    from r1tui.export.imatrix import calibration_text, select_calibration

    data = runs_helpers.build_dataset(tmp_path / "data", v3_tokenizer_dir, rows=20, seed=0)
    rows = datasets.load_from_disk(str(data))
    everything = select_calibration(data, 10**6, seed=7)
    assert everything.rows == 20 and everything.tokens == sum(len(r["input_ids"]) for r in rows)
    excluded = frozenset({0, 3, 5})
    some = select_calibration(data, 1500, seed=7, exclude=excluded)
    assert some.tokens <= 1500 and some.rows < 20 and "leaving out the 3" in some.description
    row_ids = [[int(t) for t in r["input_ids"]] for r in rows]
    # the calibration ids are whole rows, none of them excluded
    position, used = 0, []
    while position < len(some.ids):
        index = next(i for i, ids in enumerate(row_ids) if some.ids[position:position + len(ids)] == ids)
        used.append(index)
        position += len(row_ids[index])
    assert len(used) == some.rows and not excluded & set(used)
    assert select_calibration(data, 1500, seed=7, exclude=excluded) == some  # seeded
    assert select_calibration(data, 1500, seed=8, exclude=excluded).ids != some.ids
    f16 = random_gguf.with_name("random-F16.gguf")
    text = calibration_text(some, "v3", f16)  # raises unless llama.cpp reads it back as these ids
    assert text.startswith("[INST]") and text.count("[/INST]") == some.rows


def test_the_matrix_reads_back_as_llama_quantize_normalizes_it(imatrix_export, converter_dir):
    import numpy as np

    from r1tui.export.gguf import _gguf_reader
    from r1tui.export.imatrix import imatrix_path, load_imatrix

    run_dir, _, _ = imatrix_export
    path = imatrix_path(run_dir, STEM)
    reader = _gguf_reader(converter_dir)(str(path))
    raw = {t.name: np.asarray(t.data, dtype=np.float64).reshape(-1) for t in reader.tensors}
    matrix = load_imatrix(path, converter_dir)
    name = "blk.1.ffn_down.weight"
    (count,) = raw[name + ".counts"]
    assert count > 0
    np.testing.assert_allclose(matrix.entries[name], raw[name + ".in_sum2"] / count, rtol=1e-6)
    assert matrix.entries[name].dtype == np.float32 and matrix.entries[name].size == 768
    from r1tui.calculator import PRESETS, imatrix_size_bytes

    sums = sum(raw[n].size for n in raw if n.endswith(".in_sum2"))
    assert 4 * sums == imatrix_size_bytes(PRESETS["tiny"])  # what the export's disk check counts


def test_without_llama_imatrix_the_export_stops_before_any_work(fresh_run, run_export, tmp_path, monkeypatch):
    from r1tui.runs.layout import RunLayout

    run_dir = fresh_run()
    monkeypatch.setenv("R1TUI_LLAMA_TOOLS_DIR", str(tmp_path / "empty"))
    with pytest.raises(R1Error, match=r"R1TUI_LLAMA_TOOLS_DIR = .*empty: no executable llama-imatrix there") as err:
        run_export(run_dir, imatrix=True)
    assert "\n" not in str(err.value)
    assert not RunLayout(run_dir).merged.exists()


def test_too_few_calibration_tokens_is_one_line_naming_the_keys(fresh_run, run_export, v3_tokenizer_dir,
                                                                runs_helpers):
    from r1tui.runs.layout import RunLayout

    run_dir = fresh_run()
    prepared(run_dir, v3_tokenizer_dir, runs_helpers, rows=4, held_out=0)
    config = RunLayout(run_dir).frozen_config()
    config.export.imatrix_chunk = 4096
    with pytest.raises(R1Error, match=r"fewer than two chunks of export.imatrix_chunk = 4096; lower imatrix_chunk"):
        run_export(run_dir, config=config, imatrix=True)


def test_a_cancel_while_the_matrix_is_computed_leaves_no_file(imatrix_export, tmp_path):
    from r1tui.export.imatrix import compute_imatrix
    from r1tui.runs.layout import RunLayout

    run_dir, _, _ = imatrix_export
    f16 = RunLayout(run_dir).gguf(STEM, "F16")
    text = "<s>[INST] What is 2+2?[/INST] <think>2+2 = 4</think>\nFINAL ANSWER: 4</s>" * 120
    out = tmp_path / "m" / "imatrix.gguf"

    def cancel(done, total, message):
        raise StageCancelled("quantize")

    with pytest.raises(StageCancelled):
        compute_imatrix(f16, out, text, chunk_tokens=64, on_progress=cancel)
    assert not out.parent.exists() or os.listdir(out.parent) == []


def test_the_export_panel_shows_both_twins_the_matrix_and_the_quality_table(imatrix_export, tmp_path):
    """The dashboard's Export panel (Textual Pilot) on the exported run: a row per twin with
    its size, the matrix's chunks and rows, and quality.json's figures per quant."""
    import asyncio

    from r1tui.dashboard.app import DashboardApp
    from r1tui.dashboard.screens.main import PANEL_KEYS
    from r1tui.dashboard.source import RunRef
    from r1tui.export.quality import quality_path
    from r1tui.present import format_bytes
    from r1tui.runs.layout import RunLayout

    run_dir, _, _ = imatrix_export
    layout = RunLayout(run_dir)
    report = json.loads(quality_path(layout).read_text())
    stored = json.loads(layout.stages_record.read_text())["quantize"]["outputs"]["imatrix"]

    def text(app) -> str:
        strips = app.screen._compositor.render_strips()
        return "\n".join("".join(segment.text for segment in strip) for strip in strips)

    async def scenario() -> str:
        app = DashboardApp(run=RunRef.at(run_dir), runs_dir=run_dir.parent, sample_local_gpu=False,
                           python="python")
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(200):
                if app.caught_up:
                    break
                await pilot.pause(0.05)
            await pilot.press(PANEL_KEYS["export"])
            for _ in range(100):
                if "tokenizer parity" in text(app):
                    break
                await pilot.pause(0.05)
            return text(app)

    screen = re.sub(" +", " ", asyncio.run(scenario()))
    twin_bytes = format_bytes(layout.gguf(STEM, "imatrix-Q4_K_M").stat().st_size)
    assert re.search(rf"imatrix-Q4_K_M .*100%.* {re.escape(twin_bytes)}", screen), screen
    assert f"importance matrix {stored['chunks']} chunks × 256 tokens of {stored['calibration']['rows']} " \
           "training rows" in screen
    assert f"quality against F16 · {report['data']['tokens']} tokens, held-out" in screen
    for label in ("imatrix-Q4_K_M", "Q4_K_M"):
        figures = report["quants"][label]
        assert (f"{label} {figures['all']['kld_mean']:.3g} {figures['answer']['kld_mean']:.3g} "
                f"{figures['all']['top1_agreement']:.1%}") in screen, screen
    assert "✓ GGUF tokenizes exactly like training" in screen

"""The quantization quality report: llama.cpp's own logits of each quant against the F16's,
on rendered reasoning traces in the training format (r1tui.export.quality)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from r1tui.errors import R1Error
from r1tui.runs.events import StageCancelled

STEM = "tiny-mistral-random-r1"


@pytest.fixture(scope="module")
def tiny_f16_q4(random_gguf) -> tuple[Path, Path]:
    """The seeded random tiny model as F16 and Q4_K_M GGUFs (tests/tiny_gguf.py)."""
    return random_gguf.with_name("random-F16.gguf"), random_gguf


def prepared(folder: Path, tokenizer_dir: Path, helpers, rows: int = 24, held_out: int = 0) -> Path:
    """A prepared dataset in the data stage's format (input_ids, labels, domain), with
    ``held_out`` rows in eval/ as data.eval_rows leaves them."""
    helpers.build_dataset(folder, tokenizer_dir, rows=rows, seed=0)
    if held_out:
        helpers.build_dataset(folder / "eval", tokenizer_dir, rows=held_out, seed=1)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, v3_tokenizer_dir, runs_helpers) -> Path:
    return prepared(tmp_path_factory.mktemp("quality-data") / "data", v3_tokenizer_dir, runs_helpers, held_out=6)


def test_f16_against_itself_gives_zero_kld_and_full_agreement(tiny_f16_q4, data_dir, tmp_path):
    from r1tui.export.quality import measure, select_sample

    f16, _ = tiny_f16_q4
    sample = select_sample(data_dir, 256, seed=0)
    result = measure(f16, {"F16": f16}, sample, tmp_path / "scratch.npy")
    for scope in ("all", "response", "answer"):
        figures = result["quants"]["F16"][scope]
        assert figures["positions"] > 0, scope
        assert figures["kld_mean"] == 0.0 and figures["kld_p99"] == 0.0 and figures["kld_max"] == 0.0, figures
        assert figures["top1_agreement"] == 1.0 and figures["ppl_ratio"] == 1.0, figures
        assert figures["ppl"] == figures["ppl_reference"] and math.isfinite(figures["ppl"])
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_q4_k_m_against_f16_costs_a_finite_positive_kld(tiny_f16_q4, data_dir, tmp_path):
    from r1tui.export.quality import measure, select_sample

    f16, q4 = tiny_f16_q4
    sample = select_sample(data_dir, 256, seed=0)
    progress = []
    result = measure(f16, {"Q4_K_M": q4}, sample, tmp_path / "scratch.npy",
                     on_progress=lambda done, total, message: progress.append((done, total)))
    positions = result["positions"]
    assert positions["all"] == sample.tokens - len(sample.sequences)
    assert 0 < positions["answer"] < positions["response"] < positions["all"], positions
    for scope in ("all", "response", "answer"):
        figures = result["quants"]["Q4_K_M"][scope]
        assert all(math.isfinite(v) for v in figures.values()), figures
        assert 0 < figures["kld_mean"] <= figures["kld_p99"] <= figures["kld_max"], figures
        assert 0 < figures["top1_agreement"] <= 1 and figures["ppl_ratio"] > 0, figures
    assert progress[-1] == (2 * sample.tokens, 2 * sample.tokens)  # the F16's pass, then the quant's


def test_held_out_rows_first_else_a_seeded_slice_of_training_rows_within_the_budget(data_dir, tmp_path,
                                                                                    v3_tokenizer_dir, runs_helpers):
    from r1tui.export.quality import select_sample

    held = select_sample(data_dir, 10_000, seed=0)
    assert held.source == "held-out" and len(held.sequences) == held.rows_available == 6
    assert "data.eval_rows = 6" in held.description

    training_only = prepared(tmp_path / "data", v3_tokenizer_dir, runs_helpers)
    import datasets

    rows = datasets.load_from_disk(str(training_only))
    whole = {tuple(ids) for ids in rows["input_ids"]}
    cut = select_sample(training_only, 200, seed=3)
    assert cut.source == "training" and "set data.eval_rows" in cut.description
    assert len(cut.sequences) >= 2 and all(tuple(ids) in whole for ids in cut.sequences)  # whole rows: answers kept
    assert 200 - max(map(len, whole)) < cut.tokens <= 200
    assert select_sample(training_only, 200, seed=3) == cut  # seeded
    assert select_sample(training_only, 200, seed=4).sequences != cut.sequences
    shortest = min(map(len, whole))
    tiny_budget = select_sample(training_only, shortest - 5, seed=3)  # no row fits: one row, cut
    assert tiny_budget.tokens == shortest - 5 and len(tiny_budget.sequences) == 1


def test_without_a_prepared_dataset_the_report_says_why_in_one_line(tiny_f16_q4, tmp_path):
    from r1tui.export.quality import update_report

    f16, q4 = tiny_f16_q4
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stats.json").write_text("{}", encoding="utf-8")
    report, measured = update_report(tmp_path / "quality.json", f16, {"Q4_K_M": q4}, tmp_path / "data", 256, 0,
                                     tmp_path)
    assert not measured and report["quants"] == {}
    assert "no prepared dataset in" in report["skipped"] and "export.quality_tokens = 0" in report["skipped"]
    assert "\n" not in report["skipped"]
    assert json.loads((tmp_path / "quality.json").read_text())["skipped"] == report["skipped"]


def test_the_report_is_written_whole_or_not_at_all(tiny_f16_q4, data_dir, tmp_path):
    """A cancel in the middle of the quant's pass: the earlier quality.json stays as it was,
    and neither a temporary report nor the scratch file is left."""
    from r1tui.export.quality import update_report

    f16, q4 = tiny_f16_q4
    path = tmp_path / "gguf" / "quality.json"
    path.parent.mkdir()
    first, measured = update_report(path, f16, {"Q4_K_M": q4}, data_dir, 128, 0, tmp_path)
    assert measured and path.is_file()
    before = path.read_bytes()

    # the same files and sample: nothing measured, nothing rewritten
    again, measured = update_report(path, f16, {"Q4_K_M": q4}, data_dir, 128, 0, tmp_path)
    assert not measured and again == first and path.read_bytes() == before

    def cancel_in_the_quant_pass(done, total, message):
        if done > total // 2:
            raise StageCancelled("cancelled")

    with pytest.raises(StageCancelled):
        update_report(path, f16, {"Q4_K_M": q4}, data_dir, 200, 0, tmp_path, on_progress=cancel_in_the_quant_pass)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gguf", "quality.json"]


def test_quality_tokens_is_validated_in_one_line(tmp_path):
    from r1tui.config import load_config

    path = tmp_path / "config.toml"
    for value, expected in ((-1, "export.quality_tokens = -1: Input should be greater than or equal to 0"),
                            ('"all"', "export.quality_tokens = 'all': Input should be a valid integer"),
                            (2**21, "export.quality_tokens = 2097152: Input should be less than or equal to 1048576")):
        path.write_text(f"[export]\nquality_tokens = {value}\n", encoding="utf-8")
        with pytest.raises(R1Error) as failure:
            load_config(path)
        assert expected in str(failure.value) and "\n" not in str(failure.value)
    path.write_text("[export]\nquality_tokens = 0\n", encoding="utf-8")
    assert load_config(path).export.quality_tokens == 0


@pytest.mark.slow
def test_export_measures_every_quant_and_shows_it(fresh_run, run_export, v3_tokenizer_dir, runs_helpers):
    """The whole export of a tiny run with a prepared dataset: quality.json beside the quants,
    every quant written checked for parity, the figures in the result and the card; `r1tui
    export` with nothing changed measures nothing and prints the figures; quality_tokens = 0
    removes the report."""
    from r1tui.config import dump_toml
    from r1tui.export.quality import quality_path
    from r1tui.runs.events import EventWriter
    from r1tui.runs.layout import RunLayout

    run_dir = fresh_run()
    layout = RunLayout(run_dir)
    stats = (run_dir / "data" / "stats.json").read_bytes()
    shutil.rmtree(run_dir / "data")
    prepared(run_dir / "data", v3_tokenizer_dir, runs_helpers, rows=16, held_out=4)
    (run_dir / "data" / "stats.json").write_bytes(stats)
    config = layout.frozen_config()
    config.export.quality_tokens = 300
    config.export.quant_types = ["Q4_K_M", "Q8_0"]
    layout.config.write_text(dump_toml(config), encoding="utf-8")  # what `r1tui export RUN` reads

    with EventWriter(layout.events) as events:  # the event schema is enforced on a real writer
        result = run_export(run_dir, events=events, config=config, quant_types=["Q4_K_M", "Q8_0"])
    report = json.loads(quality_path(layout).read_text())
    logged = [json.loads(line) for line in layout.events.read_text().splitlines()]
    measuring = [e["data"] for e in logged if e["type"] == "stage_progress" and e["data"].get("unit") == "token"]
    assert measuring[-1]["completed"] == measuring[-1]["total"] == 3 * report["data"]["tokens"]  # F16, Q4_K_M, Q8_0
    assert any(e["type"] == "artifact" and e["data"]["kind"] == "quality" for e in logged)
    assert result.quality == report and set(report["quants"]) == {"Q4_K_M", "Q8_0"}
    assert report["data"]["source"] == "held-out" and report["data"]["rows"] == 4
    assert report["reference"] == f"{STEM}-F16.gguf"
    q4, q8 = (report["quants"][q]["all"] for q in ("Q4_K_M", "Q8_0"))
    assert 0 < q8["kld_mean"] < q4["kld_mean"], (q8, q4)  # more bits, closer to the F16
    parity = json.loads(layout.parity.read_text())
    assert sorted(parity["files"]) == sorted(f"{STEM}-{q}.gguf" for q in ("F16", "Q4_K_M", "Q8_0"))
    assert all(check["ok"] for check in parity["files"].values())
    card = layout.card.read_text()
    assert "## Quantization quality" in card and "| Q8_0 | answer |" in card

    before = quality_path(layout).read_bytes()
    env = {**runs_helpers.cli_env(), "COLUMNS": "200"}
    printed = runs_helpers.r1tui("export", str(run_dir), env=env).stdout
    assert "up to date, skipped: merge, gguf, quantize, parity" in printed and quality_path(layout).read_bytes() == before
    assert "quantization quality against the F16" in printed and "held-out rows (data/eval" in printed
    q4_answer = report["quants"]["Q4_K_M"]["answer"]
    assert f"│ Q4_K_M │ answer │ {q4_answer['positions']} │ {q4_answer['kld_mean']:.4g} │" in re.sub(" +", " ", printed)

    config.export.quality_tokens = 0
    off = run_export(run_dir, config=config, quant_types=["Q4_K_M", "Q8_0"])
    assert off.quality == {} and not quality_path(layout).exists()

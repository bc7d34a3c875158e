"""The dry run: documented JSON, the calculator's tables, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from r1tui.calculator import training_tokens_per_second
from r1tui.config import load_config
from r1tui.dryrun import build_report, report_renderables

REPO = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> set[tuple[str, int]]:
    return {(str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if ".git" not in p.parts}


def test_report_has_the_documented_keys():
    report = build_report(load_config(REPO / "config.toml"), with_masking=False).to_json()
    assert set(report) == {"version", "config", "parameters", "vram", "gguf", "masking", "epoch", "elapsed_s"}
    assert report["epoch"] is None  # it comes from the masking statistics
    assert report["parameters"]["lora_trainable"] == 381_681_664
    assert report["vram"]["fits"] is True
    assert [row["quant"] for row in report["gguf"]] == ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16"]
    assert [row["configured"] for row in report["gguf"]] == [True, False, False, False, False]


def test_cli_json_and_text_write_nothing(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    (tmp_path / "work").mkdir()
    before = _snapshot(tmp_path)
    result = subprocess.run([sys.executable, "-m", "r1tui", "dry-run", "--config", str(REPO / "configs" / "tiny.toml"), "--json"],
                            capture_output=True, text=True, cwd=tmp_path / "work", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["model"] == "r1tui/tiny-mistral-random"
    assert report["parameters"]["total"] == 18_351_360
    text = subprocess.run([sys.executable, "-m", "r1tui", "dry-run", "--config", str(REPO / "config.toml")],
                          capture_output=True, text=True, cwd=tmp_path / "work", env=env, timeout=120)
    assert text.returncode == 0, text.stderr
    for fragment in ("config OK", "381,681,664", "1.72%", "fits", "Q4_K_M", "13.3 GB"):
        assert fragment in text.stdout
    assert _snapshot(tmp_path) == before


def test_demo_runs_the_dry_runs(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "demo.py")], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("config OK") == 2
    assert list(tmp_path.iterdir()) == []


def test_the_epoch_estimate_comes_from_the_masking_stats_and_the_throughput_table(tmp_path):
    from rich.console import Console

    config = load_config(REPO / "config.toml")  # RTX 4090, synthetic data: 2,000 rows, 256 of them rendered
    report = build_report(config)
    epoch, masking = report.epoch, report.masking
    estimate = training_tokens_per_second("RTX 4090", "unsloth", "mistral-small-2409")
    assert (epoch.rows, epoch.extrapolated) == (2000, True)
    assert epoch.tokens == round(masking["tokens"] / masking["rows_read"] * 2000)
    assert epoch.tokens_per_s == estimate.tokens_per_s and epoch.basis == estimate.basis
    assert epoch.hours == epoch.tokens / estimate.tokens_per_s / 3600
    assert report.to_json()["epoch"]["basis"].startswith("ESTIMATE")
    console = Console(record=True, width=200)
    for renderable in report_renderables(report):
        console.print(renderable)
    text = console.export_text()
    assert "One epoch on RTX 4090 (time is an ESTIMATE)" in text and f"{epoch.tokens:,} in 2,000 rows" in text

    # a local file: its rows counted, every one rendered, so the tokens are exact
    rows = [{"question": f"What is {i} + {i}?", "reasoning": f"{i} + {i} = {2 * i}", "answer": str(2 * i)}
            for i in range(40)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config.data.source = str(data)
    epoch = build_report(config).epoch
    assert (epoch.rows, epoch.extrapolated) == (40, False)
    assert epoch.tokens == build_report(config).masking["tokens"]

    # a GPU with no figure: tokens still counted, the time refused with the reason
    config.hardware.gpu_name = "Tesla T4"
    epoch = build_report(config).epoch
    assert epoch.tokens and epoch.hours is None and "no throughput figure for GPU 'Tesla T4'" in epoch.basis


def test_the_dry_run_reports_the_eval_split(tmp_path):
    """data.eval_rows held out of the epoch's rows and tokens, and said in the epoch table."""
    from rich.console import Console

    config = load_config(REPO / "configs" / "tiny.toml")  # 200 synthetic rows, every one rendered
    plain = build_report(config).epoch
    assert (plain.eval_rows, plain.eval_steps, plain.rows) == (0, 0, 200)
    config.data.eval_rows, config.train.eval_steps = 20, 10
    report = build_report(config)
    epoch = report.epoch
    assert (epoch.eval_rows, epoch.eval_steps, epoch.rows) == (20, 10, 180)
    assert epoch.tokens == round(plain.tokens * 180 / 200)
    assert report.to_json()["epoch"]["eval_rows"] == 20
    console = Console(record=True, width=200)
    for renderable in report_renderables(report):
        console.print(renderable)
    text = console.export_text()
    assert "20 rows held out of training; validation loss every 10 steps" in text
    assert f"{epoch.tokens:,} in 180 rows" in text


def test_a_mistral3_checkpoint_shows_the_whole_checkpoint_and_what_is_trained():
    from rich.console import Console

    from r1tui.config import parse_config

    config = parse_config({"model": {"architecture": "mistral-small-3.1", "load_in_4bit": True},
                           "train": {"backend": "unsloth"}})
    report = build_report(config, with_masking=False)
    params = report.parameters
    assert (params.checkpoint, params.vision, params.total) == (24_011_361_280, 438_958_080, 23_572_403_200)
    assert params.mmproj_bytes == 878_039_040  # with the [IMG_BREAK] embedding row the mmproj carries
    assert report.config.backend_for_estimate == "hf"  # r1tui's unsloth backend trains text models only
    console = Console(record=True, width=120)
    for renderable in report_renderables(report):
        console.print(renderable)
    text = console.export_text()
    for fragment in ("whole checkpoint (exact)", "24,011,361,280", "vision tower + projector (frozen)",
                     "878.0 MB", "backend hf"):
        assert fragment in text


def test_several_gpus_report_per_gpu_figures_and_compare_strategies():
    from r1tui import calculator

    config = load_config(REPO / "config.toml")  # 2409, r=64, seq 8192 on an RTX 4090
    config.train.distributed = "fsdp"
    report = build_report(config, with_masking=False, world_size=4).to_json()
    vram = report["vram"]
    assert (vram["world_size"], vram["strategy"]) == (4, "fsdp")
    assert [(row["strategy"], row["offload"]) for row in vram["per_gpu"]] == [("ddp", False), ("fsdp", False),
                                                                              ("fsdp", True)]
    arch = calculator.resolve_architecture(config.model.architecture)
    for row in vram["per_gpu"]:
        kwargs = dict(calculator.training_vram_settings(config, world_size=4), strategy=row["strategy"],
                      offload=row["offload"])
        want = calculator.estimate_training_vram(arch, seq_len=8192, **kwargs)
        assert (row["total"], row["fits"]) == (want.total, want.fits)
        assert row["max_seq_len_that_fits"] == calculator.max_fitting_seq_len(arch, **kwargs)
    assert vram["total"] == vram["per_gpu"][1]["total"]  # the configured strategy's figure
    assert "fsdp_gathered" in vram["parts"]
    assert [r["fits"] for r in vram["per_gpu"]] == [False, True, True]
    titles = [getattr(r, "title", "") for r in report_renderables(build_report(config, with_masking=False,
                                                                               world_size=4))]
    assert any(str(t).startswith("Per GPU on 4 x RTX 4090") for t in titles)
    one = build_report(config, with_masking=False).to_json()["vram"]
    assert one["per_gpu"] == [] and one["world_size"] == 1 and "fsdp_gathered" not in one["parts"]

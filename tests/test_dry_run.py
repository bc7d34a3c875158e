"""The dry run: documented JSON, the calculator's tables, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from r1tui.config import load_config
from r1tui.dryrun import build_report

REPO = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> set[tuple[str, int]]:
    return {(str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if ".git" not in p.parts}


def test_report_has_the_documented_keys():
    report = build_report(load_config(REPO / "config.toml"), with_masking=False).to_json()
    assert set(report) == {"version", "config", "parameters", "vram", "gguf", "masking", "elapsed_s"}
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
    for fragment in ("config OK", "381,681,664", "1.72%", "fits", "Q4_K_M", "13.34 GB"):
        assert fragment in text.stdout
    assert _snapshot(tmp_path) == before


def test_demo_runs_the_dry_runs(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "demo.py")], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("config OK") == 2
    assert list(tmp_path.iterdir()) == []

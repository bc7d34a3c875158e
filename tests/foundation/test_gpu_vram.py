"""On a CUDA GPU only: the calculator's VRAM estimate against a measured peak.

Runs bench/gpu_vram.py (the real runner, both backends, 2409-sized layers, seq 8192)
and requires the estimate within 10 % of the peak the run's own events recorded.
Skipped automatically without CUDA (tests/conftest.py); the H100 measurements it was
calibrated on are checked on every machine in test_calculator.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.gpu
@pytest.mark.slow
def test_estimate_tracks_measured_peak_vram_on_this_gpu(tmp_path, repo_root):
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(repo_root / "bench" / "gpu_vram.py"), "--out", str(out), "--work",
                    str(tmp_path / "work"), "--layers", "2", "--seqs", "8192", "--steps", "3"],
                   check=True, timeout=1800, cwd=repo_root)
    results = json.loads((out / "gpu_vram.json").read_text())["results"]
    assert {r["backend"] for r in results} == {"unsloth", "hf"}
    for row in results:
        assert row["status"] == "finished", row
        measured = row["peak_allocated"]
        estimate = row["estimate_total"] - row["estimate_parts"]["overhead"]  # allocated part
        assert abs(estimate - measured) / measured < 0.10, row

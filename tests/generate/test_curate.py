"""Curation under a budget, and the throughput estimate that turns hours into tokens."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from r1tui import calculator
from r1tui.calculator import GPU_SPECS, PRESETS, gpu_spec, training_tokens_per_second
from r1tui.config import load_config
from r1tui.errors import R1Error
from r1tui.generate.curate import Candidate, curate, curate_source
from r1tui.generate.verify import StudentLength
from r1tui.response_format import format_assistant

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.toml"
DOMAINS = ("coding", "math", "physics")


# ---------------------------------------------------------------- the throughput estimate


def test_the_table_holds_what_the_h100_run_recorded():
    recorded = json.loads((REPO / "bench" / "results" / "gpu_vram_h100.json").read_text())
    assert gpu_spec(recorded["gpu"]).name == calculator.MEASURED_ON
    for row in recorded["results"]:
        assert calculator.H100_MEASURED_TOKENS_PER_S[row["backend"]][row["layers"]] == \
            pytest.approx(row["tokens_per_s"], abs=0.01)


def test_the_h100_figure_is_the_measurement_extrapolated_in_layers():
    measured = calculator.H100_MEASURED_TOKENS_PER_S["unsloth"]
    slope = (1 / measured[4] - 1 / measured[2]) / 2
    full = 1 / measured[2] + (56 - 2) * slope
    estimate = training_tokens_per_second("NVIDIA H100 80GB HBM3", "unsloth", "mistral-small-2409")
    assert estimate.tokens_per_s == pytest.approx(1 / full)
    assert 3_400 < estimate.tokens_per_s < 3_450
    # the measured shape itself, 2 and 4 layers, gives the measurement back
    for layers, tokens_per_s in measured.items():
        arch = calculator.replace(PRESETS["mistral-small-2409"], num_hidden_layers=layers)
        assert training_tokens_per_second("H100", "unsloth", arch).tokens_per_s == pytest.approx(tokens_per_s)
    assert training_tokens_per_second("H100", "auto", "mistral-small-2409") == estimate
    assert training_tokens_per_second("H100", "hf", "mistral-small-2409").tokens_per_s < estimate.tokens_per_s


def test_other_gpus_scale_by_dense_bf16_tflops_and_say_it_is_an_estimate():
    h100 = training_tokens_per_second("H100 SXM", "unsloth", "mistral-small-2409")
    rtx = training_tokens_per_second("NVIDIA GeForce RTX 4090", "unsloth", "mistral-small-2409")
    assert rtx.gpu == "RTX 4090"
    assert rtx.tokens_per_s == pytest.approx(h100.tokens_per_s * 165.2 / 989.5)
    assert rtx.basis.startswith("ESTIMATE") and "165.2 / 989.5" in rtx.basis and "BENCHMARKS.md" in rtx.basis
    assert h100.basis.startswith("ESTIMATE")
    assert rtx.hours_for(10_000_000) == pytest.approx(10_000_000 / rtx.tokens_per_s / 3600)
    assert rtx.tokens_in(2.0) == int(2 * 3600 * rtx.tokens_per_s)


@pytest.mark.parametrize(("name", "entry"), [
    ("RTX 4090", "RTX 4090"), ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA L40", "L40"), ("NVIDIA L4", "L4"), ("NVIDIA A10", "A10"), ("NVIDIA H200", "H200"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090"),
    ("NVIDIA GeForce RTX 3090 Ti", None), ("NVIDIA GeForce RTX 4090 D", None), ("NVIDIA A10G", None),
    ("CPU (no GPU)", None), ("Tesla T4", None),
])
def test_gpu_names_as_config_and_nvml_spell_them(name, entry):
    spec = gpu_spec(name)
    assert (spec.name if spec else None) == entry


def test_an_unknown_gpu_gets_no_figure_and_a_reason():
    estimate = training_tokens_per_second("Tesla T4", "unsloth", "mistral-small-2409")
    assert estimate.tokens_per_s is None and estimate.hours_for(1e6) is None
    assert "no throughput figure for GPU 'Tesla T4'" in estimate.basis
    assert all(spec.name in estimate.basis for spec in GPU_SPECS)


def test_a_bigger_model_is_slower():
    small = training_tokens_per_second("RTX 4090", "unsloth", "mistral-small-2409").tokens_per_s
    big = training_tokens_per_second("RTX 4090", "unsloth", "mistral-small-24b").tokens_per_s
    assert big < small


# ---------------------------------------------------------------- curation


def _candidates(count: int, seed: int = 0, pass_rates: bool = True) -> list[Candidate]:
    rng = random.Random(seed)
    return [Candidate(index=i, row={"i": i}, domain=DOMAINS[rng.randrange(3)], tokens=rng.randrange(50, 5000),
                      pass_rate=rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) if pass_rates else None, prompt=f"p{i}")
            for i in range(count)]


@pytest.mark.parametrize("budget", [0, 49, 50, 1_000, 12_345, 100_000, 10**9])
def test_the_budget_is_never_exceeded(budget):
    candidates = _candidates(300)
    chosen, over = curate(candidates, budget)
    assert sum(c.tokens for c in chosen) <= budget
    assert [c.index for c in chosen] == sorted(c.index for c in chosen)  # source order
    assert len(chosen) + over <= len(candidates)
    if budget >= sum(c.tokens for c in candidates):
        assert len(chosen) == len(candidates) and over == 0
    # nothing left out would still have fitted
    left = budget - sum(c.tokens for c in chosen)
    assert all(c.tokens > left for c in candidates if c not in chosen)


def test_hard_prompts_come_first_and_domains_are_balanced():
    candidates = [Candidate(i, {}, DOMAINS[i % 3], 100, pass_rate=(i // 3) / 99, prompt=f"p{i}") for i in range(300)]
    chosen, over = curate(candidates, 3_000)  # 30 rows of 100 tokens
    assert len(chosen) == 30 and over == 270
    assert {d: sum(c.domain == d for c in chosen) for d in DOMAINS} == {d: 10 for d in DOMAINS}
    hardest = sorted(candidates, key=lambda c: c.pass_rate)[:30]
    assert {c.index for c in chosen} == {c.index for c in hardest}


def test_balance_holds_when_one_domain_is_easy():
    # physics is all easy, yet it still gets its turn in the round-robin
    candidates = [Candidate(i, {}, d, 100, pass_rate=1.0 if d == "physics" else 0.0, prompt=f"p{i}")
                  for i, d in enumerate(DOMAINS * 20)]
    chosen, _ = curate(candidates, 900)
    assert sorted(c.domain for c in chosen) == sorted(DOMAINS * 3)


def test_without_pass_rate_longer_rows_are_harder_and_a_prompts_second_trace_waits():
    rows = [Candidate(0, {}, "math", 300, None, 0, "a"), Candidate(1, {}, "math", 900, None, 0, "b"),
            Candidate(2, {}, "math", 800, None, 1, "b"), Candidate(3, {}, "math", 100, None, 0, "c")]
    assert [c.index for c in curate(rows, 1_000)[0]] == [1, 3]         # 900 first, then only 100 fits
    assert [c.index for c in curate(rows, 1_200)[0]] == [0, 1]         # 900, then 300 before b's second trace
    rated = [*rows, Candidate(4, {}, "math", 50, 0.1, 0, "d")]
    assert curate(rated, 50)[0][0].index == 4                          # a known pass rate ranks first


def test_the_order_is_deterministic():
    candidates = _candidates(200, seed=3)
    shuffled = list(candidates)
    random.Random(1).shuffle(shuffled)
    assert curate(candidates, 40_000) == curate(shuffled, 40_000)


def _trace_rows(count: int) -> list[dict]:
    rng = random.Random(7)
    rows = []
    for i in range(count):
        question = f"Problem {i}: how many steps does the walk number {i} take?"
        reasoning = " ".join(["step"] * rng.randrange(5, 900))
        row = {"messages": [{"role": "user", "content": question},
                            {"role": "assistant", "content": format_assistant(reasoning, str(i))}],
               "domain": DOMAINS[i % 3], "pass_rate": rng.choice([0.25, 0.5, 0.75])}
        rows.append(row)
    return rows


def test_tokens_are_counted_in_the_students_tokenizer_when_a_row_has_none(tmp_path):
    config = load_config(TINY)
    rows = _trace_rows(30)
    rows[0]["tokens"] = 7  # a row's own count is used as it is
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    report = curate_source(config, str(data), budget_tokens=10**9)
    length = StudentLength(config)
    counted = {c.index: c.tokens for c in report.selected}
    too_long = [i for i, r in enumerate(rows[1:], start=1) if length(r["messages"]) > config.model.max_seq_length]
    assert too_long, "some rows should exceed max_seq_length 512"
    assert counted[0] == 7
    assert all(counted[i] == length(rows[i]["messages"]) for i in counted if i)
    assert report.skipped == {"invalid_json": 1, "too_long": len(too_long)}
    assert report.rows_read == 31 and report.difficulty == "pass_rate"
    config.data.overlong = "truncate"  # counted at the maximum instead
    truncated = curate_source(config, str(data), budget_tokens=10**9)
    assert all(c.tokens == config.model.max_seq_length for c in truncated.selected if c.index in too_long)


def test_one_budget_must_be_given():
    config = load_config(TINY)
    with pytest.raises(R1Error, match="one budget"):
        curate_source(config, "synthetic")
    with pytest.raises(R1Error, match="no throughput figure for GPU 'CPU"):
        curate_source(config, "synthetic", budget_hours=1)


def _cli(*args: str, config: Path = TINY, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1tui", "curate", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def test_the_command(tmp_path):
    rows = [{**r, "tokens": 100} for r in _trace_rows(24)]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "curated.jsonl"
    result = _cli("--data", data.name, "--out", out.name, "--budget-tokens", "1000", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sum(r["tokens"] for r in written) == report["selected_tokens"] == 1000
    assert len(written) == report["selected"] == 10 and all(r in rows for r in written)
    assert [rows.index(r) for r in written] == sorted(rows.index(r) for r in written)
    counts = [v["selected"] for v in report["domains"].values()]
    assert max(counts) - min(counts) <= 1
    for domain in DOMAINS:  # within each domain the chosen rows are the hardest
        chosen = [r["pass_rate"] for r in written if r["domain"] == domain]
        left = [r["pass_rate"] for r in rows if r["domain"] == domain and r not in written]
        assert max(chosen) <= min(left)
    assert report["difficulty"] == "pass_rate" and report["tokens_per_s"] is None

    # hours on the configured GPU: the RTX 4090 of config.toml, two epochs
    config = tmp_path / "config.toml"
    config.write_text((REPO / "config.toml").read_text().replace("epochs = 1.0", "epochs = 2.0"))
    hourly = _cli("--data", str(data), "--out", str(out), "--budget-hours", "0.001", "--json", config=config, cwd=tmp_path)
    assert hourly.returncode == 0, hourly.stderr
    report = json.loads(hourly.stdout)
    estimate = training_tokens_per_second("RTX 4090", "auto", "mistral-small-2409")
    assert report["budget_tokens"] == int(0.001 * 3600 * estimate.tokens_per_s / 2)
    assert report["throughput_basis"] == estimate.basis and report["selected_tokens"] <= report["budget_tokens"]

    text = _cli("--data", str(data), "--out", str(out), "--budget-hours", "0.001", config=config, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "ESTIMATE" in text.stdout and "tokens/s over 2 epoch(s)" in text.stdout

    refused = _cli("--data", str(data), "--out", str(tmp_path / "x.jsonl"), "--budget-hours", "1", cwd=tmp_path)
    assert refused.returncode == 1 and "no throughput figure for GPU 'CPU (no GPU)'" in refused.stderr
    assert not (tmp_path / "x.jsonl").exists()

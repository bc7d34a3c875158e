"""A tiny model that visibly learns: configs/learn.toml end to end, for real, on the CPU.

The random-init tiny Mistral (real v3 tokenizer) is trained with LoRA on the synthetic
reasoning data, merged, converted to GGUF by llama.cpp's converter, quantized to
Q4_K_M and evaluated by llama.cpp on the held-out synthetic set. Its replies must be
format-compliant (a closed non-empty think block, a FINAL ANSWER line, EOS) on at
least 80 % of the prompts, where the untrained base, exported by the same recipe at
the same quant and asked the same prompts, is compliant on none. Any stage that broke
the chain (masking, training, merge, conversion, quantization, tokenizer parity, the
chat template at inference) would show as a compliance near the base's.

Correctness is not asserted: the tiny model learns the shape of a reply, not arithmetic.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from r1tui.config import dump_toml, parse_config

pytestmark = pytest.mark.slow

LEARN = Path(__file__).resolve().parents[2] / "configs" / "learn.toml"


def learn_config(folder: Path) -> Path:
    """configs/learn.toml as it is, with its runs under ``folder``."""
    data = tomllib.loads(LEARN.read_text(encoding="utf-8"))
    data["runs"] = {"dir": str(folder / "runs")}
    path = folder / "learn.toml"
    path.write_text(dump_toml(parse_config(data, origin=str(LEARN), base_dir=LEARN.parent)), encoding="utf-8")
    return path


def test_the_learn_config_teaches_the_response_format_and_the_base_knows_none_of_it(tmp_path, runs_helpers):
    h = runs_helpers
    env = h.cli_env(tmp_path / "home")
    config = learn_config(tmp_path)

    run = json.loads(h.r1tui("run", "--config", str(config), "--foreground", "--json", env=env, timeout=1800).stdout)
    assert run["status"] == "finished", run
    run_dir = Path(run["run_dir"])
    tuned = json.loads((run_dir / "eval" / "results.json").read_text(encoding="utf-8"))
    assert tuned["model"]["quant"] == "Q4_K_M" and Path(tuned["model"]["path"]).parent == run_dir / "gguf"
    frozen = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    assert tuned["summary"]["count"] == frozen["eval"]["num_samples"] >= 32
    replies = [(s["compliant"], s["finish_reason"], s["response"][:120]) for s in tuned["samples"]]
    assert tuned["summary"]["compliance_rate"] >= 0.80, replies

    # the untrained base: the same export recipe and quant, the same rows and settings
    out = tmp_path / "vs-base"
    h.r1tui("eval", str(run_dir), "--vs", "base", "--out", str(out), "--json", env=env, timeout=900)
    base = json.loads(next(out.glob("vs-*base*.json")).read_text(encoding="utf-8"))
    assert base["model"]["quant"] == "Q4_K_M" and base["model"]["path"] != tuned["model"]["path"]
    assert [s["id"] for s in base["samples"]] == [s["id"] for s in tuned["samples"]]
    for key in ("max_new_tokens", "temperature", "top_p"):
        assert base["generation"][key] == tuned["generation"][key], key
    assert base["summary"]["compliance_rate"] == 0.0, [s["response"][:120] for s in base["samples"]]

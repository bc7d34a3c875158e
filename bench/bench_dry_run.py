"""Dry-run speed: the whole `r1tui dry-run` process against its 1 s budget, and the
calculator against the usual notebook way of getting the same numbers (build the model
on the meta device with transformers, wrap it with peft, count) — side by side, one run.

    .venv/bin/python bench/bench_dry_run.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = r"""
import time; t = time.perf_counter()
import torch
from transformers import MistralConfig, MistralForCausalLM
from peft import LoraConfig, get_peft_model
config = MistralConfig(vocab_size=32768, hidden_size=6144, intermediate_size=16384, num_hidden_layers=56,
                       num_attention_heads=48, num_key_value_heads=8, head_dim=128)
with torch.device("meta"):
    model = MistralForCausalLM(config)
model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]))
print(model.get_nb_trainable_parameters())
"""


def _wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    cases = {
        "r1tui dry-run (config.toml, with masking stats)": [py, "-m", "r1tui", "dry-run", "--config", "config.toml"],
        "r1tui dry-run --json (configs/tiny.toml)": [py, "-m", "r1tui", "dry-run", "--config", "configs/tiny.toml", "--json"],
        "reference: transformers meta model + peft count (22B)": [py, "-c", REFERENCE],
    }
    results = {}
    for name, cmd in cases.items():
        _wall(cmd)  # warm the page cache
        results[name] = statistics.median(_wall(cmd) for _ in range(args.repeat))
    reference = results["reference: transformers meta model + peft count (22B)"]
    print(f"| case | median wall s (n={args.repeat}) | vs reference |")
    print("| --- | --- | --- |")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.3f} | {reference / seconds:.1f}x faster |" if "reference" not in name
              else f"| {name} | {seconds:.3f} | 1.0x |")


if __name__ == "__main__":
    main()

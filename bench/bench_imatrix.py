"""What an importance matrix from the run's own traces buys a Q4_K_M, against none and against
one from unrelated text, and what it adds to an export's wall time.

    python bench/bench_imatrix.py                       # 218 M parameters, 24 steps (about 20 min on 2 cores)
    python bench/bench_imatrix.py --layers 4 --steps 8  # a quicker look

A randomly initialised Mistral-architecture model (vocabulary 32768 with the real v3
tokenizer, hidden 1024, intermediate 3072, 16 heads, 8 KV heads; 12 layers: 218 M
parameters) is first trained on the synthetic reasoning traces (full-parameter AdamW: a
few steps take its next-token distributions far from flat), then saved and put through
the export's own functions: llama.cpp's converter to F16, a plain Q4_K_M, an importance
matrix by llama-imatrix on training rows (``select_calibration`` / ``calibration_text``,
what ``export.imatrix`` runs) and its Q4_K_M, an importance matrix on the same number of
tokens of unrelated English text (Python's standard-library docstrings) and its Q4_K_M.
The three quants are measured against the F16 by the quality report's ``measure`` on
held-out rows (never trained on, never calibrated on). Prints the figures as ratios to
the plain quant and the wall time of each step.
"""

from __future__ import annotations

import argparse
import json
import platform
import pydoc
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELD_OUT = 32


def prepare(work: Path, rows: int) -> Path:
    """Synthetic traces through `r1tui prepare`, split: training rows in data/, the last
    HELD_OUT rows in data/eval (where the quality report looks first)."""
    import datasets

    config = work / "bench.toml"
    tiny = (REPO / "configs" / "tiny.toml").read_text(encoding="utf-8")
    config.write_text(tiny.replace("num_examples = 200", f"num_examples = {rows}"), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "r1tui", "prepare", "--config", str(config), "--data", "synthetic",
                    "--out", str(work / "all")], check=True, capture_output=True, cwd=REPO)
    everything = datasets.load_from_disk(str(work / "all"))
    data = work / "data"
    everything.select(range(len(everything) - HELD_OUT)).save_to_disk(str(data))
    everything.select(range(len(everything) - HELD_OUT, len(everything))).save_to_disk(str(data / "eval"))
    return data


def train(work: Path, data: Path, layers: int, steps: int, batch: int, lr: float) -> tuple[Path, list[float], int]:
    """The random model trained on the training rows (labels as prepared: the prompt masked)."""
    import datasets
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from r1tui.data.tokenizer import save_hf_tokenizer

    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(
        vocab_size=32768, hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers,
        num_attention_heads=16, num_key_value_heads=8, head_dim=64, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, max_position_embeddings=4096))
    rows = datasets.load_from_disk(str(data))
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 4))
    losses = []
    model.train()
    for step in range(steps):
        picked = [rows[order[(step * batch + k) % len(order)]] for k in range(batch)]
        width = max(len(r["input_ids"]) for r in picked)
        ids = torch.full((batch, width), 2, dtype=torch.long)
        labels = torch.full((batch, width), -100, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for k, row in enumerate(picked):
            n = len(row["input_ids"])
            ids[k, :n] = torch.tensor(row["input_ids"])
            labels[k, :n] = torch.tensor(row["labels"])
            mask[k, :n] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 3))
        print(f"  step {step + 1}/{steps}: loss {losses[-1]}", flush=True)
    folder = work / "model"
    model.to(torch.float16).save_pretrained(folder)
    save_hf_tokenizer("v3", folder)
    return folder, losses, sum(p.numel() for p in model.parameters())


def unrelated_text(tokens: int, vocab) -> str:
    """English prose that is not a reasoning trace: standard-library docstrings, in a fixed order."""
    import importlib

    parts, count = [], 0
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in {"antigravity", "this", "idlelib", "tkinter", "turtle"}:
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module this platform lacks
            continue
        doc = pydoc.getdoc(module)
        if len(doc) < 200:
            continue
        parts.append(doc)
        count += len(vocab.tokenize(doc))
        if count >= tokens:
            break
    return "\n\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--calibration-tokens", type=int, default=16384)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--quality-tokens", type=int, default=4096)
    parser.add_argument("--work", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    from r1tui.export.gguf import convert_to_gguf, find_converter, quantize_gguf
    from r1tui.export.imatrix import calibration_text, compute_imatrix, select_calibration
    from r1tui.export.parity import GgufVocab
    from r1tui.export.quality import measure, select_sample

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-imatrix-"))
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    def timed(name, fn, *a, **k):
        started = time.perf_counter()
        value = fn(*a, **k)
        times[name] = round(time.perf_counter() - started, 2)
        print(f"{name}: {times[name]} s", flush=True)
        return value

    data = timed("prepare", prepare, work, args.rows)
    model, losses, parameters = timed("train", train, work, data, args.layers, args.steps, args.batch, args.lr)
    converter = find_converter()
    f16 = timed("convert to F16", convert_to_gguf, model, work / "gguf" / "m-F16.gguf", converter)
    plain = timed("quantize Q4_K_M (plain)", quantize_gguf, f16, work / "gguf" / "m-Q4_K_M.gguf", "Q4_K_M")

    sample = select_sample(data, args.quality_tokens, seed=0)
    assert not isinstance(sample, str) and sample.source == "held-out", sample
    calibration = select_calibration(data, args.calibration_tokens, seed=0)
    text = calibration_text(calibration, "v3", f16)
    run_matrix = timed("llama-imatrix on training rows", compute_imatrix, f16, work / "imatrix" / "run.gguf",
                       text, chunk_tokens=args.chunk)
    run_quant = timed("quantize Q4_K_M (run imatrix)", quantize_gguf, f16, work / "gguf" / "m-imatrix-Q4_K_M.gguf",
                      "Q4_K_M", imatrix=work / "imatrix" / "run.gguf", converter=converter)
    with GgufVocab(f16) as vocab:
        other = unrelated_text(calibration.tokens, vocab)
    other_matrix = timed("llama-imatrix on unrelated text", compute_imatrix, f16, work / "imatrix" / "other.gguf",
                         other, chunk_tokens=args.chunk)
    other_quant = timed("quantize Q4_K_M (unrelated imatrix)", quantize_gguf, f16,
                        work / "gguf" / "m-other-Q4_K_M.gguf", "Q4_K_M", imatrix=work / "imatrix" / "other.gguf",
                        converter=converter)
    candidates = {"plain": plain, "run imatrix": run_quant, "unrelated imatrix": other_quant}
    measured = timed("quality report (3 quants)", measure, f16, candidates, sample, work / "scratch.npy")

    base = measured["quants"]["plain"]
    print(f"\n## {date.today()} · {platform.node()} · {platform.processor() or platform.machine()} · "
          f"{args.layers} layers, about {parameters / 1e6:.0f} M parameters, trained {args.steps} steps "
          f"(loss {losses[0]} -> {losses[-1]})")
    print(f"calibration: {calibration.tokens} tokens of {calibration.description}, chunks of {args.chunk} "
          f"({run_matrix['chunks']} used); unrelated: {other_matrix['chunks']} chunks of stdlib docstrings; "
          f"measured on {sample.tokens} tokens of {len(sample.sequences)} held-out rows\n")
    print("| Q4_K_M | scope | KLD mean | ratio to plain | KLD p99 | top-1 agreement | perplexity ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in measured["quants"].items():
        for scope in ("all", "answer"):
            figures = entry[scope]
            ratio = figures["kld_mean"] / base[scope]["kld_mean"]
            print(f"| {name} | {scope} | {figures['kld_mean']:.5f} | {ratio:.3f} | {figures['kld_p99']:.4f} | "
                  f"{figures['top1_agreement'] * 100:.2f} % | {figures['ppl_ratio']:.4f} |")
    export_plain = times["convert to F16"] + times["quantize Q4_K_M (plain)"]
    added = times["llama-imatrix on training rows"] + times["quantize Q4_K_M (run imatrix)"]
    print(f"\nconvert + plain quantize {export_plain:.1f} s; the imatrix and its quant add {added:.1f} s "
          f"({added / export_plain:.2f}x); the quality report of 3 quants {times['quality report (3 quants)']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "losses": losses, "quality": measured,
                                         "calibration_tokens": calibration.tokens, "parameters": parameters},
                                        indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

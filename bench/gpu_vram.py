"""On a CUDA GPU: the Unsloth and hf backends on Mistral-Small-Instruct-2409's real layer
sizes (hidden 6144, intermediate 16384, 48/8 heads, head_dim 128, vocab 32768) with a
few random-init layers, 4-bit NF4, LoRA r=64 alpha=128 on all seven projections, at
sequence lengths 2048 and 8192 — each through the real runner (`r1tui train
--foreground`), so the numbers come from the run's own event log.

    python bench/gpu_vram.py --out DIR [--layers 2 4] [--steps 4]

Writes DIR/gpu_vram.json and DIR/gpu_vram.md: per configuration the peak VRAM
(allocated and reserved), step time, tokens/s, and the calculator's estimate for the
same shape; then a per-layer slope from two layer counts, extrapolated to 56 layers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from r1tui import calculator  # noqa: E402
from r1tui.runs.events import read_events  # noqa: E402

DIMS = dict(hidden_size=6144, intermediate_size=16384, num_attention_heads=48, num_key_value_heads=8,
            head_dim=128, vocab_size=32768)
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def write_long_rows(path: Path, n_rows: int, approx_tokens: int) -> None:
    """Reasoning rows long enough to fill the sequence (truncated to max length)."""
    step = "We compute the next partial sum, check it against the previous bound, and carry the remainder. "
    words_per_step = len(step.split())
    steps = approx_tokens // words_per_step + 8
    with path.open("w") as f:
        for i in range(n_rows):
            reasoning = "\n".join(f"Step {k}: {step}" for k in range(steps))
            f.write(json.dumps({"question": f"Sum the series number {i}.", "reasoning": reasoning,
                                "answer": str(i), "domain": "math"}) + "\n")


def write_config(path: Path, *, arch_json: Path, base: Path, data: Path, backend: str, seq: int, steps: int,
                 runs: Path) -> None:
    path.write_text(f"""
[model]
name = "random-2409-shape"
architecture = "{arch_json}"
path = "{base}"
random_init = false
tokenizer = "v3"
max_seq_length = {seq}
load_in_4bit = {"false" if backend == "hf-cpu" else "true"}

[lora]
r = 64
alpha = 128
target_modules = {json.dumps(MODULES)}

[train]
backend = "{backend}"
optimizer = "adamw_8bit"
learning_rate = 1e-4
warmup_ratio = 0.0
per_device_batch_size = 1
gradient_accumulation_steps = 1
max_steps = {steps}
logging_steps = 1
save_steps = 1000
gradient_checkpointing = true
dtype = "bfloat16"
gpu_sample_seconds = 1.0

[data]
source = "{data}"
num_examples = {steps + 2}
overlong = "truncate"

[runs]
dir = "{runs}"
""")


def build_base(layers: int, folder: Path, arch_json: Path) -> None:
    arch_json.write_text(json.dumps({**DIMS, "num_hidden_layers": layers}))
    if (folder / "config.json").is_file():
        return
    from r1tui.config import parse_config
    from r1tui.train.base import build_random_base

    config = parse_config({"model": {"architecture": str(arch_json), "random_init": True, "max_seq_length": 8192},
                           "train": {"dtype": "bfloat16"}})
    build_random_base(config, folder)


def measure(run_dir: Path) -> dict:
    metrics = [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "metric" and "loss" in e.data]
    finished = [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "run_finished"]
    if not metrics:
        return {"status": finished[0].get("status") if finished else "no metrics"}
    later = metrics[1:] or metrics  # the first step includes warm-up
    return {
        "status": finished[0].get("status") if finished else "unknown",
        "steps": len(metrics),
        "peak_allocated": max(m.get("cuda_peak") or 0 for m in metrics),
        "peak_reserved": max(m.get("cuda_peak_reserved") or m.get("cuda_reserved") or 0 for m in metrics),
        "tokens_per_s": sum(m.get("tokens_per_s") or 0 for m in later) / len(later),
        "loss_first": metrics[0].get("loss"),
        "loss_last": metrics[-1].get("loss"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/r1tui-gpu"))
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seqs", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--backends", nargs="+", default=["unsloth", "hf"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--timeout", type=int, default=240)
    parser.add_argument("--cpu-check", action="store_true",
                        help="rehearse the script on the CPU with tiny dims (no VRAM numbers)")
    args = parser.parse_args()
    if args.cpu_check:
        DIMS.update(hidden_size=256, intermediate_size=768, num_attention_heads=4, num_key_value_heads=2, head_dim=64)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "long.jsonl"
    write_long_rows(data, args.steps + 2, max(args.seqs))
    results = []
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (rehearsal)"
    archs = {}
    for layers in args.layers:
        arch_json = args.work / f"arch-{layers}.json"
        base = args.work / f"base-{layers}"
        t = time.time()
        build_base(layers, base, arch_json)
        print(f"base {layers} layers built in {time.time() - t:.0f}s", flush=True)
        archs[layers] = (arch_json, base, calculator.resolve_architecture(str(arch_json)))
    top_layers, top_seq = max(args.layers), max(args.seqs)
    # most informative first, in case the time runs out: each backend at the longest
    # sequence on the most layers, then the slope partner, then the shorter sequences
    plan = [(b, top_layers, top_seq) for b in args.backends]
    plan += [(b, layers, top_seq) for b in args.backends for layers in args.layers if layers != top_layers]
    plan += [(b, top_layers, seq) for b in args.backends for seq in args.seqs if seq != top_seq]
    for backend, layers, seq in plan:
        arch_json, base, arch = archs[layers]
        cfg = args.work / f"{backend}-{layers}-{seq}.toml"
        runs = args.work / f"runs-{backend}-{layers}-{seq}"
        write_config(cfg, arch_json=arch_json, base=base, data=data, backend=backend, seq=seq,
                     steps=args.steps, runs=runs)
        t = time.time()
        try:
            proc = subprocess.run([sys.executable, "-m", "r1tui", "train", "--config", str(cfg), "--foreground"],
                                  capture_output=True, text=True, timeout=args.timeout, cwd=REPO)
            returncode, stderr = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as exc:
            returncode, stderr = "timeout", (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        run_dirs = sorted(runs.glob("*")) if runs.exists() else []
        row = {"backend": backend, "layers": layers, "seq": seq, "wall_s": round(time.time() - t, 1),
               "returncode": returncode}
        if run_dirs:
            row.update(measure(run_dirs[-1]))
        estimate = calculator.estimate_training_vram(
            arch, rank=64, target_modules=MODULES, seq_len=seq, batch_size=1, gpu_memory_gb=24, backend=backend)
        row["estimate_total"] = estimate.total
        row["estimate_parts"] = estimate.parts()
        if returncode:
            row["stderr_tail"] = stderr[-2500:]
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "estimate_parts"}), flush=True)
        (args.out / "gpu_vram.json").write_text(json.dumps({"gpu": gpu, "results": results}, indent=2))
    (args.out / "gpu_vram.md").write_text(render(gpu, results, args))
    print(render(gpu, results, args))


def render(gpu: str, results: list[dict], args) -> str:
    lines = [f"GPU: {gpu}; date {time.strftime('%Y-%m-%d')}; command: python bench/gpu_vram.py",
             "", "| backend | layers | seq | peak alloc GB | peak reserved GB | estimate GB | tokens/s | loss first→last |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['layers']} | {r['seq']} | {r.get('peak_allocated', 0) / 1e9:.2f} | "
                     f"{r.get('peak_reserved', 0) / 1e9:.2f} | {r['estimate_total'] / 1e9:.2f} | "
                     f"{r.get('tokens_per_s') or 0:,.0f} | {r.get('loss_first')}→{r.get('loss_last')} |")
    lo, hi = min(args.layers), max(args.layers)
    seq = max(args.seqs)
    for backend in args.backends:
        pick = {r["layers"]: r for r in results if r["backend"] == backend and r["seq"] == seq and r.get("peak_allocated")}
        if lo in pick and hi in pick and hi != lo:
            per_layer = (pick[hi]["peak_allocated"] - pick[lo]["peak_allocated"]) / (hi - lo)
            at56 = pick[hi]["peak_allocated"] + per_layer * (56 - hi)
            lines.append(f"\n{backend} @ {seq}: {per_layer / 1e9:.3f} GB per layer measured; extrapolated to 56 layers: "
                         f"{at56 / 1e9:.1f} GB -> {'fits' if at56 < 24e9 else 'does not fit'} a 24 GB card")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

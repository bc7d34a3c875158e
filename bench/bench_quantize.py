"""Quantization through r1tui vs the same llama-cpp-python binding called bare, side by side.

    python bench/bench_quantize.py                      # tiny and small random Mistral models
    python bench/bench_quantize.py --f16 model-F16.gguf # any F16 GGUF you have

"project": r1tui.export.gguf.quantize_gguf - a child process running
llama_model_quantize with per-tensor progress parsed from llama.cpp's log, writing to a
temporary name and renaming. "bare": llama_cpp.llama_model_quantize called in this
process with default parameters. Both read the same F16 file and write the same type;
the runs alternate (bare, project, bare, ...) so machine load hits both alike, and the
outputs are checked byte-identical. Prints a Markdown table (median of N runs).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

SIZES = {  # random Mistral-architecture models with the real v3 tokenizer (vocab 32768)
    "tiny": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64),
    "small": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=8, num_attention_heads=16,
                  num_key_value_heads=4, head_dim=64),
}


def build_f16(size: str, folder: Path) -> Path:
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from r1tui.data.tokenizer import write_published_tokenizer
    from r1tui.export.gguf import convert_to_gguf, find_converter

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=32768, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                           max_position_embeddings=4096, **SIZES[size])
    model = MistralForCausalLM(config).to(torch.float16)
    model_dir = folder / f"{size}-model"
    model.save_pretrained(model_dir)
    write_published_tokenizer("v3", model_dir)
    return convert_to_gguf(model_dir, folder / f"{size}-F16.gguf", find_converter())


def bare(source: Path, target: Path, quant: str) -> None:
    import llama_cpp

    from r1tui.export.gguf import QUANT_FTYPES

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[quant]
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)) != 0:
        raise SystemExit("bare quantize failed")


def project(source: Path, target: Path, quant: str) -> None:
    from r1tui.export.gguf import quantize_gguf

    quantize_gguf(source, target, quant, on_progress=lambda done, total, message: None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure(f16: Path, quant: str, repeats: int, work: Path) -> dict:
    import r1tui.export._llama_log as llama_log

    # the bare runs get a log callback that drops lines, so neither side prints to the terminal
    times: dict[str, list[float]] = {"bare": [], "project": []}
    outputs: dict[str, Path] = {}
    for index in range(repeats):
        for name, fn in (("bare", bare), ("project", project)):
            target = work / f"{f16.stem}-{name}-{index}-{quant}.gguf"
            if name == "bare":
                with llama_log.capture_llama_log(lambda level, line: None):
                    start = time.perf_counter()
                    fn(f16, target, quant)
                    elapsed = time.perf_counter() - start
            else:
                start = time.perf_counter()
                fn(f16, target, quant)
                elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            if name in outputs:
                target.unlink()
            else:
                outputs[name] = target
    identical = sha256(outputs["bare"]) == sha256(outputs["project"])
    return {
        "f16_bytes": f16.stat().st_size,
        "out_bytes": outputs["project"].stat().st_size,
        "bare_median_s": statistics.median(times["bare"]),
        "project_median_s": statistics.median(times["project"]),
        "bare_min_s": min(times["bare"]),
        "project_min_s": min(times["project"]),
        "bare_all": times["bare"],
        "project_all": times["project"],
        "identical": identical,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--f16", type=Path, help="an F16 GGUF to quantize (default: build tiny and small models)")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=sorted(SIZES))
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="r1tui-bench-") as tmp:
        work = Path(tmp)
        inputs = [("file", args.f16)] if args.f16 else [(size, build_f16(size, work)) for size in args.sizes]
        print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start, {date.today().isoformat()}; "
              f"command: python {' '.join(sys.argv)}")
        print()
        print(f"| model | F16 | {args.quant} | bare median of {args.repeats} (min) | r1tui median (min) | "
              "ratio of medians (of mins) | identical bytes |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, f16 in inputs:
            result = measure(f16, args.quant, args.repeats, work)
            ratio = result["project_median_s"] / result["bare_median_s"]
            ratio_min = result["project_min_s"] / result["bare_min_s"]
            print(f"| {name} | {result['f16_bytes'] / 1e6:.1f} MB | {result['out_bytes'] / 1e6:.1f} MB | "
                  f"{result['bare_median_s']:.3f} s ({result['bare_min_s']:.3f}) | "
                  f"{result['project_median_s']:.3f} s ({result['project_min_s']:.3f}) | "
                  f"{ratio:.2f}× ({ratio_min:.2f}×) | {result['identical']} |")
            print(f"<!-- {name}: bare {[round(t, 3) for t in result['bare_all']]} "
                  f"project {[round(t, 3) for t in result['project_all']]} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Eval wall time: r1tui's eval on 1 and on 4 slots vs a bare llama-cpp-python loop, side by side.

    python bench/bench_eval.py                        # 16 questions x 4 samples, tiny random Q4_K_M
    python bench/bench_eval.py --size small --rounds 3
    python bench/bench_eval.py --gguf model-Q4_K_M.gguf --tokenizer v3

"bare": one ``llama_cpp.Llama`` (llama-cpp-python's default threads) generating every
sample in turn from the same prompt ids with the same sampler (temperature, top_p, no
top-k/min-p/repeat penalty), the same per-sample seeds and the same stop (EOS or
``--max-new-tokens``), with no scoring and no files: the least a person could write.
"r1tui N slots": ``r1tui.eval.run.evaluate_run`` on the same GGUF and rows with
``eval.slots = N`` - prompts rendered by the training renderer, every sample seeded,
scored (answer check, depth, think tokens), journaled and saved. With one slot both
generate the same tokens (the table's token counts say whether they did); several slots
decode the same seeds in parallel contexts. Modes alternate round by round so machine
load hits them alike; the table gives medians and ratios to bare.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quantize import build_f16  # noqa: E402 - the same random models, built the same way


def build_gguf(size: str, folder: Path) -> Path:
    from r1tui.export.gguf import quantize_gguf

    return quantize_gguf(build_f16(size, folder), folder / f"{size}-Q4_K_M.gguf", "Q4_K_M")


def bare(gguf: Path, prompts: list[tuple[str, list[int]]], samples: int, base_seed: int, max_tokens: int,
         temperature: float, top_p: float) -> int:
    import llama_cpp

    from r1tui.eval.sampling import sample_seed

    llama = llama_cpp.Llama(model_path=str(gguf), n_ctx=1024, verbose=False)
    generated = 0
    try:
        for row_id, prompt in prompts:
            for sample in range(samples):
                llama.set_seed(sample_seed(base_seed, row_id, sample))
                count = 0
                for token in llama.generate(prompt, temp=temperature, top_p=top_p, top_k=0, min_p=0.0,
                                            repeat_penalty=1.0, reset=True):
                    if token == llama.token_eos():
                        break
                    count += 1
                    if count >= max_tokens:
                        break
                generated += count
    finally:
        llama.close()
    return generated


def project(gguf: Path, config, rows_file: Path, slots: int, out: Path) -> int:
    from r1tui.eval.run import evaluate_run

    config.eval.slots = slots
    results = evaluate_run(config, None, gguf=gguf, source=str(rows_file), out_dir=out)
    return sum(s["completion_tokens"] for s in results["samples"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small"), default="tiny")
    parser.add_argument("--gguf", type=Path, help="a GGUF to use instead of a random model")
    parser.add_argument("--tokenizer", default="v3")
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import json

    from r1tui.config import load_config
    from r1tui.data.synthetic import generate_problems
    from r1tui.infer.prompt import render_prompt_ids

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gguf = args.gguf or build_gguf(args.size, folder)
        config = load_config(Path(__file__).resolve().parent.parent / "configs" / "tiny.toml")
        config.model.tokenizer = args.tokenizer
        config.eval.num_samples = args.questions
        config.eval.samples_per_question = args.samples
        config.eval.max_new_tokens = args.max_new_tokens
        config.eval.n_ctx = 1024
        temperature, top_p = config.eval.sampling
        problems = generate_problems(args.questions, config.eval.seed)
        rows_file = folder / "rows.jsonl"
        rows_file.write_text("".join(json.dumps({"id": f"q{i}", **p}) + "\n" for i, p in enumerate(problems)))
        prompts = [(f"q{i}", render_prompt_ids([{"role": "user", "content": p["question"]}], args.tokenizer))
                   for i, p in enumerate(problems)]

        modes = {"bare llama-cpp-python loop": lambda: bare(gguf, prompts, args.samples, config.eval.seed,
                                                            args.max_new_tokens, temperature, top_p)}
        for slots in args.slots:
            modes[f"r1tui eval, {slots} slot{'s' * (slots > 1)}"] = (
                lambda slots=slots: project(gguf, config, rows_file, slots, folder / f"out-{slots}"))
        times: dict[str, list[float]] = {name: [] for name in modes}
        tokens: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, run in modes.items():
                for leftover in folder.glob("out-*/*"):
                    leftover.unlink()  # no journal or earlier results: every round generates everything
                started = time.perf_counter()
                tokens[name] = run()
                times[name].append(time.perf_counter() - started)

    generations = args.questions * args.samples
    reference = statistics.median(times["bare llama-cpp-python loop"])
    print(f"{date.today()}, {platform.node() or 'this machine'}: {os.cpu_count()} cores, "
          f"{'GGUF ' + str(args.gguf) if args.gguf else args.size + ' random Q4_K_M'}, "
          f"{args.questions} questions x {args.samples} samples = {generations} generations of "
          f"{args.max_new_tokens} tokens, temperature {temperature}, top_p {top_p}, median of {args.rounds} rounds\n")
    print("| mode | wall (s) | tokens generated | tokens/s | wall ratio to bare |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in times.items():
        wall = statistics.median(values)
        print(f"| {name} | {wall:.2f} | {tokens[name]} | {tokens[name] / wall:.0f} | {wall / reference:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

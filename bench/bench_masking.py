"""Masking throughput: r1tui's one-pass renderer against TRL's own dataset preparation.

Both sides start from the same in-memory conversations (single-turn synthetic rows,
user question -> `<think>…</think>\\n\\nFINAL ANSWER: …`) and end with an Arrow dataset
holding `input_ids` and `labels` (-100 on the prompt), at the same max length:

- r1tui: `render_examples` (one pass, batched SentencePiece encode, length policy and
  stats) + `Dataset.from_dict`;
- TRL: `SFTTrainer._prepare_dataset` on a prompt/completion dataset (TRL's recommended
  response-only path: chat template applied to the prompt and to prompt+completion,
  both tokenized, the completion mask turned into labels, truncation, the all-masked
  filter), with the Hugging Face tokenizer `save_hf_tokenizer("v3")` builds from the
  same v3 file;
- for context, mistral-common's own `encode_chat_completion` per row (ids only).

Each method runs `--repeats` times, interleaved; the best time counts. The script also
checks how many rows came out identical (ids and labels) between r1tui and TRL.

    python bench/bench_masking.py              # 2000 rows, 3 repeats
    python bench/bench_masking.py --rows 500 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    from r1tui.config import parse_config
    from r1tui.data.prepare import render_examples
    from r1tui.data.render import load_renderer
    from r1tui.data.sources import Example, LoadedExamples
    from r1tui.data.synthetic import generate_problems
    from r1tui.data.tokenizer import load_hf_tokenizer, load_reference, save_hf_tokenizer
    from r1tui.response_format import format_assistant

    disable_progress_bar()
    hf_logging.set_verbosity_error()
    problems = generate_problems(args.rows, seed=0)
    conversations = [[{"role": "user", "content": p["question"]},
                      {"role": "assistant", "content": format_assistant(p["reasoning"], p["answer"])}] for p in problems]

    # -- r1tui --------------------------------------------------------------------------
    config = parse_config({"model": {"max_seq_length": args.max_length}})
    started = time.perf_counter()
    renderer = load_renderer("v3")
    load_ours = time.perf_counter() - started
    examples = [Example(messages, p["domain"]) for messages, p in zip(conversations, problems, strict=True)]

    def ours() -> Dataset:
        loaded = LoadedExamples(examples=examples, rows_read=len(examples), source="bench")
        columns, _ = render_examples(loaded, renderer, config)
        return Dataset.from_dict(columns)

    # -- TRL ----------------------------------------------------------------------------
    from trl import SFTConfig, SFTTrainer

    tmp = tempfile.mkdtemp(prefix="bench_masking_")
    started = time.perf_counter()
    hf_tokenizer = load_hf_tokenizer(save_hf_tokenizer("v3", Path(tmp) / "tokenizer"))
    load_trl = time.perf_counter() - started
    sft_args = SFTConfig(output_dir=tmp, max_length=args.max_length, bf16=False, use_cpu=True, report_to=[],
                         gradient_checkpointing=False, dataset_num_proc=None)
    trainer = SFTTrainer.__new__(SFTTrainer)  # only the dataset preparation is measured, no model needed
    trainer._tokenizer = hf_tokenizer
    trainer.chat_template = None
    trainer.completion_only_loss = True
    prompt_completion = [{"prompt": messages[:-1], "completion": messages[-1:]} for messages in conversations]

    def trl() -> Dataset:
        dataset = Dataset.from_list(prompt_completion)
        return SFTTrainer._prepare_dataset(trainer, dataset, hf_tokenizer, sft_args, packing=False,
                                           formatting_func=None, dataset_name="bench")

    # -- mistral-common (context) -------------------------------------------------------
    from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    reference = load_reference("v3")
    requests = [ChatCompletionRequest(messages=[UserMessage(content=m[0]["content"]),
                                                AssistantMessage(content=m[1]["content"])]) for m in conversations]

    def mistral_common() -> list[list[int]]:
        return [reference.encode_chat_completion(request).tokens for request in requests]

    methods = {"r1tui render_examples + Dataset": ours, "TRL SFTTrainer._prepare_dataset": trl,
               "mistral-common encode_chat_completion (ids only)": mistral_common}
    best = {name: float("inf") for name in methods}
    outputs = {}
    for _ in range(args.repeats):
        for name, method in methods.items():
            started = time.perf_counter()
            outputs[name] = method()
            best[name] = min(best[name], time.perf_counter() - started)

    ours_rows, trl_rows = outputs["r1tui render_examples + Dataset"], outputs["TRL SFTTrainer._prepare_dataset"]
    same_ids = sum(a == b for a, b in zip(ours_rows["input_ids"], trl_rows["input_ids"], strict=True))
    same_labels = sum(a == b for a, b in zip(ours_rows["labels"], trl_rows["labels"], strict=True))
    same_as_reference = sum(a == b for a, b in zip(ours_rows["input_ids"], outputs[
        "mistral-common encode_chat_completion (ids only)"], strict=True))
    tokens = sum(len(ids) for ids in ours_rows["input_ids"])
    trl_time = best["TRL SFTTrainer._prepare_dataset"]
    result = {
        "rows": args.rows, "tokens": tokens, "max_length": args.max_length, "repeats": args.repeats,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "seconds": best,
        "rows_per_s": {name: args.rows / seconds for name, seconds in best.items()},
        "tokens_per_s": {name: tokens / seconds for name, seconds in best.items()},
        "speedup_vs_trl": {name: trl_time / seconds for name, seconds in best.items()},
        "tokenizer_load_s": {"r1tui (sentencepiece)": load_ours, "TRL (HF folder from the v3 file)": load_trl},
        "rows_identical_r1tui_vs_trl": {"input_ids": same_ids, "labels": same_labels},
        "rows_identical_r1tui_vs_mistral_common": same_as_reference,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.rows} rows, {tokens:,} tokens, max length {args.max_length}, best of {args.repeats}; {result['machine']}")
    print(f"{'method':52} {'seconds':>8} {'rows/s':>9} {'tokens/s':>11} {'vs TRL':>7}")
    for name, seconds in best.items():
        print(f"{name:52} {seconds:8.3f} {args.rows / seconds:9,.0f} {tokens / seconds:11,.0f} "
              f"{trl_time / seconds:6.2f}x")
    print(f"rows identical r1tui vs TRL: ids {same_ids}/{args.rows}, labels {same_labels}/{args.rows}; "
          f"r1tui vs mistral-common ids {same_as_reference}/{args.rows}")
    print(f"tokenizer load: r1tui {load_ours:.3f} s, TRL/HF {load_trl:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

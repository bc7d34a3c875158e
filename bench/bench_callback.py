"""Step-time overhead of the training event callback (aim: at most 1 %).

Side by side in one process, on the tiny random Mistral with the real v3 tokenizer:
the same model and data trained with the hf backend's trainer, alternating rounds
with and without r1tui's MetricsCallback (metric + stage_progress events to a real
events.jsonl, the GPU sampler thread, the cancel check, and the per-step token count
it relies on). Step time is the interval between consecutive step starts, so it
includes logging. A second, precise figure: the callback's own cost per step,
calling its hooks directly, as a share of the measured step time.

    .venv/bin/python bench/bench_callback.py [--steps 10] [--rounds 6] [--seq 256]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(tmp: Path, seq: int, rows: int = 64):
    import datasets
    from transformers import AutoTokenizer

    from r1tui.config import parse_config
    from r1tui.data.tokenizer import save_hf_tokenizer
    from r1tui.train import hf_backend
    from r1tui.train.base import ensure_base_model

    tokenizer = AutoTokenizer.from_pretrained(str(save_hf_tokenizer("v3", tmp / "tok")))
    rng = random.Random(0)
    ids, labels = [], []
    for _ in range(rows):
        text = " ".join(str(rng.randint(0, 10**6)) for _ in range(seq))
        full = tokenizer(text)["input_ids"][:seq]
        ids.append(full)
        labels.append([-100] * 8 + full[8:])
    dataset = datasets.Dataset.from_dict({"input_ids": ids, "labels": labels})
    config = parse_config({
        "model": {"architecture": "tiny", "random_init": True, "max_seq_length": seq, "load_in_4bit": False},
        "lora": {"r": 16, "alpha": 32},
        "train": {"backend": "hf", "optimizer": "adamw_torch", "learning_rate": 1e-4, "lr_scheduler": "constant",
                  "warmup_ratio": 0.0, "per_device_batch_size": 4, "gradient_accumulation_steps": 1,
                  "logging_steps": 1, "save_steps": 10**6, "gradient_checkpointing": False, "dtype": "float32",
                  "gpu_sample_seconds": 1.0},
    })
    base = ensure_base_model(config, tmp / "run")
    model, tokenizer = hf_backend.load_model(config, base)
    return config, model, tokenizer, dataset


def timed_round(config, model, tokenizer, dataset, out: Path, steps: int, with_callback: bool) -> list[float]:
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from r1tui.runs.events import EventWriter
    from r1tui.train import hf_backend
    from r1tui.train.callback import MetricsCallback
    from r1tui.train.collator import PadCollator
    from r1tui.train.trainer import training_arguments

    starts: list[tuple[float, float]] = []

    class StepClock(TrainerCallback):
        # wall time and this process's CPU time (all threads): the CPU time is far less
        # sensitive to other processes competing for the same cores
        def on_step_begin(self, args, state, control, **kwargs):
            starts.append((time.perf_counter(), time.process_time()))

        def on_train_end(self, args, state, control, **kwargs):
            starts.append((time.perf_counter(), time.process_time()))

    config.train.max_steps = steps
    args = training_arguments(config, out / "checkpoints", hf_backend)
    if not with_callback:
        args.include_num_input_tokens_seen = "no"  # the callback is what asks for the token count
    writer = EventWriter(out / "events.jsonl")
    callbacks = [StepClock()] + ([MetricsCallback(writer, gpu_sample_seconds=1.0)] if with_callback else [])
    trainer = hf_backend.trainer_class()(model=model, args=args, train_dataset=dataset,
                                         data_collator=PadCollator(pad_token_id=2), processing_class=tokenizer,
                                         callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    writer.close()
    intervals = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(starts, starts[1:], strict=False)]
    return intervals[2:]  # the first steps include the dataloader and allocator warm-up


def hook_cost_us(repeat: int = 20000) -> float:
    """The callback's own work per logged step (on_step_end + on_log), in microseconds."""
    from types import SimpleNamespace

    from r1tui.runs.events import EventWriter
    from r1tui.train.callback import MetricsCallback

    with tempfile.TemporaryDirectory() as tmp, EventWriter(Path(tmp) / "events.jsonl") as writer:
        callback = MetricsCallback(writer, gpu_sample_seconds=None)
        state = SimpleNamespace(global_step=0, num_input_tokens_seen=0, is_world_process_zero=True, max_steps=10**9,
                                epoch=0.0)
        args = SimpleNamespace(per_device_train_batch_size=4, gradient_accumulation_steps=1, world_size=1,
                               device="cpu", output_dir=tmp)
        control = SimpleNamespace(should_save=False, should_log=False, should_training_stop=False)
        callback.on_train_begin(args, state, control)
        logs = {"loss": 9.87, "grad_norm": 1.23, "learning_rate": 1e-4, "epoch": 0.1}
        started = time.perf_counter()
        for step in range(1, repeat + 1):
            state.global_step = step
            state.num_input_tokens_seen = step * 1000
            callback.on_step_end(args, state, control)
            callback.on_log(args, state, control, logs=logs)
        return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config, model, tokenizer, dataset = build(tmp, opts.seq)
        steps: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        per_round: list[tuple[int, bool, float, float]] = []
        for round_index in range(opts.rounds):
            # alternate which arm goes first so drift in machine load hits both equally
            order = (False, True) if round_index % 2 == 0 else (True, False)
            for arm in order:
                out = tmp / f"round{round_index}-{'with' if arm else 'without'}"
                intervals = timed_round(config, model, tokenizer, dataset, out, opts.steps, arm)
                steps[arm] += [wall for wall, _ in intervals]
                cpu[arm] += [cpu_s for _, cpu_s in intervals]
                per_round.append((round_index, arm, statistics.median(w for w, _ in intervals),
                                  statistics.median(c for _, c in intervals)))
    without, with_ = statistics.median(steps[False]), statistics.median(steps[True])
    # Each round pairs the two arms back to back: a load spike from another process
    # spoils one pair, not the whole comparison. The headline is the median paired ratio.
    def pair(i: int, k: int) -> float:
        with_arm = next(row[k] for row in per_round if row[0] == i and row[1])
        without_arm = next(row[k] for row in per_round if row[0] == i and not row[1])
        return with_arm / without_arm

    paired = [pair(i, 2) for i in range(opts.rounds)]
    paired_cpu = [pair(i, 3) for i in range(opts.rounds)]
    cpu_without, cpu_with = statistics.median(cpu[False]), statistics.median(cpu[True])
    hook_us = hook_cost_us()
    result = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "seq": opts.seq, "batch": 4, "steps_per_arm": len(steps[True]),
        "median_step_s_without": without, "median_step_s_with": with_,
        "overhead_median_ratio": with_ / without - 1,
        "overhead_paired_ratios": [p - 1 for p in paired],
        "overhead_paired_median": statistics.median(paired) - 1,
        "median_step_cpu_s_without": cpu_without, "median_step_cpu_s_with": cpu_with,
        "overhead_cpu_median_ratio": cpu_with / cpu_without - 1,
        "overhead_cpu_paired_median": statistics.median(paired_cpu) - 1,
        "hook_us_per_step": hook_us,
        "hook_share_of_step": hook_us * 1e-6 / without,
    }
    if opts.json:
        print(json.dumps(result, indent=2))
        return
    print(f"tiny Mistral, batch 4 x seq {opts.seq}, {result['device']}, {result['torch_threads']} threads, "
          f"{result['steps_per_arm']} timed steps per arm in {opts.rounds} alternating rounds")
    print(f"  median step without callback : {without * 1000:8.1f} ms")
    print(f"  median step with callback    : {with_ * 1000:8.1f} ms   ({result['overhead_median_ratio']:+.2%})")
    print(f"  paired rounds, median ratio  : {result['overhead_paired_median']:+.2%}   "
          f"(per round: {', '.join(f'{r:+.1%}' for r in result['overhead_paired_ratios'])})")
    print(f"  CPU time per step without    : {cpu_without * 1000:8.1f} ms")
    print(f"  CPU time per step with       : {cpu_with * 1000:8.1f} ms   ({result['overhead_cpu_median_ratio']:+.2%}; "
          f"paired median {result['overhead_cpu_paired_median']:+.2%})")
    for round_index, arm, wall, cpu_s in per_round:
        print(f"    round {round_index} {'with   ' if arm else 'without'} median wall {wall * 1000:8.1f} ms"
              f"  cpu {cpu_s * 1000:8.1f} ms")
    print(f"  callback hooks per step      : {hook_us:8.1f} µs   ({result['hook_share_of_step']:.4%} of a step)")


if __name__ == "__main__":
    main()

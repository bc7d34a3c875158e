"""`r1tui train`: prepare the data and train the LoRA adapter in a detached process."""

from __future__ import annotations

import argparse

from r1tui.cli.run import add_start_arguments, start

HELP = "prepare the data and train the LoRA adapter, detached; print the run id (--resume RUN continues)"
DESCRIPTION = """\
Like `r1tui run` with the stages prepare and train only. The backend comes from
train.backend: unsloth (FastLanguageModel, 4-bit NF4, Unsloth gradient
checkpointing), hf (transformers + peft + TRL; bitsandbytes NF4 where it runs) or
auto (unsloth when a CUDA GPU and Unsloth are present, else hf). Metrics, GPU
samples and checkpoints go to the run's events.jsonl.

--resume RUN continues from the latest checkpoint: the step count continues, the
optimizer, scheduler and RNG state come back, and no step is logged twice.

Examples:
  r1tui train --config configs/tiny.toml
  r1tui train --resume latest
  r1tui train --config configs/tiny.toml --dataset data/prepared --foreground
  r1tui train --config configs/tiny.toml --processes 2     # DDP under accelerate launch
  r1tui train --config config.toml --processes 4 --distributed fsdp          # sharded (FSDP2)
  r1tui train --config config.toml --nodes 2 --gpus-per-node 4 --main-address node0
                                       # prints each node's torchrun line (docs/multigpu.md)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_start_arguments(parser, stages_option=False)


def run(args: argparse.Namespace) -> int:
    return start(args, ["prepare", "train"])

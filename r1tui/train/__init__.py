"""Training: LoRA on the masked dataset with the `unsloth` or `hf` backend.

``train_adapter`` is the stage function: it emits the ``train`` stage events, builds
(or finds) the base model, loads the prepared dataset, trains with the configured
backend, checkpoints every ``train.save_steps`` and at cancel, resumes from the latest
checkpoint when asked, and saves the final adapter to ``run_dir/adapter``.

Nothing heavy is imported here at module scope: torch, transformers and above all
unsloth are imported only when training starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from r1tui.config import Config

BACKENDS = ("unsloth", "hf")
# Unsloth 2026.10's FastLanguageModel hands a mistral3 checkpoint to its vision path
# (FastModel, unsloth/models/loader.py), whose get_peft_model does not take r1tui's
# language-model-only target list; r1tui's unsloth backend therefore trains text models only.
UNSLOTH_VISION_FALLBACK = ("a Mistral3 (vision) checkpoint trains with the hf backend: r1tui's unsloth backend "
                           "(FastLanguageModel) adapts text-only Mistral models")


def unsloth_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("unsloth") is not None


def resolve_backend(config_or_name: Config | str, world_size: int = 1) -> str:
    """`unsloth` or `hf`. `auto` means Unsloth when a CUDA GPU and Unsloth are present and
    training runs in one process (Unsloth trains on one GPU; several processes take hf)."""
    name = config_or_name if isinstance(config_or_name, str) else config_or_name.train.backend
    if name not in (*BACKENDS, "auto"):
        from r1tui.errors import R1Error

        raise R1Error(f"train.backend = {name!r}: unknown backend; use auto, unsloth or hf")
    if name == "auto":
        import torch

        name = "unsloth" if world_size == 1 and torch.cuda.is_available() and unsloth_installed() else "hf"
    if name == "unsloth" and not isinstance(config_or_name, str):
        from r1tui.train.base import config_has_vision

        if config_has_vision(config_or_name):
            logging.getLogger(__name__).warning(UNSLOTH_VISION_FALLBACK)
            return "hf"
    return name


def train_adapter(config: Config, dataset_dir: str | Path, run_dir: str | Path, events: Any = None,
                  resume: bool = False) -> Path:
    """Train a LoRA adapter; returns ``run_dir/adapter``. See r1tui.train.trainer."""
    from r1tui.train.trainer import train_adapter as _train

    return _train(config, dataset_dir, run_dir, events=events, resume=resume)

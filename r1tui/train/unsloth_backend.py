"""The `unsloth` backend: FastLanguageModel, 4-bit NF4, Unsloth gradient checkpointing.

This is the only module that imports unsloth, and it is imported only when the
backend is chosen: ``import unsloth`` patches transformers, TRL and peft for the
whole process, so it must come before them (the pipeline imports this module
first when a run will train with Unsloth). On a machine without a GPU, Unsloth
2026.10 falls back to its CPU backend, which is what the tests run; set
``UNSLOTH_DISABLE_CPU_FALLBACK=1`` to make that an error instead.
"""

from __future__ import annotations

import logging
from typing import Any

import unsloth  # noqa: F401 - must be imported before transformers / trl / peft are used

from r1tui.config import Config

log = logging.getLogger(__name__)


def load_model(config: Config, base: str) -> tuple[Any, Any]:
    import torch
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=base,
        max_seq_length=config.model.max_seq_length,
        load_in_4bit=config.model.load_in_4bit,
        dtype=getattr(torch, config.train.dtype),
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        bias="none",
        # Unsloth's own checkpointing offloads activations to CPU RAM: the long-sequence win.
        use_gradient_checkpointing="unsloth" if config.train.gradient_checkpointing else False,
        random_state=config.train.seed,
        max_seq_length=config.model.max_seq_length,
    )
    return model, tokenizer


def trainer_class() -> type:
    from trl import SFTTrainer  # patched by the unsloth import above

    return SFTTrainer


def adjust_arguments(config: Config, kwargs: dict[str, Any]) -> None:
    # Checkpointing is already wired into the model by get_peft_model; asking the
    # Trainer for it again would wrap the layers twice.
    kwargs["gradient_checkpointing"] = False
    kwargs["gradient_checkpointing_kwargs"] = None

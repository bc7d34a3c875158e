"""The base model a run trains on: a local folder, a Hub id, or a seeded random init.

With ``model.random_init`` a ``MistralForCausalLM`` of the configured architecture is
built from a fixed seed and saved with a tokenizer folder to ``run_dir/base``, so the
adapter's ``base_model_name_or_path`` points at a folder export can merge onto.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from r1tui.config import Config
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

_MARKER = "r1tui_base.json"


def base_model_source(config: Config, run_dir: str | Path) -> str:
    """Where the base weights come from, without building anything."""
    if config.model.random_init:
        return str(RunLayout(Path(run_dir)).base.resolve())
    if config.model.path is not None:
        return str(config.model.path)
    return config.model.name


def ensure_base_model(config: Config, run_dir: str | Path) -> str:
    """The base model path or Hub id; builds the random-init base once per run."""
    source = base_model_source(config, run_dir)
    if not config.model.random_init:
        if config.model.path is not None and not Path(source).is_dir():
            from r1tui.errors import R1Error

            raise R1Error(f"model.path = {source}: no such folder; point it at a downloaded model or leave it empty for model.name")
        return source
    folder = Path(source)
    wanted = _random_init_spec(config)
    marker = folder / _MARKER
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return source
    build_random_base(config, folder)
    return source


def _random_init_spec(config: Config) -> dict:
    from r1tui.calculator import resolve_architecture

    arch = resolve_architecture(config.model.architecture)
    return {"architecture": arch.name, "hidden_size": arch.hidden_size,
            "intermediate_size": arch.intermediate_size, "num_hidden_layers": arch.num_hidden_layers,
            "num_attention_heads": arch.num_attention_heads, "num_key_value_heads": arch.num_key_value_heads,
            "head_dim": arch.head_dim, "vocab_size": arch.vocab_size, "seed": config.train.seed,
            "dtype": config.train.dtype, "tokenizer": tokenizer_spec(config),
            "max_position_embeddings": max(config.model.max_seq_length, 4096)}


def build_random_base(config: Config, folder: str | Path) -> Path:
    """Build and save the seeded random model + tokenizer folder (written atomically)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from r1tui.calculator import resolve_architecture
    from r1tui.data.tokenizer import save_hf_tokenizer

    folder = Path(folder)
    spec = _random_init_spec(config)
    arch = resolve_architecture(config.model.architecture)
    model_config = MistralConfig(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, head_dim=arch.head_dim,
        max_position_embeddings=spec["max_position_embeddings"], tie_word_embeddings=arch.tie_word_embeddings,
        bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5, rope_theta=1_000_000.0, sliding_window=None,
    )
    dtype = getattr(torch, config.train.dtype)
    log.info("building a random-init %s (seed %d, %s) in %s", arch.name, config.train.seed, config.train.dtype, folder)
    # The seed is forked so building the base never shifts the training RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        model = MistralForCausalLM(model_config).to(dtype)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    save_hf_tokenizer(tokenizer_spec(config), tmp)
    (tmp / _MARKER).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder

"""The base model a run trains on: a local folder, a Hub id, or a seeded random init.

With ``model.random_init`` a ``MistralForCausalLM`` of the configured architecture is
built from a fixed seed and saved with a tokenizer folder to ``run_dir/base``, so the
adapter's ``base_model_name_or_path`` points at a folder export can merge onto. An
architecture with a vision part (Mistral Small 3.1 / 3.2, or a config.json whose
``architectures`` is ``Mistral3ForConditionalGeneration``) gives a
``Mistral3ForConditionalGeneration``: the language model plus a Pixtral vision tower.

A Mistral3 checkpoint is trained on its language model only: ``lora_targets`` names the
seven projections of ``language_model`` layers (the vision tower has its own q/k/v/o and
gate/up/down projections, which a plain module list would adapt too), and
``VISION_MODULES`` are kept out of 4-bit quantization and never adapted.
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
MISTRAL3 = "Mistral3ForConditionalGeneration"
# The parts of a Mistral3 checkpoint that are not the language model: frozen, never adapted,
# never quantized (their Linear layers are small and the mmproj GGUF is exported in F16).
VISION_MODULES = ("vision_tower", "multi_modal_projector")


def is_vision_checkpoint(folder: str | Path) -> bool:
    """A folder holding a Mistral3ForConditionalGeneration checkpoint (language model + vision)."""
    config_json = Path(folder) / "config.json"
    if not config_json.is_file():
        return False
    raw = json.loads(config_json.read_text(encoding="utf-8"))
    return MISTRAL3 in (raw.get("architectures") or []) or raw.get("model_type") == "mistral3"


def config_has_vision(config: Config) -> bool:
    """Whether the configured model is a Mistral3 checkpoint (its preset, config.json or folder)."""
    from r1tui.calculator import resolve_architecture

    if config.model.path is not None and is_vision_checkpoint(config.model.path):
        return True
    try:
        return resolve_architecture(config.model.architecture).vision is not None
    except (OSError, ValueError, KeyError, TypeError):
        return False


def lora_targets(modules: list[str] | tuple[str, ...], vision: bool) -> list[str] | str:
    """peft's ``target_modules``: the module names, or for a Mistral3 checkpoint a pattern that
    matches them inside the language model's decoder layers only."""
    if not vision:
        return list(modules)
    return rf".*language_model\.layers\.\d+\.(self_attn|mlp)\.({'|'.join(modules)})"


def model_class(base: str):
    """The transformers class that loads ``base`` (a folder or a Hub id) with its language-model head."""
    vision = is_vision_checkpoint(base)
    if not vision and not Path(base).is_dir():  # a Hub id: its config.json (from the Hub cache) says
        from transformers import AutoConfig

        try:
            vision = getattr(AutoConfig.from_pretrained(base), "model_type", "") == "mistral3"
        except (OSError, ValueError):
            vision = False  # not found: loading it says so in the caller's own words
    if vision:
        from transformers import Mistral3ForConditionalGeneration

        return Mistral3ForConditionalGeneration
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM


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
    vision = {} if arch.vision is None else {"vision": {
        "hidden_size": arch.vision.hidden_size, "intermediate_size": arch.vision.intermediate_size,
        "num_hidden_layers": arch.vision.num_hidden_layers, "patch_size": arch.vision.patch_size}}
    return {**vision, "architecture": arch.name, "hidden_size": arch.hidden_size,
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
    from r1tui.data.tokenizer import is_tekken, save_hf_tokenizer, write_published_tokenizer

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
    if arch.vision is not None:
        from transformers import Mistral3Config, Mistral3ForConditionalGeneration

        vision = arch.vision
        heads = max(1, vision.hidden_size // 64)
        text_config = model_config.to_dict()
        model_config = Mistral3Config(
            text_config=text_config,
            vision_config=dict(model_type="pixtral", hidden_size=vision.hidden_size,
                               intermediate_size=vision.intermediate_size,
                               num_hidden_layers=vision.num_hidden_layers, num_attention_heads=heads,
                               head_dim=vision.hidden_size // heads, patch_size=vision.patch_size,
                               num_channels=vision.num_channels, image_size=vision.patch_size * 8,
                               hidden_act="silu", rope_theta=10000.0),
            image_token_index=10, spatial_merge_size=vision.spatial_merge_size, projector_hidden_act="gelu",
            multimodal_projector_bias=vision.projector_bias, vision_feature_layer=-1,
            tie_word_embeddings=arch.tie_word_embeddings)
        model_cls = Mistral3ForConditionalGeneration
    else:
        model_cls = MistralForCausalLM
    dtype = getattr(torch, config.train.dtype)
    log.info("building a random-init %s (seed %d, %s) in %s", arch.name, config.train.seed, config.train.dtype, folder)
    # The seed is forked so building the base never shifts the training RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        model = model_cls(model_config).to(dtype)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if arch.vision is not None:
        # the image preprocessing Mistral3 checkpoints ship (transformers' Pixtral defaults: the
        # CLIP mean and std); llama.cpp's --mmproj conversion reads it
        from transformers import PixtralImageProcessor

        PixtralImageProcessor(patch_size=arch.vision.patch_size,
                              size={"longest_edge": arch.vision.patch_size * 8}).save_pretrained(tmp)
    if is_tekken(tokenizer_spec(config)):
        write_published_tokenizer(tokenizer_spec(config), tmp)
    else:
        save_hf_tokenizer(tokenizer_spec(config), tmp)
    (tmp / _MARKER).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder

"""A Mistral3ForConditionalGeneration (Mistral Small 3.1 / 3.2 shape, tiny) under the hf
backend: LoRA on the language model's seven projections only, the vision tower and the
projector frozen, unquantized and unchanged by real training steps (NF4 on the CPU)."""

from __future__ import annotations

import json

import pytest

from r1tui.config import LORA_TARGET_MODULES, parse_config

ARCH = {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3", "spatial_merge_size": 2,
        "text_config": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 131072},
        "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3, "patch_size": 14}}
VISION = ("vision_tower", "multi_modal_projector")


@pytest.fixture(scope="module")
def tiny_mistral3(tmp_path_factory):
    from r1tui.train.base import build_random_base

    folder = tmp_path_factory.mktemp("mistral3")
    (folder / "config.json").write_text(json.dumps(ARCH))
    config = parse_config({"model": {"architecture": str(folder / "config.json"), "tokenizer": "tekken-v7",
                                     "random_init": True, "load_in_4bit": True, "bnb_4bit_compute_dtype": "float32"},
                           "lora": {"r": 8, "alpha": 16}, "train": {"backend": "hf", "dtype": "float32"}})
    return config, build_random_base(config, folder / "base")


def test_random_base_is_a_mistral3_with_a_vision_tower_and_the_v7_tokenizer(tiny_mistral3):
    from r1tui.calculator import Architecture, count_checkpoint_parameters
    from r1tui.train.base import is_vision_checkpoint, model_class

    _, base = tiny_mistral3
    assert is_vision_checkpoint(base) and model_class(str(base)).__name__ == "Mistral3ForConditionalGeneration"
    assert json.loads((base / "tekken.json").read_text())["config"]["version"] == "v7"
    assert (base / "preprocessor_config.json").is_file()  # llama.cpp's --mmproj reads it
    model = model_class(str(base)).from_pretrained(str(base))
    assert sum(p.numel() for p in model.parameters()) == count_checkpoint_parameters(
        Architecture.from_config_json(base / "config.json"))


def test_lora_trains_the_language_model_only_and_vision_stays_unquantized_and_unchanged(tiny_mistral3):
    import torch

    from r1tui.calculator import Architecture, count_lora
    from r1tui.data.render import load_renderer
    from r1tui.response_format import format_assistant
    from r1tui.train.hf_backend import load_model

    config, base = tiny_mistral3
    torch.manual_seed(0)
    model, _ = load_model(config, str(base))
    named = dict(model.named_parameters())
    trainable = {name for name, p in named.items() if p.requires_grad}
    assert trainable and all(".language_model.layers." in name and "lora_" in name for name in trainable)
    assert sum(named[name].numel() for name in trainable) == count_lora(
        Architecture.from_config_json(base / "config.json"), 8, LORA_TARGET_MODULES).trainable
    kinds = {type(module).__name__ for name, module in model.named_modules() if any(v in name for v in VISION)}
    assert "Linear4bit" not in kinds and "Linear" in kinds  # the vision part is not quantized
    assert any(type(m).__name__ == "Linear4bit" for n, m in model.named_modules() if "language_model" in n)
    vision_before = {name: p.detach().clone() for name, p in named.items() if any(v in name for v in VISION)}
    lora_before = {name: named[name].detach().clone() for name in trainable}

    rendered = load_renderer("tekken-v7").render([
        {"role": "system", "content": "Think step by step."}, {"role": "user", "content": "What is 12 + 30?"},
        {"role": "assistant", "content": format_assistant("12 + 30 = 42.", "42")}])
    input_ids, labels = torch.tensor([rendered.input_ids]), torch.tensor([rendered.labels])
    optimizer = torch.optim.AdamW([named[name] for name in trainable], lr=1e-2)
    losses = []
    model.train()
    for _ in range(3):
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        assert all(named[name].grad is None for name in vision_before)  # no gradient ever reaches vision
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(named[name].equal(before) for name, before in vision_before.items())
    assert any(not named[name].equal(before) for name, before in lora_before.items())

"""HFChat (transformers backend) on the scripted model's folder, merged and as base + adapter."""

from __future__ import annotations

import pytest

from r1tui.errors import R1Error
from r1tui.infer.hf import HFChat

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


def test_merged_folder_gives_the_scripted_reply(scripted_model_dir, scripted_reply):
    chat = HFChat(scripted_model_dir, n_ctx=512)
    chunks = list(chat.stream(QUESTION, max_tokens=100))
    assert "".join(chunks) == scripted_reply and len(chunks) > 10
    assert chat.last.finish_reason == "eos" and chat.last.completion_tokens == 37
    cut = chat.generate(QUESTION, max_tokens=4)
    assert cut.stats.finish_reason == "length" and scripted_reply.startswith(cut.text)


def test_adapter_folder_loads_its_base(tmp_path, scripted_model_dir, scripted_reply):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(scripted_model_dir)
    # peft starts B at zero: the adapted model still says the script
    adapted = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    adapted.peft_config["default"].base_model_name_or_path = str(scripted_model_dir)
    adapted.save_pretrained(tmp_path / "adapter")
    assert HFChat(tmp_path / "adapter", n_ctx=512).generate(QUESTION, max_tokens=100).text == scripted_reply


def test_not_a_model_folder(tmp_path):
    with pytest.raises(R1Error, match="neither a model folder"):
        HFChat(tmp_path)

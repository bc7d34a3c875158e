"""The tokenizer r1tui publishes (merged/, the adapter repo) loads exactly in every client.

transformers 5's ``AutoTokenizer`` picks ``MistralCommonBackend`` (mistral-common itself)
for it, for v3 and Tekken, with or without config.json (the adapter folder has none),
and llama.cpp's converter still builds a GGUF from it that tokenizes like training.
"""

from __future__ import annotations

import json
import shutil

import pytest

# The case the issue found: a Hugging Face fast tokenizer splits indented code unlike mistral-common.
INDENTED_CODE = [{"role": "user", "content": "Fix it:\n```python\nfor i in range(3):\n    print(i*i)\n```"}]


def serving_ids(spec: str, messages) -> list[int]:
    """mistral-common's ids for a prompt in serving (test) mode: what a chat client should feed."""
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from r1tui.data.tokenizer import tokenizer_file

    reference = MistralTokenizer.from_file(str(tokenizer_file(spec)), mode=ValidationMode.test)
    return reference.encode_chat_completion(ChatCompletionRequest(messages=messages)).tokens


@pytest.mark.parametrize("spec", ["v3", "tekken", "tekken-v7"])
@pytest.mark.parametrize("with_config", [True, False], ids=["merged", "adapter"])
def test_autotokenizer_loads_the_published_tokenizer_as_mistral_common(spec, with_config, published_folders,
                                                                       tmp_path):
    from transformers import AutoTokenizer

    folder = published_folders[spec]
    if not with_config:  # an adapter folder: tokenizer files beside adapter_config.json, no config.json
        folder = shutil.copytree(folder, tmp_path / "adapter", ignore=shutil.ignore_patterns("config.json"))
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert type(tokenizer).__name__ == "MistralCommonBackend"
    ids = tokenizer.apply_chat_template(INDENTED_CODE, tokenize=True, return_dict=False)
    assert ids == serving_ids(spec, INDENTED_CODE)


def test_the_fast_tokenizer_folder_splits_indented_code_differently(v3_tokenizer_dir, published_folders, tmp_path):
    """Why the published layout changed: the folder training uses (transformers' fast
    SentencePiece conversion) gives other ids for four spaces before code."""
    from transformers import AutoTokenizer

    folder = shutil.copytree(v3_tokenizer_dir, tmp_path / "fast")
    shutil.copyfile(published_folders["v3"] / "config.json", folder / "config.json")
    fast = AutoTokenizer.from_pretrained(str(folder))
    assert type(fast).__name__ != "MistralCommonBackend"
    expected = serving_ids("v3", INDENTED_CODE)
    got = fast.apply_chat_template(INDENTED_CODE, tokenize=True, return_dict=False)
    assert got != expected
    index = next(i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b)
    pieces = fast.convert_ids_to_tokens
    assert pieces(expected[index:index + 2]) == ["▁▁▁", "▁print"]
    assert pieces(got[index:index + 2]) == ["▁▁▁▁", "print"]


def test_published_files_per_family():
    from r1tui.data.tokenizer import published_tokenizer, tokenizer_file

    v3 = published_tokenizer("v3")
    assert sorted(v3) == ["chat_template.jinja", "tokenizer.model", "tokenizer.model.v3", "tokenizer_config.json"]
    assert v3["tokenizer.model"] == v3["tokenizer.model.v3"] == tokenizer_file("v3")  # one file, two names
    config = json.loads(v3["tokenizer_config.json"])
    assert config["tokenizer_class"] == "MistralCommonBackend" and config["add_prefix_space"] is False
    tekken = published_tokenizer("tekken")
    assert sorted(tekken) == ["chat_template.jinja", "tekken.json", "tokenizer.json", "tokenizer_config.json"]
    v7 = published_tokenizer("tekken-v7")
    assert v7["tekken.json"] == tokenizer_file("tekken-v7") and sorted(v7) == sorted(tekken)
    template = v7["chat_template.jinja"].decode("utf-8")  # mistral-common's own v7 template
    assert "[SYSTEM_PROMPT]" in template and "[SYSTEM_PROMPT]" not in tekken["chat_template.jinja"].decode("utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["v3", "tekken", "tekken-v7"])
def test_the_converter_builds_an_exact_gguf_from_the_published_folder(spec, published_ggufs, converter_dir):
    from r1tui.export.gguf import read_gguf
    from r1tui.export.parity import check_parity, describe_failure

    info = read_gguf(published_ggufs[spec], converter_dir)
    meta = info["metadata"]
    assert meta["add_bos_token"] is True and meta["has_chat_template"] and not meta["scores_all_default"]
    assert meta["tokenizer_model"] == ("llama" if spec == "v3" else "gpt2")
    if spec == "v3":
        assert meta["add_space_prefix"] is False
    report = check_parity(published_ggufs[spec], spec, gguf_info=info)
    assert report["ok"], describe_failure(report)

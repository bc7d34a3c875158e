"""Fixtures for the data tests: the real Mistral tokenizers and mistral-common's encoding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from r1tui.data.tokenizer import tokenizer_file

MISTRAL_DATA = tokenizer_file("v3").parent


def reference_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """mistral-common's own ids for a conversation (the reference every id is checked against)."""
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    classes = {"user": UserMessage, "assistant": AssistantMessage, "system": SystemMessage}
    request = ChatCompletionRequest(messages=[classes[m["role"]](content=m["content"]) for m in messages])
    return tokenizer.encode_chat_completion(request).tokens


@pytest.fixture(scope="session")
def v7_folder(tmp_path_factory) -> Path:
    """A model folder with Mistral's SentencePiece v7 tokenizer (system prompts in place)."""
    folder = tmp_path_factory.mktemp("v7")
    shutil.copyfile(MISTRAL_DATA / "mistral_instruct_tokenizer_241114.model.v7", folder / "tokenizer.model.v7")
    return folder


@pytest.fixture(scope="session")
def v2_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("v2")
    shutil.copyfile(MISTRAL_DATA / "mistral_instruct_tokenizer_240216.model.v2", folder / "tokenizer.model.v2")
    return folder


@pytest.fixture(scope="session")
def tekken_v7_folder(tmp_path_factory) -> Path:
    """Tekken as Mistral Small 3.x ships it: the 131k Tekken vocabulary with the v7 format."""
    folder = tmp_path_factory.mktemp("tekken_v7")
    data = json.loads((MISTRAL_DATA / "tekken_240911.json").read_text(encoding="utf-8"))
    data["config"]["version"] = "v7"
    data.pop("image", None)
    (folder / "tekken.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


_REFERENCES: dict[str, object] = {}


def _reference(spec: str):
    from r1tui.data.tokenizer import load_reference

    if spec not in _REFERENCES:
        _REFERENCES[spec] = load_reference(spec)
    return _REFERENCES[spec]


@pytest.fixture(scope="session")
def reference():
    """mistral-common's tokenizer in fine-tuning mode, loaded once per spec per session."""
    return _reference


@pytest.fixture(scope="session")
def ref_ids():
    """ref_ids(spec, messages): mistral-common's ids for a conversation ending with the assistant."""
    return lambda spec, messages: reference_ids(_reference(spec), messages)


@pytest.fixture(scope="session")
def ref_prompt_ids():
    """ref_prompt_ids(spec, messages): mistral-common's ids for a prompt (serving-style validation)."""
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from r1tui.data.tokenizer import tokenizer_file as file_of

    tokenizers: dict[str, object] = {}

    def get(spec: str, messages: list[dict[str, str]]) -> list[int]:
        if spec not in tokenizers:
            tokenizers[spec] = MistralTokenizer.from_file(str(file_of(spec)), mode=ValidationMode.test)
        return reference_ids(tokenizers[spec], messages)

    return get

"""Prompt ids rendered the way training rendered them.

Training's renderer (``r1tui.data.render``) builds the ids (``[INST] user[/INST]``, an
assistant turn as `` answer</s>``, a system prompt in front of the last user turn);
mistral-common gives the special ids and the reference encoding. llama.cpp's own
chat handling is never used: it swaps templates silently (see the README's traps).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TypedDict

from r1tui.errors import R1Error


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@lru_cache(maxsize=4)
def prompt_tokenizer(tokenizer_spec: str):
    """mistral-common's tokenizer in test mode: it encodes a conversation ending with the user."""
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from r1tui.data.tokenizer import tokenizer_file

    return MistralTokenizer.from_file(str(tokenizer_file(tokenizer_spec)), mode=ValidationMode.test)


def render_prompt_ids(messages: Sequence[Message], tokenizer_spec: str = "v3") -> list[int]:
    """Token ids of a conversation that ends with a user turn, ready for the assistant's reply.

    Rendered by training's own renderer (``r1tui.data.render``), which is tested equal
    to mistral-common's encoding.
    """
    from r1tui.data.render import RenderError, load_renderer

    if not messages or messages[-1]["role"] != "user":
        raise R1Error("a prompt must end with a user message")
    try:
        return list(load_renderer(tokenizer_spec).render_prompt(messages))
    except RenderError as exc:
        raise R1Error(f"cannot render this conversation with the {tokenizer_spec} template: {exc}") from None


def reference_prompt_ids(messages: Sequence[Message], tokenizer_spec: str = "v3") -> list[int]:
    """The same prompt encoded by mistral-common itself (the reference the tests compare with)."""
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    kinds = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    converted = [kinds[message["role"]](content=message["content"]) for message in messages]
    return list(prompt_tokenizer(tokenizer_spec).encode_chat_completion(ChatCompletionRequest(messages=converted)).tokens)


def special_ids(tokenizer_spec: str = "v3") -> tuple[int, int]:
    """(bos, eos) of the training tokenizer."""
    raw = prompt_tokenizer(tokenizer_spec).instruct_tokenizer.tokenizer
    return raw.bos_id, raw.eos_id


def vocab_size(tokenizer_spec: str = "v3") -> int:
    return prompt_tokenizer(tokenizer_spec).instruct_tokenizer.tokenizer.n_words


def decode(ids: Sequence[int], tokenizer_spec: str = "v3") -> str:
    return prompt_tokenizer(tokenizer_spec).instruct_tokenizer.tokenizer.decode(list(ids))


@lru_cache(maxsize=4)
def token_bytes(tokenizer_spec: str = "v3"):
    """A function giving a token's bytes (control tokens: none; "▁" as a space, byte tokens as
    their byte), for backends that decode piece by piece like llama.cpp does."""
    raw = prompt_tokenizer(tokenizer_spec).instruct_tokenizer.tokenizer
    model = getattr(raw, "_model", None)
    if model is not None and hasattr(model, "is_byte"):  # SentencePiece
        def piece(token: int) -> bytes:
            if model.is_control(token) or model.is_unknown(token):
                return b""
            text = model.id_to_piece(token)
            if model.is_byte(token):
                return bytes([int(text[3:-1], 16)])
            return text.replace("\u2581", " ").encode("utf-8")
        return piece
    return raw.id_to_byte_piece  # Tekken: special tokens give no bytes

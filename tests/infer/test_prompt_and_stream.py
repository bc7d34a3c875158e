"""Prompt ids (training renderer == mistral-common), the think splitter and UTF-8 assembly."""

from __future__ import annotations

import pytest

from r1tui.errors import R1Error
from r1tui.infer.prompt import reference_prompt_ids, render_prompt_ids
from r1tui.infer.stream import GenerationStats, TextAssembler, ThinkSplitter

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Résumé? 🙂"}],
    [{"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "<think>\n2 + 2 = 4\n</think>\n\nFINAL ANSWER: 4"},
     {"role": "user", "content": "And 3 + 3?"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("spec", ["v3", "tekken"])
def test_prompt_ids_equal_mistral_common(messages, spec):
    ids = render_prompt_ids(messages, spec)
    assert ids == reference_prompt_ids(messages, spec)
    assert ids[0] == 1


def test_prompt_must_end_with_the_user():
    with pytest.raises(R1Error, match="end with a user message"):
        render_prompt_ids([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])


def test_think_splitter_holds_back_tags_cut_across_chunks():
    text = "<think>\nTwo plus two.\n</think>\n\nFINAL ANSWER: 4"
    for size in (1, 2, 3, 5, 7, len(text)):
        splitter = ThinkSplitter()
        parts = []
        for start in range(0, len(text), size):
            parts += splitter.feed(text[start:start + size])
        parts += splitter.flush()
        think = "".join(t for kind, t in parts if kind == "think")
        answer = "".join(t for kind, t in parts if kind == "answer")
        assert think == "<think>\nTwo plus two.\n</think>", size
        assert answer == "\n\nFINAL ANSWER: 4", size
        assert all("</" not in t for kind, t in parts if kind == "answer")


def test_think_splitter_without_think_and_unclosed():
    splitter = ThinkSplitter()
    assert splitter.feed("Hello") + splitter.flush() == [("answer", "Hello")]
    splitter = ThinkSplitter()
    assert splitter.feed("<think>still going </thi") + splitter.flush() == [
        ("think", "<think>still going "), ("think", "</thi")]


def test_text_assembler_joins_split_utf8_and_drops_the_template_space():
    assembler = TextAssembler()
    pieces = [b" ", b"\xc3", b"\xa9t\xc3", b"\xa9 \xf0\x9f", b"\x99\x82"]
    chunks = [assembler.add(piece) for piece in pieces]
    assert "".join(chunks) + assembler.finish() == "été 🙂"
    assert "\ufffd" not in "".join(chunks)


def test_tokens_per_s_counts_decode_time_only():
    stats = GenerationStats(completion_tokens=11, elapsed_s=3.0, first_token_s=1.0)
    assert stats.tokens_per_s == 5.0
    assert GenerationStats(completion_tokens=1, elapsed_s=1.0).tokens_per_s == 0.0

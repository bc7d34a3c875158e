"""A teacher's reply -> r1tui's training format, or a reason: never an exception."""

from __future__ import annotations

import pytest

from r1tui.generate.normalize import normalize_reply, read_answer
from r1tui.response_format import extract_final_answer, split_think

SCRIPT = "<think>Two plus two makes four. Verify: 4-2=2, so it holds.</think>\nFINAL ANSWER: 4"


def test_inline_think_and_final_answer_line():
    result = normalize_reply(" " + SCRIPT)  # llama.cpp's server starts the reply with a space
    assert result.ok and result.answer == "4" and result.answer_source == "final_answer"
    assert result.assistant == ("<think>\nTwo plus two makes four. Verify: 4-2=2, so it holds.\n</think>\n\n"
                                "FINAL ANSWER: 4")
    # the strict readers the data pipeline checks its own rows with accept it
    assert split_think(result.assistant)[0] == "Two plus two makes four. Verify: 4-2=2, so it holds."
    assert extract_final_answer(result.assistant) == "4"


def test_reasoning_in_a_separate_field():
    """vLLM / SGLang with a reasoning parser: reasoning_content holds the thinking, content the answer."""
    result = normalize_reply("The answer is $\\boxed{\\frac{1}{2}}$.", "Half of one is one half.")
    assert result.ok and result.reasoning == "Half of one is one half."
    assert result.answer == "\\frac{1}{2}" and result.answer_source == "boxed"
    assert result.assistant == "<think>\nHalf of one is one half.\n</think>\n\nFINAL ANSWER: \\frac{1}{2}"


def test_separate_field_with_a_think_block_left_in_the_content():
    result = normalize_reply("<think>scratch</think>\nFINAL ANSWER: 7", "the real reasoning")
    assert result.ok and result.reasoning == "the real reasoning" and result.answer == "7"


def test_the_opening_tag_in_the_prompt_template():
    """R1 distills served with '<think>\\n' in the template reply with only the closing tag."""
    result = normalize_reply("Add them: 5 + 7 = 12.\n</think>\n\n**Final Answer:** 12")
    assert result.ok and result.reasoning == "Add them: 5 + 7 = 12." and result.answer == "12"
    assert result.answer_source == "answer_line"


@pytest.mark.parametrize("text, answer, source", [
    ("FINAL ANSWER: 42", "42", "final_answer"),
    ("FINAL ANSWER: **42**.", "42", "final_answer"),
    ("FINAL ANSWER: \\boxed{7}", "7", "final_answer"),
    ("So the result is \\boxed{x^2 + 1}.", "x^2 + 1", "boxed"),
    ("Summary. \\boxed{3} ... FINAL ANSWER: 5", "5", "final_answer"),  # the teacher's own line wins
    ("### Final Answer\n\n 42", "42", "answer_line"),
    ("Final answer = 9", "9", "answer_line"),
    ("no answer here", None, None),
])
def test_answer_order_final_answer_then_boxed_then_a_lenient_line(text, answer, source):
    assert read_answer(text) == (answer, source)


@pytest.mark.parametrize("content, reasoning, reason", [
    ("", None, "empty"),
    ("   ", "  ", "empty"),
    ("<think>Two plus two makes", None, "bad_format"),  # never closed: cut off, or a broken reply
    ("FINAL ANSWER: 4", None, "bad_format"),  # no reasoning at all
    ("<think>  </think>\nFINAL ANSWER: 4", None, "bad_format"),  # an empty think block
    ("<think>still thinking", "separate reasoning", "bad_format"),
    ("<think>I worked it out.</think>\nThat is all.", None, "no_answer"),
    ("", "only reasoning, the content is empty", "no_answer"),
])
def test_unusable_replies_are_reasons_not_exceptions(content, reasoning, reason):
    result = normalize_reply(content, reasoning)
    assert not result.ok and result.reason == reason and result.assistant is None


def test_none_content_is_empty():
    assert normalize_reply(None).reason == "empty"

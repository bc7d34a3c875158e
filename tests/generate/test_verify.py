"""A teacher's sample judged: the student's real tokenizer, the real answer checker (math-verify)."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1tui.config import load_config
from r1tui.data.render import load_renderer
from r1tui.data.tokenizer import load_reference
from r1tui.generate.verify import REASONS, StudentLength, Verdict, check_sample, select
from r1tui.response_format import format_assistant

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
PROMPT = {"question": "Solve for x: 2x + 3 = 11", "answer": "4", "domain": "math"}


@pytest.fixture
def config():
    return load_config(TINY)


@pytest.fixture(scope="module")
def length():
    return StudentLength(load_config(TINY))


def _reference_length(messages: list[dict[str, str]]) -> int:
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    classes = {"user": UserMessage, "assistant": AssistantMessage, "system": SystemMessage}
    request = ChatCompletionRequest(messages=[classes[m["role"]](content=m["content"]) for m in messages])
    return len(load_reference("v3").encode_chat_completion(request).tokens)


def test_student_length_is_mistral_commons_count(config):
    messages = [{"role": "user", "content": "What is 7 × 8? Think  twice.\n"},
                {"role": "assistant", "content": format_assistant("7 × 8 = 56, and 8 × 7 = 56.", "56")}]
    assert StudentLength(config)(messages) == _reference_length(messages)
    # a prompt alone: BOS [INST] text [/INST], what generation is fed
    assert StudentLength(config).prompt(messages[:1]) == len(load_renderer("v3").render_prompt(messages[:1])) \
        < StudentLength(config)(messages)
    # data.system_prompt is added the way training adds it
    config.data.system_prompt = "You are a careful solver."
    with_system = [{"role": "system", "content": "You are a careful solver."}, *messages]
    assert StudentLength(config)(messages) == _reference_length(with_system) > _reference_length(messages)


def test_a_correct_sample_is_kept_with_its_tokens(config, length):
    assistant = format_assistant("2x = 11 - 3 = 8, so x = 4.", "4")
    verdict = check_sample(config, PROMPT, assistant, None, "stop", length)
    expected = length([{"role": "user", "content": PROMPT["question"]}, {"role": "assistant", "content": assistant}])
    assert verdict == Verdict(True, None, "4", expected)


@pytest.mark.parametrize(("answer", "reference", "ok"), [
    ("x = 4", "4", True),
    ("\\frac{1}{2}", "0.5", True),          # math-verify's symbolic equality
    ("$\\boxed{12}$", "12", True),
    ("0.6667", "\\frac{2}{3}", True),       # within eval.numeric_tolerance
    ("0.7", "\\frac{2}{3}", False),
    ("12 kg", "12 N", False),               # a different unit
    ("5", "4", False),
])
def test_the_answer_is_checked_as_eval_checks_it(config, length, answer, reference, ok):
    prompt = {**PROMPT, "answer": reference}
    verdict = check_sample(config, prompt, format_assistant("work", answer), None, "stop", length)
    assert verdict.ok is ok
    assert verdict.reason == (None if ok else "wrong_answer")
    assert verdict.answer == answer


def test_the_given_answer_is_the_one_checked(config, length):
    assistant = format_assistant("2x = 8", "4")
    assert check_sample(config, PROMPT, assistant, "4", "stop", length).ok
    wrong = check_sample(config, PROMPT, assistant, "7", "stop", length)
    assert (wrong.ok, wrong.reason, wrong.answer) == (False, "wrong_answer", "7")


@pytest.mark.parametrize(("assistant", "finish_reason", "reason"), [
    (None, "stop", "empty"),
    ("   \n", "stop", "empty"),
    (format_assistant("2x = 8", "4"), "length", "truncated"),
    ("x = 4\n\nFINAL ANSWER: 4", "stop", "bad_format"),              # no think block
    ("<think>\n\n</think>\n\nFINAL ANSWER: 4", "stop", "bad_format"),  # an empty one
    ("<think>\n2x = 8\n</think>\n\nThe answer is 4.", "stop", "bad_format"),  # no FINAL ANSWER line
    ("<think>\n2x = 8\n</think>\n\nFINAL ANSWER:", "stop", "no_answer"),
])
def test_each_reason(config, length, assistant, finish_reason, reason):
    verdict = check_sample(config, PROMPT, assistant, None, finish_reason, length)
    assert (verdict.ok, verdict.reason) == (False, reason)
    assert reason in REASONS


def test_no_reference_and_too_long(config, length):
    assistant = format_assistant("2x = 8, x = 4", "4")
    no_reference = check_sample(config, {**PROMPT, "answer": ""}, assistant, None, "stop", length)
    assert (no_reference.ok, no_reference.reason) == (False, "no_reference")
    long_trace = format_assistant("Check again. " * 200, "4")
    verdict = check_sample(config, PROMPT, long_trace, None, "stop", length)
    assert (verdict.ok, verdict.reason) == (False, "too_long")
    assert verdict.tokens > config.model.max_seq_length
    config.model.max_seq_length = verdict.tokens  # exactly the limit is still fine
    assert check_sample(config, PROMPT, long_trace, None, "stop", length).ok


def _sample(text: str, length: StudentLength) -> dict:
    assistant = format_assistant(text, "4")
    return {"assistant": assistant,
            "tokens": length([{"role": "user", "content": PROMPT["question"]}, {"role": "assistant", "content": assistant}])}


TRACE = ("First subtract three from both sides of the equation to get two x equals eight, then divide "
         "both sides by two, which leaves x equal to four. Substituting back gives two times four plus three, "
         "which is eleven, as required. The equation is linear with a nonzero coefficient on x, so it has "
         "exactly one solution and there is nothing else to find. A quick sanity check with x equal to five "
         "would give thirteen, too large, and x equal to three would give nine, too small, so four sits "
         "between them exactly where it should. Everything is consistent.")


def test_select_drops_exact_and_near_duplicates_keeping_the_shorter(config, length):
    base = _sample(TRACE, length)
    spaced = {**base, "assistant": base["assistant"].replace(" ", "  ").replace("\n", "\n\n"), "tokens": base["tokens"] + 5}
    near = _sample(TRACE.replace("quick", "very quick"), length)  # one word more: word 5-gram Jaccard 0.91
    other = _sample("Move 3 over: 2x = 8. Halve it: x = 4.", length)
    kept, dropped = select(config, [near, spaced, other, base])
    assert kept == [other, base]  # shortest first
    assert sorted((d["tokens"], why) for d, why in dropped) == sorted([(spaced["tokens"], "duplicate"),
                                                                         (near["tokens"], "duplicate")])
    # the threshold is config's: at 1.0 only identical 5-gram sets are one
    config.teacher.near_duplicate = 1.0
    kept, dropped = select(config, [near, base])
    assert kept == [base, near] and dropped == []


def test_select_keeps_the_shortest_n_and_is_deterministic(config, length):
    samples = [_sample(text, length) for text in (
        "Subtract three, then halve: x = 4.",
        "Two x plus three is eleven, so two x is eight and x is four.",
        "Try x = 4: 2 * 4 + 3 = 11. It works, and the equation is linear so it is the only root.",
        "x = (11 - 3) / 2 = 4.",
    )]
    config.teacher.keep = "shortest"
    config.teacher.keep_n = 2
    kept, dropped = select(config, samples)
    by_length = sorted(samples, key=lambda s: s["tokens"])
    assert kept == by_length[:2]
    assert dropped == [(s, "not_kept") for s in by_length[2:]]
    assert select(config, list(reversed(samples))) == (kept, dropped)
    config.teacher.keep = "all"
    assert select(config, samples)[0] == by_length

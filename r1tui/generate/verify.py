"""Is a teacher's sample a training row? The verdict on one sample, and the choice among a prompt's.

``check_sample`` decides one completion, in this order, stopping at the first failure:

- ``empty``: no text;
- ``truncated``: the server stopped at its token limit (``finish_reason == "length"``);
- ``bad_format``: not r1tui's training format, read with the strict readers of
  ``r1tui.response_format``: a non-empty ``<think>`` block and a ``FINAL ANSWER:`` line;
- ``no_answer`` / ``no_reference`` / ``wrong_answer``: the answer against the prompt's
  reference, by ``r1tui.eval.answers.check_answer`` with ``eval.numeric_tolerance``:
  the same checker the evaluation uses, so a trace is kept exactly when eval would call
  its answer right;
- ``too_long``: the whole conversation (user + assistant, in the student's tokenizer and
  chat format) is longer than ``model.max_seq_length``: training would drop or cut it.

``select`` then chooses among one prompt's correct samples: exact duplicates (after
whitespace normalisation) and near duplicates (word 5-gram Jaccard at or above
``teacher.near_duplicate``) go as ``duplicate``, the shorter one staying; then
``teacher.keep``: ``all``, or the ``shortest`` ``keep_n`` (the rest ``not_kept``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r1tui.data.prepare import _with_system_prompt
from r1tui.data.render import load_renderer
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.eval.answers import check_answer
from r1tui.response_format import extract_final_answer, split_think

if TYPE_CHECKING:
    from r1tui.config import Config

REASONS = ("empty", "truncated", "bad_format", "no_answer", "wrong_answer", "no_reference", "too_long")
NEAR_DUPLICATE_NGRAM = 5


@dataclass
class Verdict:
    ok: bool
    reason: str | None  # one of REASONS when not ok
    answer: str | None  # the answer that was checked
    tokens: int | None  # user + assistant in the student's tokenizer, when the sample could be rendered


class StudentLength:
    """Tokens of a conversation as the student trains on it: its tokenizer, its chat format
    (``r1tui.data.render``, token-identical to mistral-common) and ``data.system_prompt``
    added the way training adds it. One render, its ids counted."""

    def __init__(self, config: Config):
        self._renderer = load_renderer(tokenizer_spec(config))
        self._system_prompt = config.data.system_prompt

    def __call__(self, messages: list[dict]) -> int:
        return len(self._renderer.render(_with_system_prompt(messages, self._system_prompt)).input_ids)

    def prompt(self, messages: list[dict]) -> int:
        """Tokens of a prompt ending with a user turn (what generation is fed)."""
        return len(self._renderer.render_prompt(_with_system_prompt(messages, self._system_prompt)))


def check_sample(config: Config, prompt: Mapping[str, Any], assistant: str | None, answer: str | None,
                 finish_reason: str | None, length: StudentLength) -> Verdict:
    """The verdict on one sample: ``assistant`` in r1tui's format, ``answer`` the answer it
    gives (None: its ``FINAL ANSWER:`` line), for ``prompt`` = {"question", "answer", "domain"}."""
    if assistant is None or not assistant.strip():
        return Verdict(False, "empty", None, None)
    if finish_reason == "length":
        return Verdict(False, "truncated", None, None)
    reasoning, _ = split_think(assistant)
    final_line = extract_final_answer(assistant)
    if not reasoning or final_line is None:
        return Verdict(False, "bad_format", None, None)
    given = final_line if answer is None else answer
    tokens = length([{"role": "user", "content": str(prompt["question"])},
                     {"role": "assistant", "content": assistant}])
    reference = prompt.get("answer")
    check = check_answer(given, None if reference is None else str(reference),
                         str(prompt.get("domain") or "math"), config.eval.numeric_tolerance)
    if not check.correct:
        reason = check.method if check.method in ("no_answer", "no_reference") else "wrong_answer"
        return Verdict(False, reason, given or None, tokens)
    if tokens > config.model.max_seq_length:
        return Verdict(False, "too_long", given, tokens)
    return Verdict(True, None, given, tokens)


def _normalized(text: str) -> str:
    return " ".join(text.split())


def word_ngrams(text: str, n: int = NEAR_DUPLICATE_NGRAM) -> set[tuple[str, ...]]:
    """Word n-grams of a text (lower-cased, split on whitespace); a shorter text is its one n-gram."""
    words = text.lower().split()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def select(config: Config, samples: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """One prompt's correct samples -> (kept, [(dropped, "duplicate" | "not_kept")]).

    Samples are considered shortest first (``tokens``, then the text, so the result does not
    depend on the order they arrived in); a sample equal to, or a near duplicate of, one
    already kept is a ``duplicate``. Kept samples come back shortest first."""
    ordered = sorted(samples, key=lambda s: (_tokens_of(s), s["assistant"]))
    kept: list[dict] = []
    kept_grams: list[set] = []
    seen: set[str] = set()
    dropped: list[tuple[dict, str]] = []
    threshold = config.teacher.near_duplicate
    for sample in ordered:
        text = sample["assistant"]
        key = _normalized(text)
        grams = word_ngrams(text)
        if key in seen or any(jaccard(grams, other) >= threshold for other in kept_grams):
            dropped.append((sample, "duplicate"))
            continue
        seen.add(key)
        kept.append(sample)
        kept_grams.append(grams)
    if config.teacher.keep == "shortest":
        dropped += [(sample, "not_kept") for sample in kept[config.teacher.keep_n:]]
        kept = kept[:config.teacher.keep_n]
    return kept, dropped


def _tokens_of(sample: Mapping[str, Any]) -> int:
    tokens = sample.get("tokens")
    return tokens if isinstance(tokens, int) else len(sample["assistant"])

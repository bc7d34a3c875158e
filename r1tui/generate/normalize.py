"""A teacher's reply → r1tui's training format, or the reason it cannot be one.

Teachers put their reasoning in one of two places:

- inline in the content, ``<think>…</think>`` then the answer (DeepSeek-R1 and its
  distills served plainly; a reply whose opening tag was part of the prompt template
  starts straight with the reasoning and has only ``</think>``);
- a separate field (``reasoning_content`` from vLLM's and SGLang's reasoning parsers,
  ``reasoning`` from others), the content holding only the answer.

The final answer is read from what follows the reasoning: the teacher's ``FINAL ANSWER:``
line (``extract_final_answer``), else the last ``\\boxed{…}`` (``last_boxed``), else a
lenient answer line (``extract_answer``: bold, headings, ``=``) — all
``r1tui.response_format``'s readers; nothing here re-parses. The result is
``format_assistant(reasoning, answer)``::

    <think>
    …
    </think>

    FINAL ANSWER: …

A reply that cannot become that is a reason, never an exception: ``empty`` (no text at
all), ``bad_format`` (no reasoning, a ``<think>`` never closed, an empty think block) or
``no_answer`` (reasoning but no answer to read). Whether the answer is right is
``r1tui.generate.verify``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

from r1tui.response_format import (
    FINAL_ANSWER,
    THINK_START,
    extract_answer,
    extract_final_answer,
    format_assistant,
    last_boxed,
    split_response,
)


@dataclass(frozen=True)
class Normalized:
    assistant: str | None  # the turn in r1tui's format; None when ``reason`` is set
    reasoning: str | None
    answer: str | None
    answer_source: str | None  # "final_answer" | "boxed" | "answer_line"
    reason: str | None  # None: usable; else "empty" | "bad_format" | "no_answer"

    @property
    def ok(self) -> bool:
        return self.reason is None


def _failed(reason: str, reasoning: str | None = None) -> Normalized:
    return Normalized(None, reasoning, None, None, reason)


def normalize_reply(content: str | None, reasoning: str | None = None) -> Normalized:
    """``content`` (and the separate ``reasoning`` field, when the server sent one) in r1tui's format."""
    content = content or ""
    separate = reasoning.strip() if isinstance(reasoning, str) and reasoning.strip() else None
    if not content.strip() and separate is None:
        return _failed("empty")
    parsed = split_response(content)
    unclosed = THINK_START in content and not parsed.think_closed  # truncated or never closed
    if separate is not None:
        # Some servers also leave a think block in the content: the answer is what follows it.
        if unclosed:
            return _failed("bad_format", separate)
        think, answer_text = separate, (parsed.answer_part if parsed.think is not None else content)
    else:
        if parsed.think is None or unclosed:
            return _failed("bad_format", parsed.think)  # no reasoning at all, or a <think> never closed
        think, answer_text = parsed.think, parsed.answer_part
    if not think.strip():
        return _failed("bad_format")
    answer, source = read_answer(answer_text)
    if answer is None:
        return _failed("no_answer", think)
    return Normalized(format_assistant(think, answer), think, answer, source, None)


def read_answer(text: str) -> tuple[str | None, str | None]:
    """(the answer, where it was read) from the text after the reasoning, or (None, None)."""
    if FINAL_ANSWER in text:
        line = extract_final_answer(text)
        if line:
            # the line through the lenient reader once more: bold and \boxed{} around the value go
            cleaned = extract_answer(f"{FINAL_ANSWER} {line}").text
            return (cleaned or line), "final_answer"
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "boxed"
    lenient = extract_answer(text)
    if lenient.text:
        return lenient.text, "answer_line"
    return None, None

"""The assistant-content format r1tui trains and evaluates on.

    <think>
    step 1
    step 2
    </think>

    FINAL ANSWER: 42
"""

from __future__ import annotations

THINK_START = "<think>"
THINK_END = "</think>"
FINAL_ANSWER = "FINAL ANSWER:"


def format_assistant(reasoning: str, answer: str) -> str:
    """The assistant turn for a reasoning trace and its final answer."""
    return f"{THINK_START}\n{reasoning.strip()}\n{THINK_END}\n\n{FINAL_ANSWER} {answer.strip()}"


def split_think(text: str) -> tuple[str | None, str]:
    """(reasoning inside <think>…</think> or None, the text after it)."""
    start = text.find(THINK_START)
    end = text.find(THINK_END)
    if end < 0 or (start >= 0 and start > end):
        return None, text.strip()
    inner_start = start + len(THINK_START) if 0 <= start < end else 0
    return text[inner_start:end].strip(), text[end + len(THINK_END):].strip()


def extract_final_answer(text: str) -> str | None:
    """The text after the last ``FINAL ANSWER:`` (first line only), or None if there is none."""
    body = split_think(text)[1]
    index = body.rfind(FINAL_ANSWER)
    if index < 0:
        return None
    answer = body[index + len(FINAL_ANSWER):].strip()
    return answer.splitlines()[0].strip() if answer else ""

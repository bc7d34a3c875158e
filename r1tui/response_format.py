"""The response format r1tui trains on and reads back: the one home of its tags and readers.

An assistant turn in the training format is::

    <think>
    step 1
    step 2
    </think>

    FINAL ANSWER: 42

Writing and strict reading (what the data pipeline produces and checks its own rows with):
``format_assistant``, ``split_think``, ``extract_final_answer``.

Lenient reading (what a model actually answers, for eval and display): ``split_response``
separates the think block from the rest, even when a tag is missing or the block never
closed; ``extract_answer`` takes the last ``FINAL ANSWER:`` line after it in any of its
loose spellings (bold, a heading with the value below, ``= 42``), falling back to the last
``\\boxed{…}``. Whether that answer is right is r1tui.eval.answers' business.

A leaf module: pure Python, imports nothing of r1tui.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_START = "<think>"
THINK_END = "</think>"
FINAL_ANSWER = "FINAL ANSWER:"
# How a reply opens, and how its think block closes into the answer line (format_assistant's
# layout; inference prefills the first and forces the second, r1tui.infer.thinking).
THINK_OPENING = THINK_START + "\n"
ANSWER_OPENING = f"{THINK_END}\n\n{FINAL_ANSWER}"


# ----------------------------------------------------------------- writing and strict reading


def format_assistant(reasoning: str, answer: str) -> str:
    """The assistant turn for a reasoning trace and its final answer."""
    return f"{THINK_OPENING}{reasoning.strip()}\n{ANSWER_OPENING} {answer.strip()}"


def partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``tag`` (a tag a stream may
    still be writing: held back until it is known)."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


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


# ----------------------------------------------------------------- lenient reading (model output)

# "FINAL ANSWER: 42", "**Final answer:** 42", "FINAL_ANSWER: 42" anywhere on a line …
_ANSWER_LINE = re.compile(r"final[ \t_]+answer[ \t*_]*[:：][ \t*]*(?:__(?=[ \t]))?[ \t*]*(.*)$",
                          re.IGNORECASE | re.MULTILINE)
# … and, only when there is no such line, "FINAL ANSWER = 42" / "Final answer - 42" at the
# start of a line (not `final_answer = n * 2` in code, nor "# final answer - see above" after
# a real answer line).
_ANSWER_LINE_LOOSE = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*)?[ \t]*(final[ \t_]+answer)[ \t*]*"
                                r"(?:=|[-–—](?=[ \t]))[ \t*]*(.*)$", re.IGNORECASE | re.MULTILINE)
# … or a line that is only a heading ("### Final Answer", "**Final Answer**"): the value follows it.
_ANSWER_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*final[ \t_]+answer[ \t]*[:：]?"
                             r"[ \t]*(?:\*\*|__)?[ \t]*[:：]?[ \t]*()$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ParsedResponse:
    think: str | None      # text inside <think>…</think> (or after an unclosed <think>); None without a tag
    think_closed: bool     # both tags present, in order
    answer_part: str       # what follows </think> (the whole text when the think block never closed)


def split_response(text: str) -> ParsedResponse:
    """Separate the think block from the answer part."""
    open_at = text.find(THINK_START)
    close_at = text.find(THINK_END, open_at + len(THINK_START) if open_at >= 0 else 0)
    if open_at >= 0 and close_at >= 0:
        return ParsedResponse(text[open_at + len(THINK_START):close_at].strip(), True,
                              text[close_at + len(THINK_END):])
    if open_at >= 0:  # truncated inside the reasoning, or never closed
        return ParsedResponse(text[open_at + len(THINK_START):].strip(), False, "")
    if close_at >= 0:  # the opening tag was in the prompt or got lost: all before is reasoning
        return ParsedResponse(text[:close_at].strip(), False, text[close_at + len(THINK_END):])
    return ParsedResponse(None, False, text)


@dataclass(frozen=True)
class ExtractedAnswer:
    text: str | None
    source: str  # "final_answer" | "boxed" | "none"


def extract_answer(text: str) -> ExtractedAnswer:
    """The last ``FINAL ANSWER:`` line after the think block, else the last ``\\boxed{}``.

    The marker is case-insensitive, may sit in bold (``**Final answer:**``) and needs
    its colon, unless it is a heading on a line of its own (``### Final Answer``) with
    the value below; without either, ``FINAL ANSWER = 42`` or ``- 42`` starting a line
    counts (never the code identifier ``final_answer``). "The final answer is 12" in
    prose is not an answer line.
    """
    part = split_response(text).answer_part
    matches = sorted([*_ANSWER_LINE.finditer(part), *_ANSWER_HEADING.finditer(part)],
                     key=lambda match: match.start())
    if not matches:
        matches = [m for m in _ANSWER_LINE_LOOSE.finditer(part) if m.group(1) != "final_answer"]
    if matches:
        last = matches[-1]
        value = last.group(last.lastindex or 0).strip()
        if not value:  # "FINAL ANSWER:" with the answer on the next non-empty line
            following = [line.strip() for line in part[last.end():].splitlines() if line.strip()]
            value = following[0] if following else ""
        value = _clean(value)
        if value:
            return ExtractedAnswer(value, "final_answer")
    boxed = last_boxed(part)
    if boxed is not None and boxed.strip():
        return ExtractedAnswer(boxed.strip(), "boxed")
    return ExtractedAnswer(None, "none")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (or ``\\fbox{…}``), braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for index in range(start, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:index]
    return None


def _clean(value: str) -> str:
    value = value.strip().rstrip(" .")
    if value.count("**") % 2:  # the closing half of bold opened before the marker: "**FINAL ANSWER: 21**"
        value = value[:-2] if value.endswith("**") else value[2:] if value.startswith("**") else value
    # Bold around the value; "__" is left alone: "__init__" is an answer, not markdown.
    value = re.sub(r"^\*\*(.*)\*\*$", r"\1", value.strip().rstrip(" .")).strip()
    boxed = last_boxed(value)
    if boxed is not None and value.startswith(("\\boxed", "$\\boxed", "\\fbox")):
        value = boxed
    return value.rstrip(" .").strip()

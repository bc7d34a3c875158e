"""Reasoning-aware generation: the think block prefilled, and its length forced (s1's budget forcing).

A reply in the training format is ``<think>\\nreasoning\\n</think>\\n\\nFINAL ANSWER: x``
(``r1tui.response_format``). Here:

- **prefill**: the reply starts with the think opening (``<think>\\n``) as the training
  renderer tokenizes it, so the model only continues the reasoning (open-r1: students emit
  the tags reliably only so). The opening is part of the reply's text, so a scorer reads
  a closed think block + answer as usual.
- **a cap** (``max_think_tokens``): when the think block reaches N tokens it is closed and
  the answer line started — ``\\n</think>\\n\\nFINAL ANSWER:`` as training writes it — and
  the answer gets its own budget (``answer_tokens``).
- **a minimum** (``min_think_tokens``): a closing tag (or an end of sequence) before it is
  taken back, and the continuation word ("Wait") appended, as s1 does.

Whenever text is forced in, the whole reply text is encoded again with training's own text
encoder (the renderer encodes an assistant turn as one text), so the ids the model sees are
the ids training would have given that text; llama.cpp and the transformers loop both reuse
their cache up to the first id that changed. The closing tag is watched as text, held back
from the stream until it is known whether it stays, so a display never shows a tag that is
then taken back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.response_format import (
    ANSWER_OPENING,
    FINAL_ANSWER,
    THINK_END,
    THINK_OPENING,
    THINK_START,
    format_assistant,
    partial_tag,
)

if TYPE_CHECKING:
    from r1tui.config import Config
    from r1tui.infer.stream import GenerationStats

# The reply's opening and the forced close, as format_assistant writes them.
OPENING = THINK_OPENING
CLOSING = ANSWER_OPENING
# The probe the token pieces are cut from (plain words: nothing merges across the cuts).
PROBE_QUESTION = "What is two plus two?"
PROBE_REASONING = "Two plus two makes four"
PROBE_ANSWER = "4"


@dataclass(frozen=True)
class ThinkSettings:
    """What one reply does with its think block (off by default: a plain reply)."""

    prefill: bool = False
    max_think_tokens: int = 0   # 0: no cap
    min_think_tokens: int = 0
    continuation: str = "Wait"
    answer_tokens: int = 64

    @property
    def forcing(self) -> bool:
        return bool(self.max_think_tokens or self.min_think_tokens)

    def reply_limit(self, max_tokens: int) -> int:
        """Tokens a reply may have: with a cap, the thinking, the close and the answer's own budget."""
        if not self.max_think_tokens:
            return max_tokens
        return self.max_think_tokens + 16 + self.answer_tokens  # 16: the closing line, with room to spare

    def describe(self) -> str:
        parts = ["prefill <think>" if self.prefill else "no prefill"]
        if self.max_think_tokens:
            parts.append(f"think ≤ {self.max_think_tokens} tokens, then answer in ≤ {self.answer_tokens}")
        if self.min_think_tokens:
            parts.append(f"think ≥ {self.min_think_tokens} tokens ({self.continuation!r} on an early close)")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> ThinkSettings:
        return ThinkSettings(**{**asdict(self), **changes})


@dataclass(frozen=True)
class ThinkTokens:
    """The training render's ids of the think opening and of the forced close, for one tokenizer."""

    spec: str
    opening: tuple[int, ...]   # "<think>\n" at the start of a reply
    closing: tuple[int, ...]   # "</think>\n\nFINAL ANSWER:" after the reasoning's newline


@lru_cache(maxsize=8)
def think_tokens_for(spec: str) -> ThinkTokens:
    """Cut the opening and the close out of the training render of a probe reply.

    The renderer encodes an assistant turn as one text; the pieces are its tokens between
    the byte offsets where each piece begins and ends. A tokenizer that merges a piece with
    its neighbours (no token boundary there) is refused: nothing could be prefilled exactly.
    """
    from r1tui.data.render import load_renderer
    from r1tui.data.tokenizer import load_text_tokenizer
    from r1tui.errors import R1Error

    renderer = load_renderer(spec)
    reply = format_assistant(PROBE_REASONING, PROBE_ANSWER)
    user = [{"role": "user", "content": PROBE_QUESTION}]
    prompt = renderer.render_prompt(user)
    rendered = renderer.render([*user, {"role": "assistant", "content": reply}]).input_ids[len(prompt):-1]
    ids, ends = load_text_tokenizer(spec).encode_with_byte_ends(reply)
    if ids != rendered:
        raise R1Error(f"tokenizer {spec}: the assistant text's ids differ from the training render's; "
                      "the think opening cannot be prefilled exactly")

    def cut(start: str, stop: str) -> tuple[int, ...]:
        begin = len(reply[:reply.index(start)].encode("utf-8"))
        end = begin + len(stop.encode("utf-8")) if stop == start else len(
            reply[:reply.index(stop) + len(stop)].encode("utf-8"))
        starts = [0, *ends[:-1]]
        if begin not in starts or end not in ends:
            raise R1Error(f"tokenizer {spec} merges {start!r} with the text around it; "
                          "set infer.prefill_think = false and no think budget")
        return tuple(ids[starts.index(begin):ends.index(end) + 1])

    return ThinkTokens(spec, cut(OPENING, OPENING), cut(THINK_END, FINAL_ANSWER))


# ----------------------------------------------------------------- settings from the config


def settings_from_config(config: Config, prefill: bool) -> ThinkSettings:
    infer = config.infer
    return ThinkSettings(prefill=prefill, max_think_tokens=infer.max_think_tokens,
                         min_think_tokens=infer.min_think_tokens, continuation=infer.continuation,
                         answer_tokens=infer.answer_tokens)


def resolve_prefill(config: Config, run_dir: str | Path | None, spec: str) -> tuple[bool, str]:
    """(prefill?, why) for ``infer.prefill_think``: the setting when it is true or false; for
    "auto", whether the run's prepared training data opens its replies with the think opening
    (most rows, read from ``RUN/data``). A model with no run (a bare GGUF, the base model)
    has no training data to read: no prefill."""
    setting = config.infer.prefill_think
    if setting != "auto":
        return bool(setting), f"infer.prefill_think = {str(setting).lower()}"
    if run_dir is None:
        return False, "auto: no run, so no training data to read"
    share = think_share(Path(run_dir) / "data", spec)
    if share is None:
        return False, f"auto: no prepared data in {Path(run_dir).name}/data"
    return share >= 0.5, f"auto: {share:.0%} of the training replies open with <think>"


def think_share(data_dir: Path, spec: str, rows: int = 256) -> float | None:
    """Share of the first ``rows`` prepared rows whose last reply (after the last [/INST])
    starts with the think opening's ids; None without a readable prepared dataset."""
    import pyarrow as pa

    from r1tui.data.render import load_renderer

    files = sorted(data_dir.glob("data-*.arrow"))
    if not files:
        return None
    end_inst = load_renderer(spec).end_inst
    opening = list(think_tokens_for(spec).opening)
    seen = opened = 0
    try:
        for path in files:
            with pa.memory_map(str(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    for ids in batch.column("input_ids").to_pylist():
                        if end_inst in ids:
                            start = len(ids) - ids[::-1].index(end_inst)
                            opened += ids[start:start + len(opening)] == opening
                        seen += 1
                        if seen >= rows:
                            return opened / seen
    except (OSError, pa.ArrowException, KeyError):
        return None
    return opened / seen if seen else None


# ----------------------------------------------------------------- the reply loop


class TokenSource:
    """What a backend gives the loop: tokens sampled after a list of ids, and a token's bytes."""

    def tokens(self, ids: list[int]) -> Iterator[int]:
        """Sample tokens one by one after ``ids`` (the prompt and the reply so far)."""
        raise NotImplementedError

    def piece(self, token: int) -> bytes:
        raise NotImplementedError


def generate_reply(source: TokenSource, prompt: list[int], spec: str, stats: GenerationStats, budget: int,
                   stop_ids: set[int], settings: ThinkSettings, stop_requested: Callable[[], bool],
                   ) -> Iterator[str]:
    """Yield the reply's text; ``stats`` is filled in as it goes (finish reason, tokens, timing,
    think tokens, whether the cap closed the block, continuations added)."""
    from r1tui.data.tokenizer import load_text_tokenizer
    from r1tui.infer.stream import FINISH_EOS, FINISH_LENGTH, FINISH_STOPPED, TextAssembler

    encode = load_text_tokenizer(spec).encode
    marks = think_tokens_for(spec) if settings.prefill or settings.forcing else None
    reply: list[int] = list(marks.opening) if settings.prefill and marks else []
    prefilled = len(reply)
    text = OPENING if settings.prefill else ""
    shown = 0                    # characters of `text` already yielded
    phase = "think" if settings.prefill else "start"
    think_start = prefilled      # index in `reply` where the think block's tokens begin
    answer_start = -1            # index in `reply` where the forced answer begins
    assembler = TextAssembler(started=bool(text))
    started = time.perf_counter()
    stats.think_prefilled = settings.prefill
    if text:
        yield text
        shown = len(text)

    def reencode(new_text: str) -> None:
        nonlocal text, reply, assembler
        text = new_text
        reply = encode(text.rstrip(" "))
        assembler = TextAssembler(started=True)

    while True:
        restart = False
        tokens = source.tokens(prompt + reply)
        try:
            for token in tokens:
                now = time.perf_counter() - started
                if stats.first_token_s == 0.0:
                    stats.first_token_s = stats.elapsed_s = now
                if token in stop_ids:
                    if (phase == "think" and settings.min_think_tokens
                            and _think_length(text, len(text), encode) < settings.min_think_tokens):
                        stats.think_continuations += 1  # an end of sequence inside the thinking: go on
                        reencode(_continued(text, settings.continuation))
                        restart = True
                        break
                    stats.finish_reason = FINISH_EOS
                    break
                stats.elapsed_s = now
                reply.append(token)
                text += assembler.add(source.piece(token))  # drops the space after [/INST], as Mistral's decoder does
                if phase == "start" and text.lstrip():
                    stripped = text.lstrip()
                    if stripped.startswith(THINK_START):
                        phase, think_start = "think", len(reply)
                    elif not THINK_START.startswith(stripped):
                        phase = "answer"
                if phase == "think":
                    close_at = text.find(THINK_END, text.find(THINK_START) + len(THINK_START))
                    count = len(reply) - think_start
                    if close_at >= 0:
                        before_tag = _think_length(text, close_at, encode)
                        if before_tag < settings.min_think_tokens:
                            stats.think_continuations += 1
                            reencode(_continued(text[:close_at], settings.continuation))
                            restart = True
                            break
                        stats.think_tokens = before_tag
                        phase = "answer"
                    elif settings.max_think_tokens and count >= settings.max_think_tokens:
                        stats.think_tokens = count
                        stats.think_capped = True
                        kept = text[:len(text) - partial_tag(text, THINK_END)]
                        reencode(kept + ("" if kept.endswith("\n") else "\n") + CLOSING)
                        answer_start = len(reply)
                        phase = "answer"
                        restart = True
                        break
                held = partial_tag(text, THINK_END) if phase == "think" else 0
                if len(text) - held > shown:
                    # the text may have been re-encoded: only ever yield what extends what was shown
                    yield text[shown:len(text) - held]
                    shown = len(text) - held
                if stop_requested():
                    stats.finish_reason = FINISH_STOPPED
                    break
                if answer_start >= 0 and len(reply) - answer_start >= settings.answer_tokens:
                    stats.finish_reason = FINISH_LENGTH
                    break
                if len(reply) - prefilled >= budget:
                    stats.finish_reason = FINISH_LENGTH
                    break
            else:
                stats.finish_reason = stats.finish_reason or FINISH_LENGTH
        finally:
            tokens.close()
        stats.completion_tokens = len(reply) - prefilled
        if restart:
            if len(text) > shown:
                yield text[shown:]
                shown = len(text)
            if len(reply) - prefilled >= budget:
                stats.finish_reason = FINISH_LENGTH
                break
            continue
        break
    if phase == "think":
        stats.think_tokens = len(reply) - think_start
    tail = text + assembler.finish()
    if len(tail) > shown:
        yield tail[shown:]


def _continued(kept: str, word: str) -> str:
    """The thinking so far, with the continuation word where the model tried to stop."""
    return kept + word if not kept or kept[-1].isspace() else f"{kept}\n{word}"


def _think_length(text: str, close_at: int, encode) -> int:
    """Tokens of the think block before its closing tag, as training's encoder counts that text."""
    start = text.find(THINK_START) + len(THINK_START)
    head = text[:start + 1] if text[start:start + 1] == "\n" else text[:start]  # the opening's own newline
    return len(encode(text[:close_at].rstrip(" "))) - len(encode(head))


def reply_text_ids(spec: str, messages: Sequence[dict[str, str]], reply_text: str) -> list[int]:
    """The training render's ids of a prompt followed by a (partial) reply text: what the
    loop feeds the model after forcing text in. For tests and tools."""
    from r1tui.data.render import load_renderer
    from r1tui.data.tokenizer import load_text_tokenizer

    return load_renderer(spec).render_prompt(messages) + load_text_tokenizer(spec).encode(reply_text)

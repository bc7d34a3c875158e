"""What every backend reports about a generation, and a splitter for streamed think blocks."""

from __future__ import annotations

import codecs
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from r1tui.infer.thinking import ThinkSettings
from r1tui.response_format import THINK_END, THINK_START, partial_tag

if TYPE_CHECKING:
    from r1tui.infer.prompt import Message

# Why a generation ended.
FINISH_EOS = "eos"          # the model emitted its end-of-sequence token
FINISH_LENGTH = "length"    # max_tokens (or the context) ran out first
FINISH_STOPPED = "stopped"  # the caller's stop_event was set


@dataclass
class GenerationStats:
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0       # from the call to the last reply token (not the stop token), prompt included
    first_token_s: float = 0.0   # from the call to the first token (prompt processing)
    # The think block (r1tui.infer.thinking): prefilled?, its tokens, closed by the cap?,
    # continuation words added where the model tried to stop thinking too early.
    think_prefilled: bool = False
    think_tokens: int = 0
    think_capped: bool = False
    think_continuations: int = 0

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second after the first one (decode speed)."""
        decode_s = self.elapsed_s - self.first_token_s
        if self.completion_tokens < 2 or decode_s <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_s

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": round(self.tokens_per_s, 2)}


def token_budget(prompt_tokens: int, n_ctx: int, max_tokens: int) -> tuple[int, GenerationStats]:
    """How many tokens a reply may have, and its stats record (finish: length until told otherwise)."""
    from r1tui.errors import R1Error

    room = n_ctx - prompt_tokens
    if room <= 0:
        raise R1Error(f"the prompt is {prompt_tokens} tokens but the context holds {n_ctx}; "
                      "start a new conversation (/reset) or raise n_ctx")
    return min(max_tokens, room), GenerationStats(finish_reason=FINISH_LENGTH, prompt_tokens=prompt_tokens)


@dataclass
class Generation:
    text: str
    stats: GenerationStats


class ChatModel:
    """What LlamaChat and HFChat share: the training prompt, the whole reply at once, and
    use as a context manager. A backend sets ``tokenizer_spec`` and ``last`` and defines
    ``stream`` and ``close``."""

    tokenizer_spec: str
    last: GenerationStats | None = None
    # What replies do with the think block (prefill, budget forcing); off unless set.
    thinking: ThinkSettings = ThinkSettings()

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        from r1tui.infer.prompt import render_prompt_ids

        return render_prompt_ids(messages, self.tokenizer_spec)

    def prefill_ids(self) -> list[int]:
        """The ids the reply starts with: the think opening when prefilling, else none."""
        if not self.thinking.prefill:
            return []
        from r1tui.infer.thinking import think_tokens_for

        return list(think_tokens_for(self.tokenizer_spec).opening)

    def stream(self, messages: Sequence[Message], max_tokens: int = 512, temperature: float = 0.0,
               stop_event: threading.Event | None = None, top_p: float = 1.0,
               seed: int | None = None) -> Iterator[str]:
        """Yield the reply as text chunks; ``seed`` fixes this reply's sampling (None: the model's seed)."""
        raise NotImplementedError

    def generate(self, messages: Sequence[Message], max_tokens: int = 512, temperature: float = 0.0,
                 stop_event: threading.Event | None = None, top_p: float = 1.0,
                 seed: int | None = None) -> Generation:
        """The whole reply at once."""
        text = "".join(self.stream(messages, max_tokens, temperature, stop_event, top_p, seed))
        assert self.last is not None
        return Generation(text, self.last)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TextAssembler:
    """Turns token pieces (bytes) into text as soon as it is valid UTF-8.

    The reply's first piece carries the space that separates ``[/INST]`` from the
    answer in the training template (`` <think>``); it is dropped, as Mistral's own
    decoder does.
    """

    def __init__(self, started: bool = False) -> None:
        """``started``: the reply is already under way (no template space to drop)."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = started
        self.text = ""

    def add(self, piece: bytes) -> str:
        chunk = self._decoder.decode(piece)
        if not self._started and chunk:
            chunk = chunk[1:] if chunk.startswith(" ") else chunk
            self._started = bool(chunk)
        self.text += chunk
        return chunk

    def finish(self) -> str:
        chunk = self._decoder.decode(b"", final=True)
        self.text += chunk
        return chunk


class ThinkSplitter:
    """Splits streamed text into ("think", text) and ("answer", text) parts.

    The tags themselves belong to the think part. A tag cut across two chunks is held
    back until it is complete, so a display never shows half of ``</think>`` in the
    wrong style. Text before a ``<think>`` that never comes is answer text.
    """

    def __init__(self) -> None:
        self.state = "start"  # start -> think -> answer
        self._held = ""

    def feed(self, chunk: str) -> list[tuple[str, str]]:
        self._held += chunk
        parts: list[tuple[str, str]] = []
        while self._held:
            if self.state == "start":
                stripped = self._held.lstrip()
                if THINK_START.startswith(stripped):
                    break  # still could be the opening tag
                if stripped.startswith(THINK_START):
                    self.state = "think"
                    continue
                self.state = "answer"
            elif self.state == "think":
                close_at = self._held.find(THINK_END)
                if close_at >= 0:
                    end = close_at + len(THINK_END)
                    parts.append(("think", self._held[:end]))
                    self._held = self._held[end:]
                    self.state = "answer"
                    continue
                keep = partial_tag(self._held, THINK_END)
                if len(self._held) > keep:
                    parts.append(("think", self._held[: len(self._held) - keep]))
                    self._held = self._held[len(self._held) - keep:]
                break
            else:
                parts.append(("answer", self._held))
                self._held = ""
        return _merge(parts)

    def flush(self) -> list[tuple[str, str]]:
        """Whatever is held back, at the end of the stream."""
        held, self._held = self._held, ""
        if not held:
            return []
        return [("think" if self.state == "think" else "answer", held)]


def _merge(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    merged: list[tuple[str, str]] = []
    for kind, text in parts:
        if not text:
            continue
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged

"""LlamaChat: chat with a GGUF through llama-cpp-python, prompted exactly as in training.

llama-cpp-python's chat API picks a template by itself (and silently swaps in its own
"mistral-instruct" formatter for some GGUFs), so it is not used. The conversation is
rendered to token ids with the training tokenizer (``render_prompt_ids``), the ids
go to ``Llama.generate``, pieces are decoded incrementally, and generation stops at
the end-of-sequence token, at ``max_tokens``, or when ``stop_event`` is set. The reply
loop (prefill, budget forcing) is ``r1tui.infer.thinking.generate_reply``, shared with
the transformers backend.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from r1tui.errors import R1Error
from r1tui.infer.prompt import Message, special_ids, vocab_size
from r1tui.infer.stream import ChatModel, GenerationStats, token_budget
from r1tui.infer.thinking import TokenSource, generate_reply

log = logging.getLogger(__name__)


class LlamaChat(ChatModel):
    """A loaded GGUF that answers conversations.

    ``stream`` yields text chunks; once it is exhausted ``last`` holds the finish
    reason, token counts and tokens/s. Calls are serialised: one llama.cpp context
    serves one generation at a time.
    """

    def __init__(self, gguf_path: str | Path, tokenizer_spec: str = "v3", n_ctx: int = 4096,
                 seed: int = 0, n_threads: int | None = None, n_gpu_layers: int = -1):
        self.gguf_path = Path(gguf_path)
        if not self.gguf_path.is_file():
            raise R1Error(f"{self.gguf_path}: GGUF file not found; export the run first (r1tui export RUN) or pass --gguf PATH")
        self.tokenizer_spec = tokenizer_spec
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self.last: GenerationStats | None = None

        import llama_cpp

        # n_threads None: llama-cpp-python's default (half the cores), which leaves room for
        # the rest of the process; oversubscribed threads slow small models down badly.
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.gguf_path), n_ctx=n_ctx, seed=seed, n_threads=n_threads,
                n_gpu_layers=n_gpu_layers, verbose=False,
            )
        except ValueError as exc:
            raise R1Error(f"{self.gguf_path}: llama.cpp could not load this GGUF ({exc}); re-export it") from None
        _, eos = special_ids(tokenizer_spec)
        if self._llama.n_vocab() != vocab_size(tokenizer_spec):
            raise R1Error(
                f"{self.gguf_path.name} has a vocabulary of {self._llama.n_vocab()} but tokenizer "
                f"{tokenizer_spec!r} has {vocab_size(tokenizer_spec)}; pass the model's tokenizer (--tokenizer)"
            )
        self._stop_ids = {eos, self._llama.token_eos()}

    def stream(self, messages: Sequence[Message], max_tokens: int = 512, temperature: float = 0.0,
               stop_event: threading.Event | None = None, top_p: float = 1.0,
               seed: int | None = None) -> Iterator[str]:
        """Yield the reply as text chunks; afterwards ``self.last`` says how it ended.

        ``self.thinking`` prefills the think opening and forces its length
        (``r1tui.infer.thinking``); the prefilled text is part of the reply."""
        prompt = self.prompt_ids(messages)
        settings = self.thinking
        budget, stats = token_budget(len(prompt) + len(self.prefill_ids()), self.n_ctx,
                                     settings.reply_limit(max_tokens))
        self.last = stats
        with self._lock:
            if seed is not None:
                self._llama.set_seed(seed)
            source = _LlamaTokens(self._llama, temperature, top_p)
            yield from generate_reply(source, prompt, self.tokenizer_spec, stats, budget, self._stop_ids, settings,
                                      lambda: stop_event is not None and stop_event.is_set())
        log.debug("generated %d tokens (%s) at %.1f tok/s", stats.completion_tokens, stats.finish_reason,
                  stats.tokens_per_s)

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None



class _LlamaTokens(TokenSource):
    """Tokens from llama.cpp; a new call after forced text reuses the cache up to the first changed id
    (``Llama.generate`` matches the longest common prefix of what it holds)."""

    def __init__(self, llama, temperature: float, top_p: float):
        self._llama = llama
        self._sampling = {"temp": temperature, "top_p": top_p, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}

    def tokens(self, ids: list[int]) -> Iterator[int]:
        return self._llama.generate(ids, reset=True, **self._sampling)

    def piece(self, token: int) -> bytes:
        return self._llama.detokenize([token], special=False)

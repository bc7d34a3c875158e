"""LlamaChat: chat with a GGUF through llama-cpp-python, prompted exactly as in training.

llama-cpp-python's chat API picks a template by itself (and silently swaps in its own
"mistral-instruct" formatter for some GGUFs), so it is not used. The conversation is
rendered to token ids with the training tokenizer (``render_prompt_ids``), the ids
go to ``Llama.generate``, pieces are decoded incrementally, and generation stops at
the end-of-sequence token, at ``max_tokens``, or when ``stop_event`` is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from r1tui.errors import R1Error
from r1tui.infer.prompt import Message, special_ids, vocab_size
from r1tui.infer.stream import (
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_STOPPED,
    ChatModel,
    GenerationStats,
    TextAssembler,
    token_budget,
)

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
        """Yield the reply as text chunks; afterwards ``self.last`` says how it ended."""
        prompt = self.prompt_ids(messages)
        budget, stats = token_budget(len(prompt), self.n_ctx, max_tokens)
        self.last = stats
        assembler = TextAssembler()
        with self._lock:
            if seed is not None:
                self._llama.set_seed(seed)
            started = time.perf_counter()
            tokens = self._llama.generate(prompt, temp=temperature, top_p=top_p, top_k=0, min_p=0.0,
                                          repeat_penalty=1.0, reset=True)
            try:
                for token in tokens:
                    now = time.perf_counter() - started
                    if stats.completion_tokens == 0:
                        stats.first_token_s = stats.elapsed_s = now
                    if token in self._stop_ids:
                        stats.finish_reason = FINISH_EOS
                        break
                    stats.elapsed_s = now  # the stop token is not a reply token: its step is not timed
                    stats.completion_tokens += 1
                    chunk = assembler.add(self._llama.detokenize([token], special=False))
                    if chunk:
                        yield chunk
                    if stop_event is not None and stop_event.is_set():
                        stats.finish_reason = FINISH_STOPPED
                        break
                    if stats.completion_tokens >= budget:
                        stats.finish_reason = FINISH_LENGTH
                        break
            finally:
                tokens.close()
                tail = assembler.finish()
        if tail:
            yield tail
        log.debug("generated %d tokens (%s) at %.1f tok/s", stats.completion_tokens, stats.finish_reason,
                  stats.tokens_per_s)

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None


"""EndpointChat: generate on an OpenAI-compatible server, prompted exactly as in training.

A chat-completions request would let the server build the prompt with its own
template, so this uses the completions API with the prompt as the training token
ids (``render_prompt_ids``): vLLM, SGLang and llama.cpp's llama-server take a list of
ids as ``prompt`` (asked once, with a one-token request). A server that refuses ids
(llama-cpp-python's own server) gets the same ids written out as text, special tokens
included and without the BOS it adds itself. Either way the prompt length the server
reports must equal the ids' length, or the reply is refused with an error naming both
counts. One object serves many threads at once:
each call is one request.

The API key is read from the configured environment variable and never written
anywhere; error texts that leave this module have it removed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from r1tui.errors import R1Error, redact
from r1tui.infer.prompt import Message, special_ids
from r1tui.infer.stream import FINISH_EOS, FINISH_LENGTH, ChatModel, GenerationStats
from r1tui.infer.thinking import OPENING

PLACEHOLDER_KEY = "no-key"  # local servers take any key


class EndpointChat(ChatModel):
    """Completions from ``base_url`` for conversations rendered with the training tokenizer."""

    def __init__(self, base_url: str, model: str = "", tokenizer_spec: str = "v3", *, n_ctx: int = 4096,
                 api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 600.0, max_retries: int = 2):
        import openai

        self.base_url = base_url
        self.tokenizer_spec = tokenizer_spec
        self.n_ctx = n_ctx
        self._secret = os.environ.get(api_key_env) or None
        self._client = openai.OpenAI(base_url=base_url, api_key=self._secret or PLACEHOLDER_KEY,
                                     timeout=timeout_s, max_retries=max_retries)
        self._local = threading.local()
        self._ids_prompts: bool | None = None  # does the server take token ids? asked on first use
        self.model = model or self._first_model()

    @property
    def last(self) -> GenerationStats | None:  # per thread: many requests run at once
        return getattr(self._local, "last", None)

    @last.setter
    def last(self, stats: GenerationStats | None) -> None:
        self._local.last = stats

    def _first_model(self) -> str:
        try:
            models = list(self._client.models.list())
        except Exception as exc:  # noqa: BLE001 - any failure here is "the server is not usable"
            raise R1Error(f"eval.base_url {self.base_url}: {self._describe(exc)}; start the server or fix the URL") from None
        if not models:
            raise R1Error(f"eval.base_url {self.base_url} serves no model; set eval.model")
        return models[0].id

    def stream(self, messages: Sequence[Message], max_tokens: int = 512, temperature: float = 0.0,
               stop_event: threading.Event | None = None, top_p: float = 1.0,
               seed: int | None = None) -> Iterator[str]:
        """The reply in one piece (one request; ``stop_event`` is checked before it is sent)."""
        prefill = self.prefill_ids()  # the think opening: sent as prompt ids, part of the reply's text
        if self.thinking.forcing:
            raise R1Error("a think budget (infer.max_think_tokens / min_think_tokens) needs a local model: "
                          "a server's completions API cannot force the think block; set both to 0")
        ids = self.prompt_ids(messages) + prefill
        stats = GenerationStats(finish_reason=FINISH_LENGTH, prompt_tokens=len(ids), think_prefilled=bool(prefill))
        self.last = stats
        if stop_event is not None and stop_event.is_set():
            stats.finish_reason = "stopped"
            return
        budget = min(max_tokens, self.n_ctx - len(ids))
        if budget <= 0:
            raise R1Error(f"the prompt is {len(ids)} tokens but eval.n_ctx is {self.n_ctx}; raise eval.n_ctx")
        started = time.perf_counter()
        choice, usage = self._complete(ids, budget, temperature, top_p, seed)
        stats.elapsed_s = time.perf_counter() - started
        text = choice.text or ""
        text = OPENING + text if prefill else text.removeprefix(" ")  # the space after [/INST] goes, as Mistral's decoder drops it
        stats.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        stats.finish_reason = FINISH_LENGTH if choice.finish_reason == "length" else FINISH_EOS
        if text:
            yield text

    def _takes_ids(self) -> bool:
        """Does the server take a list of token ids as the prompt? Asked once, with one token."""
        import openai

        bos, _ = special_ids(self.tokenizer_spec)
        try:
            self._client.completions.create(model=self.model, prompt=[bos], max_tokens=1, temperature=0.0)
            return True
        except openai.APIStatusError:
            return False  # 400 / 422 from most, 500 (a validation error) from llama-cpp-python's server
        except openai.OpenAIError as exc:
            raise R1Error(f"eval.base_url {self.base_url}: {self._describe(exc)}") from None

    def _complete(self, ids: list[int], budget: int, temperature: float, top_p: float, seed: int | None):
        import openai

        extra: dict[str, Any] = {} if seed is None else {"seed": seed}
        if self._ids_prompts is None:
            self._ids_prompts = self._takes_ids()
        prompt: list[int] | str = ids
        if not self._ids_prompts:
            from r1tui.data.tokenizer import ids_to_text

            bos, _ = special_ids(self.tokenizer_spec)
            prompt = ids_to_text(ids[1:] if ids[:1] == [bos] else ids, self.tokenizer_spec)
        try:
            response = self._client.completions.create(model=self.model, prompt=prompt, max_tokens=budget,
                                                       temperature=temperature, top_p=top_p, **extra)
        except openai.OpenAIError as exc:
            raise R1Error(f"eval.base_url {self.base_url}: {self._describe(exc)}") from None
        seen = getattr(response.usage, "prompt_tokens", None)
        if seen is not None and seen != len(ids):
            how = "the token ids" if self._ids_prompts else "the prompt written out as text"
            raise R1Error(
                f"eval.base_url {self.base_url} read {how} as {seen} tokens where training's template gives "
                f"{len(ids)}: its replies would not answer the prompt the model was trained on; serve the "
                "model with vLLM, SGLang or llama-server, which take token ids")
        return response.choices[0], response.usage

    def _describe(self, exc: Exception) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return redact(f"{type(exc).__name__}: {text}", self._secret)[:200]

    def close(self) -> None:
        self._client.close()

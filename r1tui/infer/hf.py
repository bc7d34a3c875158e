"""HFChat: the same chat interface as LlamaChat, over a transformers model folder.

A folder with ``config.json`` (a merged model) loads directly; a folder with
``adapter_config.json`` (a peft adapter) loads its base (``base_model_name_or_path``)
and applies the adapter. Prompts come from the training renderer, decoding is a plain
loop over the KV cache (greedy at temperature 0, else temperature + top-p from a
seeded generator), and text is decoded with the training tokenizer, piece by piece. The
reply loop (prefill, budget forcing) is ``r1tui.infer.thinking.generate_reply``; after
forced text the cache is cropped to the ids that did not change.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from r1tui.errors import R1Error
from r1tui.infer.prompt import Message, special_ids, token_bytes
from r1tui.infer.stream import ChatModel, GenerationStats, token_budget
from r1tui.infer.thinking import TokenSource, generate_reply

log = logging.getLogger(__name__)


class _HFTokens(TokenSource):
    """A plain decoding loop over the KV cache. A new call (after forced text) crops the cache
    to the longest prefix it shares with the new ids and feeds only the rest."""

    def __init__(self, model, device: str, spec: str, temperature: float, top_p: float, generator):
        self.model, self.device, self.generator = model, device, generator
        self.temperature, self.top_p = temperature, top_p
        self.piece = token_bytes(spec)
        self._past = None
        self._cached: list[int] = []  # the ids whose keys and values the cache holds

    def tokens(self, ids: list[int]) -> Iterator[int]:
        import torch

        shared = 0
        for cached, new in zip(self._cached, ids, strict=False):
            if cached != new:
                break
            shared += 1
        shared = min(shared, len(ids) - 1)  # at least one id is fed, for fresh logits
        if self._past is not None and shared > 0 and hasattr(self._past, "crop"):
            self._past.crop(shared)
            self._cached = self._cached[:shared]
        else:
            self._past, self._cached, shared = None, [], 0
        feed = ids[shared:]
        while True:
            output = self.model(input_ids=torch.tensor([feed], device=self.device), past_key_values=self._past,
                                use_cache=True)
            self._past = output.past_key_values
            self._cached += feed
            token = _pick(output.logits[0, -1].float().cpu(), self.temperature, self.top_p, self.generator)
            yield token
            feed = [token]


class HFChat(ChatModel):
    def __init__(self, model_dir: str | Path, tokenizer_spec: str = "v3", n_ctx: int = 4096, seed: int = 0,
                 device: str | None = None, dtype: str = "auto"):
        import torch

        self.model_dir = Path(model_dir)
        self.tokenizer_spec = tokenizer_spec
        self.n_ctx = n_ctx
        self.seed = seed
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()
        self.last: GenerationStats | None = None
        torch_dtype = _dtype(dtype, self.device)
        self.model = _load(self.model_dir, torch_dtype).to(self.device).eval()
        _, self.eos_id = special_ids(tokenizer_spec)

    def stream(self, messages: Sequence[Message], max_tokens: int = 512, temperature: float = 0.0,
               stop_event: threading.Event | None = None, top_p: float = 1.0,
               seed: int | None = None) -> Iterator[str]:
        """Yield the reply as text chunks (``self.thinking``: prefill and budget forcing, as LlamaChat)."""
        import torch

        prompt = self.prompt_ids(messages)
        settings = self.thinking
        budget, stats = token_budget(len(prompt) + len(self.prefill_ids()), self.n_ctx,
                                     settings.reply_limit(max_tokens))
        self.last = stats
        generator = torch.Generator(device="cpu").manual_seed(self.seed if seed is None else seed)
        with self._lock, torch.inference_mode():
            source = _HFTokens(self.model, self.device, self.tokenizer_spec, temperature, top_p, generator)
            yield from generate_reply(source, prompt, self.tokenizer_spec, stats, budget, {self.eos_id}, settings,
                                      lambda: stop_event is not None and stop_event.is_set())

    def close(self) -> None:
        self.model = None


def _pick(logits, temperature: float, top_p: float, generator) -> int:
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def _dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def _load(model_dir: Path, torch_dtype):
    # AutoModelForCausalLM, or Mistral3ForConditionalGeneration for a vision checkpoint
    from r1tui.train.base import model_class

    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter_config = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8"))
        base = adapter_config.get("base_model_name_or_path")
        if not base:
            raise R1Error(f"{model_dir}/adapter_config.json names no base_model_name_or_path; re-save the adapter")
        log.info("loading base %s for adapter %s", base, model_dir)
        model = model_class(base).from_pretrained(base, dtype=torch_dtype)
        return PeftModel.from_pretrained(model, str(model_dir))
    if (model_dir / "config.json").is_file():
        return model_class(str(model_dir)).from_pretrained(str(model_dir), dtype=torch_dtype)
    raise R1Error(f"{model_dir}: neither a model folder (config.json) nor an adapter (adapter_config.json); "
                  "pass the run's merged/ or adapter/ folder")

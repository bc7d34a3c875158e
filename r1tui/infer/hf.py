"""HFChat: the same chat interface as LlamaChat, over a transformers model folder.

A folder with ``config.json`` (a merged model) loads directly; a folder with
``adapter_config.json`` (a peft adapter) loads its base (``base_model_name_or_path``)
and applies the adapter. Prompts come from the training renderer, decoding is a plain
loop over the KV cache (greedy at temperature 0, else temperature + top-p from a
seeded generator), and text is decoded with the training tokenizer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from r1tui.errors import R1Error
from r1tui.infer.prompt import Message, decode, special_ids
from r1tui.infer.stream import (
    FINISH_EOS,
    FINISH_STOPPED,
    ChatModel,
    GenerationStats,
    token_budget,
)

log = logging.getLogger(__name__)


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
        import torch

        prompt = self.prompt_ids(messages)
        budget, stats = token_budget(len(prompt), self.n_ctx, max_tokens)
        self.last = stats
        generator = torch.Generator(device="cpu").manual_seed(self.seed if seed is None else seed)
        generated: list[int] = []
        emitted = ""
        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            inputs = torch.tensor([prompt], device=self.device)
            past = None
            while True:
                output = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = output.past_key_values
                token = _pick(output.logits[0, -1].float().cpu(), temperature, top_p, generator)
                now = time.perf_counter() - started
                if stats.completion_tokens == 0:
                    stats.first_token_s = stats.elapsed_s = now
                if token == self.eos_id:
                    stats.finish_reason = FINISH_EOS
                    break
                stats.elapsed_s = now  # the stop token is not a reply token: its step is not timed
                generated.append(token)
                stats.completion_tokens += 1
                text = decode(generated, self.tokenizer_spec)
                if not text.endswith("\ufffd") and text.startswith(emitted):
                    chunk, emitted = text[len(emitted):], text
                    if chunk:
                        yield chunk
                if stop_event is not None and stop_event.is_set():
                    stats.finish_reason = FINISH_STOPPED
                    break
                if stats.completion_tokens >= budget:
                    break
                inputs = torch.tensor([[token]], device=self.device)
        text = decode(generated, self.tokenizer_spec)
        if text.startswith(emitted) and len(text) > len(emitted):
            yield text[len(emitted):]

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
    from transformers import AutoModelForCausalLM

    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        adapter_config = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8"))
        base = adapter_config.get("base_model_name_or_path")
        if not base:
            raise R1Error(f"{model_dir}/adapter_config.json names no base_model_name_or_path; re-save the adapter")
        log.info("loading base %s for adapter %s", base, model_dir)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
        return PeftModel.from_pretrained(model, str(model_dir))
    if (model_dir / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype)
    raise R1Error(f"{model_dir}: neither a model folder (config.json) nor an adapter (adapter_config.json); "
                  "pass the run's merged/ or adapter/ folder")

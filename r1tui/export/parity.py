"""Tokenizer parity: a GGUF must turn the training format into exactly the training ids.

Sample conversations (multi-turn, reasoning, accents, emoji, code, leading and repeated
spaces, a system prompt, an inference prompt) are encoded two ways:

- training side: the training renderer (``r1tui.data.render``, whose ids are tested
  identical to Mistral's own encoding in mistral-common);
- GGUF side: the same conversation rendered to text with the training chat template,
  tokenized by llama.cpp from the GGUF's vocabulary with special tokens parsed.

Any difference fails, naming the conversation and the first differing tokens. The two
known ways to fail (see README): a converter that fell back to tokenizer.json (every
score -1000) and ``add_space_prefix`` true (a space after every control token); when
the file shows either, the report says so.
"""

from __future__ import annotations

import ctypes
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.data.tokenizer import ids_to_text
from r1tui.errors import R1Error

if TYPE_CHECKING:
    from r1tui.export.clients import Client

log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]

SAMPLE_CONVERSATIONS: list[tuple[str, Conversation]] = [
    ("single turn", [
        {"role": "user", "content": "What is 17 * 23?"},
        {"role": "assistant", "content": "<think>17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391</think>\nFINAL ANSWER: 391"},
    ]),
    ("multi-turn", [
        {"role": "user", "content": "A train leaves at 9:00 and travels 120 km at 80 km/h. When does it arrive?"},
        {"role": "assistant", "content": "<think>120 / 80 = 1.5 h, so 10:30.</think>\nFINAL ANSWER: 10:30"},
        {"role": "user", "content": "And at 60 km/h?"},
        {"role": "assistant", "content": "<think>120 / 60 = 2 h.</think>\nFINAL ANSWER: 11:00"},
    ]),
    ("accents and emoji", [
        {"role": "user", "content": "Ça coûte 3,50 € — combien pour 4 crêpes? Größe: naïve façade 🎉🧮"},
        {"role": "assistant", "content": "<think>4 × 3,50 € = 14 €</think> FINAL ANSWER: 14 € ✅"},
    ]),
    ("code", [
        {"role": "user", "content": "Fix this:\n```python\ndef add(a, b):\n\treturn a - b\n```"},
        {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b  # was a - b\n```\n{\"ok\": true} <tag/> [1, 2]"},
    ]),
    ("leading and repeated spaces", [
        {"role": "user", "content": "   three leading spaces,  double  spaces and a trailing one "},
        {"role": "assistant", "content": "  two leading spaces\n\n\n  and blank lines  "},
    ]),
    ("CJK and symbols", [
        {"role": "user", "content": "日本語と中文 한국어 — ∑ᵢ xᵢ² ≤ ∞? ½ ≠ 0.5‰"},
        {"role": "assistant", "content": "<think>数学</think>FINAL ANSWER: √2"},
    ]),
    ("system prompt", [
        {"role": "system", "content": "You are a careful reasoner. Think step by step."},
        {"role": "user", "content": "Is 221 prime?"},
        {"role": "assistant", "content": "<think>221 = 13 × 17</think>\nFINAL ANSWER: no"},
    ]),
    ("inference prompt", [
        {"role": "user", "content": "Previous question?"},
        {"role": "assistant", "content": "FINAL ANSWER: 3"},
        {"role": "user", "content": "Now compute 2^10."},
    ]),
    # Runs of spaces before code: a Hugging Face fast tokenizer splits "    print" as
    # "▁▁▁▁" "print", mistral-common as "▁▁▁" "▁print".
    ("indented code", [
        {"role": "user", "content": "What does this print?\n```python\nfor i in range(3):\n    if i % 2 == 0:\n"
                                    "        print(i*i)\n```"},
        {"role": "assistant", "content": "<think>i = 0 and 2 pass the test.</think>\n```python\nfor i in (0, 2):\n"
                                         "    print(i*i)\n```\nFINAL ANSWER: 0 4"},
    ]),
    ("system prompt, multi-turn, emoji", [
        {"role": "system", "content": "Réponds en français. 🇫🇷"},
        {"role": "user", "content": "Combien font 6 × 7 ?"},
        {"role": "assistant", "content": "<think>6 × 7 = 42</think>\nFINAL ANSWER: 42 ✅"},
        {"role": "user", "content": "Et    6 × 8 ?   Merci 🙏"},
        {"role": "assistant", "content": "<think>48</think>\nFINAL ANSWER: 48"},
    ]),
]


# ---------------------------------------------------------------- the training side


def training_encoding(messages: Conversation, spec: str = "v3") -> tuple[list[int], str]:
    """(ids, text) of a conversation in the training format.

    The ids come from the training renderer (``r1tui.data.render``, tested identical to
    mistral-common's encoding); a conversation that ends with a user turn is rendered as
    an inference prompt. The text is exactly what the ids spell (control tokens as their
    literal, byte pieces as bytes, SentencePiece's "▁" as a space): the text a client
    sends to llama.cpp. For every sample it equals the training chat template rendered;
    ``template_differences`` reports where the Jinja template and the renderer part ways.
    """
    from r1tui.data.render import RenderError, load_renderer

    renderer = load_renderer(spec)
    try:
        if messages[-1]["role"] == "assistant":
            ids = renderer.render(messages).input_ids
        else:
            ids = renderer.render_prompt(messages)
    except RenderError as exc:
        raise R1Error(f"sample conversation cannot be rendered with tokenizer {spec}: {exc}") from None
    return ids, ids_to_text(ids, spec)



def template_differences(spec: str = "v3",
                         conversations: list[tuple[str, Conversation]] | None = None) -> list[str]:
    """Samples whose training-template text differs from the text Mistral's encoding spells."""
    from r1tui.data.tokenizer import is_tekken

    if is_tekken(spec):
        return []
    return [name for name, messages in conversations or SAMPLE_CONVERSATIONS
            if render_template(messages) != training_encoding(messages, spec)[1]]


@lru_cache(maxsize=1)
def _template():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from r1tui.data.tokenizer import CHAT_TEMPLATE

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)


def render_template(messages: Conversation, bos: str = "<s>", eos: str = "</s>") -> str:
    """The training chat template as text (what the GGUF embeds as its chat template)."""
    return _template().render(messages=messages, bos_token=bos, eos_token=eos)


# ---------------------------------------------------------------- the GGUF side


class GgufVocab:
    """A GGUF's tokenizer through llama.cpp (vocabulary only: no weights, no context)."""

    def __init__(self, path: str | Path):
        import llama_cpp

        from r1tui.export._llama_log import capture_llama_log

        self._llama = llama_cpp
        self.path = Path(path)
        if not self.path.is_file():
            raise R1Error(f"{self.path}: GGUF not found; pass --gguf PATH to an existing .gguf file")
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        with capture_llama_log():
            llama_cpp.llama_backend_init()
            self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise R1Error(f"{self.path}: llama.cpp could not load this GGUF's vocabulary; is it a GGUF file?")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buffer = (self._llama.llama_token * capacity)()
        count = self._llama.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, True)
        if count < 0:  # buffer too small: llama.cpp returns minus the size needed
            capacity = -count
            buffer = (self._llama.llama_token * capacity)()
            count = self._llama.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, True)
        return list(buffer[:count])

    def metadata(self, key: str) -> str | None:
        """A metadata value as text (``tokenizer.chat_template``), None when absent."""
        size = self._llama.llama_model_meta_val_str(self._model, key.encode(), None, 0)
        if size < 0:
            return None
        buffer = ctypes.create_string_buffer(size + 1)
        self._llama.llama_model_meta_val_str(self._model, key.encode(), buffer, size + 1)
        return buffer.value.decode("utf-8")

    @property
    def add_bos(self) -> bool:
        """Whether llama.cpp puts BOS in front when a client asks for special tokens (Ollama does)."""
        return bool(self._llama.llama_vocab_get_add_bos(self._vocab))

    @property
    def bos(self) -> int:
        return self._llama.llama_vocab_bos(self._vocab)

    @property
    def eos(self) -> int:
        return self._llama.llama_vocab_eos(self._vocab)

    def text(self, token: int) -> str:
        """A token's text as the vocabulary stores it (what llama-cpp-python passes a template as bos/eos)."""
        return self._llama.llama_vocab_get_text(self._vocab, token).decode("utf-8")

    def piece(self, token: int) -> str:
        buffer = ctypes.create_string_buffer(256)
        size = self._llama.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[: max(size, 0)].decode("utf-8", errors="replace")

    def close(self) -> None:
        if getattr(self, "_model", None):
            self._llama.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> GgufVocab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- the check


def _reference_piece(spec: str, token: int) -> str:
    from r1tui.data.render import load_renderer

    try:
        return load_renderer(spec).piece(token)
    except Exception:  # noqa: BLE001 - only for display
        return "?"


def first_difference(expected: list[int], got: list[int]) -> int | None:
    for index, (a, b) in enumerate(zip(expected, got, strict=False)):
        if a != b:
            return index
    return None if len(expected) == len(got) else min(len(expected), len(got))


def check_parity(gguf_path: str | Path, tokenizer_spec: str = "v3",
                 conversations: list[tuple[str, Conversation]] | None = None,
                 gguf_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compare training ids and GGUF ids on every sample; returns a JSON-able report."""
    conversations = conversations or SAMPLE_CONVERSATIONS
    cases = []
    with GgufVocab(gguf_path) as vocab:
        for name, messages in conversations:
            expected, text = training_encoding(messages, tokenizer_spec)
            got = vocab.tokenize(text)
            index = first_difference(expected, got)
            case: dict[str, Any] = {"name": name, "ok": index is None, "tokens": len(expected)}
            if index is not None:
                window = slice(max(index - 2, 0), index + 4)
                case["first_difference"] = {
                    "index": index,
                    "expected": [[t, _reference_piece(tokenizer_spec, t)] for t in expected[window]],
                    "gguf": [[t, vocab.piece(t)] for t in got[window]],
                }
            cases.append(case)
    report: dict[str, Any] = {
        "ok": all(case["ok"] for case in cases),
        "gguf": str(gguf_path),
        "tokenizer": tokenizer_spec,
        "reference": "r1tui.data.render (ids identical to mistral-common)",
        "cases": cases,
        "tokens_compared": sum(case["tokens"] for case in cases),
    }
    hints = _hints(gguf_info) if gguf_info else []
    if hints:
        report["hints"] = hints
    return report


def _hints(info: dict[str, Any]) -> list[str]:
    meta = info.get("metadata", {})
    hints = []
    if meta.get("scores_all_default"):
        hints.append("every token score is -1000: the converter used tokenizer.json because tokenizer.model "
                     "was missing from the merged folder")
    if meta.get("tokenizer_model") == "llama" and meta.get("add_space_prefix"):
        hints.append("add_space_prefix is true: llama.cpp adds a space after every control token; "
                     "set add_prefix_space false in tokenizer_config.json before converting")
    return hints


def describe_failure(report: dict[str, Any]) -> str:
    """One line: which sample failed first and the tokens either side of the difference."""
    failed = [case for case in report["cases"] if not case["ok"]]
    if not failed:
        return "tokenizer parity OK"
    case = failed[0]
    diff = case["first_difference"]

    def show(pairs: list[list[Any]]) -> str:
        return " ".join(f"{token}:{piece!r}" for token, piece in pairs) or "(end)"

    line = (f"tokenizer parity failed on {len(failed)} of {len(report['cases'])} samples; first: "
            f"{case['name']!r} at token {diff['index']}: training [{show(diff['expected'])}] "
            f"vs GGUF [{show(diff['gguf'])}]")
    if report.get("hints"):
        line += f" ({report['hints'][0]})"
    return line


# ---------------------------------------------------------------- every client of every artefact


def client_cases(conversations: list[tuple[str, Conversation]] | None = None) -> list[tuple[str, Conversation]]:
    """Each sample as a prompt (everything up to its last user turn: what a chat client sends)
    and, when it ends with an answer, as the whole conversation."""
    cases = []
    for name, messages in conversations or SAMPLE_CONVERSATIONS:
        last_user = max(index for index, message in enumerate(messages) if message["role"] == "user")
        cases.append((f"{name} (prompt)", messages[: last_user + 1]))
        if messages[-1]["role"] == "assistant":
            cases.append((f"{name} (whole)", messages))
    return cases


def check_client(client: Client, tokenizer_spec: str = "v3",
                 conversations: list[tuple[str, Conversation]] | None = None) -> dict[str, Any]:
    """The client's ids against the training ids on every case; a JSON-able report."""
    cases, not_checked = [], []
    for name, given in client_cases(conversations):
        messages = client.messages(given)
        reason = client.cannot(messages)
        if reason:
            not_checked.append({"name": name, "reason": reason})
            continue
        expected = training_encoding(messages, tokenizer_spec)[0]
        case: dict[str, Any] = {"name": name, "tokens": len(expected)}
        try:
            got = client.encode(messages)
        except Exception as exc:  # noqa: BLE001 - a client that refuses a conversation is a failed case
            case.update(ok=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            cases.append(case)
            continue
        index = first_difference(expected, got)
        case["ok"] = index is None
        if index is not None:
            window = slice(max(index - 2, 0), index + 4)
            case["first_difference"] = {
                "index": index,
                "expected": [[t, _reference_piece(tokenizer_spec, t)] for t in expected[window]],
                "client": [[t, client.piece(t)] for t in got[window]],
            }
        cases.append(case)
    matched = sum(case["ok"] for case in cases)
    report: dict[str, Any] = {
        "artefact": client.artefact, "client": client.client, "ok": matched == len(cases),
        "matched": matched, "total": len(cases), "tokens_compared": sum(case["tokens"] for case in cases),
        "cases": cases, "not_checked": not_checked,
    }
    if client.loaded:
        report["loaded"] = client.loaded
    if not report["ok"]:
        report["fix"] = client.fix
    return report


def describe_client_failure(report: dict[str, Any]) -> str:
    """One line: the artefact, the client, the first differing tokens and the fix."""
    failed = [case for case in report["cases"] if not case["ok"]]
    if not failed:
        return f"{report['artefact']} through {report['client']}: identical ids"
    case = failed[0]

    def show(pairs: list[list[Any]]) -> str:
        return " ".join(f"{token}:{piece!r}" for token, piece in pairs) or "(end)"

    where = (f"{case['name']!r} raised {case['error']}" if "error" in case else
             f"{case['name']!r} at token {case['first_difference']['index']}: training "
             f"[{show(case['first_difference']['expected'])}] vs client [{show(case['first_difference']['client'])}]")
    return (f"{report['artefact']} through {report['client']}: {len(failed)} of {report['total']} cases differ; "
            f"first: {where}; fix: {report['fix']}")

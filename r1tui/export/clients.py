"""The clients people load r1tui's artefacts with, each building a prompt its own way.

A ``Client`` is one artefact seen through one client: it turns a conversation into the
token ids that client feeds the model. ``r1tui.export.parity.check_clients`` compares
them with the training ids.

- ``gguf_tokenizer``: llama.cpp tokenizes the exact text of the training ids (the
  tokenizer alone; what ``check_parity`` has always checked);
- ``gguf_chat_template``: llama-server, LM Studio and llama-cpp-python's chat API render
  the GGUF's embedded ``tokenizer.chat_template`` and tokenize it with llama.cpp
  (here: llama-cpp-python's own ``Jinja2ChatFormatter``, bos/eos as the vocabulary
  stores them, special tokens parsed, no BOS added: the template writes it);
- ``transformers``: ``AutoTokenizer.from_pretrained(folder)`` then ``apply_chat_template``
  (a prompt in the default mode; a whole conversation, which mistral-common refuses in
  serving mode, with ``mode="finetuning"``); for merged/ and the adapter as published;
- ``tokenizer_json``: a kept ``tokenizer.json`` read by the tokenizers library (what
  clients that skip transformers' class choice load), on the training text;
- ``ollama``: the Modelfile's TEMPLATE rendered as Ollama's Go template would
  (``r1tui.export.gotemplate``; the Modelfile's SYSTEM added as Ollama adds it),
  tokenized by llama.cpp with the GGUF's BOS rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from r1tui.export.parity import Conversation, GgufVocab, training_encoding

Encoder = Callable[[Conversation], list[int]]


@dataclass
class Client:
    artefact: str  # what is loaded: a GGUF's name, "merged/", "adapter/", "Modelfile"
    client: str  # how: "llama.cpp tokenizer", "transformers AutoTokenizer", ...
    fix: str  # what to do when its ids differ from training
    encode: Encoder
    piece: Callable[[int], str]
    # the messages the client really renders (Ollama adds the Modelfile's SYSTEM)
    messages: Callable[[Conversation], Conversation] = field(default=lambda messages: messages)
    # why a conversation cannot be expressed through this client (None: it can)
    cannot: Callable[[Conversation], str | None] = field(default=lambda messages: None)
    loaded: str = ""  # the class a loader picked, for the report


def gguf_tokenizer(vocab: GgufVocab, spec: str, hint: str = "") -> Client:
    return Client(
        artefact=vocab.path.name, client="llama.cpp tokenizer",
        fix=hint or "convert again from a merged/ folder written by this r1tui (`r1tui export RUN`); the "
                    "converter must read tokenizer.model (scores) with add_prefix_space false",
        encode=lambda messages: vocab.tokenize(training_encoding(messages, spec)[1]), piece=vocab.piece)


def gguf_chat_template(vocab: GgufVocab) -> Client:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = vocab.metadata("tokenizer.chat_template")

    def encode(messages: Conversation) -> list[int]:
        if template is None:
            return []
        formatter = Jinja2ChatFormatter(template=template, eos_token=vocab.text(vocab.eos),
                                        bos_token=vocab.text(vocab.bos), stop_token_ids=[vocab.eos])
        result = formatter(messages=messages)
        ids = vocab.tokenize(result.prompt)
        return ids if result.added_special else [vocab.bos, *ids]

    return Client(
        artefact=vocab.path.name, client="llama-cpp-python chat template (tokenizer.chat_template)",
        fix=("the GGUF has no chat template: " if template is None else "the embedded template renders another "
             "text than training: ") + "fix chat_template.jinja in merged/ (r1tui.data.tokenizer.published_tokenizer) "
             "and export again",
        encode=encode, piece=vocab.piece)


def transformers(folder: Path, artefact: str) -> Client:
    from transformers import AutoTokenizer

    prompt_tokenizer = AutoTokenizer.from_pretrained(str(folder))
    loaded = type(prompt_tokenizer).__name__
    exact = loaded == "MistralCommonBackend"
    whole_tokenizer = AutoTokenizer.from_pretrained(str(folder), mode="finetuning") if exact else prompt_tokenizer

    def encode(messages: Conversation) -> list[int]:
        tokenizer = whole_tokenizer if messages[-1]["role"] == "assistant" else prompt_tokenizer
        return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))

    fix = ("tokenizer_config.json names tokenizer_class MistralCommonBackend (transformers then reads "
           "tokenizer.model.v3 / tekken.json with mistral-common); write the folder with "
           "r1tui.data.tokenizer.write_published_tokenizer")
    if not exact:
        fix = f"AutoTokenizer loaded {loaded}, not MistralCommonBackend: {fix}"
    return Client(artefact=artefact, client="transformers AutoTokenizer + apply_chat_template", fix=fix,
                  encode=encode, piece=lambda token: _piece(prompt_tokenizer, token), loaded=loaded)


def _piece(tokenizer, token: int) -> str:
    try:
        return str(tokenizer.convert_ids_to_tokens(token))
    except Exception:  # noqa: BLE001 - only for display
        return "?"


def tokenizer_json(path: Path, spec: str, artefact: str) -> Client:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return Client(
        artefact=artefact, client="tokenizers (tokenizer.json)",
        fix="this tokenizer.json is not exact: publish none (published_tokenizer keeps one only where it is exact)",
        encode=lambda messages: tokenizer.encode(training_encoding(messages, spec)[1], add_special_tokens=False).ids,
        piece=lambda token: tokenizer.id_to_token(token) or "?")


def ollama(template: str, system: str, vocab: GgufVocab, artefact: str = "Modelfile") -> Client:
    from r1tui.export.gotemplate import ollama_messages, ollama_render

    def encode(messages: Conversation) -> list[int]:
        ids = vocab.tokenize(ollama_render(template, messages))
        return [vocab.bos, *ids] if vocab.add_bos else ids

    return Client(
        artefact=artefact, client=f"Ollama (TEMPLATE as Go renders it, tokenized by {vocab.path.name})",
        fix="fix r1tui.export.modelfile.ollama_template (or add_bos_token in the GGUF) and export again",
        encode=encode, piece=vocab.piece, messages=lambda messages: ollama_messages(messages, system),
        cannot=_ollama_cannot)


def _ollama_cannot(messages: Conversation) -> str | None:
    # mistral-common drops an answer's trailing spaces; Go templates have no function to do it.
    if any(m["role"] == "assistant" and m["content"].endswith(" ") for m in messages):
        return "an assistant message ends with spaces: Go templates cannot strip them as mistral-common does"
    return None

"""Mistral's own tokenizers, offline, from the files the mistral-common wheel ships.

- ``v3``: SentencePiece, vocab 32768 (Mistral-Small-Instruct-2409, the tiny model).
- ``tekken``: tiktoken-style BPE, vocab 131072 (Mistral Small 24B).
- or a folder holding ``tokenizer.model`` / ``tekken.json`` (a downloaded model).

``load_reference`` gives mistral-common's tokenizer in fine-tuning mode: the reference
every id we produce is checked against. ``save_hf_tokenizer`` writes a Hugging Face
tokenizer folder for a v3 model that transformers, llama.cpp's converter and
llama.cpp itself all tokenize identically (see the traps in the README).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from r1tui.errors import R1Error

BUILTIN_FILES = {
    "v3": "mistral_instruct_tokenizer_240323.model.v3",
    "tekken": "tekken_240911.json",
}

# Mistral v3 chat format as Jinja, for transformers and the GGUF's embedded template.
# Ids rendered through it equal mistral-common's (tested). A system prompt is put in
# front of the last user message, as mistral-common does for v3.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- set ns = namespace(last_user=-1) %}"
    "{%- for m in loop_messages %}{%- if m['role'] == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}"
    "{{- bos_token }}"
    "{%- for m in loop_messages %}"
    "{%- if m['role'] == 'user' %}"
    "{%- if loop.index0 == ns.last_user and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + m['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + m['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif m['role'] == 'assistant' %}{{- ' ' + m['content'] + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}"
)


def tokenizer_file(spec: str) -> Path:
    """The tokenizer file for a spec: a built-in name or a folder."""
    if spec in BUILTIN_FILES:
        import importlib.util

        package = importlib.util.find_spec("mistral_common")
        if package is None or package.origin is None:
            raise R1Error("mistral-common is not installed; run ./install.sh")
        path = Path(package.origin).parent / "data" / BUILTIN_FILES[spec]
        if not path.is_file():
            raise R1Error(f"tokenizer file {path.name} is missing from mistral-common; reinstall mistral-common==1.13.1")
        return path
    folder = Path(spec)
    for name in ("tekken.json", "tokenizer.model.v3", "tokenizer.model"):
        if (folder / name).is_file():
            return folder / name
    raise R1Error(f"model.tokenizer = {spec!r}: no tokenizer.model or tekken.json there; use v3, tekken or a model folder")


def is_tekken(spec: str) -> bool:
    return tokenizer_file(spec).suffix == ".json"


def load_reference(spec: str):
    """mistral-common's MistralTokenizer in fine-tuning mode (accepts a final assistant turn)."""
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.from_file(str(tokenizer_file(spec)), mode=ValidationMode.finetuning)


def save_hf_tokenizer(spec: str, folder: str | Path) -> Path:
    """Write a transformers tokenizer folder for a v3 SentencePiece tokenizer.

    Two traps are handled: transformers 5 never writes ``tokenizer.model`` (without it
    llama.cpp's converter falls back to tokenizer.json and loses the scores), and
    ``add_prefix_space`` must be false or llama.cpp adds a space after control tokens.
    """
    if is_tekken(spec):
        raise R1Error("a Hugging Face tokenizer folder is only built for v3 (SentencePiece) here; "
                      "for Tekken models use the tokenizer files that ship with the model")
    from transformers import LlamaTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = tokenizer_file(spec)
    with tempfile.TemporaryDirectory() as tmp:
        # transformers only converts a SentencePiece file whose name ends in .model
        shutil.copyfile(source, Path(tmp) / "tokenizer.model")
        hf = LlamaTokenizerFast.from_pretrained(tmp, add_bos_token=True, add_eos_token=False, legacy=False)
    hf.chat_template = CHAT_TEMPLATE
    hf.save_pretrained(folder)
    shutil.copyfile(source, folder / "tokenizer.model")
    config_path = folder / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config.update({"add_prefix_space": False, "add_bos_token": True, "add_eos_token": False})
    config_path.write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    return folder


def load_hf_tokenizer(folder: str | Path):
    """Load a folder written by ``save_hf_tokenizer`` (or a model's own tokenizer folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))

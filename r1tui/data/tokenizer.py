"""Mistral's own tokenizers, offline, from the files the mistral-common wheel ships.

- ``v3``: SentencePiece, vocab 32768 (Mistral-Small-Instruct-2409, the tiny model).
- ``tekken``: tiktoken-style BPE, vocab 131072, in the v3 format (Nemo's file as shipped).
- ``tekken-v7``: the same vocabulary in the v7 format (system prompts in place): Mistral
  Small 3.x (2501, 3.1, 3.2, Magistral Small 2506), derived by ``tekken_v7_file``.
- or a folder holding ``tokenizer.model`` / ``tekken.json`` (a downloaded model).

``load_text_tokenizer`` gives the plain text tokenizer the renderer encodes with: the
raw SentencePiece model for v2/v3/v7 files (fast: no mistral-common import, which
alone takes about 0.75 s) or mistral-common's Tekkenizer for Tekken files.
``load_reference`` gives mistral-common's tokenizer in fine-tuning mode: the reference
every id we produce is checked against. ``save_hf_tokenizer`` writes a Hugging Face
fast tokenizer folder for a v3 model (what training loads; llama.cpp's converter also
reads it right, see the traps in the README). transformers' fast tokenizer loaded from
that folder is *not* identical: it splits runs of spaces differently, so no training id
ever comes from it (the renderer makes them), and it is never published:
``published_tokenizer`` is what merged/ and the adapter repo carry, which
``AutoTokenizer`` loads as mistral-common itself.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from r1tui.calculator import PRESETS
from r1tui.config import Config, ConfigError, ModelConfig
from r1tui.errors import R1Error

BUILTIN_FILES = {
    "v3": "mistral_instruct_tokenizer_240323.model.v3",
    "tekken": "tekken_240911.json",
}
# Tekken as Mistral Small 3.x ships it (2501, 3.1 2503, 3.2 2506, Magistral Small 2506): the
# 131k vocabulary of tekken_240911.json in the v7 instruct format (system prompts in place as
# [SYSTEM_PROMPT]…[/SYSTEM_PROMPT]). mistral-common ships no v7 Tekken file and the Hub is not
# reachable offline, so ``tekken_v7_file`` derives one (docs/models.md says why it tokenizes
# like the published tekken.json, and what is left to risk).
TEKKEN_V7 = "tekken-v7"

# Mistral v3 chat format as Jinja, for transformers and the GGUF's embedded template.
# As mistral-common does it: every system message joined (blank line between) in front of
# the last user message, consecutive messages of one role merged with a blank line (empty
# ones add nothing; a
# system message between two user messages keeps them apart), and an empty [INST][/INST]
# in front of a conversation that starts with the assistant.
# The text it renders equals the text of the renderer's ids (tested on the parity
# samples and on these merges).
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='', turns=[], last_user=-1, previous='') %}"
    "{%- for m in messages %}"
    "{%- if m['role'] == 'system' %}"
    "{%- set ns.system = ns.system + ('\\n\\n' if ns.system and m['content'] else '') + m['content'] %}"
    "{%- elif ns.previous == m['role'] %}"
    "{%- set joined = ns.turns[-1]['content'] + ('\\n\\n' if ns.turns[-1]['content'] and m['content'] else '') + m['content'] %}"
    "{%- set ns.turns = ns.turns[:-1] + [{'role': m['role'], 'content': joined}] %}"
    "{%- else %}{%- set ns.turns = ns.turns + [{'role': m['role'], 'content': m['content']}] %}"
    "{%- endif %}"
    "{%- set ns.previous = m['role'] %}"
    "{%- endfor %}"
    "{%- if ns.turns and ns.turns[0]['role'] == 'assistant' %}"
    "{%- set ns.turns = [{'role': 'user', 'content': ''}] + ns.turns %}"
    "{%- endif %}"
    "{%- for t in ns.turns %}{%- if t['role'] == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}"
    "{{- bos_token }}"
    "{%- for t in ns.turns %}"
    "{%- if t['role'] == 'user' %}"
    "{%- set text = ns.system + '\\n\\n' + t['content'] if loop.index0 == ns.last_user and ns.system else t['content'] %}"
    "{{- '[INST]' + (' ' + text if text else '') + '[/INST]' }}"
    "{%- elif t['role'] == 'assistant' %}{{- ' ' + t['content'].rstrip(' ') + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}"
)


def tokenizer_spec(config: Config) -> str:
    """The concrete tokenizer of a config ("v3", "tekken" or a folder): ``model.tokenizer``,
    with "auto" taken as the tokenizer file ``model.path`` (or the folder of an architecture
    config.json) ships, else the preset's; a preset model refuses a tokenizer of the other
    family (its ids would not fit the model's embeddings). ConfigError in one line.

    The answer is written back to ``config.model.tokenizer``, so a run freezes the
    tokenizer it used and a reloaded run uses the same one."""
    spec = _resolve_spec(config.model, str(config.source_path) if config.source_path else "config")
    if config.model.tokenizer != spec:
        config.model.tokenizer = spec
    return spec


def _resolve_spec(model: ModelConfig, origin: str) -> str:
    """model.tokenizer as a concrete spec: "auto" becomes the tokenizer shipped in model.path
    (or next to an architecture config.json), else the preset's; a preset model refuses a
    tokenizer of the other family (its ids would not match the model's embeddings)."""
    preset = PRESETS.get(model.architecture)
    spec = model.tokenizer
    if spec == "auto":
        folders = [model.path] if model.path is not None else []
        if preset is None:
            folders.append(Path(model.architecture).parent)
        found = next((folder for folder in folders if find_tokenizer_file(folder) is not None), None)
        if found is None and preset is None:
            raise ConfigError(f"{origin}: model.tokenizer = 'auto' found no tokenizer.model or tekken.json in "
                              f"{' or '.join(str(f) for f in folders)}; set model.tokenizer to v3, tekken or a folder")
        spec = str(found) if found is not None else preset.tokenizer
    try:
        tekken = is_tekken(spec)
    except R1Error as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    if preset is not None and tekken != preset.tokenizer.startswith("tekken"):
        chosen = f"model.tokenizer = {spec!r}" if model.tokenizer != "auto" else f"the tokenizer in {spec}"
        raise ConfigError(f"{origin}: {chosen} is a {'Tekken' if tekken else 'SentencePiece'} tokenizer but "
                          f"architecture {model.architecture!r} uses {preset.tokenizer}; set model.tokenizer to "
                          f"\"{preset.tokenizer}\" (or \"auto\" without model.path), or model.architecture to "
                          "the model's config.json")
    return spec


def tokenizer_file(spec: str) -> Path:
    """The tokenizer file for a spec: a built-in name or a folder."""
    if spec == TEKKEN_V7:
        return tekken_v7_file()
    if spec in BUILTIN_FILES:
        import importlib.util

        package = importlib.util.find_spec("mistral_common")
        if package is None or package.origin is None:
            raise R1Error("mistral-common is not installed; run ./install.sh")
        path = Path(package.origin).parent / "data" / BUILTIN_FILES[spec]
        if not path.is_file():
            raise R1Error(f"tokenizer file {path.name} is missing from mistral-common; reinstall mistral-common==1.13.1")
        return path
    path = find_tokenizer_file(Path(spec))
    if path is None:
        raise R1Error(f"model.tokenizer = {spec!r}: no tokenizer.model or tekken.json there; "
                      "use v3, tekken or a model folder")
    return path


def tekken_v7_file() -> Path:
    """The v7 Tekken file of Mistral Small 3.x, derived once from mistral-common's
    ``tekken_240911.json`` into r1tui's cache (``$XDG_CACHE_HOME/r1tui``, else ``~/.cache/r1tui``).

    Two changes, nothing else: ``config.version`` becomes ``"v7"`` (mistral-common then
    encodes system prompts in place), and the ``image`` section goes (the image encoder's
    settings: text training never uses them). The vocabulary, the pre-tokenizer pattern and the
    1,000 special tokens stay as they are: the file lists none, so mistral-common uses its
    default table, in which ``[SYSTEM_PROMPT]`` is 17 and ``[/SYSTEM_PROMPT]`` 18. It gives the
    ids mistral-common records for the released Mistral Small 3.1 tekken.json
    (tests/data/test_render.py; docs/models.md for the residual risk)."""
    source = tokenizer_file("tekken")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "r1tui"
    target = cache / f"{source.stem}_v7.json"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    data = json.loads(source.read_text(encoding="utf-8"))
    data["config"]["version"] = "v7"
    data.pop("image", None)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise R1Error(f"cannot write the v7 Tekken tokenizer to {target} ({exc.strerror}); make {cache} "
                      "writable or set XDG_CACHE_HOME to a writable folder") from None
    return target


def find_tokenizer_file(folder: Path) -> Path | None:
    """The Mistral tokenizer file in a model folder, if it has one."""
    # Mistral's repos ship tekken.json or tokenizer.model.v<N>; a bare tokenizer.model is
    # what save_hf_tokenizer writes (a v3 file).
    candidates = [folder / "tekken.json", *sorted(folder.glob("tokenizer.model.v*")), folder / "tokenizer.model"]
    return next((path for path in candidates if path.is_file()), None)


def is_tekken(spec: str) -> bool:
    return tokenizer_file(spec).suffix == ".json"


class TextTokenizer(Protocol):
    """What the renderer needs from a tokenizer: plain text in, ids out, control ids by name."""

    spec: str
    version: str  # the instruct format version: "v2", "v3", "v7", ...
    vocab_size: int
    bos_id: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def encode_with_byte_ends(self, text: str) -> tuple[list[int], list[int]]: ...

    def control_id(self, name: str) -> int: ...

    def is_control(self, token_id: int) -> bool: ...

    def piece(self, token_id: int) -> str: ...


class SentencePieceText:
    """Mistral's SentencePiece tokenizers (v2, v3, v7) read with the sentencepiece package.

    ``encode`` is exactly what mistral-common's ``SentencePieceTokenizer.encode`` does
    (``SentencePieceProcessor.encode`` with no BOS/EOS), without importing mistral-common.
    """

    def __init__(self, path: Path, version: str, spec: str):
        import sentencepiece

        self.spec = spec
        self.path = path
        self.version = version
        self._model = sentencepiece.SentencePieceProcessor(model_file=str(path))
        self.vocab_size = self._model.get_piece_size()
        self.bos_id = self._model.bos_id()
        self.eos_id = self._model.eos_id()

    def encode(self, text: str) -> list[int]:
        return self._model.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._model.encode(texts) if texts else []

    def encode_with_byte_ends(self, text: str) -> tuple[list[int], list[int]]:
        """Ids plus, for each token, the UTF-8 byte offset in ``text`` where it ends."""
        proto = self._model.encode(text, return_type="proto")
        return [p.id for p in proto.pieces], [p.end for p in proto.pieces]

    def control_id(self, name: str) -> int:
        token_id = self._model.piece_to_id(name)
        if token_id == self._model.unk_id() or not self._model.is_control(token_id):
            raise R1Error(f"tokenizer {self.path.name} has no control token {name}; is it a Mistral instruct tokenizer?")
        return token_id

    def is_control(self, token_id: int) -> bool:
        return bool(self._model.is_control(token_id)) or token_id == self._model.unk_id()

    def piece(self, token_id: int) -> str:
        """The text a token stands for ("▁" shown as a space, byte tokens as their character)."""
        piece = self._model.id_to_piece(token_id)
        if self._model.is_byte(token_id):
            value = int(piece[3:-1], 16)
            return chr(value) if value < 0x80 else piece
        return piece.replace("\u2581", " ")


class TekkenText:
    """Mistral's Tekken tokenizers through mistral-common's own Tekkenizer."""

    def __init__(self, path: Path, spec: str):
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        self.spec = spec
        self.path = path
        self._tekken = Tekkenizer.from_file(path)
        self.version = self._tekken.version.value
        self.vocab_size = self._tekken.n_words
        self.bos_id = self._tekken.bos_id
        self.eos_id = self._tekken.eos_id
        self._num_special = self._tekken.num_special_tokens

    def encode(self, text: str) -> list[int]:
        return self._tekken.encode(text, bos=False, eos=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self._tekken.encode(text, bos=False, eos=False) for text in texts]

    def encode_with_byte_ends(self, text: str) -> tuple[list[int], list[int]]:
        ids = self.encode(text)
        ends, position = [], 0
        for token_id in ids:
            position += len(self._tekken.id_to_byte_piece(token_id))
            ends.append(position)
        return ids, ends

    def control_id(self, name: str) -> int:
        try:
            return self._tekken.get_special_token(name)
        except Exception:  # noqa: BLE001 - mistral-common raises several types here
            raise R1Error(f"tokenizer {self.path.name} has no control token {name}; is it a Mistral instruct tokenizer?") from None

    def is_control(self, token_id: int) -> bool:
        return token_id < self._num_special

    def piece(self, token_id: int) -> str:
        if token_id < self._num_special:
            return self._tekken.id_to_piece(token_id)
        return self._tekken.id_to_byte_piece(token_id).decode("utf-8", errors="replace")


def _sentencepiece_version(path: Path) -> str:
    """mistral-common's rule: the version is the file suffix (``tokenizer.model.v3``).

    A bare ``tokenizer.model`` (what ``save_hf_tokenizer`` writes beside the HF files)
    is read as v3: r1tui only ever writes v3 files under that name.
    """
    suffix = path.name.rsplit(".", 1)[-1]
    if suffix == "model":
        return "v3"
    return suffix.split("m")[0]


@functools.lru_cache(maxsize=8)
def load_text_tokenizer(spec: str) -> SentencePieceText | TekkenText:
    """The text tokenizer for a spec, loaded once per process."""
    path = tokenizer_file(spec)
    if path.suffix == ".json":
        return TekkenText(path, spec)
    return SentencePieceText(path, _sentencepiece_version(path), spec)


def load_reference(spec: str):
    """mistral-common's MistralTokenizer in fine-tuning mode (accepts a final assistant turn)."""
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    path = tokenizer_file(spec)
    if path.name == "tokenizer.model":
        # mistral-common reads a bare tokenizer.model as v1; r1tui only writes v3 files under
        # that name (save_hf_tokenizer), so hand it over under its versioned name.
        with tempfile.TemporaryDirectory() as tmp:
            versioned = Path(tmp) / "tokenizer.model.v3"
            shutil.copyfile(path, versioned)
            return MistralTokenizer.from_file(str(versioned), mode=ValidationMode.finetuning)
    return MistralTokenizer.from_file(str(path), mode=ValidationMode.finetuning)


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


# ---------------------------------------------------------------- the tokenizer r1tui publishes

# transformers 5 picks its MistralCommonBackend (mistral-common itself: exact ids) only for a
# folder with tekken.json; tokenizer_class makes AutoTokenizer pick it for a SentencePiece
# file too, and for a folder without config.json (the adapter). The converter reads
# add_prefix_space and add_bos_token from the same file (see the traps above).
PUBLISHED_TOKENIZER_CONFIG = {
    "tokenizer_class": "MistralCommonBackend",
    "add_bos_token": True,
    "add_eos_token": False,
    "add_prefix_space": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
}
# What a tokenizer folder may hold (r1tui's, training's, or a Mistral repo's).
TOKENIZER_FILE_NAMES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "tekken.json", "chat_template.jinja", "chat_template.json")


def is_tokenizer_file(name: str) -> bool:
    return name in TOKENIZER_FILE_NAMES or name.startswith("tokenizer.model.v")


def published_tokenizer(spec: str) -> dict[str, Path | bytes]:
    """The tokenizer files r1tui publishes beside a model (merged/, the adapter repo):
    file name -> a file to copy or the bytes to write.

    Every loader reads exactly the training tokenizer: ``AutoTokenizer`` gets
    ``MistralCommonBackend`` (mistral-common's own encoder) from ``tokenizer_class``;
    SentencePiece: ``tokenizer.model.v3`` for mistral-common and the same file as
    ``tokenizer.model`` for llama.cpp's converter (no ``tokenizer.json``: transformers'
    fast SentencePiece conversion splits runs of spaces unlike SentencePiece); Tekken:
    ``tekken.json``, and the ``tokenizer.json`` transformers converts from it (exact:
    checked by parity), which the converter reads. ``chat_template.jinja`` is the training
    format (v3: ``CHAT_TEMPLATE``; Tekken: mistral-common's template for the file).
    """
    path = tokenizer_file(spec)
    config = json.dumps(PUBLISHED_TOKENIZER_CONFIG, indent=2).encode("utf-8")
    if path.suffix == ".json":
        tokenizer_json, template = _tekken_hf_files(str(path))
        return {"tekken.json": path, "tokenizer.json": tokenizer_json, "tokenizer_config.json": config,
                "chat_template.jinja": template}
    suffix = path.name.rsplit(".", 1)[-1]
    versioned = f"tokenizer.model.{_sentencepiece_version(path) if suffix == 'model' else suffix}"
    return {versioned: path, "tokenizer.model": path, "tokenizer_config.json": config,
            "chat_template.jinja": CHAT_TEMPLATE.encode("utf-8")}


@functools.lru_cache(maxsize=2)
def _tekken_hf_files(path: str) -> tuple[bytes, bytes]:
    """(tokenizer.json, chat template) for a tekken.json: transformers' conversion and
    mistral-common's template (not a template lying beside the file: a model folder's own
    may add a default system prompt that training never saw)."""
    from mistral_common.integrations.chat_templates.chat_templates import (
        convert_tokenizer_to_chat_template,
    )
    from tokenizers import processors
    from transformers.integrations.mistral import convert_tekken_tokenizer

    # mistral-common's encoder drops an answer's trailing spaces; its generated template
    # does not (checked by parity), so the answer's text is stripped there too.
    template = re.sub(r"(render_content\(content=message\['content'\], context_name='assistant message contents'[^)]*\))",
                      r"\1.rstrip(' ')", convert_tokenizer_to_chat_template(path))
    backend = convert_tekken_tokenizer(path, chat_template=template).backend_tokenizer
    # BOS in front, as mistral-common encodes; the converter reads add_bos_token from this
    # post-processor (tokenizer_config.json's add_bos_token loses to it).
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]),
    ])
    return backend.to_str().encode("utf-8"), template.encode("utf-8")


def write_published_tokenizer(spec: str, folder: str | Path) -> list[Path]:
    """Write ``published_tokenizer(spec)`` into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in published_tokenizer(spec).items():
        target = folder / name
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
        written.append(target)
    return written


@functools.lru_cache(maxsize=4)
def _spm(path: str):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=path)


@functools.lru_cache(maxsize=4)
def _tekken(path: str):
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    return Tekkenizer.from_file(path)


def ids_to_text(ids: list[int], spec: str) -> str:
    """The exact text a list of training ids spells, special tokens written out."""
    path = tokenizer_file(spec)
    out = bytearray()
    if path.suffix == ".json":
        tekken = _tekken(str(path))
        for token in ids:
            if token < tekken.num_special_tokens:
                out += tekken.id_to_piece(token).encode("utf-8")
            else:
                out += tekken.id_to_byte_piece(token)
        return out.decode("utf-8", errors="replace")
    processor = _spm(str(path))
    for token in ids:
        piece = processor.id_to_piece(token)
        if processor.is_byte(token):
            out.append(int(piece[3:-1], 16))
        elif processor.is_control(token) or processor.is_unknown(token):
            out += piece.encode("utf-8")
        else:
            out += piece.replace("\u2581", " ").encode("utf-8")
    return out.decode("utf-8", errors="replace")

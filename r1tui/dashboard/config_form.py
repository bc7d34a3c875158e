"""The config editor's plain half: which keys the form edits, how a field's text becomes a
TOML value, how the whole form is validated, and how the file is written back.

No Textual here. A form is a ``tomlkit`` document (the file as read, comments and key
order kept) plus the text of each field. ``validate`` applies the fields to a copy of the
document and runs it through ``r1tui.config.parse_config``, the function that loads every
``config.toml``: an invalid value fails with the very line loading the file would print,
and ``field_of`` says which field that line names. ``render`` gives the new file's text
(only the edited values differ); the panel writes it with ``r1tui.runs.files.write_text_atomic``
(a temporary sibling, then a rename), and only once ``validate`` passed.
"""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.items import Item

from r1tui.config import ARCHITECTURES, Config, is_local_source, parse_config
from r1tui.errors import ConfigError

Kind = Literal["text", "int", "float", "bool", "choice", "list", "path"]


@dataclass(frozen=True)
class FieldSpec:
    """One key of the form: ``section.name``, how it is edited, and a one-line hint."""

    key: str
    kind: Kind
    hint: str = ""
    choices: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def widget_id(self) -> str:
        return "field-" + self.key.replace(".", "-")


def _literal_choices(section: str, name: str) -> tuple[str, ...]:
    """The values a ``Literal`` key allows, read from the config model itself (one home)."""
    annotation = Config.model_fields[section].annotation.model_fields[name].annotation
    return tuple(str(a) for a in typing.get_args(annotation) if isinstance(a, str))


def _spec(key: str, kind: Kind, hint: str = "", choices: tuple[str, ...] = ()) -> FieldSpec:
    if kind == "choice" and not choices:
        choices = _literal_choices(*key.split(".", 1))
    return FieldSpec(key, kind, hint, choices)


# The keys people change before a run (issue 22), grouped as the file groups them.
FIELDS: tuple[FieldSpec, ...] = (
    _spec("model.name", "text", "Hub id of the base model"),
    _spec("model.path", "path", "local weights folder; empty: the Hub id"),
    _spec("model.architecture", "choice", "preset (or a config.json path in the file)", ARCHITECTURES),
    _spec("model.max_seq_length", "int", "tokens per training sequence"),
    _spec("model.load_in_4bit", "bool", "QLoRA: the base in 4-bit NF4"),
    _spec("lora.r", "int", "LoRA rank"),
    _spec("lora.alpha", "int", "LoRA alpha"),
    _spec("lora.dropout", "float", "0 ≤ dropout < 1"),
    _spec("lora.target_modules", "list", "comma-separated projections"),
    _spec("train.backend", "choice", "auto: Unsloth on a CUDA GPU, else hf"),
    _spec("train.learning_rate", "float", "e.g. 2e-4"),
    _spec("train.lr_scheduler", "choice"),
    _spec("train.per_device_batch_size", "int"),
    _spec("train.gradient_accumulation_steps", "int"),
    _spec("train.epochs", "float"),
    _spec("train.max_steps", "int", "-1: train for epochs"),
    _spec("train.save_steps", "int", "checkpoint interval"),
    _spec("data.source", "text", "synthetic | a .jsonl/.parquet | hf:<dataset>"),
    _spec("data.num_examples", "int", "rows (a cap on files)"),
    _spec("data.eval_rows", "int", "held out for the validation loss"),
    _spec("data.system_prompt", "text"),
    _spec("data.train_on", "choice", "assistant turns trained on"),
    _spec("data.mask_think", "bool", "no loss on the think block"),
    _spec("data.overlong", "choice", "rows over max_seq_length"),
    _spec("export.quant_types", "list", "comma-separated, e.g. Q4_K_M, Q8_0"),
    _spec("hub.repo_id", "text", "HF_REPO_ID overrides"),
    _spec("hub.private", "bool", "a private repo"),
    _spec("eval.source", "text", "synthetic | a file | hf:<dataset> | gsm8k …"),
    _spec("eval.num_samples", "int", "questions"),
)
FIELD_BY_KEY = {spec.key: spec for spec in FIELDS}

# Values that are paths relative to the config file (``parse_config`` resolves them so):
# "Save as" into another folder rewrites them to keep pointing at the same place.
PATH_KEYS = ("model.path", "export.llama_cpp_dir", "runs.dir")
SOURCE_KEYS = ("data.source", "eval.source", "teacher.prompts")


def current_text(document: tomlkit.TOMLDocument, spec: FieldSpec, defaults: Config) -> str:
    """What a field shows: the file's value (a number as spelled there: ``2e-4``), else the
    built-in default."""
    section = document.get(spec.section)
    item = section.get(spec.name) if isinstance(section, dict) else None
    if spec.kind in ("int", "float") and isinstance(item, Item) and isinstance(item.unwrap(), (int, float)):
        return item.as_string().strip()
    value = item.unwrap() if isinstance(item, Item) else item
    if value is None:
        value = getattr(getattr(defaults, spec.section), spec.name)
    return format_value(spec, value)


def format_value(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.kind == "bool":
        return "true" if value else "false"
    if spec.kind == "list":
        return ", ".join(str(v) for v in value)
    return str(value)


def parse_text(spec: FieldSpec, text: str) -> Any:
    """A field's text as the TOML value it stands for. Text that is no number stays text:
    the config's own validation then says what is wrong, in the words loading would use.
    ``None`` removes the key (an empty path: the default)."""
    text = text.strip()
    if spec.kind == "bool":
        return text.lower() in ("true", "1", "yes", "on")
    if spec.kind == "int":
        try:
            return int(text.replace("_", ""))
        except ValueError:
            return text
    if spec.kind == "float":
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return text
    if spec.kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    if spec.kind == "path":
        return text or None
    return text


@dataclass
class Validation:
    """The form checked as a whole: the config it gives, else the error and the field it names."""

    config: Config | None
    error: str | None = None
    key: str | None = None  # the key the error names, when it is one of FIELDS
    data: dict[str, Any] = field(default_factory=dict)


def field_of(message: str) -> str | None:
    """The form key a config error names: ``origin: section.key = value: why`` (or ``unknown
    key 'section.key'``); None when it names none of the form's keys."""
    said = message.split(": ", 1)[-1]
    found = [(match.start(), spec.key) for spec in FIELDS
             if (match := re.search(rf"(^|[\s'\"]){re.escape(spec.key)}(?![\w.])", said))]
    return min(found)[1] if found else None  # the key named first is the one at fault


class ConfigForm:
    """A config file being edited: the parsed document and the fields' texts."""

    def __init__(self, text: str, path: Path | None) -> None:
        self.path = path  # None: built-in defaults (only "Save as" can write it)
        self.original = text
        self.document = tomlkit.parse(text)
        defaults = Config()
        self.texts: dict[str, str] = {spec.key: current_text(self.document, spec, defaults) for spec in FIELDS}
        self.initial = dict(self.texts)

    @classmethod
    def load(cls, path: Path | None) -> ConfigForm:
        text = path.read_text(encoding="utf-8") if path is not None and path.is_file() else ""
        return cls(text, path)

    @property
    def changed(self) -> list[str]:
        return [key for key, text in self.texts.items() if text != self.initial[key]]

    def set(self, key: str, text: str) -> None:
        self.texts[key] = text

    @property
    def base_dir(self) -> Path:
        return (self.path.resolve().parent if self.path is not None else Path.cwd())

    def edited_document(self, target_dir: Path | None = None) -> tomlkit.TOMLDocument:
        """The document with every changed field applied; keys not in the form untouched.
        ``target_dir``: the folder it will be saved in, when that is not the file's own
        (relative paths are rewritten to point at the same places from there)."""
        document = tomlkit.parse(tomlkit.dumps(self.document))
        for key in self.changed:
            spec = FIELD_BY_KEY[key]
            _assign(document, spec, parse_text(spec, self.texts[key]), self.texts[key])
        if target_dir is not None and target_dir.resolve() != self.base_dir:
            rebase_paths(document, self.base_dir, target_dir.resolve())
        return document

    def validate(self, target_dir: Path | None = None) -> Validation:
        """The form through ``parse_config`` (the loader of every config.toml)."""
        document = self.edited_document(target_dir)
        data = document.unwrap()
        origin = str(self.path) if self.path is not None else "config"
        try:
            config = parse_config(data, origin=origin, base_dir=(target_dir or self.base_dir).resolve())
        except ConfigError as exc:
            message = str(exc)
            return Validation(None, message, field_of(message), data)
        config.source_path = self.path.resolve() if self.path is not None else None
        return Validation(config, None, None, data)

    def render(self, target_dir: Path | None = None) -> str:
        """The new file's text: the original with only the changed values different."""
        return tomlkit.dumps(self.edited_document(target_dir))

    def saved(self, path: Path, text: str) -> None:
        """The file now holds ``text``: edits from here on are against it."""
        self.path = path
        self.original = text
        self.document = tomlkit.parse(text)
        self.initial = dict(self.texts)


def _assign(document: tomlkit.TOMLDocument, spec: FieldSpec, value: Any, typed: str) -> None:
    table = document.get(spec.section)
    if table is None:
        table = tomlkit.table()
        document.add(spec.section, table)
    old = table.get(spec.name)
    if value is None:
        if spec.name in table:
            del table[spec.name]
        return
    item = _item(value, typed.strip(), spec)
    if isinstance(old, Item):  # keep the line's comment and its spacing
        item.trivia.indent = old.trivia.indent
        item.trivia.comment_ws = old.trivia.comment_ws
        item.trivia.comment = old.trivia.comment
        item.trivia.trail = old.trivia.trail
    table[spec.name] = item


def _item(value: Any, typed: str, spec: FieldSpec) -> Item:
    """A TOML item for ``value``; a number keeps the spelling typed (``2e-4`` stays 2e-4)."""
    if spec.kind in ("int", "float") and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = tomlkit.parse(f"v = {typed}")["v"]
        except Exception:  # noqa: BLE001 - Python accepted a spelling TOML does not (e.g. "1_0.5"): plain form
            parsed = None
        if isinstance(parsed, Item) and parsed.unwrap() == value and type(parsed.unwrap()) is type(value):
            return parsed
        if spec.kind == "float" and isinstance(value, int):
            value = float(value)  # "1" in a float field: written 1.0, as the config's default reads
    return tomlkit.item(value)


def rebase_paths(document: tomlkit.TOMLDocument, old_dir: Path, new_dir: Path) -> None:
    """Relative paths in ``document`` are relative to ``old_dir``; rewrite them so they name
    the same places from ``new_dir`` (a config saved as configs/x.toml keeps its data)."""

    def moved(value: str) -> str:
        if os.path.isabs(value):
            return value
        return os.path.relpath(old_dir / value, new_dir)

    for key in PATH_KEYS + SOURCE_KEYS + ("model.tokenizer", "model.architecture"):
        section, name = key.split(".", 1)
        table = document.get(section)
        if table is None or name not in table:
            continue
        value = table[name]
        if not isinstance(value, str):
            continue
        if key in SOURCE_KEYS and not is_local_source(str(value)):
            continue
        if key == "model.tokenizer" and value in ("auto", "v3", "tekken", "tekken-v7"):
            continue
        if key == "model.architecture" and not str(value).endswith(".json"):
            continue
        old = table[name]
        new = tomlkit.item(moved(str(value)))
        new.trivia.comment_ws, new.trivia.comment = old.trivia.comment_ws, old.trivia.comment
        table[name] = new


def diff(old: str, new: str, name: str) -> str:
    """A unified diff of the file before and after (what the save dialog shows)."""
    import difflib

    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"{name} (on disk)", tofile=f"{name} (to write)"))


CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def save_as_path(name: str, folder: Path) -> Path:
    """``configs/<name>.toml`` for "Save as"; one line naming what is wrong otherwise."""
    name = name.strip().removesuffix(".toml")
    if not CONFIG_NAME.match(name):
        raise ConfigError(f"{name!r}: not a config name; use letters, digits, '.', '_' or '-' "
                          "(it is saved as configs/<name>.toml)")
    path = folder / f"{name}.toml"
    if path.exists():
        raise ConfigError(f"{path}: already exists; pick another name, or open it and save")
    return path

"""Keep eval prompts out of training: word n-gram overlap, as open-r1 and s1 check it.

A training prompt that shares one word n-gram (``decontaminate.ngram``, 8 by default, the
size open-r1's ``scripts/decontaminate.py`` uses) with a prompt of any eval set is
dropped. Both sides are normalised alike: Unicode NFKC, lower case, every character
that is not a letter or a digit (punctuation, symbols, ``_``: ``.,?!$%+=^{}\\``…)
replaced by a space, split on whitespace. So "What is 2+3?" and "what is 2 + 3" are the
same words (open-r1 only lower-cases and splits on whitespace).

A prompt shorter than n words has no n-gram: it is compared whole, and matches a prompt
whose normalised words are the same.

The eval sets checked: the configured one (``eval.source`` through
``r1tui.eval.sets.load_eval_set``: the synthetic held-out set for ``eval.seed``, a local
``.jsonl``, or ``hf:<dataset>``), every file in ``decontaminate.against`` and every extra
file given (``--against``). Those files may be ``.jsonl``, ``.json`` or ``.parquet`` with a
question (``question``, ``problem``, ``prompt``, ``input``, any case) or ``messages``, or a
``hf:<dataset>`` read like an eval source. The answers are not needed.

One caution, measured: the synthetic generator writes its problems from templates, so
synthetic training rows share 8-word phrases with the synthetic eval set ("at the same
moment another train leaves …"): 1,249 of the default 2,000 match. The generator's hash partitions,
not this check, are what keep those two sets apart.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.config import is_local_source
from r1tui.data.sources import Example, MalformedRow, iter_local_rows
from r1tui.errors import R1Error
from r1tui.eval.sets import load_eval_set
from r1tui.generate.rows import iter_source_rows, prompt_text

if TYPE_CHECKING:
    from r1tui.config import Config

log = logging.getLogger(__name__)

# Rows read from a local or Hub eval source given as an eval set: all of them, not eval.num_samples.
WHOLE_SET = 1_000_000


_NOT_A_WORD = re.compile(r"[\W_]+")


def normalize_words(text: str) -> list[str]:
    """Lower-cased words: everything but letters and digits is a space (see the module docstring)."""
    return _NOT_A_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()


@dataclass(frozen=True)
class Match:
    eval_set: str
    eval_id: str
    ngram: str  # the shared words, joined by spaces


class NgramIndex:
    """Every n-gram of the eval prompts, with the first eval prompt of each set it came from."""

    def __init__(self, n: int):
        self.n = n
        # n-gram (or the whole text of a prompt shorter than n words) -> {eval set: eval id}
        self._grams: dict[str, dict[str, str]] = {}
        self.sizes: dict[str, int] = {}  # eval set -> prompts indexed

    def _keys(self, words: list[str]) -> list[str]:
        if len(words) < self.n:
            return [" ".join(words)] if words else []
        return [" ".join(words[i:i + self.n]) for i in range(len(words) - self.n + 1)]

    def add(self, eval_set: str, eval_id: str, text: str) -> None:
        self.sizes[eval_set] = self.sizes.get(eval_set, 0) + 1
        for key in self._keys(normalize_words(text)):
            self._grams.setdefault(key, {}).setdefault(eval_set, eval_id)

    def matches(self, text: str) -> dict[str, Match]:
        """{eval set: its first match} for a training prompt ({} when it is clean)."""
        found: dict[str, Match] = {}
        for key in self._keys(normalize_words(text)):
            for eval_set, eval_id in self._grams.get(key, {}).items():
                found.setdefault(eval_set, Match(eval_set, eval_id, key))
        return found

    def __len__(self) -> int:
        return len(self._grams)


@dataclass(frozen=True)
class Dropped:
    index: int  # the row's position among the rows given
    prompt: str  # its first 160 characters
    eval_set: str  # the first eval set it matched
    eval_id: str
    ngram: str
    eval_sets: list[str]  # every eval set it matched


@dataclass
class DecontaminationReport:
    ngram: int
    eval_sets: dict[str, int]  # eval set -> prompts indexed
    kept: list[Any] = field(default_factory=list)  # the clean rows, as given
    dropped: list[Dropped] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # eval set -> training rows that matched it
    rows_read: int = 0
    no_prompt: int = 0  # rows without a prompt: kept, nothing to compare
    malformed: dict[str, int] = field(default_factory=dict)  # rows a source could not read, by reason

    def to_json(self) -> dict[str, Any]:
        """The report without the kept rows (they go to the output file)."""
        return {
            "ngram": self.ngram,
            "eval_sets": self.eval_sets,
            "rows_read": self.rows_read,
            "kept": len(self.kept),
            "dropped": len(self.dropped),
            "counts": self.counts,
            "no_prompt": self.no_prompt,
            "malformed": self.malformed,
            "dropped_rows": [vars(d) for d in self.dropped],
        }


def eval_set_name(source: str, seed: int | None = None) -> str:
    if source == "synthetic":
        return f"synthetic (eval.seed {seed})"
    return Path(source).name if is_local_source(source) else source


def build_index(config: Config, against: Iterable[str | Path] = (), *, ngram: int | None = None,
                include_eval: bool = True) -> NgramIndex:
    """The n-gram index of the configured eval set, ``decontaminate.against`` and ``against``."""
    index = NgramIndex(ngram or config.decontaminate.ngram)
    if include_eval:
        source = config.eval.source
        whole = None if source == "synthetic" else WHOLE_SET
        loaded = load_eval_set(config, num_samples=whole)
        name = eval_set_name(loaded["source"], loaded.get("seed"))
        for row in loaded["rows"]:
            index.add(name, str(row["id"]), row["question"])
    configured = [_relative_to_config(config, p) for p in config.decontaminate.against]
    for path in dict.fromkeys([*configured, *(str(p) for p in against)]):
        _add_file(index, config, path)
    return index


def _relative_to_config(config: Config, source: str) -> str:
    """A ``decontaminate.against`` file is relative to the config file, as every path in it."""
    if not is_local_source(source) or Path(source).expanduser().is_absolute():
        return source
    base = config.source_path.parent if config.source_path else Path.cwd()
    return str((base / source).resolve())


def _add_file(index: NgramIndex, config: Config, source: str) -> None:
    if not is_local_source(source):
        loaded = load_eval_set(config, source=source, num_samples=WHOLE_SET if source != "synthetic" else None)
        name = eval_set_name(loaded["source"], loaded.get("seed"))
        for row in loaded["rows"]:
            index.add(name, str(row["id"]), row["question"])
        return
    path = Path(source).expanduser()
    if not path.is_file():
        raise R1Error(f"decontaminate against {source}: file not found; give a .jsonl/.json/.parquet of prompts "
                      "(question or messages), hf:<dataset> or a standard set ({', '.join(STANDARD_EVAL_SETS)})")
    name, before = path.name, index.sizes.get(path.name, 0)
    unusable = 0
    for number, raw in enumerate(iter_local_rows(path), start=1):
        text = None if isinstance(raw, MalformedRow) or not isinstance(raw, Mapping) else prompt_text(raw)
        if text is None:
            unusable += 1
            continue
        row_id = raw.get("id", f"{path.stem}-{number}")
        index.add(name, str(row_id), text)
    if unusable:
        log.warning("%s: %d rows without a readable prompt were not indexed", path, unusable)
    if index.sizes.get(name, 0) == before:
        raise R1Error(f"decontaminate against {path}: no prompts found; each row needs a question "
                      "(question/problem/prompt/input) or messages with a user turn")


def decontaminate_rows(config: Config, rows: Iterable[Mapping[str, Any] | Example], against: Iterable[str | Path] = (),
                       *, ngram: int | None = None, include_eval: bool = True,
                       index: NgramIndex | None = None) -> DecontaminationReport:
    """Split ``rows`` (dicts with a question or messages, or Examples) into kept and dropped.

    The index is built from the configured eval set, ``decontaminate.against`` and
    ``against`` unless one is given. A row without a prompt is kept and counted."""
    index = index or build_index(config, against, ngram=ngram, include_eval=include_eval)
    return _split(index, ((row, prompt_text(row)) for row in rows))


def _split(index: NgramIndex, rows: Iterable[tuple[Any, str | None]]) -> DecontaminationReport:
    report = DecontaminationReport(ngram=index.n, eval_sets=dict(index.sizes))
    counts: Counter = Counter()
    for position, (row, prompt) in enumerate(rows):
        report.rows_read += 1
        found = index.matches(prompt) if prompt is not None else {}
        if prompt is None:
            report.no_prompt += 1
        if not found:
            report.kept.append(row)
            continue
        first = next(iter(found.values()))
        counts.update(found.keys())
        report.dropped.append(Dropped(position, prompt[:160], first.eval_set, first.eval_id, first.ngram,
                                      sorted(found)))
    report.counts = {name: counts.get(name, 0) for name in report.eval_sets}
    return report


def decontaminate_source(config: Config, source: str, against: Iterable[str | Path] = (), *,
                         ngram: int | None = None) -> DecontaminationReport:
    """``decontaminate_rows`` over every row of a data source (``r1tui.generate.rows``, which
    applies ``data.fields``): ``kept`` holds the rows to write back, unreadable rows are
    counted under ``malformed`` and ``dropped`` indexes are positions in the source."""
    index = build_index(config, against, ngram=ngram)
    malformed: Counter = Counter()
    usable: list[tuple[dict[str, Any], str | None]] = []
    positions: list[int] = []
    for item in iter_source_rows(config, source):
        if item.row is None:
            malformed[item.malformed or "malformed"] += 1
            continue
        usable.append((item.row, item.prompt))
        positions.append(item.index)
    report = _split(index, usable)
    report.dropped = [Dropped(**{**vars(d), "index": positions[d.index]}) for d in report.dropped]
    report.rows_read += sum(malformed.values())
    report.malformed = dict(sorted(malformed.items()))
    return report

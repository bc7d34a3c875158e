"""Rows of any data source, each with its prompt, its conversation and its domain.

``decontaminate`` and ``curate`` read their input through this, so they work on every
source r1tui reads (``r1tui.data.sources``) and write back what they read:

- a local ``.jsonl`` / ``.json`` / ``.parquet`` file: every row, as it is in the file (extra
  keys such as ``pass_rate`` and ``tokens`` from ``r1tui generate`` survive), with
  ``data.fields`` applied to find its prompt and conversation;
- ``synthetic``: ``data.num_examples`` rows of the generator for ``data.seed``;
- ``hf:<dataset>``: at most ``data.num_examples`` rows through the adapters, written as
  ``{"messages", "domain"}``.

A row's prompt is its user turns (``messages`` / ShareGPT ``conversations``), else its
``question`` (also read as ``problem``, ``prompt``, ``input``). A row with no prompt is
counted as malformed, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r1tui.data.sources import (
    UNKNOWN_DOMAIN,
    Example,
    MalformedRow,
    canonical_example,
    iter_examples,
    iter_local_rows,
    parse_source,
)

if TYPE_CHECKING:
    from r1tui.config import Config

QUESTION_KEYS = ("question", "problem", "prompt", "input")


@dataclass
class SourceRow:
    index: int  # position in the source, from 0
    row: dict[str, Any] | None  # what is written back (None: malformed)
    prompt: str | None
    domain: str
    messages: list[dict[str, str]] | None  # the training conversation, when the row has one
    malformed: str | None = None  # the reason, for a row that cannot be used


def prompt_text(row: Mapping[str, Any] | Example) -> str | None:
    """The prompt of a row: its user turns joined by a blank line, else its question."""
    messages = row.messages if isinstance(row, Example) else row.get("messages", row.get("conversations"))
    if isinstance(messages, list):
        users = [m.get("content", m.get("value")) for m in messages
                 if isinstance(m, Mapping) and m.get("role", m.get("from")) in ("user", "human")]
        text = "\n\n".join(u for u in users if isinstance(u, str) and u.strip())
        return text or None
    if isinstance(row, Example):
        return None
    lowered = {str(key).lower(): value for key, value in row.items()}
    for key in QUESTION_KEYS:
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _mapped(row: Mapping[str, Any], fields: Mapping[str, str] | None) -> dict[str, Any]:
    if not fields:
        return dict(row)
    mapped = dict(row)
    for canonical, column in fields.items():
        if column in row:
            mapped[canonical] = row[column]
    return mapped


def iter_source_rows(config: Config, source: str) -> Iterator[SourceRow]:
    """Every row of ``source`` (see the module docstring), lazily."""
    kind, name, _ = parse_source(source)
    fields = config.data.fields
    if kind == "local":
        for index, raw in enumerate(iter_local_rows(name)):
            if isinstance(raw, MalformedRow):
                yield SourceRow(index, None, None, UNKNOWN_DOMAIN, None, raw.reason)
                continue
            if not isinstance(raw, Mapping):
                yield SourceRow(index, None, None, UNKNOWN_DOMAIN, None, "wrong_type")
                continue
            mapped = _mapped(raw, fields)
            try:
                example: Example | None = canonical_example(raw, fields)
            except MalformedRow:
                example = None  # a prompt without a trace still has a prompt
            prompt = prompt_text(mapped)
            domain = example.domain if example is not None else _domain(mapped.get("domain"))
            yield SourceRow(index, dict(raw), prompt, domain, example.messages if example else None,
                            None if prompt else "no_prompt")
        return
    for index, item in enumerate(iter_examples(source, split=config.data.split, fields=fields,
                                               num_examples=config.data.num_examples, seed=config.data.seed)):
        if isinstance(item, MalformedRow):
            yield SourceRow(index, None, None, UNKNOWN_DOMAIN, None, item.reason)
            continue
        prompt = prompt_text(item)
        row = {"messages": item.messages, "domain": item.domain}
        yield SourceRow(index, row, prompt, item.domain, item.messages, None if prompt else "no_prompt")


def _domain(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) and value.strip() else UNKNOWN_DOMAIN

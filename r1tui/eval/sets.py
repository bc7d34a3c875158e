"""Eval sets: rows of {"id", "question", "answer", "domain"} (multiple-choice rows add
``"format": "choice"`` and ``"choices"``).

- ``synthetic`` (default): the offline generator's held-out problems for ``eval.seed``.
  The generator keeps one hash partition of problems per seed (``seed % PARTITIONS``),
  so an eval seed in a different partition from the training seed can never meet a
  training problem; a seed in the same partition is refused.
- a standard set by name (``gsm8k``, ``math500``, ``aime24``, ``aime25``,
  ``gpqa-diamond``) or as ``hf:<dataset>[:<config>]`` of its Hub dataset: read in its real
  schema by ``r1tui.eval.standard_sets``, from the local Hugging Face cache when offline.
  A local file in one of those schemas is recognised by its columns.
- a local ``.jsonl`` (or ``.json`` list) with ``question`` / ``answer`` / ``domain``
  (``domain`` defaults to math). MATH-500 style rows (``problem``, ``answer``) and
  GSM8K style rows (``question``, ``answer`` ending in ``#### 72``) read as they are;
  rows with ``messages`` go through the data adapters.
- a ``.parquet`` file or another ``hf:<dataset>[:<config>]`` (split ``test``): through the
  data adapters (``r1tui.data.sources``, the R1 corpora), from the local Hugging Face
  cache when offline. The reference answer is the FINAL ANSWER of the adapted assistant
  turn; the question is its last user turn.

``load_eval_set`` names the set it read under ``"set"``: the standard set's name,
``synthetic``, or None for any other source.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.errors import R1Error
from r1tui.eval.standard_sets import (
    STANDARD_SETS,
    gsm8k_final,
    hub_set,
    load_hub_set,
    load_local_set,
)
from r1tui.response_format import extract_final_answer

log = logging.getLogger(__name__)

_ALIASES = {
    "question": ("question", "problem", "prompt", "input"),
    "answer": ("answer", "final_answer", "expected", "output"),
    "domain": ("domain",),
}
EVAL_SPLIT = "test"


def load_eval_set(config: Config, source: str | None = None, num_samples: int | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """{"source", "set", "seed", "rows": [...]} (and "split" for a Hub set) for the configured
    (or given) eval source."""
    source = source or config.eval.source
    limit = num_samples or config.eval.num_samples
    seed = config.eval.seed if seed is None else seed
    if source == "synthetic":
        rows = synthetic_rows(config, limit, seed)
        return {"source": "synthetic", "set": "synthetic", "seed": seed, "rows": rows}
    hub = hub_set(source)
    if hub is not None:
        return {"source": source, "set": hub.name, "seed": None, "split": hub.split, "rows": load_hub_set(hub, limit)}
    if source.startswith("hf:"):
        return {"source": source, "set": None, "seed": None, "split": EVAL_SPLIT,
                "rows": _adapter_rows(config, source, limit)}
    path = Path(source).expanduser()
    if not path.exists():
        if not path.suffix:
            raise R1Error(f"eval source {source!r}: no such eval set or file; use synthetic, a standard set "
                          f"({', '.join(STANDARD_SETS)}), a .jsonl/.json/.parquet file or hf:<dataset>")
        raise R1Error(f"eval source {source}: file not found; use synthetic, a .jsonl with question/answer/domain, or hf:<dataset>")
    if path.suffix not in (".jsonl", ".json", ".parquet"):
        raise R1Error(f"eval source {path}: unknown format {path.suffix!r}; use .jsonl, .json or .parquet")
    standard = load_local_set(path, limit)
    if standard is not None:
        name, rows = standard
        return {"source": str(path.resolve()), "set": name, "seed": None, "rows": rows}
    if path.suffix == ".parquet":
        rows = _adapter_rows(config, str(path), limit)
    else:
        rows = read_rows(path, config)
    return {"source": str(path.resolve()), "set": None, "seed": None, "rows": rows[:limit]}


def synthetic_rows(config: Config, n: int, seed: int) -> list[dict[str, Any]]:
    from r1tui.data.synthetic import PARTITIONS, generate_problems

    if config.data.source == "synthetic" and seed % PARTITIONS == config.data.seed % PARTITIONS:
        raise R1Error(
            f"eval.seed = {seed} draws from the same problem partition as data.seed = {config.data.seed} "
            f"(both {seed % PARTITIONS} mod {PARTITIONS}): pick an eval.seed whose remainder mod {PARTITIONS} differs"
        )
    return [
        {"id": f"synthetic-{seed}-{index}", "question": row["question"], "answer": row["answer"], "domain": row["domain"]}
        for index, row in enumerate(generate_problems(n, seed))
    ]


def read_rows(path: Path, config: Config | None = None) -> list[dict[str, Any]]:
    """Rows of a local .jsonl / .json file, each checked and mapped to the canonical names."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            raw_rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise R1Error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); fix the file") from None
        if not isinstance(raw_rows, list):
            raise R1Error(f"{path}: expected a JSON list of rows with question/answer/domain")
        numbered = list(enumerate(raw_rows, start=1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise R1Error(f"{path}:{number}: not valid JSON ({exc.msg}); fix or remove that line") from None
    fields = config.data.fields if config is not None else None
    rows = [normalize_row(raw, f"{path}:{number}", f"{path.stem}-{number}", fields) for number, raw in numbered]
    if not rows:
        raise R1Error(f"{path}: no rows; each line needs question and answer (and optionally domain)")
    return rows


def normalize_row(raw: Any, where: str, default_id: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """One eval row from a question/answer row, or from a messages row through the data adapters."""
    if not isinstance(raw, dict):
        raise R1Error(f"{where}: a row must be a JSON object with question/answer/domain")
    if not any(raw.get(key) not in (None, "") for key in _ALIASES["question"]) and ("messages" in raw or "conversations" in raw):
        from r1tui.data.sources import MalformedRow, canonical_example

        try:
            example = canonical_example(raw, fields)
        except MalformedRow as exc:
            raise R1Error(f"{where}: {exc}; fix or remove the row") from None
        return example_row(example, default_id, where)
    row: dict[str, Any] = {"id": str(raw.get("id", default_id))}
    for name, aliases in _ALIASES.items():
        value = next((raw[key] for key in aliases if raw.get(key) not in (None, "")), None)
        if value is None and name != "domain":
            raise R1Error(f"{where}: missing {name!r} (also read as {', '.join(aliases[1:])}); add it to the row")
        row[name] = str(value).strip() if value is not None else "math"
    row["answer"] = gsm8k_final(row["answer"]) or row["answer"]  # GSM8K: worked solution, then "#### 72"
    row["domain"] = row["domain"].lower()
    return row


def example_row(example, row_id: str, where: str) -> dict[str, Any]:
    """An eval row from a data-adapter Example: its last user turn and its reference FINAL ANSWER."""
    messages = example.messages
    user_turns = [m["content"] for m in messages[:-1] if m["role"] == "user"]
    reference = extract_final_answer(messages[-1]["content"])
    if not user_turns or not reference:
        raise R1Error(f"{where}: needs a user turn and an assistant turn ending in 'FINAL ANSWER: …'; fix the row")
    domain = example.domain if example.domain in ("math", "physics", "coding") else "math"
    return {"id": row_id, "question": user_turns[-1], "answer": reference, "domain": domain}


def _adapter_rows(config: Config, source: str, limit: int | None) -> list[dict[str, Any]]:
    """Rows of a Parquet file or a Hub dataset through the data adapters (malformed rows skipped)."""
    from r1tui.data.sources import MalformedRow, iter_examples

    rows: list[dict[str, Any]] = []
    skipped = 0
    for index, item in enumerate(iter_examples(source, split=EVAL_SPLIT, fields=config.data.fields)):
        if limit is not None and len(rows) >= limit:
            break
        if isinstance(item, MalformedRow):
            skipped += 1
            continue
        try:
            rows.append(example_row(item, f"{source}-{index}", f"{source} row {index}"))
        except R1Error:
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d rows without a usable question or final answer", source, skipped)
    return rows

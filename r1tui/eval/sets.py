"""Eval sets: rows of {"id", "question", "answer", "domain"}.

- ``synthetic`` (default): the offline generator's held-out problems for ``eval.seed``.
  The generator keeps one hash partition of problems per seed (``seed % PARTITIONS``),
  so an eval seed in a different partition from the training seed can never meet a
  training problem; a seed in the same partition is refused.
- a local ``.jsonl`` (or ``.json`` list) with ``question`` / ``answer`` / ``domain``
  (``domain`` defaults to math; ``problem``, ``prompt``, ``final_answer`` and
  ``solution`` are read as their canonical names too).
- ``hf:<dataset>`` or GSM8K / MATH-500 style files: through the data adapters
  (``r1tui.data.sources``) when that module and the data are present locally.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.errors import R1Error

log = logging.getLogger(__name__)

_ALIASES = {
    "question": ("question", "problem", "prompt", "input"),
    "answer": ("answer", "final_answer", "solution", "expected", "output"),
    "domain": ("domain", "subject", "category"),
}


def load_eval_set(config: Config, source: str | None = None, num_samples: int | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """{"source", "seed", "rows": [...]} for the configured (or given) eval source."""
    source = source or config.eval.source
    limit = num_samples or config.eval.num_samples
    seed = config.eval.seed if seed is None else seed
    if source == "synthetic":
        rows = synthetic_rows(config, limit, seed)
        return {"source": "synthetic", "seed": seed, "rows": rows}
    if source.startswith("hf:"):
        return {"source": source, "seed": None, "rows": _adapter_rows(config, source, limit)}
    path = Path(source).expanduser()
    if not path.exists():
        raise R1Error(f"eval source {source}: file not found; use synthetic, a .jsonl with question/answer/domain, or hf:<dataset>")
    if path.suffix in (".jsonl", ".json"):
        rows = read_rows(path)
    else:
        rows = _adapter_rows(config, str(path), None)
    return {"source": str(path), "seed": None, "rows": rows[:limit]}


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


def read_rows(path: Path) -> list[dict[str, Any]]:
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
    rows = [normalize_row(raw, f"{path}:{number}", f"{path.stem}-{number}") for number, raw in numbered]
    if not rows:
        raise R1Error(f"{path}: no rows; each line needs question and answer (and optionally domain)")
    return rows


def normalize_row(raw: Any, where: str, default_id: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise R1Error(f"{where}: a row must be a JSON object with question/answer/domain")
    row: dict[str, Any] = {"id": str(raw.get("id", default_id))}
    for name, aliases in _ALIASES.items():
        value = next((raw[key] for key in aliases if raw.get(key) not in (None, "")), None)
        if value is None and name != "domain":
            raise R1Error(f"{where}: missing {name!r} (also read as {', '.join(aliases[1:])}); add it to the row")
        row[name] = str(value).strip() if value is not None else "math"
    row["domain"] = row["domain"].lower()
    return row


def _adapter_rows(config: Config, source: str, limit: int | None) -> list[dict[str, Any]]:
    """GSM8K / MATH-500 style data through the data worker's adapters, when they are present."""
    try:
        from r1tui.data import sources
    except ImportError:
        raise R1Error(f"eval source {source}: dataset adapters are not available in this install; "
                      "use synthetic or a .jsonl with question/answer/domain") from None
    loader = getattr(sources, "load_eval_rows", None) or getattr(sources, "load_rows", None)
    if loader is None:
        raise R1Error(f"eval source {source}: r1tui.data.sources has no row loader; use a .jsonl with question/answer/domain")
    raw_rows = loader(source, limit=limit)
    return [normalize_row(raw, f"{source} row {index}", f"{source}-{index}") for index, raw in enumerate(raw_rows)][:limit]

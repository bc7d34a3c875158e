"""The standard reasoning eval sets, read in their real Hub schemas.

``eval.source`` takes a set's short name, ``hf:<dataset>[:<config>]`` naming one of the
datasets below (the same adapter; with another config the set is named by the source),
or a local ``.jsonl`` / ``.json`` / ``.parquet`` file whose columns are one of these
schemas. Hub sets load through ``r1tui.data.sources.iter_hf_rows``: streamed, or read
from the local Hugging Face cache when offline (``HF_HUB_OFFLINE=1``).

=============  ======================================  =====  ==============================================
name           Hub dataset (configs)                   split  columns read
=============  ======================================  =====  ==============================================
gsm8k          openai/gsm8k (main)                     test   question, answer (worked solution, ``#### 72``)
math500        HuggingFaceH4/MATH-500                  test   problem, answer, unique_id
aime24         Maxwell-Jia/AIME_2024                   train  ID, Problem, Answer (an integer)
aime25         opencompass/AIME2025 (AIME2025-I, -II)  test   question, answer
               math-ai/aime25                          test   problem, answer (id unused)
               yentinglin/aime_2025                    train  problem, answer
gpqa-diamond   Idavidrein/gpqa (gpqa_diamond), gated   train  Record ID, Question, Correct Answer,
                                                              Incorrect Answer 1-3, High-level domain
=============  ======================================  =====  ==============================================

Every row becomes ``{"id", "question", "answer", "domain"}``: domain math for GSM8K, MATH
and AIME; GPQA's high-level domain lowercased (physics, chemistry, biology). Ids: MATH-500's
``unique_id``, AIME 2024's ``ID``, GPQA's ``Record ID``; GSM8K and AIME 2025 (no stable id
column across their copies) ``<set>-<index>`` in split order. GSM8K's reference is the
number after ``####``, commas removed; AIME 2024's integer is kept as text.

GPQA is multiple choice: the four options are ordered by a hash of the record id and the
option's place (the same order for every run, model and Python version), shown as
``(A)``…``(D)`` under the question with an instruction to end with ``FINAL ANSWER:
<letter>``; the row adds ``"format": "choice"`` and ``"choices"`` (the option texts in
letter order), and its reference is the correct letter (checked by
``r1tui.eval.answers.check_answer(..., choice=True)``).

A local file is recognised by its first row: GPQA's answer columns, AIME 2024's ``ID`` /
``Problem`` / ``Answer``, MATH-500's ``problem`` / ``unique_id``, or GSM8K's ``question`` /
``answer`` with ``####`` in the answer. AIME 2025's shapes (question/answer,
problem/answer/id) are the plain eval row shape, so a local copy reads as any
question/answer file (``r1tui.eval.sets``), with the same questions and references.

Where the schemas come from (checked against these, not guessed):

- GSM8K: openai/gsm8k's ``main/test-00000-of-00001.parquet`` (question, answer), as read by
  huggingface/lighteval ``src/lighteval/tasks/tasks/gsm8k.py``; the ``####`` line as in
  ``r1tui.data.sources.adapt_gsm8k``.
- MATH-500: the dataset card's features (problem, solution, answer, subject, level int64,
  unique_id), https://huggingface.co/datasets/HuggingFaceH4/MATH-500; huggingface/open-r1
  ``src/open_r1/evaluate.py`` (``math_500``, split test).
- AIME 2024: https://huggingface.co/datasets/Maxwell-Jia/AIME_2024 (README: ID like
  "2024-I-1", Problem, Solution, Answer; one ``train`` split from
  ``aime_2024_problems.parquet``; ``Answer`` loads as int64).
- AIME 2025: https://huggingface.co/datasets/opencompass/AIME2025 (configs AIME2025-I and
  AIME2025-II, split test, files aime2025-I.jsonl / aime2025-II.jsonl with question,
  answer); https://huggingface.co/datasets/math-ai/aime25 (README features problem,
  answer, id; split test from test.jsonl); yentinglin/aime_2025 as lighteval's ``aime25``
  task and open-r1's evaluate.py read it (``problem``, ``answer``, split train).
- GPQA: openai/simple-evals ``gpqa_eval.py`` and its ``gpqa_diamond.csv`` header (Question,
  Correct Answer, Incorrect Answer 1-3, Subdomain, Record ID, High-level domain, …) and
  ``common.py`` (the lettered prompt, ``Answer[ \\t]*:[ \\t]*\\$?([A-D])\\$?``); lighteval's
  ``gpqa.py`` and open-r1's evaluate.py (``Idavidrein/gpqa``, config ``gpqa_diamond``,
  split train, options shuffled with the correct one tracked by index).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

from r1tui.config import STANDARD_EVAL_SETS
from r1tui.data.sources import MalformedRow, iter_hf_rows, iter_local_rows
from r1tui.errors import R1Error
from r1tui.response_format import FINAL_ANSWER

CHOICE_LETTERS = "ABCD"
CHOICE_INSTRUCTION = f"Answer with the letter of the correct option, ending with the line: {FINAL_ANSWER} <letter>"

Adapter = Callable[[Mapping[str, Any], str], dict[str, Any]]


# ----------------------------------------------------------------- one row of each schema


def _field(row: Mapping[str, Any], *names: str) -> str:
    """The first of ``names`` the row has, as stripped text (an integer answer becomes "204")."""
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    wanted = " or ".join(repr(name) for name in names)
    raise MalformedRow(f"missing_field:{names[0]}", f"missing or empty column {wanted}")


def gsm8k_final(solution: str) -> str | None:
    """The number after GSM8K's ``####`` (commas removed), or None without one."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "") or None


def gsm8k_row(row: Mapping[str, Any], fallback_id: str) -> dict[str, Any]:
    final = gsm8k_final(_field(row, "answer"))
    if final is None:
        raise MalformedRow("missing_markers", "the answer has no '#### <number>' line")
    return {"id": fallback_id, "question": _field(row, "question"), "answer": final, "domain": "math"}


def math500_row(row: Mapping[str, Any], fallback_id: str) -> dict[str, Any]:
    return {"id": _field(row, "unique_id"), "question": _field(row, "problem"), "answer": _field(row, "answer"),
            "domain": "math"}


def aime24_row(row: Mapping[str, Any], fallback_id: str) -> dict[str, Any]:
    return {"id": _field(row, "ID"), "question": _field(row, "Problem"), "answer": _field(row, "Answer"),
            "domain": "math"}


def aime25_row(row: Mapping[str, Any], fallback_id: str) -> dict[str, Any]:
    return {"id": fallback_id, "question": _field(row, "question", "problem"), "answer": _field(row, "answer"),
            "domain": "math"}


def gpqa_row(row: Mapping[str, Any], fallback_id: str) -> dict[str, Any]:
    """The options in an order fixed by the record id; the reference is the correct one's letter."""
    record_id = _field(row, "Record ID")
    options = [_field(row, "Correct Answer"), *(_field(row, f"Incorrect Answer {n}") for n in (1, 2, 3))]
    # A hash, not random.shuffle: the order must not change with the Python version.
    order = sorted(range(len(options)), key=lambda place: hashlib.sha256(f"{record_id}/{place}".encode()).digest())
    choices = [options[place] for place in order]
    lettered = "\n".join(f"({letter}) {text}" for letter, text in zip(CHOICE_LETTERS, choices, strict=True))
    return {"id": record_id, "question": f"{_field(row, 'Question')}\n\n{lettered}\n\n{CHOICE_INSTRUCTION}",
            "answer": CHOICE_LETTERS[order.index(0)], "domain": _field(row, "High-level domain").lower(),
            "format": "choice", "choices": choices}


# by name: r1tui.config.STANDARD_EVAL_SETS, in its order
ADAPTERS: dict[str, Adapter] = dict(zip(STANDARD_EVAL_SETS, (gsm8k_row, math500_row, aime24_row, aime25_row, gpqa_row),
                                        strict=True))


@dataclass(frozen=True)
class HubSet:
    """Where a standard set lives on the Hub: its set name, configs (read in turn) and split."""

    name: str
    dataset: str
    configs: tuple[str | None, ...]
    split: str


_HUB_SETS = (
    HubSet("gsm8k", "openai/gsm8k", ("main",), "test"),
    HubSet("math500", "HuggingFaceH4/MATH-500", (None,), "test"),
    HubSet("aime24", "Maxwell-Jia/AIME_2024", (None,), "train"),
    HubSet("aime25", "opencompass/AIME2025", ("AIME2025-I", "AIME2025-II"), "test"),
    HubSet("aime25", "math-ai/aime25", (None,), "test"),
    HubSet("aime25", "yentinglin/aime_2025", (None,), "train"),
    HubSet("gpqa-diamond", "Idavidrein/gpqa", ("gpqa_diamond",), "train"),
)
HUB_DATASETS: dict[str, HubSet] = {hub.dataset: hub for hub in _HUB_SETS}
# The short names users type, each loading the first dataset listed for it.
STANDARD_SETS: dict[str, HubSet] = {name: next(hub for hub in _HUB_SETS if hub.name == name) for name in ADAPTERS}


# ----------------------------------------------------------------- reading a set


def hub_set(source: str) -> HubSet | None:
    """The Hub set a source names: a short name, or ``hf:<dataset>[:<config>]`` of a known dataset.
    With a config other than the set's own, the set is named by the source itself."""
    if source in STANDARD_SETS:
        return STANDARD_SETS[source]
    if not source.startswith("hf:"):
        return None
    dataset, _, config = source[3:].partition(":")
    hub = HUB_DATASETS.get(dataset)
    if hub is None or not config or (config,) == hub.configs:
        return hub
    return HubSet(source, hub.dataset, (config,), hub.split)


def load_hub_set(hub: HubSet, limit: int | None) -> list[dict[str, Any]]:
    """The first ``limit`` rows of a Hub set (all configs in turn), from the Hub or the local cache."""
    raw_rows: list[Any] = []
    try:
        for config in hub.configs:
            remaining = None if limit is None else limit - len(raw_rows)
            raw_rows += islice(iter_hf_rows(hub.dataset, config, hub.split), remaining)
    except R1Error as exc:
        raise _not_loaded(hub, exc) from None
    adapter = ADAPTERS[HUB_DATASETS[hub.dataset].name]
    return adapt_rows(hub.name, adapter, raw_rows, f"eval set {hub.name} ({hub.dataset})")


def _not_loaded(hub: HubSet, exc: R1Error) -> R1Error:
    # iter_hf_rows words its error for data.source; keep only its cause, in the parentheses.
    found = re.search(r"\((.*)\);", str(exc))
    cause = found.group(1) if found else str(exc)
    calls = " and ".join(f"datasets.load_dataset({hub.dataset!r}{f', {config!r}' if config else ''}, "
                         f"split={hub.split!r})" for config in hub.configs)
    return R1Error(
        f"eval set {hub.name}: {hub.dataset} (split {hub.split}) could not be loaded from the Hub or the local "
        f"Hugging Face cache ({cause}); on a machine with network run {calls} (for a gated set such as GPQA, "
        "accept its terms on the Hub and log in first), copy ~/.cache/huggingface/datasets to the same place "
        "here and set HF_HUB_OFFLINE=1, or set eval.source to a local .jsonl/.parquet file with the same columns"
    )


def recognise(row: Any) -> str | None:
    """The standard set whose schema a local file's first row has, if any."""
    if not isinstance(row, Mapping):
        return None
    columns = set(row)
    if {"Correct Answer", "Incorrect Answer 1"} <= columns:
        return "gpqa-diamond"
    if {"ID", "Problem", "Answer"} <= columns:
        return "aime24"
    if {"problem", "unique_id"} <= columns:
        return "math500"
    if {"question", "answer"} <= columns and "####" in str(row["answer"]):
        return "gsm8k"
    return None


def load_local_set(path: Path, limit: int | None) -> tuple[str, list[dict[str, Any]]] | None:
    """(set name, rows) of a local file in a standard schema; None when its columns are no such schema."""
    rows = iter_local_rows(path)
    first = next(rows, None)
    name = recognise(first)
    if name is None:
        return None
    return name, adapt_rows(name, ADAPTERS[name], islice(chain([first], rows), limit), str(path))


def adapt_rows(name: str, adapter: Adapter, raw_rows: Iterable[Any], where: str) -> list[dict[str, Any]]:
    """Eval rows of one schema; a row that does not fit stops with one line naming it."""
    rows = []
    for index, raw in enumerate(raw_rows):
        try:
            if isinstance(raw, MalformedRow):
                raise raw
            if not isinstance(raw, Mapping):
                raise MalformedRow("wrong_type", "a row must be an object")
            rows.append(adapter(raw, f"{name}-{index}"))
        except MalformedRow as exc:
            raise R1Error(f"{where} row {index + 1}: {exc}; fix or remove the row") from None
    return rows

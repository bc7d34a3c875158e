"""Where training rows come from, and how each shape becomes a conversation.

``data.source`` is one of:

- ``synthetic``: the seeded offline generator (``r1tui.data.synthetic``);
- a local ``.jsonl`` (one object per line), ``.json`` (a JSON array, or JSON Lines) or
  ``.parquet`` file, with an optional field mapping (``data.fields``: canonical name ->
  column);
- ``hf:<dataset>`` or ``hf:<dataset>:<config>``: a Hugging Face dataset, streamed
  lazily (only the rows used are fetched), through an adapter for the known corpora.

Every row becomes an ``Example``: a list of messages ending with the assistant turn,
plus a domain. Canonical row shapes (local files and unknown Hub datasets):

- ``{"messages": [{"role", "content"}, ...]}`` (or ShareGPT ``conversations`` with
  ``from``/``value``), used as they are;
- ``{"question", "reasoning", "answer", "domain"?}``, rendered as
  ``<think>\\nreasoning\\n</think>\\n\\nFINAL ANSWER: answer``.

A malformed row raises ``MalformedRow`` with a short reason; loaders count those and
go on, they never crash on one bad row.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.response_format import format_assistant, last_boxed, split_think

log = logging.getLogger(__name__)

CANONICAL_FIELDS = ("messages", "question", "reasoning", "answer", "domain", "system")
UNKNOWN_DOMAIN = "unknown"
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
_ANSWER_FIELDS = ("answer", "deepseek_attempt", "deepseek_solution")


class MalformedRow(ValueError):
    """A row that cannot become a training example; ``reason`` is what it is counted under."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason


@dataclass
class Example:
    messages: list[dict[str, str]]
    domain: str = UNKNOWN_DOMAIN


@dataclass
class LoadedExamples:
    examples: list[Example]
    rows_read: int
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    source: str = ""


# -- helpers ---------------------------------------------------------------------------

def _text(row: Mapping[str, Any], key: str, *, required: bool = True, allow_empty: bool = False) -> str:
    if key not in row or row[key] is None:
        if required:
            raise MalformedRow(f"missing_field:{key}", f"row has no {key!r}")
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise MalformedRow("wrong_type", f"{key!r} must be text, got {type(value).__name__}")
    _check_unicode(value)
    if not allow_empty and not value.strip():
        reason = "empty_answer" if key in _ANSWER_FIELDS else f"empty_field:{key}"
        raise MalformedRow(reason, f"{key!r} is empty")
    return value


def _check_unicode(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedRow("undecodable_text", "text is not valid Unicode") from None


def _domain(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) and value.strip() else UNKNOWN_DOMAIN


def qa_example(question: str, reasoning: str, answer: str, domain: Any = None, system: str = "") -> Example:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": question},
                 {"role": "assistant", "content": format_assistant(reasoning, answer)}]
    return Example(messages, _domain(domain))


_ROLE_ALIASES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "model": "assistant",
                 "system": "system"}


def _messages(raw: Any) -> list[dict[str, str]]:
    """Validate a message list ({role, content} or ShareGPT {from, value})."""
    if not isinstance(raw, list):
        raise MalformedRow("wrong_type", f"messages must be a list, got {type(raw).__name__}")
    if not raw:
        raise MalformedRow("bad_messages", "messages is empty")
    messages = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise MalformedRow("wrong_type", "each message must be an object")
        role = item.get("role", item.get("from"))
        content = item.get("content", item.get("value"))
        if role not in _ROLE_ALIASES:
            raise MalformedRow("bad_messages", f"unknown role {role!r}")
        if not isinstance(content, str):
            raise MalformedRow("wrong_type", f"message content must be text, got {type(content).__name__}")
        _check_unicode(content)
        messages.append({"role": _ROLE_ALIASES[role], "content": content})
    if messages[-1]["role"] != "assistant":
        raise MalformedRow("bad_messages", "the last message must be the assistant's")
    if not messages[-1]["content"].strip():
        raise MalformedRow("empty_answer", "the assistant message is empty")
    return messages


def canonical_example(row: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> Example:
    """A canonical row (after the field mapping) -> Example."""
    if not isinstance(row, Mapping):
        raise MalformedRow("wrong_type", f"a row must be an object, got {type(row).__name__}")
    if fields:
        mapped = dict(row)
        for canonical, column in fields.items():
            if column in row:
                mapped[canonical] = row[column]
            else:
                mapped.pop(canonical, None)
        row = mapped
    messages = row.get("messages", row.get("conversations"))
    if messages is not None:
        return Example(_messages(messages), _domain(row.get("domain")))
    if "question" not in row and "answer" not in row:
        raise MalformedRow("missing_field:messages", "row has neither 'messages' nor 'question'/'answer'")
    question = _text(row, "question", allow_empty=False)
    reasoning = _text(row, "reasoning", required=True, allow_empty=True)
    answer = _text(row, "answer")
    system = _text(row, "system", required=False, allow_empty=True)
    return qa_example(question, reasoning, answer, row.get("domain"), system)


# -- adapters for Hub corpora (each tested on hand-written rows of the real shape) --------

def adapt_openr1_math(row: Mapping[str, Any]) -> Example:
    """open-r1/OpenR1-Math-220k: problem, answer, generations (2-4 R1 traces) with per-trace
    correctness_math_verify / correctness_llama / is_reasoning_complete. The first trace
    that is verified (by Math-Verify or the Llama judge) and complete is used."""
    problem = _text(row, "problem")
    answer = _text(row, "answer")
    generations = row.get("generations")
    if not isinstance(generations, list):
        raise MalformedRow("missing_field:generations" if generations is None else "wrong_type", "no generations list")

    def flags(key: str) -> list:
        value = row.get(key)
        return value if isinstance(value, list) else []

    math_verify, llama, complete = flags("correctness_math_verify"), flags("correctness_llama"), flags("is_reasoning_complete")
    for index, generation in enumerate(generations):
        verified = (index < len(math_verify) and math_verify[index] is True) or (index < len(llama) and llama[index] is True)
        finished = not complete or (index < len(complete) and complete[index] is True)
        if not (verified and finished and isinstance(generation, str)):
            continue
        _check_unicode(generation)
        reasoning, _ = split_think(generation)
        if reasoning:
            return qa_example(problem, reasoning, answer, "math")
    raise MalformedRow("no_verified_generation", "no generation is both verified and complete")


_MOT_DOMAINS = (("code", "coding"), ("math", "math"))


def adapt_mixture_of_thoughts(row: Mapping[str, Any]) -> Example:
    """open-r1/Mixture-of-Thoughts: messages (user, assistant with <think>…</think> then the
    solution) and source. The assistant turn is rewritten to r1tui's format."""
    messages = _messages(row.get("messages"))
    final = messages[-1]["content"]
    reasoning, solution = split_think(final)
    if reasoning is not None:
        if not solution:
            raise MalformedRow("empty_answer", "nothing after </think>")
        messages[-1] = {"role": "assistant", "content": format_assistant(reasoning, solution)}
    source = str(row.get("source") or "").lower()
    domain = next((name for key, name in _MOT_DOMAINS if key in source), "science")
    return Example(messages, domain)


_THOUGHT_RE = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.DOTALL)
_SOLUTION_RE = re.compile(r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|$)", re.DOTALL)


def adapt_stratos(row: Mapping[str, Any]) -> Example:
    """bespokelabs/Bespoke-Stratos-17k and open-thoughts/OpenThoughts-114k: system plus
    conversations [{from: user}, {from: assistant}] whose answer is wrapped in
    <|begin_of_thought|>…<|end_of_thought|> <|begin_of_solution|>…<|end_of_solution|>.
    The corpus's own system prompt (an instruction about those markers) is dropped.
    OpenThoughts' metadata config (problem, deepseek_reasoning, deepseek_solution,
    domain) is accepted too."""
    if "deepseek_reasoning" in row and "conversations" not in row:
        return qa_example(_text(row, "problem"), _text(row, "deepseek_reasoning"),
                          _text(row, "deepseek_solution"), row.get("domain"))
    if "conversations" not in row:
        raise MalformedRow("missing_field:conversations", "row has no 'conversations'")
    messages = [m for m in _messages(row["conversations"]) if m["role"] != "system"]
    final = messages[-1]["content"]
    thought, solution = _THOUGHT_RE.search(final), _SOLUTION_RE.search(final)
    if thought is None or solution is None:
        raise MalformedRow("missing_markers", "the answer has no begin/end of thought and solution markers")
    if not solution.group(1).strip():
        raise MalformedRow("empty_answer", "the solution section is empty")
    messages[-1] = {"role": "assistant", "content": format_assistant(thought.group(1), solution.group(1))}
    return Example(messages, _domain(row.get("domain")))


_S1_DOMAINS = {"math": "math", "science": "science", "crossword": "puzzle"}


def adapt_s1k(row: Mapping[str, Any]) -> Example:
    """simplescaling/s1K-1.1: question, deepseek_thinking_trajectory, deepseek_attempt, cot_type."""
    cot_type = row.get("cot_type")
    domain = _S1_DOMAINS.get(cot_type, cot_type) if isinstance(cot_type, str) else None
    return qa_example(_text(row, "question"), _text(row, "deepseek_thinking_trajectory"),
                      _text(row, "deepseek_attempt"), domain)


_CALCULATOR_RE = re.compile(r"<<[^<>]*>>")


def adapt_gsm8k(row: Mapping[str, Any]) -> Example:
    """openai/gsm8k: question, answer = worked solution (with <<calculator>> notes) + '#### 72'."""
    question = _text(row, "question")
    solution = _text(row, "answer")
    if "####" not in solution:
        raise MalformedRow("missing_markers", "the gsm8k answer has no '####' final answer")
    worked, final = solution.rsplit("####", 1)
    final = final.strip().replace(",", "")
    if not final:
        raise MalformedRow("empty_answer", "nothing after '####'")
    return qa_example(question, _CALCULATOR_RE.sub("", worked).strip(), final, "math")


def adapt_math_solution(row: Mapping[str, Any]) -> Example:
    """HuggingFaceH4/MATH-500 (problem, solution, answer, subject, level) and AI-MO/NuminaMath-CoT
    (problem, solution, no answer column): the worked solution is the reasoning; the answer is
    the ``answer`` column when there is one, else the solution's last ``\\boxed{…}``."""
    problem = _text(row, "problem")
    solution = _text(row, "solution")
    answer = row.get("answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        answer = last_boxed(solution)
        if answer is None or not answer.strip():
            raise MalformedRow("missing_markers", "no answer column and no \\boxed{} answer in the solution")
    if not isinstance(answer, str):
        raise MalformedRow("wrong_type", f"'answer' must be text, got {type(answer).__name__}")
    return qa_example(problem, solution, answer, "math")


HF_ADAPTERS: dict[str, Callable[[Mapping[str, Any]], Example]] = {
    "open-r1/OpenR1-Math-220k": adapt_openr1_math,
    "open-r1/Mixture-of-Thoughts": adapt_mixture_of_thoughts,
    "bespokelabs/Bespoke-Stratos-17k": adapt_stratos,
    "open-thoughts/OpenThoughts-114k": adapt_stratos,
    "simplescaling/s1K-1.1": adapt_s1k,
    "openai/gsm8k": adapt_gsm8k,
    "HuggingFaceH4/MATH-500": adapt_math_solution,
    "AI-MO/NuminaMath-CoT": adapt_math_solution,
}
# Hub datasets that need a config name; `hf:<name>:<config>` overrides.
HF_DEFAULT_CONFIGS = {"open-r1/Mixture-of-Thoughts": "all", "openai/gsm8k": "main"}


# -- reading ---------------------------------------------------------------------------

def parse_source(source: str) -> tuple[str, str, str | None]:
    """("synthetic" | "local" | "hf", name or path, hub config or None)."""
    if source == "synthetic":
        return "synthetic", "synthetic", None
    if source.startswith("hf:"):
        name, _, config = source[3:].partition(":")
        if name.count("/") != 1 or not all(name.split("/")):
            raise R1Error(f"data.source = {source!r}: a Hub dataset is hf:<owner>/<name>[:<config>], e.g. hf:openai/gsm8k")
        return "hf", name, config or HF_DEFAULT_CONFIGS.get(name)
    return "local", source, None


def _iter_jsonl(path: Path) -> Iterator[dict | MalformedRow]:
    with open(path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield MalformedRow("undecodable_text", "line is not UTF-8")
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield MalformedRow("invalid_json", "line is not valid JSON")


def _iter_json(path: Path) -> Iterator[dict | MalformedRow]:
    """A .json file: a JSON array of rows (as exported by most tools), else JSON Lines."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        yield from _iter_jsonl(path)
        return
    try:
        rows = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise R1Error(f"data file {path}: starts like a JSON array but is not valid JSON ({exc}); fix it or "
                      "write one object per line (.jsonl)") from None
    yield from rows


def _iter_parquet(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        yield from batch.to_pylist()


def iter_local_rows(path: str | Path) -> Iterator[dict | MalformedRow]:
    path = Path(path)
    if not path.is_file():
        raise R1Error(f"data file {path} not found; set data.source (or --data) to an existing .jsonl or .parquet file")
    if path.suffix not in LOCAL_SUFFIXES:
        raise R1Error(f"data file {path}: unknown format {path.suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)}")
    if path.suffix == ".parquet":
        try:
            yield from _iter_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise R1Error(f"data file {path}: not a readable Parquet file ({type(exc).__name__}); check the file") from None
    elif path.suffix == ".json":
        yield from _iter_json(path)
    else:
        yield from _iter_jsonl(path)


def _hub_unresolvable() -> str | None:
    """Why the Hub's host cannot be reached, found in milliseconds; None when its name resolves.

    Without it, datasets retries its first request five times with back-off (about 24 s,
    a "Retrying" line each) before failing on a machine with no network.
    """
    import socket
    from urllib.parse import urlsplit

    from datasets import config as datasets_config
    from huggingface_hub import constants

    if datasets_config.HF_HUB_OFFLINE:
        return None  # datasets reads its cache and never asks the network
    host = urlsplit(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"{host} cannot be resolved: {exc.strerror or exc}"
    return None


def iter_hf_rows(name: str, config: str | None, split: str) -> Iterator[dict]:
    """Stream a Hub dataset lazily: only the rows consumed are downloaded."""
    unreachable = _hub_unresolvable()
    if unreachable:
        raise R1Error(f"data.source = hf:{name}: the Hub is not reachable ({unreachable}); check the network, set "
                      "HF_HUB_OFFLINE=1 to use a cached copy, or point data.source at a local .jsonl/.parquet file")
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, config, split=split, streaming=True)
        rows = iter(dataset)
        first = next(rows, None)
    except Exception as exc:  # noqa: BLE001 - datasets/hub raise many types (offline, 404, auth)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise R1Error(
            f"data.source = hf:{name}: could not load split {split!r} ({reason[:160]}); check the name, "
            "config and network, or download it and point data.source at a local .jsonl/.parquet file"
        ) from None
    if first is not None:
        yield first
        yield from rows


def iter_examples(source: str, *, split: str = "train", fields: Mapping[str, str] | None = None,
                  num_examples: int | None = None, seed: int = 0) -> Iterator[Example | MalformedRow]:
    """Examples (or the MalformedRow for each bad row) from a source, lazily.

    ``num_examples`` is the number of synthetic rows, or a cap on rows read elsewhere.
    """
    kind, name, config = parse_source(source)
    if kind == "synthetic":
        from r1tui.data.synthetic import generate_problems

        for row in generate_problems(num_examples or 0, seed):
            yield qa_example(row["question"], row["reasoning"], row["answer"], row["domain"])
        return
    if kind == "local":
        rows: Iterator[Any] = iter_local_rows(name)
        adapter: Callable[[Mapping[str, Any]], Example] = lambda row: canonical_example(row, fields)  # noqa: E731
    else:
        rows = iter_hf_rows(name, config, split)
        adapter = HF_ADAPTERS.get(name) or (lambda row: canonical_example(row, fields))
    for row in islice(rows, num_examples):
        if isinstance(row, MalformedRow):
            yield row
            continue
        try:
            yield adapter(row)
        except MalformedRow as exc:
            yield exc


def load_examples(source: str, *, split: str = "train", fields: Mapping[str, str] | None = None,
                  num_examples: int | None = None, seed: int = 0) -> LoadedExamples:
    """All examples of a source; malformed rows skipped and counted by reason."""
    loaded = LoadedExamples(examples=[], rows_read=0, source=source)
    for item in iter_examples(source, split=split, fields=fields, num_examples=num_examples, seed=seed):
        loaded.rows_read += 1
        if isinstance(item, MalformedRow):
            loaded.skipped[item.reason] += 1
        else:
            loaded.examples.append(item)
    if loaded.skipped and loaded.examples:  # none usable: the caller's one line says why, with these counts
        log.warning("%s: skipped %d malformed rows: %s", source, sum(loaded.skipped.values()), dict(loaded.skipped))
    return loaded

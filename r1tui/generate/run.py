"""Generate reasoning traces from a teacher: prompts in, verified and curated conversations out.

``generate_traces(config, out)``:

1. **Prompts** (``load_prompts``) from ``teacher.prompts`` (or the source given): any
   source r1tui reads — ``synthetic`` (the generator's *training* partition,
   ``data.seed``; refused when it is the partition eval draws from), a local
   ``.jsonl``/``.json``/``.parquet`` with question/answer/domain (or a conversation whose
   assistant turn ends in ``FINAL ANSWER:``), ``hf:<dataset>``: OpenR1-Math from its
   ``problem``/``answer`` columns (its trace adapter would drop the problems whose R1
   traces all failed, the hardest ones), other datasets through the data adapters (the
   reference is the FINAL ANSWER of the adapted turn), falling back to the row's
   question/answer columns when an adapter refuses a row only for its trace. At most
   ``teacher.num_prompts`` distinct prompts, each with a stable ``prompt_id`` (a hash of
   its question); a prompt without a reference answer is skipped and counted, and so is
   a prompt that shares a word n-gram with an eval set (``contaminated``:
   ``r1tui.generate.decontaminate``, the configured eval set and ``decontaminate.against``;
   synthetic prompts are kept apart from the synthetic eval set by the generator's
   partitions instead, as its docstring explains).
2. **Samples**: ``teacher.samples`` completions per prompt, ``teacher.concurrency`` at
   once over every endpoint (``r1tui.generate.teacher``; a transport failure on one
   endpoint is asked once more on another). The teacher is sent the conversation the
   student will train on: ``data.system_prompt`` (when set) and the question. Each sample
   carries a seed derived from its prompt and index, so a rerun asks for the same
   completion. Each reply is normalized (``r1tui.generate.normalize``) and verified
   (``r1tui.generate.verify.check_sample``).
3. **Files**: the samples file (``out`` with the suffix ``.samples.jsonl``, or
   ``RunLayout.samples`` in a run) gets every finished sample, accepted or rejected, with
   its verdict, token usage and the key of what its verdict was checked against
   (``check``), appended and flushed line by line. The traces file ``out`` holds the kept
   conversations of every prompt whose samples are all in (``verify.select`` among its
   correct ones), one row each::

       {"messages": [user, assistant], "domain", "reference", "prompt_id", "sample",
        "teacher": {"model", "endpoint"}, "sampling": {"temperature", "top_p", "max_tokens", "seed"},
        "verdict": "correct", "tokens", "pass_rate"}

   which ``r1tui prepare --data OUT`` reads as it is (``messages`` + ``domain``). It is
   a function of the samples file and the config: rows are appended as prompts finish,
   and the file is rewritten (temporary file, then rename) when the selection changed
   (``teacher.keep``, a re-verified verdict, a sample asked again, fewer prompts).
4. **Resume**: rerunning the same command reads both files (a torn last line, from a
   kill, is cut off) and asks only for the samples not finished yet. A sample whose
   request failed in transport (``r1tui.generate.failures``: connection, timeout,
   408/409/429/5xx after the client's retries) is not finished: it is asked again and
   counted under ``asked_again``. A finished sample whose verdict inputs changed (its
   reference answer, ``eval.numeric_tolerance``, ``model.max_seq_length``, the student's
   tokenizer) is verified again from its stored text, with no request. A samples file
   written with another teacher model, other sampling settings or another system prompt
   is refused, not mixed. One generation writes a pair of files at a time: a second one
   is refused in one line naming the holder (an OS lock on a hidden sibling file).
5. **Reporting**: ``stage("generate")`` events, ``stage_progress`` (samples, unit
   ``sample``) and ``generation`` running totals at most twice a second plus a final one;
   rejections counted by reason; cost = tokens × ``teacher.price_in_per_m`` /
   ``price_out_per_m`` (``cost_usd``, the one formula). When no request of a run got an
   answer (the teacher is down), it fails in one line after writing what it tried.

``plan_generation`` is the dry run (``DRY_RUN=1 r1tui generate`` and the dashboard's
Generate panel): requests, tokens, time and the most it can cost, sending nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.errors import R1Error
from r1tui.generate.failures import is_transport_failure
from r1tui.runs.events import EventSink, NullWriter, stage
from r1tui.runs.lock import Holder

if TYPE_CHECKING:
    from r1tui.config import Config, TeacherConfig
    from r1tui.generate.decontaminate import NgramIndex
    from r1tui.generate.teacher import TeacherFailure, TeacherPool, TeacherReply
    from r1tui.generate.verify import StudentLength
    from r1tui.runs.reducer import GenerationState

log = logging.getLogger(__name__)

STAGE = "generate"
SAMPLES_SUFFIX = ".samples.jsonl"
EVENT_INTERVAL_S = 0.5  # running totals at most twice a second
NO_TEACHER = ("no teacher configured: set teacher.model (and teacher.base_url) in the config's [teacher] "
              "section, e.g. model = \"deepseek-ai/DeepSeek-R1-Distill-Qwen-32B\"")
CONTAMINATED = "contaminated"  # the skip reason of a prompt that overlaps an eval set
TIME_UNKNOWN = "unknown until the teacher's speed is measured"
_ANSWER_KEYS = ("answer", "final_answer", "expected", "output", "reference")
_QUESTION_KEYS = ("question", "problem", "prompt", "input")


# ---------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    question: str
    reference: str
    domain: str

    def for_verify(self) -> dict[str, str]:
        """What ``verify.check_sample`` reads: question, the reference answer, domain."""
        return {"question": self.question, "answer": self.reference, "domain": self.domain}


@dataclass
class LoadedPrompts:
    prompts: list[Prompt]
    source: str
    rows_read: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows ("contaminated" among them)
    contaminated_by: Counter = field(default_factory=Counter)  # eval set -> prompts dropped for it
    eval_sets: dict[str, int] = field(default_factory=dict)  # eval set -> prompts it holds (checked against)


def prompt_id(question: str) -> str:
    """A prompt's stable id: the hash of its question (whitespace at the ends ignored)."""
    return hashlib.sha256(question.strip().encode("utf-8")).hexdigest()[:16]


def sample_seed(pid: str, sample: int) -> int:
    """The seed a sample is requested with: the same on every rerun."""
    return int(hashlib.sha256(f"{pid}:{sample}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def load_prompts(config: Config, source: str | None = None, *, index: NgramIndex | None = None) -> LoadedPrompts:
    """At most ``teacher.num_prompts`` distinct prompts with reference answers from ``source``,
    none of them sharing a word n-gram with an eval set (``index``: the eval sets' n-grams;
    by default ``eval_index(config, source)``)."""
    from r1tui.data.sources import parse_source

    source = source or config.teacher.prompts
    kind, name, _ = parse_source(source)
    loaded = LoadedPrompts(prompts=[], source=source)
    index = index if index is not None else eval_index(config, source)
    loaded.eval_sets = dict(index.sizes) if index is not None else {}
    seen: set[str] = set()
    limit = config.teacher.num_prompts
    if kind == "synthetic":
        items: Iterator[tuple[str, str, str] | str] = _synthetic_prompts(config, limit)
    elif kind == "local":
        items = _local_prompts(config, Path(name).expanduser())
    else:
        items = _hub_prompts(config, source)
    for item in items:
        loaded.rows_read += 1
        if isinstance(item, str):
            loaded.skipped[item] += 1
            continue
        question, reference, domain = item
        pid = prompt_id(question)
        if pid in seen:
            loaded.skipped["duplicate_prompt"] += 1
            continue
        seen.add(pid)
        found = index.matches(question) if index is not None else {}
        if found:
            loaded.skipped[CONTAMINATED] += 1
            loaded.contaminated_by.update(found.keys())
            continue
        loaded.prompts.append(Prompt(pid, question.strip(), reference.strip(), domain))
        if len(loaded.prompts) >= limit:
            break
    if loaded.skipped:
        log.warning("%s: skipped %d prompt rows: %s", source, sum(loaded.skipped.values()), dict(loaded.skipped))
    return loaded


def eval_index(config: Config, source: str | None = None) -> NgramIndex | None:
    """The word n-grams of every eval set r1tui knows (``decontaminate.build_index``: the
    configured eval set and ``decontaminate.against``), or None when there is nothing to
    check against. Synthetic prompts are not checked against the synthetic eval set: the
    generator's template phrases are shared by design, and its partitions (refused when
    equal, ``_synthetic_prompts``) are what keep the two apart."""
    from r1tui.data.sources import parse_source
    from r1tui.generate.decontaminate import build_index

    kind = parse_source(source or config.teacher.prompts)[0]
    include_eval = not (kind == "synthetic" and config.eval.source == "synthetic")
    if not include_eval and not config.decontaminate.against:
        return None
    try:
        index = build_index(config, include_eval=include_eval)
    except R1Error as exc:
        raise R1Error(f"the teacher's prompts are checked against the eval sets first, and {exc}") from None
    return index if index.sizes else None


def _synthetic_prompts(config: Config, limit: int) -> Iterator[tuple[str, str, str]]:
    from r1tui.data.synthetic import PARTITIONS, generate_problems

    seed = config.data.seed
    if config.eval.source == "synthetic" and seed % PARTITIONS == config.eval.seed % PARTITIONS:
        raise R1Error(f"teacher.prompts = synthetic draws from data.seed = {seed}'s problem partition, which is "
                      f"eval.seed = {config.eval.seed}'s too (both {seed % PARTITIONS} mod {PARTITIONS}): the "
                      "teacher would see eval problems; pick seeds whose remainders differ")
    for row in generate_problems(limit, seed):
        yield row["question"], row["answer"], row["domain"]


def _mapped(row: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    mapped = dict(row)
    for canonical, column in fields.items():
        if column in row:
            mapped[canonical] = row[column]
    return mapped


def _local_prompts(config: Config, path: Path) -> Iterator[tuple[str, str, str] | str]:
    """Prompt rows of a local file: (question, reference, domain), or a skip reason."""
    from r1tui.data.sources import MalformedRow, iter_local_rows
    from r1tui.eval.sets import normalize_row

    for number, raw in enumerate(iter_local_rows(path), start=1):
        if isinstance(raw, MalformedRow):
            yield raw.reason
            continue
        if not isinstance(raw, Mapping):
            yield "wrong_type"
            continue
        row = _mapped(raw, config.data.fields)
        messages = row.get("messages", row.get("conversations"))
        if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping) \
                and messages[-1].get("role", messages[-1].get("from")) in ("user", "human"):
            # a conversation that ends with the question: the reference is a field of the row
            question = messages[-1].get("content", messages[-1].get("value"))
            reference = next((str(row[k]) for k in _ANSWER_KEYS if row.get(k) not in (None, "")), None)
            if not isinstance(question, str) or not question.strip():
                yield "missing_field:question"
            elif reference is None:
                yield "missing_field:answer"
            else:
                yield question, reference, _domain(row.get("domain"))
            continue
        try:
            parsed = normalize_row(row, f"{path}:{number}", f"{path.stem}-{number}")
        except R1Error as exc:
            yield "missing_field:answer" if "answer" in str(exc) or "FINAL ANSWER" in str(exc) else "missing_field:question"
            continue
        yield parsed["question"], parsed["answer"], parsed["domain"]


# Hub prompt sets read from their question/answer columns, not through their trace adapter:
# OpenR1-Math's adapter needs a verified R1 generation, so the problems R1 failed (the
# hardest) would never reach the teacher.
PROMPT_COLUMNS_FIRST = frozenset({"open-r1/OpenR1-Math-220k"})
# An adapter's refusals that are about the row's trace or worked solution, not its prompt:
# such a row is still a prompt when it has question/answer columns.
TRACE_ONLY_REASONS = frozenset({
    "no_verified_generation", "empty_answer", "no_final_answer",
    "missing_field:generations", "missing_field:reasoning", "missing_field:solution",
    "missing_field:deepseek_thinking_trajectory", "missing_field:deepseek_attempt", "missing_field:deepseek_reasoning",
    "missing_field:deepseek_solution", "missing_field:messages", "missing_field:conversations",
    "empty_field:reasoning", "empty_field:solution", "empty_field:deepseek_thinking_trajectory",
    "empty_field:deepseek_attempt",
})


def _hub_prompts(config: Config, source: str) -> Iterator[tuple[str, str, str] | str]:
    """Prompt rows of a Hub dataset (see the module docstring): (question, reference, domain)
    or a skip reason."""
    from r1tui.data import sources
    from r1tui.eval.sets import example_row

    _, name, hub_config = sources.parse_source(source)
    fields = config.data.fields
    adapter = None if name in PROMPT_COLUMNS_FIRST else (
        sources.HF_ADAPTERS.get(name) or (lambda row: sources.canonical_example(row, fields)))
    for index, raw in enumerate(sources.iter_hf_rows(name, hub_config, config.data.split)):
        if isinstance(raw, sources.MalformedRow):
            yield raw.reason
            continue
        if not isinstance(raw, Mapping):
            yield "wrong_type"
            continue
        if adapter is None:
            yield _columns_prompt(_mapped(raw, fields))
            continue
        try:
            row = example_row(adapter(raw), f"{source}-{index}", f"{source} row {index}")
        except sources.MalformedRow as exc:
            reason = exc.reason
        except R1Error:
            reason = "no_final_answer"
        else:
            yield row["question"], row["answer"], row["domain"]
            continue
        direct = _columns_prompt(_mapped(raw, fields)) if reason in TRACE_ONLY_REASONS else None
        yield direct if isinstance(direct, tuple) else reason


def _columns_prompt(row: Mapping[str, Any]) -> tuple[str, str, str] | str:
    """A prompt from a row's own columns: the question (``question``, ``problem``, ``prompt``,
    ``input``) and the reference answer (``answer``, …; GSM8K's ``… #### 72`` read as 72)."""
    question = next((row[k] for k in _QUESTION_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
    if question is None:
        return "missing_field:question"
    answer = next((row[k] for k in _ANSWER_KEYS if row.get(k) is not None and not isinstance(row[k], (dict, list))
                   and str(row[k]).strip()), None)
    if answer is None:
        return "missing_field:answer"
    reference = str(answer).strip()
    if "####" in reference:
        reference = reference.rsplit("####", 1)[1].strip().replace(",", "")
    if not reference:
        return "missing_field:answer"
    return question, reference, _domain(row.get("domain"))


def _domain(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) and value.strip() else "math"


# ---------------------------------------------------------------- the files


def samples_file_for(out: Path) -> Path:
    """Where a traces file's samples go outside a run: ``traces.jsonl`` -> ``traces.samples.jsonl``."""
    return out.with_suffix(SAMPLES_SUFFIX) if out.suffix else out.with_name(out.name + SAMPLES_SUFFIX)


def lock_file_for(samples: Path) -> Path:
    """The lock a generation holds while it writes a samples file and its traces file."""
    return samples.with_name(f".{samples.name}.lock")


def read_jsonl_tolerant(path: Path) -> list[dict[str, Any]]:
    """The complete JSON-object lines of a file this module appends to; a torn last line
    (a writer killed mid-line) is cut off the file so the next append starts clean."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
        log.warning("%s: cut off a torn last line (%d bytes) left by an interrupted run", path, len(data) - end)
    rows = []
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s: skipped a line that is not JSON", path)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace a file by these lines at once: a temporary sibling, synced, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _Appender:
    """One JSONL file appended to and flushed line by line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open while generating

    def write(self, row: Mapping[str, Any] | str) -> None:
        self._file.write((row if isinstance(row, str) else _line(row)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class GenerationBusy(R1Error):
    """Another generation is writing the same files."""


class _FilesLock:
    """An exclusive ``flock`` on ``lock_file_for(samples)`` for a whole generation; a second
    one is refused in one line naming the holder. The OS releases it when its holder dies
    (kill -9 included); the file records who holds it and is never deleted."""

    def __init__(self, samples: Path, out: Path):
        self.path, self.out = lock_file_for(samples), out
        self.fd: int | None = None

    def __enter__(self) -> _FilesLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            who = _lock_holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) else None
            os.close(fd)
            if who is None:
                raise
            raise GenerationBusy(f"{self.out} is busy: {who.describe()} is generating into it; wait for it to end, "
                                 "or name another --out") from None
        self.fd = fd
        payload = json.dumps({"pid": os.getpid(), "what": "r1tui generate", "since": time.time()}).encode()
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload + b"\n", 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _lock_holder(fd: int) -> Holder:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", errors="replace") or "{}")
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    pid, since = data.get("pid"), data.get("since")
    return Holder(pid if isinstance(pid, int) else None, str(data.get("what") or "a generation"),
                  since if isinstance(since, (int, float)) else None)


# ---------------------------------------------------------------- the summary


@dataclass
class GenerationSummary:
    """What a generation did: the running totals while it runs, the result when it returns.
    Totals cover the whole samples file, a resumed run's earlier samples included."""

    out: str
    samples_file: str
    source: str
    model: str
    endpoints: list[str]
    prompts: int = 0
    samples_per_prompt: int = 0
    total: int = 0  # samples asked for: prompts × samples
    completed: int = 0  # samples finished, accepted or rejected (transport failures of this run included)
    resumed: int = 0  # of them, finished by an earlier run
    asked_again: int = 0  # samples an earlier run could not get from the teacher (transport), asked again
    unanswered: int = 0  # of the completed, transport failures of this run: the next run asks them again
    reverified: int = 0  # stored samples verified again because their verdict inputs changed (no request)
    accepted: int = 0  # verified correct
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> samples
    kept: int = 0  # rows in the traces file
    dropped: dict[str, int] = field(default_factory=dict)  # correct but not kept: reason -> samples
    prompts_done: int = 0
    prompts_skipped: dict[str, int] = field(default_factory=dict)  # prompt rows not used: reason -> rows
    contaminated_by: dict[str, int] = field(default_factory=dict)  # eval set -> prompts dropped for overlapping it
    requests: int = 0  # HTTP requests, retries and earlier runs' failed attempts included
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None  # None: no prices configured
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def event_data(self) -> dict[str, Any]:
        """The ``generation`` event's keys (EVENT_SCHEMA)."""
        return {"completed": self.completed, "total": self.total, "accepted": self.accepted,
                "rejected": dict(self.rejected), "kept": self.kept, "requests": self.requests,
                "retries": self.retries, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "elapsed_s": round(self.elapsed_s, 3), "cost_usd": self.cost_usd,
                "prompts_done": self.prompts_done, "prompts_total": self.prompts}


def cost_usd(teacher: TeacherConfig, tokens_in: float, tokens_out: float) -> float | None:
    """The one cost formula: tokens at ``teacher.price_in_per_m`` / ``price_out_per_m`` USD per
    million; None when neither price is set (no cost is shown then, not $0)."""
    if not teacher.price_in_per_m and not teacher.price_out_per_m:
        return None
    return round((tokens_in * teacher.price_in_per_m + tokens_out * teacher.price_out_per_m) / 1e6, 6)


# ---------------------------------------------------------------- resuming


def _key(record: Mapping[str, Any]) -> tuple[str, int] | None:
    pid, sample = record.get("prompt_id"), record.get("sample")
    if isinstance(pid, str) and isinstance(sample, int) and not isinstance(sample, bool):
        return pid, sample
    return None


def finished_samples(records: list[dict[str, Any]], wanted: set[str], samples: int
                     ) -> tuple[dict[tuple[str, int], dict[str, Any]], set[tuple[str, int]]]:
    """(the finished record of each wanted sample, the wanted samples to ask again).

    A record is finished unless its request failed in transport (``failures``); the first
    finished record of a sample is its record. A sample with only transport failures is
    asked again."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    failed: set[tuple[str, int]] = set()
    for record in records:
        key = _key(record)
        if key is None or key[0] not in wanted or not 0 <= key[1] < samples:
            continue
        if is_transport_failure(record.get("reason")):
            failed.add(key)
        else:
            done.setdefault(key, record)
    return done, failed - done.keys()


def _system_key(config: Config) -> str | None:
    system = config.data.system_prompt
    return hashlib.sha256(system.encode("utf-8")).hexdigest()[:16] if system else None


def _sampling(config: Config, seed: int | None = None) -> dict[str, Any]:
    teacher = config.teacher
    sampling: dict[str, Any] = {"temperature": teacher.temperature, "top_p": teacher.top_p,
                                "max_tokens": teacher.max_tokens}
    if seed is not None:
        sampling["seed"] = seed
    return sampling


def settings_mismatch(config: Config, records: list[dict[str, Any]]) -> str | None:
    """Why these samples cannot be continued under ``config`` (another teacher model, other
    sampling, another system prompt), or None when they can."""
    wanted_model, wanted, system = config.teacher.model, _sampling(config), _system_key(config)
    for record in records:
        sampling = {k: v for k, v in (record.get("sampling") or {}).items() if k != "seed"}
        if record.get("model") != wanted_model or sampling != wanted:
            return (f"its samples came from teacher {record.get('model')!r} with {sampling}, this config asks "
                    f"{wanted_model!r} with {wanted}")
        if "system" in record and record["system"] != system:  # (records before this key: not known)
            return "its samples were asked with another data.system_prompt"
    return None


def samples_reusable(config: Config, path: Path) -> bool:
    """Can the samples in ``path`` be continued under ``config`` (same teacher model,
    sampling and system prompt)? Reads the file, changes nothing."""
    return settings_mismatch(config, _read_only(path)) is None


def _check_same_settings(config: Config, records: list[dict[str, Any]], path: Path) -> None:
    """A samples file continues only under the teacher model, sampling and system prompt it was written with."""
    mismatch = settings_mismatch(config, records)
    if mismatch:
        raise R1Error(f"{path}: {mismatch}; use another --out, or delete {path.name} and its traces file to "
                      "start over")


# ---------------------------------------------------------------- the plan (DRY_RUN)


@dataclass
class GenerationPlan:
    """What ``generate_traces`` would ask for, sending nothing (``plan_generation``)."""

    source: str
    prompts: int
    prompts_counted: bool  # False: the prompts were not read; ``prompts`` is teacher.num_prompts, a cap
    prompts_skipped: dict[str, int]
    contaminated_by: dict[str, int]  # eval set -> prompts dropped for overlapping it
    samples_per_prompt: int
    requests: int  # completions left to ask for (retries not counted)
    already_done: int  # samples finished before (a rerun skips them)
    asked_again: int  # of the requests, samples whose earlier request failed in transport
    max_tokens: int  # per request
    max_completion_tokens: int  # requests × max_tokens: the most the completions can be billed for
    prompt_tokens: int | None  # the prompts' tokens over the requests left (the student's tokenizer); None: not read
    endpoints: list[str]
    concurrency: int
    model: str
    price_in_per_m: float
    price_out_per_m: float
    cost_upper_usd: float | None  # cost_usd(prompt tokens, max completion tokens); None: no price
    samples_per_s: float | None  # a measured speed, when there is one
    time_s: float | None  # requests / samples_per_s; None: unknown
    time_note: str  # how the time was found, or why it is unknown
    out: str | None
    samples_file: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_generation(config: Config, out: Path | None = None, prompts_source: str | None = None,
                    samples_path: Path | None = None, *, read_prompts: bool = True,
                    measured: GenerationState | None = None) -> GenerationPlan:
    """What ``generate_traces`` would send, without sending anything: the one plan of
    ``DRY_RUN=1 r1tui generate`` and of the dashboard's Generate panel.

    ``read_prompts``: read the prompts (decontaminated), the samples already in ``out``'s
    samples file and count the prompts' tokens in the student's tokenizer; False (the
    dashboard) plans from ``[teacher]`` alone — ``teacher.num_prompts`` is then a cap,
    the prompt tokens are not counted, and nothing heavier than this module is imported.
    ``measured``: a running generation's totals (``GenerationState`` from its events):
    its samples/s gives the time of what is left, and its total and completed what is left.
    Without a measured speed the time is unknown (``TIME_UNKNOWN``), not guessed."""
    teacher = config.teacher
    source = prompts_source or teacher.prompts
    if out is not None:
        out = Path(out)
        samples_path = Path(samples_path) if samples_path is not None else samples_file_for(out)
    prompt_tokens: int | None = None
    skipped: dict[str, int] = {}
    contaminated: dict[str, int] = {}
    done_count = again = 0
    if read_prompts:
        from r1tui.generate.verify import StudentLength

        loaded = load_prompts(config, source)
        source, skipped, contaminated = loaded.source, dict(loaded.skipped), dict(loaded.contaminated_by)
        wanted = {p.prompt_id for p in loaded.prompts}
        records = _read_only(samples_path) if samples_path is not None else []
        done, failed = finished_samples(records, wanted, teacher.samples)
        done_count, again = len(done), len(failed)
        left_per_prompt = {p.prompt_id: sum((p.prompt_id, s) not in done for s in range(teacher.samples))
                           for p in loaded.prompts}
        prompts = len(loaded.prompts)
        requests = sum(left_per_prompt.values())
        length = StudentLength(config)
        prompt_tokens = sum(length.prompt(_conversation(config, p)) * left_per_prompt[p.prompt_id]
                            for p in loaded.prompts if left_per_prompt[p.prompt_id])
    else:
        prompts = teacher.num_prompts
        requests = prompts * teacher.samples
    rate = measured.samples_per_s if measured is not None and measured.seen else None
    if measured is not None and measured.seen and measured.total:
        requests = max(0, int(measured.total) - int(measured.completed))  # what the running generation has left
        done_count = int(measured.completed)
    if rate:
        time_s: float | None = requests / rate
        note = f"at the {rate:.3g} samples/s measured so far"
    else:
        time_s, note = (0.0, "nothing left to ask") if requests == 0 else (None, TIME_UNKNOWN)
    max_completion = requests * teacher.max_tokens
    return GenerationPlan(
        source=source, prompts=prompts, prompts_counted=read_prompts, prompts_skipped=skipped,
        contaminated_by=contaminated, samples_per_prompt=teacher.samples, requests=requests,
        already_done=done_count, asked_again=again, max_tokens=teacher.max_tokens,
        max_completion_tokens=max_completion, prompt_tokens=prompt_tokens, endpoints=teacher.base_urls,
        concurrency=teacher.concurrency, model=teacher.model, price_in_per_m=teacher.price_in_per_m,
        price_out_per_m=teacher.price_out_per_m, cost_upper_usd=cost_usd(teacher, prompt_tokens or 0, max_completion),
        samples_per_s=rate, time_s=time_s, time_note=note, out=None if out is None else str(out),
        samples_file=None if samples_path is None else str(samples_path))


def _read_only(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSONL file, touching nothing (for the plan)."""
    if not path.is_file():
        return []
    rows = []
    data = path.read_bytes()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


_OUR_ROW_STARTS = (b'{"prompt_id": ', b'{"messages": [{"role": ')  # a samples record, a traces row


def _refuse_foreign(path: Path) -> None:
    """Only a file this module wrote is appended to: never someone's dataset named by mistake."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb") as f:
        first = f.readline()
    try:
        row = json.loads(first)
    except ValueError:  # a torn first line is ours only if it starts as our rows do
        row = {"prompt_id": None} if not first.endswith(b"\n") and first.startswith(_OUR_ROW_STARTS) else {}
    if not isinstance(row, dict) or "prompt_id" not in row:
        raise R1Error(f"{path}: exists and was not written by r1tui generate (its rows have no prompt_id); "
                      "name a new file, or the traces file of an earlier `r1tui generate` to continue it")


def _conversation(config: Config, prompt: Prompt) -> list[dict[str, str]]:
    system = config.data.system_prompt
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt.question}]


# ---------------------------------------------------------------- generating


class _Generation:
    """One call of ``generate_traces``: the state shared by its steps."""

    def __init__(self, config: Config, out: Path, samples_path: Path, events: EventSink,
                 on_progress: Callable[[GenerationSummary], None] | None, prompts: LoadedPrompts, pool: TeacherPool):
        from r1tui.data.tokenizer import tokenizer_spec
        from r1tui.generate.verify import StudentLength

        self.config = config
        self.teacher = config.teacher
        self.events = events
        self.on_progress = on_progress
        self.out, self.samples_path = out, samples_path
        self.prompts = {p.prompt_id: p for p in prompts.prompts}
        self.order = [p.prompt_id for p in prompts.prompts]
        self.pool = pool
        self.length: StudentLength = StudentLength(config)
        self.system = _system_key(config)
        self._check_base = {"tolerance": config.eval.numeric_tolerance, "max_seq_length": config.model.max_seq_length,
                            "tokenizer": tokenizer_spec(config), "system": self.system}
        self.started = time.monotonic()
        self.last_event = 0.0
        self.summary = GenerationSummary(
            out=str(out), samples_file=str(samples_path), source=prompts.source, model=self.teacher.model,
            endpoints=pool.urls, prompts=len(self.order), samples_per_prompt=self.teacher.samples,
            total=len(self.order) * self.teacher.samples, prompts_skipped=dict(prompts.skipped),
            contaminated_by=dict(prompts.contaminated_by))
        self.rejected: Counter = Counter()
        self.dropped: Counter = Counter()
        self.finished_prompts: set[str] = set()
        self.asked = self.answered = 0  # this run's requests for samples, and those the teacher answered

        _refuse_foreign(out)
        _refuse_foreign(samples_path)
        records = read_jsonl_tolerant(samples_path)
        _check_same_settings(config, records, samples_path)
        self.done, self.again = finished_samples(records, set(self.prompts), self.teacher.samples)
        finals = {id(r) for r in self.done.values()}
        for record in records:  # the requests of attempts that got nothing (asked again since, or now)
            key = _key(record)
            if key is not None and key[0] in self.prompts and 0 <= key[1] < self.teacher.samples \
                    and id(record) not in finals and is_transport_failure(record.get("reason")):
                requests = int(record.get("requests") or 0)
                self.summary.requests += requests
                self.summary.retries += requests
        changed = [record for record in self.done.values() if self._reverify(record)]
        if changed:  # the file says what the verdicts are now: rewritten at once, before anything is appended
            _rewrite(samples_path, [_line(r) for r in records])
            message = (f"verified {len(changed)} stored samples again (their reference answer, the answer tolerance, "
                       "the student's length limit or tokenizer changed); no request sent")
            log.warning("%s", message)
            events.emit("log", stage=STAGE, level="warning", message=message)
        for record in self.done.values():
            self._count(record)
        self.summary.resumed = len(self.done)
        self.summary.asked_again = len(self.again)
        self.summary.reverified = len(changed)

        # The traces file: the rows in it now, by prompt; rows of prompts not asked for go.
        self.rows: dict[str, list[str]] = {}
        self.stale = False
        for row in read_jsonl_tolerant(out):
            pid = row.get("prompt_id")
            if pid in self.prompts:
                self.rows.setdefault(pid, []).append(_line(row))
            else:
                self.stale = True
        self.samples_out = _Appender(samples_path)
        self.traces_out = _Appender(out)

    # -- verdicts

    def check_key(self, prompt: Prompt) -> str:
        """What a sample's verdict depends on besides its text: when it changes, the stored
        sample is verified again."""
        inputs = {**self._check_base, "reference": prompt.reference, "domain": prompt.domain}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _reverify(self, record: dict[str, Any]) -> bool:
        """Verify a stored sample again when its verdict inputs changed; True when the record changed."""
        from r1tui.generate.verify import check_sample

        assistant = record.get("assistant")
        if not isinstance(assistant, str) or not assistant.strip():
            return False  # rejected before verification (empty, bad_format, a 4xx): nothing depends on the config
        prompt = self.prompts[record["prompt_id"]]
        key = self.check_key(prompt)
        if record.get("check") == key:
            return False
        verdict = check_sample(self.config, prompt.for_verify(), assistant, record.get("answer"),
                               record.get("finish_reason"), self.length)
        record.update(status="accepted" if verdict.ok else "rejected", reason=None if verdict.ok else verdict.reason,
                      answer=verdict.answer, tokens=verdict.tokens, check=key)
        return True

    # -- bookkeeping

    def _count(self, record: Mapping[str, Any]) -> None:
        summary = self.summary
        summary.completed += 1
        if record.get("status") == "accepted":
            summary.accepted += 1
        else:
            self.rejected[str(record.get("reason"))] += 1
            if is_transport_failure(record.get("reason")):
                summary.unanswered += 1
        usage = record.get("usage") or {}
        summary.tokens_in += int(usage.get("prompt_tokens") or 0)
        summary.tokens_out += int(usage.get("completion_tokens") or 0)
        requests = int(record.get("requests") or 0)
        summary.requests += requests
        summary.retries += max(0, requests - 1)

    def _refresh(self) -> None:
        summary = self.summary
        summary.rejected = dict(self.rejected.most_common())
        summary.dropped = dict(self.dropped.most_common())
        summary.prompts_done = len(self.finished_prompts)
        summary.kept = sum(len(lines) for lines in self.rows.values())
        summary.cost_usd = cost_usd(self.teacher, summary.tokens_in, summary.tokens_out)
        summary.elapsed_s = time.monotonic() - self.started

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        self._refresh()
        if self.on_progress is not None:
            self.on_progress(self.summary)
        if not force and now - self.last_event < EVENT_INTERVAL_S:
            return
        self.last_event = now
        summary = self.summary
        self.events.emit("stage_progress", stage=STAGE, completed=summary.completed, total=summary.total,
                         unit="sample", message=f"{summary.accepted} accepted, {sum(self.rejected.values())} rejected")
        self.events.emit("generation", stage=STAGE, **summary.event_data())

    # -- a prompt whose samples are all in: choose, write its rows

    def finish_prompt(self, pid: str) -> None:
        from r1tui.generate.verify import select

        records = [self.done.get((pid, s)) for s in range(self.teacher.samples)]
        if pid in self.finished_prompts or any(r is None for r in records):
            return
        self.finished_prompts.add(pid)
        correct = [r for r in records if r is not None and r.get("status") == "accepted"]
        kept, dropped = select(self.config, correct) if correct else ([], [])
        for _, reason in dropped:
            self.dropped[reason] += 1
        prompt = self.prompts[pid]
        pass_rate = round(len(correct) / self.teacher.samples, 6)
        lines = [_line(self._row(prompt, record, pass_rate)) for record in kept]
        written = self.rows.get(pid)
        if written is None:
            for line in lines:
                self.traces_out.write(line)
        elif sorted(written) != sorted(lines):
            self.stale = True  # another choice than the rows written: the file is rewritten
        self.rows[pid] = lines

    def sync_traces(self) -> None:
        """Rewrite the traces file when its rows are not this generation's choice any more."""
        if not self.stale:
            return
        self.traces_out.close()
        _rewrite(self.out, [line for pid in self.order for line in self.rows.get(pid, [])])
        self.traces_out = _Appender(self.out)
        self.stale = False

    def _row(self, prompt: Prompt, record: Mapping[str, Any], pass_rate: float) -> dict[str, Any]:
        # No system turn: training adds data.system_prompt itself (r1tui.data.prepare), as it was sent here.
        messages = [{"role": "user", "content": prompt.question}, {"role": "assistant", "content": record["assistant"]}]
        return {"messages": messages, "domain": prompt.domain, "reference": prompt.reference,
                "prompt_id": prompt.prompt_id, "sample": record["sample"],
                "teacher": {"model": record.get("model"), "endpoint": record.get("endpoint")},
                "sampling": record.get("sampling"), "verdict": "correct", "tokens": record.get("tokens"),
                "pass_rate": pass_rate}

    # -- one finished sample

    def take(self, prompt: Prompt, sample: int, reply: TeacherReply | TeacherFailure) -> None:
        from r1tui.generate.normalize import normalize_reply
        from r1tui.generate.verify import Verdict, check_sample

        record: dict[str, Any] = {"prompt_id": prompt.prompt_id, "sample": sample, "model": self.teacher.model,
                                  "sampling": _sampling(self.config, sample_seed(prompt.prompt_id, sample)),
                                  "system": self.system, "endpoint": reply.endpoint, "requests": reply.requests}
        if reply.failover:
            record["failover"] = dict(reply.failover)
        self.asked += 1
        if not reply.ok:
            verdict = Verdict(False, reply.reason, None, None)
            record.update(usage={"prompt_tokens": 0, "completion_tokens": 0}, finish_reason=None,
                          error=reply.message)
            self.answered += not is_transport_failure(reply.reason)
        else:
            self.answered += 1
            normalized = normalize_reply(reply.content, reply.reasoning)
            if normalized.ok:
                verdict = check_sample(self.config, prompt.for_verify(), normalized.assistant, normalized.answer,
                                       reply.finish_reason, self.length)
            else:
                reason = normalized.reason
                if reply.finish_reason == "length" and reason != "empty":
                    reason = "truncated"  # cut at max_tokens: that is why it has no answer or no </think>
                verdict = Verdict(False, reason, None, None)
            record.update(usage={"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens},
                          finish_reason=reply.finish_reason)
            if verdict.ok:
                record["assistant"] = normalized.assistant
            else:  # what the teacher said, to see why it was rejected
                record.update(content=reply.content, reasoning=reply.reasoning, assistant=normalized.assistant)
        record.update(status="accepted" if verdict.ok else "rejected", reason=None if verdict.ok else verdict.reason,
                      answer=verdict.answer, tokens=verdict.tokens, check=self.check_key(prompt))
        self.samples_out.write(record)
        self.done[(prompt.prompt_id, sample)] = record
        self._count(record)
        self.finish_prompt(prompt.prompt_id)

    def pending(self) -> list[tuple[Prompt, int]]:
        return [(self.prompts[pid], s) for pid in self.order for s in range(self.teacher.samples)
                if (pid, s) not in self.done]

    def check_answered(self) -> None:
        """Fail in one line when the teacher answered none of this run's requests."""
        if not self.asked or self.answered:
            return
        reasons = ", ".join(f"{reason} {n}" for reason, n in self.rejected.most_common() if is_transport_failure(reason))
        raise R1Error(f"the teacher answered none of {self.asked} requests ({reasons}) at {', '.join(self.pool.urls)}; "
                      "check that it is serving (teacher.base_url) and rerun the same command: those samples are "
                      "asked again")

    def close(self) -> None:
        self.samples_out.close()
        self.traces_out.close()


def _ask(pool: TeacherPool, config: Config, prompt: Prompt, sample: int) -> TeacherReply | TeacherFailure:
    from r1tui.generate.teacher import TeacherFailure

    try:
        return pool.complete(_conversation(config, prompt), seed=sample_seed(prompt.prompt_id, sample))
    except BaseException as exc:  # noqa: BLE001 - a worker never dies silently, the main loop would wait forever
        return TeacherFailure("teacher_error", type(exc).__name__, "", 1)


def generate_traces(config: Config, out: str | Path, events: EventSink | None = None,
                    prompts_source: str | None = None,
                    on_progress: Callable[[GenerationSummary], None] | None = None, *,
                    samples_path: str | Path | None = None, pool: TeacherPool | None = None) -> GenerationSummary:
    """Generate, verify and curate traces into ``out`` (see the module docstring); resumes
    from the files a killed earlier call left."""
    from r1tui.generate.teacher import TeacherPool

    if not config.teacher.model:
        raise R1Error(NO_TEACHER)
    out = Path(out)
    samples = Path(samples_path) if samples_path is not None else samples_file_for(out)
    if out.resolve() == samples.resolve():
        raise R1Error(f"--out {out}: the traces file cannot also be the samples file; name it *.jsonl")
    events = events if events is not None else NullWriter()
    source = prompts_source or config.teacher.prompts
    own_pool = pool is None
    with stage(events, STAGE, source=source, model=config.teacher.model, endpoints=config.teacher.base_urls,
               samples=config.teacher.samples, out=str(out)) as outputs, _FilesLock(samples, out):
        events.emit("stage_progress", stage=STAGE, completed=0, total=0, unit="sample", message=f"reading {source}")
        loaded = load_prompts(config, source)
        if loaded.skipped.get(CONTAMINATED):
            events.emit("log", stage=STAGE, level="warning",
                        message=f"dropped {loaded.skipped[CONTAMINATED]} prompts that share a "
                                f"{config.decontaminate.ngram}-word n-gram with an eval set: "
                                + ", ".join(f"{name} {n}" for name, n in loaded.contaminated_by.items()))
        if not loaded.prompts:
            reasons = ", ".join(f"{r} {n}" for r, n in loaded.skipped.items()) or "the source is empty"
            raise R1Error(f"{source}: no usable prompts ({reasons}); each needs a question and a reference answer")
        pool = pool or TeacherPool(config.teacher)
        try:
            generation = _Generation(config, out, samples, events, on_progress, loaded, pool)
            try:
                for pid in generation.order:  # finished before: their rows, chosen under this config
                    generation.finish_prompt(pid)
                generation.sync_traces()
                _run_pending(generation, config, pool)
                generation.sync_traces()
            finally:
                generation.close()
        finally:
            if own_pool:
                pool.close()
        generation.report(force=True)
        summary = generation.summary
        outputs.update(traces=str(out), samples=str(samples), kept=summary.kept, accepted=summary.accepted,
                       completed=summary.completed, rejected=summary.rejected, unanswered=summary.unanswered,
                       asked_again=summary.asked_again, reverified=summary.reverified,
                       prompts=summary.prompts, prompts_skipped=summary.prompts_skipped,
                       contaminated=summary.prompts_skipped.get(CONTAMINATED, 0),
                       contaminated_by=summary.contaminated_by)
        generation.check_answered()
    return summary


def _run_pending(generation: _Generation, config: Config, pool: TeacherPool) -> None:
    """Ask for every sample not finished yet, ``teacher.concurrency`` at once, and take each
    reply in this thread as it arrives (the files and the verdicts have one writer)."""
    pending = generation.pending()
    generation.report(force=True)
    if not pending:
        return
    tasks: queue.SimpleQueue = queue.SimpleQueue()
    for item in pending:
        tasks.put(item)
    results: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                prompt, sample = tasks.get_nowait()
            except queue.Empty:
                return
            results.put((prompt, sample, _ask(pool, config, prompt, sample)))

    # Daemon threads: a cancelled run or Ctrl-C does not wait for requests in flight (up
    # to teacher.timeout_s each); their replies are simply never taken.
    for index in range(min(config.teacher.concurrency, len(pending))):
        threading.Thread(target=work, name=f"teacher-{index}", daemon=True).start()
    try:
        for _ in range(len(pending)):
            while True:
                try:
                    prompt, sample, reply = results.get(timeout=EVENT_INTERVAL_S)
                    break
                except queue.Empty:
                    generation.report()  # elapsed time moves on while the teacher thinks
            generation.take(prompt, sample, reply)
            generation.report()
    finally:
        stop.set()

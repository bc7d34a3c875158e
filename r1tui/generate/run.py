"""Generate reasoning traces from a teacher: prompts in, verified and curated conversations out.

``generate_traces(config, out)``:

1. **Prompts** (``load_prompts``) from ``teacher.prompts`` (or the source given): any
   source r1tui reads — ``synthetic`` (the generator's *training* partition,
   ``data.seed``; refused when it is the partition eval draws from), a local
   ``.jsonl``/``.json``/``.parquet`` with question/answer/domain (or a conversation whose
   assistant turn ends in ``FINAL ANSWER:``), ``hf:<dataset>`` through the data adapters
   (the reference answer is the FINAL ANSWER of the adapted turn). At most
   ``teacher.num_prompts`` distinct prompts, each with a stable ``prompt_id`` (a hash of
   its question); a prompt without a reference answer is skipped and counted.
2. **Samples**: ``teacher.samples`` completions per prompt, ``teacher.concurrency`` at
   once over every endpoint (``r1tui.generate.teacher``). The teacher is sent the
   conversation the student will train on: ``data.system_prompt`` (when set) and the
   question. Each sample carries a seed derived from its prompt and index, so a rerun asks
   for the same completion. Each reply is normalized (``r1tui.generate.normalize``) and
   verified (``r1tui.generate.verify.check_sample``).
3. **Files**, both appended and flushed line by line as results arrive:
   the samples file (``out`` with the suffix ``.samples.jsonl``, or ``RunLayout.samples``
   in a run) gets every finished sample, accepted or rejected, with its verdict and token
   usage; once all of a prompt's samples are in, ``verify.select`` picks among its correct
   ones and the kept conversations go to ``out``, one row each::

       {"messages": [user, assistant], "domain", "reference", "prompt_id", "sample",
        "teacher": {"model", "endpoint"}, "sampling": {"temperature", "top_p", "max_tokens", "seed"},
        "verdict": "correct", "tokens", "pass_rate"}

   which ``r1tui prepare --data OUT`` reads as it is (``messages`` + ``domain``).
4. **Resume**: rerunning the same command reads both files (a torn last line, from a
   kill, is cut off), skips the samples already finished, writes the kept rows of prompts
   that finished but were not written yet, and never writes a row twice. A samples file
   written with another teacher model or other sampling settings is refused, not mixed.
5. **Reporting**: ``stage("generate")`` events, ``stage_progress`` (samples, unit
   ``sample``) and ``generation`` running totals at most twice a second plus a final one;
   rejections counted by reason; cost = tokens × ``teacher.price_in_per_m`` /
   ``price_out_per_m``.
"""

from __future__ import annotations

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
from r1tui.runs.events import EventSink, NullWriter, stage

if TYPE_CHECKING:
    from r1tui.config import Config
    from r1tui.generate.teacher import TeacherFailure, TeacherPool, TeacherReply

log = logging.getLogger(__name__)

STAGE = "generate"
SAMPLES_SUFFIX = ".samples.jsonl"
EVENT_INTERVAL_S = 0.5  # running totals at most twice a second
NO_TEACHER = ("no teacher configured: set teacher.model (and teacher.base_url) in the config's [teacher] "
              "section, e.g. model = \"deepseek-ai/DeepSeek-R1-Distill-Qwen-32B\"")
_ANSWER_KEYS = ("answer", "final_answer", "expected", "output", "reference")


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
    skipped: Counter = field(default_factory=Counter)  # reason -> rows


def prompt_id(question: str) -> str:
    """A prompt's stable id: the hash of its question (whitespace at the ends ignored)."""
    return hashlib.sha256(question.strip().encode("utf-8")).hexdigest()[:16]


def sample_seed(pid: str, sample: int) -> int:
    """The seed a sample is requested with: the same on every rerun."""
    return int(hashlib.sha256(f"{pid}:{sample}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def load_prompts(config: Config, source: str | None = None) -> LoadedPrompts:
    """At most ``teacher.num_prompts`` distinct prompts with reference answers from ``source``."""
    from r1tui.data.sources import parse_source

    source = source or config.teacher.prompts
    kind, name, _ = parse_source(source)
    loaded = LoadedPrompts(prompts=[], source=source)
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
        loaded.prompts.append(Prompt(pid, question.strip(), reference.strip(), domain))
        if len(loaded.prompts) >= limit:
            break
    if loaded.skipped:
        log.warning("%s: skipped %d prompt rows: %s", source, sum(loaded.skipped.values()), dict(loaded.skipped))
    return loaded


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


def _hub_prompts(config: Config, source: str) -> Iterator[tuple[str, str, str] | str]:
    """Prompt rows of a Hub dataset through the data adapters (the reference: the adapted
    assistant turn's FINAL ANSWER)."""
    from r1tui.data.sources import MalformedRow, iter_examples
    from r1tui.eval.sets import example_row

    for index, item in enumerate(iter_examples(source, split=config.data.split, fields=config.data.fields)):
        if isinstance(item, MalformedRow):
            yield item.reason
            continue
        try:
            row = example_row(item, f"{source}-{index}", f"{source} row {index}")
        except R1Error:
            yield "no_final_answer"
            continue
        yield row["question"], row["answer"], row["domain"]


def _domain(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) and value.strip() else "math"


# ---------------------------------------------------------------- the files


def samples_file_for(out: Path) -> Path:
    """Where a traces file's samples go outside a run: ``traces.jsonl`` -> ``traces.samples.jsonl``."""
    return out.with_suffix(SAMPLES_SUFFIX) if out.suffix else out.with_name(out.name + SAMPLES_SUFFIX)


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


class _Appender:
    """One JSONL file appended to and flushed line by line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open while generating

    def write(self, row: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


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
    completed: int = 0  # samples finished, accepted or rejected
    resumed: int = 0  # of them, finished by an earlier run
    accepted: int = 0  # verified correct
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> samples
    kept: int = 0  # rows in the traces file
    dropped: dict[str, int] = field(default_factory=dict)  # correct but not kept: reason -> samples
    prompts_done: int = 0
    prompts_skipped: dict[str, int] = field(default_factory=dict)  # prompt rows not used: reason -> rows
    requests: int = 0  # HTTP requests, retries included
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


def cost_usd(config: Config, tokens_in: int, tokens_out: int) -> float | None:
    teacher = config.teacher
    if not teacher.price_in_per_m and not teacher.price_out_per_m:
        return None
    return round((tokens_in * teacher.price_in_per_m + tokens_out * teacher.price_out_per_m) / 1e6, 6)


# ---------------------------------------------------------------- the plan (DRY_RUN)


@dataclass
class GenerationPlan:
    source: str
    prompts: int
    prompts_skipped: dict[str, int]
    samples_per_prompt: int
    requests: int
    already_done: int  # samples an earlier run finished (a rerun skips them)
    max_tokens: int  # per request
    max_completion_tokens: int  # requests left × max_tokens: the most a run can be billed for
    prompt_tokens: int  # the prompts' tokens over the requests left (the student's tokenizer: an estimate)
    endpoints: list[str]
    concurrency: int
    model: str
    cost_upper_usd: float | None
    out: str
    samples_file: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_generation(config: Config, out: Path, prompts_source: str | None = None,
                    samples_path: Path | None = None) -> GenerationPlan:
    """What ``generate_traces`` would send, without sending anything."""
    from r1tui.generate.verify import StudentLength

    teacher = config.teacher
    out = Path(out)
    samples_path = samples_path or samples_file_for(out)
    loaded = load_prompts(config, prompts_source)
    wanted = {p.prompt_id for p in loaded.prompts}
    done = {(r.get("prompt_id"), r.get("sample")) for r in _read_only(samples_path)
            if r.get("prompt_id") in wanted and isinstance(r.get("sample"), int) and r["sample"] < teacher.samples}
    left_per_prompt = {p.prompt_id: sum((p.prompt_id, s) not in done for s in range(teacher.samples))
                       for p in loaded.prompts}
    requests = sum(left_per_prompt.values())
    length = StudentLength(config)
    prompt_tokens = sum(length.prompt(_conversation(config, p)) * left_per_prompt[p.prompt_id]
                        for p in loaded.prompts if left_per_prompt[p.prompt_id])
    return GenerationPlan(
        source=loaded.source, prompts=len(loaded.prompts), prompts_skipped=dict(loaded.skipped),
        samples_per_prompt=teacher.samples, requests=requests, already_done=len(done),
        max_tokens=teacher.max_tokens, max_completion_tokens=requests * teacher.max_tokens,
        prompt_tokens=prompt_tokens, endpoints=teacher.base_urls, concurrency=teacher.concurrency,
        model=teacher.model, cost_upper_usd=cost_usd(config, prompt_tokens, requests * teacher.max_tokens),
        out=str(out), samples_file=str(samples_path))


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


def _sampling(config: Config, seed: int | None = None) -> dict[str, Any]:
    teacher = config.teacher
    sampling: dict[str, Any] = {"temperature": teacher.temperature, "top_p": teacher.top_p,
                                "max_tokens": teacher.max_tokens}
    if seed is not None:
        sampling["seed"] = seed
    return sampling


def _check_same_settings(config: Config, records: list[dict[str, Any]], path: Path) -> None:
    """A samples file continues only under the teacher model and sampling it was written with."""
    wanted_model, wanted = config.teacher.model, _sampling(config)
    for record in records:
        sampling = {k: v for k, v in (record.get("sampling") or {}).items() if k != "seed"}
        if record.get("model") != wanted_model or sampling != wanted:
            raise R1Error(f"{path}: its samples came from teacher {record.get('model')!r} with {sampling}, this config "
                          f"asks {wanted_model!r} with {wanted}; use another --out, or delete {path.name} and its "
                          "traces file to start over")


class _Generation:
    """One call of ``generate_traces``: the state shared by its steps."""

    def __init__(self, config: Config, out: Path, samples_path: Path, events: EventSink,
                 on_progress: Callable[[GenerationSummary], None] | None, prompts: LoadedPrompts, pool: TeacherPool):
        from r1tui.generate.verify import StudentLength

        self.config = config
        self.teacher = config.teacher
        self.events = events
        self.on_progress = on_progress
        self.prompts = {p.prompt_id: p for p in prompts.prompts}
        self.order = [p.prompt_id for p in prompts.prompts]
        self.pool = pool
        self.length = StudentLength(config)
        self.started = time.monotonic()
        self.last_event = 0.0
        self.summary = GenerationSummary(
            out=str(out), samples_file=str(samples_path), source=prompts.source, model=self.teacher.model,
            endpoints=pool.urls, prompts=len(self.order), samples_per_prompt=self.teacher.samples,
            total=len(self.order) * self.teacher.samples, prompts_skipped=dict(prompts.skipped))
        self.rejected: Counter = Counter()
        self.dropped: Counter = Counter()
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        self.written: set[tuple[str, int]] = set()
        self.finished_prompts: set[str] = set()

        _refuse_foreign(out)
        _refuse_foreign(samples_path)
        records = read_jsonl_tolerant(samples_path)
        rows = read_jsonl_tolerant(out)
        _check_same_settings(config, records, samples_path)
        for record in records:
            key = (record.get("prompt_id"), record.get("sample"))
            if key[0] in self.prompts and isinstance(key[1], int) and 0 <= key[1] < self.teacher.samples \
                    and key not in self.done:
                self.done[key] = record
                self._count(record)
        self.summary.resumed = len(self.done)
        self.written = {(row.get("prompt_id"), row.get("sample")) for row in rows}
        self.samples_out = _Appender(samples_path)
        self.traces_out = _Appender(out)

    # -- bookkeeping

    def _count(self, record: Mapping[str, Any]) -> None:
        summary = self.summary
        summary.completed += 1
        if record.get("status") == "accepted":
            summary.accepted += 1
        else:
            self.rejected[str(record.get("reason"))] += 1
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
        summary.cost_usd = cost_usd(self.config, summary.tokens_in, summary.tokens_out)
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

    # -- a prompt whose samples are all in: choose, write what is not written yet

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
        for record in kept:
            self.summary.kept += 1
            key = (pid, record["sample"])
            if key in self.written:
                continue
            self.traces_out.write(self._row(prompt, record, pass_rate))
            self.written.add(key)

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
                                  "endpoint": reply.endpoint, "requests": reply.requests}
        if not reply.ok:
            verdict = Verdict(False, reply.reason, None, None)
            record.update(usage={"prompt_tokens": 0, "completion_tokens": 0}, finish_reason=None,
                          error=reply.message)
        else:
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
                      answer=verdict.answer, tokens=verdict.tokens)
        self.samples_out.write(record)
        self.done[(prompt.prompt_id, sample)] = record
        self._count(record)
        self.finish_prompt(prompt.prompt_id)

    def pending(self) -> list[tuple[Prompt, int]]:
        return [(self.prompts[pid], s) for pid in self.order for s in range(self.teacher.samples)
                if (pid, s) not in self.done]

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
               samples=config.teacher.samples, out=str(out)) as outputs:
        events.emit("stage_progress", stage=STAGE, completed=0, total=0, unit="sample", message=f"reading {source}")
        loaded = load_prompts(config, source)
        if not loaded.prompts:
            reasons = ", ".join(f"{r} {n}" for r, n in loaded.skipped.items()) or "the source is empty"
            raise R1Error(f"{source}: no usable prompts ({reasons}); each needs a question and a reference answer")
        pool = pool or TeacherPool(config.teacher)
        try:
            generation = _Generation(config, out, samples, events, on_progress, loaded, pool)
            try:
                for pid in generation.order:  # finished before a kill, but not written yet
                    generation.finish_prompt(pid)
                _run_pending(generation, config, pool)
            finally:
                generation.close()
        finally:
            if own_pool:
                pool.close()
        generation.report(force=True)
        summary = generation.summary
        outputs.update(traces=str(out), samples=str(samples), kept=summary.kept, accepted=summary.accepted,
                       completed=summary.completed, rejected=summary.rejected)
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

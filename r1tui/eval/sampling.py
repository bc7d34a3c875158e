"""Generating the eval's samples: the plan, the slots that run it, the journal that resumes it.

- **The plan**: every question ``n`` times (``eval.samples_per_question``); each sample
  has its own seed, derived from ``eval.seed``, the question's id and the sample's
  number, so two models (or a resumed run) draw the same seeds for the same sample.
- **Slots** (``eval.slots``): that many generations at once, each on its own chat
  (llama.cpp contexts over one memory-mapped GGUF) or on one thread-safe chat (an
  OpenAI-compatible server taking that many requests at once). A cancel stops every
  slot; a reply cut short by it is not kept.
- **The journal**: every finished sample is appended to a JSONL file (flushed per
  line) whose first line is the fingerprint of what was asked: the model, the rows, the
  generation settings. A killed eval started again with the same fingerprint skips the
  samples already there; a different fingerprint starts the journal afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import statistics
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    row: dict[str, Any]
    sample: int  # 0 .. n-1
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return self.row["id"], self.sample


def sample_seed(base_seed: int, row_id: str, sample: int) -> int:
    digest = hashlib.sha256(f"{base_seed}:{row_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def plan_jobs(rows: Sequence[dict[str, Any]], samples_per_question: int, base_seed: int) -> list[Job]:
    """Question by question, sample by sample (so an interrupted eval has whole questions first)."""
    return [Job(row, sample, sample_seed(base_seed, row["id"], sample))
            for row in rows for sample in range(samples_per_question)]


# ----------------------------------------------------------------- the journal


class Journal:
    """Finished samples of one model's eval, appended as they finish."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.done: dict[tuple[str, int], dict[str, Any]] = self._read()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.done:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        else:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            self._write({"fingerprint": fingerprint})

    def _read(self) -> dict[tuple[str, int], dict[str, Any]]:
        if not self.path.is_file():
            return {}
        done: dict[tuple[str, int], dict[str, Any]] = {}
        with open(self.path, encoding="utf-8") as file:
            header = file.readline()
            try:
                if json.loads(header).get("fingerprint") != self.fingerprint:
                    log.info("%s: made for other settings; starting afresh", self.path.name)
                    return {}
            except (json.JSONDecodeError, AttributeError):
                return {}
            whole = file.tell()
            for line in iter(file.readline, ""):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything before it is whole
                done[(record["id"], record["sample"])] = record
                whole = file.tell()
        if whole < self.path.stat().st_size:
            os.truncate(self.path, whole)  # drop the cut line, or the next sample would be glued to it
        return done

    def _write(self, entry: dict[str, Any]) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.done[(record["id"], record["sample"])] = record
            self._write(record)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        """The results are saved: the journal has served its purpose."""
        self.close()
        self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------- running the plan


GenerateFn = Callable[[Any, Job, threading.Event], Any]


def run_jobs(chats: Sequence[Any], jobs: Sequence[Job], generate: GenerateFn,
             on_done: Callable[[Any], None], *, slots: int, shared: bool = False,
             stop_event: threading.Event | None = None) -> None:
    """Run ``jobs`` on ``slots`` threads: one chat per slot in ``chats``, or with ``shared``
    the one chat in it, which serves every slot at once.

    ``generate(chat, job, stop)`` returns the sample (anything), or None when ``stop`` cut
    it short. ``on_done`` gets each sample in the calling thread, as they finish. An
    exception here (a cancel's StageCancelled, Ctrl-C, a failed request) stops the other
    slots, waits for them, and propagates.
    """
    stop = threading.Event()
    free: queue.SimpleQueue = queue.SimpleQueue()
    for chat in chats:
        free.put(chat)

    def one(job: Job) -> Any:
        if stop.is_set():
            return None
        if shared:
            return generate(chats[0], job, stop)
        chat = free.get()
        try:
            return generate(chat, job, stop)
        finally:
            free.put(chat)

    if not shared:
        slots = min(slots, len(chats))
    pending: set[Future] = set()
    remaining = list(jobs)
    remaining.reverse()
    with ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="eval-slot") as pool:
        try:
            while remaining or pending:
                while remaining and len(pending) < slots:
                    pending.add(pool.submit(one, remaining.pop()))
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    sample = future.result()
                    if sample is not None:
                        on_done(sample)
                if stop_event is not None and stop_event.is_set():
                    stop.set()
                    remaining.clear()
        except BaseException:
            stop.set()
            for future in pending:
                future.cancel()
            raise
        finally:
            stop.set()


# ----------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Budget:
    """What an eval is expected to cost, stated before it starts."""

    generations: int  # still to do
    done: int  # already in the journal
    max_tokens: int  # generations x max_new_tokens: the most it can generate
    expected_tokens: int | None  # from the measured average reply length, when known
    tokens_per_s: float | None  # measured per slot
    slots: int

    @property
    def max_seconds(self) -> float | None:
        if not self.tokens_per_s:
            return None
        return self.max_tokens / (self.tokens_per_s * self.slots)

    @property
    def expected_seconds(self) -> float | None:
        if not self.tokens_per_s or self.expected_tokens is None:
            return None
        return self.expected_tokens / (self.tokens_per_s * self.slots)

    def describe(self) -> str:
        from r1tui.present import format_duration

        text = f"{self.generations:,} generations"
        if self.done:
            text += f" ({self.done:,} already done)"
        text += f", at most {self.max_tokens:,} tokens"
        if self.expected_tokens is not None:
            text += f", about {self.expected_tokens:,} expected"
        if self.tokens_per_s:
            text += f"; {self.tokens_per_s:.1f} tokens/s per slot x {self.slots} slot{'s' * (self.slots > 1)}"
            if self.expected_seconds is not None:
                text += f": about {format_duration(self.expected_seconds)}"
            text += f" (at most {format_duration(self.max_seconds)})"
        else:
            text += "; time: measured once the first replies are in"
        return text


def budget(todo: int, done_records: Sequence[dict[str, Any]], max_new_tokens: int, slots: int,
           measured: dict[str, Any] | None = None) -> Budget:
    """The budget of ``todo`` generations, from replies already measured (the journal's, or
    an earlier eval of the same model: ``measured`` = its summary)."""
    speeds = [r["tokens_per_s"] for r in done_records if r.get("tokens_per_s")]
    lengths = [r["completion_tokens"] for r in done_records if r.get("completion_tokens") is not None]
    tokens_per_s = statistics.median(speeds) if speeds else (measured or {}).get("tokens_per_s")
    average = statistics.fmean(lengths) if lengths else (measured or {}).get("avg_completion_tokens")
    expected = None if average is None else int(round(min(average, max_new_tokens) * todo))
    return Budget(todo, len(done_records), todo * max_new_tokens, expected, tokens_per_s or None, slots)

"""A run's log as readable lines: one home for how an event reads as text.

``format_event`` is the line ``r1tui logs`` prints and the dashboard's Logs panel shows
(``HH:MM:SS stage    text``), so both show the same thing. ``log_entry`` adds what the
panel filters on: the stage and a level. The level of an event is decided here:

- ``debug``: heartbeats and progress ticks (``QUIET``; ``r1tui logs`` hides them unless
  ``--all``), so the panel's default minimum level, ``info``, shows what ``r1tui logs`` shows;
- ``warning``/``error``: a ``log`` event's own level, an ``error`` event, a failed or
  cancelled stage or run;
- ``info``: everything else.

``EventLogSource`` and ``TextLogSource`` read a run's events.jsonl and its pipeline.log
(the pipeline process's stdout and stderr) from the start and then what was appended, by
byte offset, a bounded chunk per call, so a reader in a thread stays responsive on a log of
any length. ``LogBook`` holds the entries read and the indices that pass a ``LogFilter``,
updated as entries arrive (no re-scan of the whole log per batch).

Plain Python: no Textual, no Rich.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1tui.present import format_bytes, format_duration
from r1tui.runs.events import Event, EventReader

LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "info"
QUIET = frozenset({"heartbeat", "stage_progress"})  # `r1tui logs` shows them only with --all
READ_CHUNK_BYTES = 1 << 20  # one read (and one batch to the screen) per MiB of log
NA = "N/A"
_LEVEL_NAMES = {"warn": "warning", "critical": "error", "fatal": "error", "exception": "error"}


def _num(value: Any, fmt: str = "{:.4g}") -> str:
    if value is None:
        return NA
    if isinstance(value, float):
        return fmt.format(value)
    return str(value)


def format_gpu_sample(gpu: dict[str, Any]) -> str:
    """One line for a ``gpu`` event's payload, with N/A for every field that could not be read."""
    if not gpu.get("available"):
        return f"no GPU ({gpu.get('reason') or NA})"

    def show(value: Any, fmt: str) -> str:
        return NA if value is None else fmt.format(value)

    memory = f"{format_bytes(gpu.get('memory_used'))}/{format_bytes(gpu.get('memory_total'))}"
    return (f"GPU {gpu.get('index', 0)} {gpu.get('name') or NA}: {memory}, "
            f"util {show(gpu.get('utilization'), '{}%')}, {show(gpu.get('temperature'), '{}°C')}, "
            f"{show(gpu.get('power_w'), '{} W')}")


def describe(event: Event) -> str:
    """What happened, without the time and stage prefix."""
    d = event.data
    kind = event.type
    if kind == "run_started":
        extra = " (resumed)" if d.get("resumed") else ""
        return f"run {d.get('run_id')} started{extra}: stages {', '.join(d.get('stages') or [])}, pid {d.get('pid')}"
    if kind == "run_finished":
        text = f"run {d.get('status')}"
        if d.get("error"):
            text += f": {d['error']}"
        return text
    if kind == "stage_started":
        inputs = {k: v for k, v in (d.get("inputs") or {}).items() if v not in (None, "", [], {})}
        shown = ", ".join(f"{k}={v}" for k, v in list(inputs.items())[:4])
        return "started" + (f" ({shown})" if shown else "")
    if kind == "stage_finished":
        outputs = d.get("outputs") or {}
        text = f"{d.get('status')} in {format_duration(d.get('duration_s'))}"
        if outputs.get("reason"):
            text += f": {outputs['reason']}"
        return text
    if kind == "stage_progress":
        total = d.get("total")
        done = f"{d.get('completed')}/{total}" if total else f"{d.get('completed')}"
        return f"{done} {d.get('unit', '')}".rstrip() + (f" {d['message']}" if d.get("message") else "")
    if kind == "metric" and d.get("eval_loss") is not None and d.get("loss") is None:
        # the validation loss on the held-out rows (train.eval_steps): an event of its own
        return f"step {d.get('step')}/{d.get('max_steps') or '?'}  eval loss {_num(d.get('eval_loss'), '{:.4f}')}"
    if kind == "metric":
        parts = [f"step {d.get('step')}/{d.get('max_steps') or '?'}", f"loss {_num(d.get('loss'), '{:.4f}')}",
                 f"lr {_num(d.get('learning_rate'), '{:.3g}')}", f"grad {_num(d.get('grad_norm'), '{:.3f}')}",
                 f"{_num(d.get('tokens_per_s'), '{:.0f}')} tok/s", f"eta {format_duration(d.get('eta_s'))}"]
        if d.get("cuda_peak") is not None:
            parts.append(f"vram peak {format_bytes(d.get('cuda_peak'))}")
        return "  ".join(parts)
    if kind == "gpu":
        return format_gpu_sample(d)
    if kind == "artifact":
        size = f" ({format_bytes(d['bytes'])})" if d.get("bytes") is not None else ""
        return f"{d.get('kind')}: {d.get('path')}{size}"
    if kind == "error":
        return f"error: {d.get('message')}"
    if kind == "log":
        level = d.get("level", "info")
        return f"{level}: {d.get('message')}" if level not in ("info",) else str(d.get("message"))
    if kind == "heartbeat":
        return "heartbeat"
    return str(d)


def format_event(event: Event) -> str:
    """``HH:MM:SS stage   text`` for one event."""
    when = time.strftime("%H:%M:%S", time.localtime(event.ts)) if event.ts else "--:--:--"
    return f"{when} {(event.stage or 'run'):<8} {describe(event)}"


def normal_level(name: object) -> str:
    """A level name as one of LEVELS ("WARN" -> "warning"); unknown names read as info."""
    level = str(name or "").strip().lower()
    level = _LEVEL_NAMES.get(level, level)
    return level if level in LEVELS else DEFAULT_LEVEL


def event_level(event: Event) -> str:
    d = event.data
    if event.type in QUIET:
        return "debug"
    if event.type == "log":
        return normal_level(d.get("level"))
    if event.type == "error":
        return "error"
    if event.type in ("stage_finished", "run_finished"):
        return {"failed": "error", "cancelled": "warning"}.get(str(d.get("status")), "info")
    return "info"


@dataclass(frozen=True)
class LogEntry:
    """One line of the log: its text as shown, and what it is filtered on."""

    text: str
    level: str = DEFAULT_LEVEL
    stage: str | None = None  # None: the run as a whole (or a line of pipeline.log)
    kind: str = ""  # the event type; "" for a line of pipeline.log


def log_entry(event: Event) -> LogEntry:
    return LogEntry(format_event(event), event_level(event), event.stage, event.type)


# "2026-11-27 22:39:36,123 WARNING r1tui.train: …", as r1tui.pipeline.process formats it
_PIPELINE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[,.]\d+)? (?P<level>[A-Z]+) ")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_BARE_LEVEL = re.compile(r"^(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)[ :]")


def text_entries(lines: Iterable[str], level: str = DEFAULT_LEVEL) -> tuple[list[LogEntry], str]:
    """Entries for lines of a process's output; a line without a level of its own (a traceback's
    body, a library's print) takes the level of the line before it. Returns the entries and
    the level the next line inherits."""
    entries = []
    for line in lines:
        found = _PIPELINE_LINE.match(line) or _BARE_LEVEL.match(line)
        if found:
            level = normal_level(found["level"])
        elif line.startswith("Traceback (most recent call last)"):
            level = "error"
        entries.append(LogEntry(line, level))
    return entries, level


class EventLogSource:
    """A run's events.jsonl: every event as a LogEntry, from the start, then what was appended."""

    def __init__(self, path: Path, chunk_bytes: int = READ_CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.reader = EventReader(self.path)
        self.chunk_bytes = chunk_bytes

    def read(self) -> list[LogEntry]:
        return [log_entry(event) for event in self.reader.read_new(self.chunk_bytes)]

    def at_end(self) -> bool:
        try:
            return self.reader.offset >= os.path.getsize(self.path)
        except OSError:
            return True


class TextLogSource:
    """A plain text log (pipeline.log): complete lines from a byte offset on, decoded leniently."""

    def __init__(self, path: Path, chunk_bytes: int = READ_CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.offset = 0
        self.chunk_bytes = chunk_bytes
        self._level = DEFAULT_LEVEL

    def read(self) -> list[LogEntry]:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                chunk = log.read(self.chunk_bytes)
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) < self.chunk_bytes:
                return []  # a partial last line: wait for its end
            end = len(chunk) - 1  # one line longer than a chunk: show it in pieces rather than stall
        self.offset += end + 1
        lines = chunk[: end + 1].decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        # a progress bar rewrites its line with \r: keep what the terminal would show last;
        # colour and cursor codes would draw as garbage
        lines = [_ANSI.sub("", line.rsplit("\r", 1)[-1]).expandtabs() for line in lines]
        entries, self._level = text_entries(lines, self._level)
        return entries

    def at_end(self) -> bool:
        try:
            return self.offset >= os.path.getsize(self.path)
        except OSError:
            return True


@dataclass(frozen=True)
class LogFilter:
    """Which entries to show: one stage (None: all), a minimum level, a text (case-insensitive)."""

    stage: str | None = None
    min_level: str = DEFAULT_LEVEL
    text: str = ""

    def matches(self, entry: LogEntry) -> bool:
        if self.stage is not None and (entry.stage or "run") != self.stage:
            return False
        if LEVELS.index(entry.level) < LEVELS.index(self.min_level):
            return False
        return not self.text or self.text.lower() in entry.text.lower()

    def describe(self) -> str:
        parts = [f"stage {self.stage or 'all'}", f"level ≥ {self.min_level}"]
        if self.text:
            parts.append(f"text “{self.text}”")
        return " · ".join(parts)


@dataclass
class LogBook:
    """Every entry read so far, and the indices of those the filter lets through."""

    filter: LogFilter = field(default_factory=LogFilter)
    entries: list[LogEntry] = field(default_factory=list)
    shown: list[int] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)  # stages seen, in order of first appearance
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    widest: int = 0  # the longest shown line, in characters

    def add(self, entries: list[LogEntry]) -> int:
        """Append entries; returns how many of them are shown."""
        start = len(self.entries)
        self.entries.extend(entries)
        seen = set(self.stages)
        before = len(self.shown)
        matches = self.filter.matches
        for offset, entry in enumerate(entries):
            self.counts[entry.level] += 1
            stage = entry.stage or "run"
            if entry.kind and stage not in seen:
                seen.add(stage)
                self.stages.append(stage)
            if matches(entry):
                self.shown.append(start + offset)
                self.widest = max(self.widest, len(entry.text))
        return len(self.shown) - before

    def set_filter(self, log_filter: LogFilter) -> None:
        self.filter = log_filter
        matches = log_filter.matches
        self.shown = [index for index, entry in enumerate(self.entries) if matches(entry)]
        self.widest = max((len(self.entries[index].text) for index in self.shown), default=0)

    def line(self, row: int) -> LogEntry:
        return self.entries[self.shown[row]]

    def clear(self) -> None:
        self.entries.clear()
        self.shown.clear()
        self.stages.clear()
        self.counts = dict.fromkeys(LEVELS, 0)
        self.widest = 0


def next_in(options: list[Any], current: Any) -> Any:
    """The option after ``current`` (the first after the last, or when current is not there)."""
    if current not in options:
        return options[0]
    return options[(options.index(current) + 1) % len(options)]

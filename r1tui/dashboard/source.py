"""Finding runs and reading what they left on disk (no Textual, no torch).

A run is a folder ``runs/<id>/`` (see docs/HELPERS.md); the dashboard reads its
``events.jsonl`` through ``r1tui.runs.events.EventReader`` and a few result files
(``data/stats.json``, ``gguf/parity.json``, ``eval/results.json``). Whether the run's
process is still alive comes from ``r1tui.runs.runner.run_status`` when the runner
offers it, else from the ``pid`` file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.runs.events import EVENTS_FILE, Event, EventReader
from r1tui.runs.runner import pid_alive, read_pid  # noqa: F401 - pid_alive re-exported for the panels

REPLAY_CHUNK_BYTES = 1 << 20  # one message per MiB while replaying a long log


@dataclass(frozen=True)
class RunRef:
    run_id: str
    run_dir: Path

    @property
    def events_path(self) -> Path:
        return self.run_dir / EVENTS_FILE


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / EVENTS_FILE).is_file() or (path / "config.toml").is_file())


def _started_at(run_dir: Path) -> float:
    """When a run started: its first event's timestamp, else the folder's mtime."""
    try:
        with open(run_dir / EVENTS_FILE, "rb") as f:
            first = f.readline()
        return float(json.loads(first)["ts"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return run_dir.stat().st_mtime
        except OSError:
            return 0.0


def find_runs(runs_dir: Path) -> list[RunRef]:
    """Runs under ``runs_dir``, newest first."""
    if not runs_dir.is_dir():
        return []
    refs = [RunRef(p.name, p) for p in runs_dir.iterdir() if is_run_dir(p)]
    return sorted(refs, key=lambda ref: (_started_at(ref.run_dir), ref.run_id), reverse=True)


def resolve_run(run: str | None, runs_dir: Path) -> RunRef | None:
    """A run named on the command line (an id under runs_dir or a folder), else the newest."""
    if not run:
        runs = find_runs(runs_dir)
        return runs[0] if runs else None
    for candidate in (Path(run).expanduser(), runs_dir / run):
        if is_run_dir(candidate):
            path = candidate.resolve()
            return RunRef(path.name, path)
    known = ", ".join(ref.run_id for ref in find_runs(runs_dir)[:5]) or "none yet"
    raise R1Error(f"no run {run!r} in {runs_dir}; known runs: {known} (pass a run id or a run folder)")


def process_alive(run_dir: Path, pid_from_events: int | None = None) -> bool | None:
    """Is the run's process alive? None when there is nothing to check.

    Only the pid file and the process table are read (cheap enough to ask every
    second); ``r1tui.runs.runner.run_status`` would re-read the whole log each time.
    """
    pid = read_pid(run_dir) or pid_from_events
    if pid is None:
        return None
    return pid_alive(pid)


class EventTail:
    """Reads a run's log from the start, then what was appended since (by byte offset)."""

    def __init__(self, path: Path, chunk_bytes: int = REPLAY_CHUNK_BYTES):
        self.reader = EventReader(path)
        self.chunk_bytes = chunk_bytes

    def read(self) -> list[Event]:
        return self.reader.read_new(max_bytes=self.chunk_bytes)

    @property
    def offset(self) -> int:
        return self.reader.offset

    def at_end(self) -> bool:
        try:
            return self.reader.offset >= self.reader.path.stat().st_size
        except OSError:
            return True


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_run_config(run_dir: Path | None, fallback: str | Path | None = None):
    """The run's frozen config.toml, else ``fallback`` / the default config lookup."""
    from r1tui.config import default_config_path, load_config, parse_config

    if run_dir is not None and (run_dir / "config.toml").is_file():
        return load_config(run_dir / "config.toml")
    if fallback:
        return load_config(fallback)
    path = default_config_path()
    if path.is_file():
        return load_config(path)
    return parse_config({}, origin="built-in defaults")


def find_ggufs(runs_dir: Path, run_dir: Path | None = None) -> list[Path]:
    """GGUF files to chat with: the run's own first (smallest quant first), then others."""
    found: list[Path] = []
    if run_dir is not None:
        found += sorted((run_dir / "gguf").glob("*.gguf"), key=lambda p: p.stat().st_size)
    if runs_dir.is_dir():
        for path in sorted(runs_dir.glob("*/gguf/*.gguf")):
            if path not in found:
                found.append(path)
    return found

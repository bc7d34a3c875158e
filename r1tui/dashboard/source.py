"""Finding runs and reading what they left on disk (no Textual, no torch).

A run is a folder ``runs/<id>/`` (see docs/runs.md), found the way every command finds
it (``r1tui.runs.runner.resolve_run``). The dashboard reads its ``events.jsonl`` through
``r1tui.runs.events.EventReader`` and a few result files (``data/stats.json``,
``gguf/parity.json``, ``eval/results.json``); whether its process is alive comes from the
``pid`` file and the process table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from r1tui.export._util import read_json  # noqa: F401 - re-exported for the panels
from r1tui.runs.events import EVENTS_FILE, Event, EventReader
from r1tui.runs.runner import pid_alive, read_pid, run_folders  # noqa: F401 - pid_alive re-exported for the panels
from r1tui.runs.runner import resolve_run as resolve_run_path

REPLAY_CHUNK_BYTES = 1 << 20  # one message per MiB while replaying a long log


@dataclass(frozen=True)
class RunRef:
    run_id: str
    run_dir: Path

    @property
    def events_path(self) -> Path:
        return self.run_dir / EVENTS_FILE


def find_runs(runs_dir: Path) -> list[RunRef]:
    """Runs under ``runs_dir``, newest first."""
    return [RunRef(p.name, p) for p in run_folders(runs_dir)]


def resolve_run(run: str | None, runs_dir: Path) -> RunRef | None:
    """The run named on the command line (as every command resolves it), else the newest;
    None when there is no run yet (the dashboard then starts empty)."""
    if not run and not run_folders(runs_dir):
        return None
    path = resolve_run_path(runs_dir, run)
    return RunRef(path.name, path)


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

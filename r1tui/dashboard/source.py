"""Finding runs and reading what they left on disk (no Textual, no torch).

A run is a folder whose every path ``r1tui.runs.layout.RunLayout`` names; the dashboard
finds it the way every command does (``r1tui.runs.layout.resolve_run``), reads its event
log through ``r1tui.runs.events.EventReader`` and a few result files through the layout.
Whether a writer still holds the run is ``r1tui.runs.status.writer_alive``'s to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from r1tui.data.tokenizer import tokenizer_spec
from r1tui.quants import order_ggufs
from r1tui.runs.events import Event, EventReader
from r1tui.runs.files import read_json  # noqa: F401 - re-exported for the panels
from r1tui.runs.layout import RunLayout, run_folders
from r1tui.runs.layout import resolve_run as _resolve

REPLAY_CHUNK_BYTES = 1 << 20  # one message per MiB while replaying a long log


@dataclass(frozen=True)
class RunRef:
    """The run the dashboard watches: its layout, and the two names the panels show."""

    layout: RunLayout

    @classmethod
    def at(cls, run_dir: str | Path) -> RunRef:
        return cls(RunLayout(Path(run_dir)))

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    @property
    def run_dir(self) -> Path:
        return self.layout.root


def find_runs(runs_dir: Path) -> list[RunRef]:
    """Runs under ``runs_dir``, newest first."""
    return [RunRef.at(p) for p in run_folders(runs_dir)]


def open_run(runs_dir: Path, ref: str | Path | None = None) -> RunRef | None:
    """The run ``ref`` names (as every command resolves it; the newest when None); None when
    none is named and there is no run yet (the dashboard then starts empty)."""
    if not ref and not run_folders(runs_dir):
        return None
    return RunRef(_resolve(runs_dir, ref))


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


def load_run_config(run: RunLayout | None, fallback: str | Path | None = None):
    """The run's frozen config, else ``fallback`` / the default config lookup."""
    from r1tui.config import default_config_path, load_config, parse_config

    if run is not None and run.config.is_file():
        config = run.frozen_config()
    elif fallback:
        config = load_config(fallback)
    elif default_config_path().is_file():
        config = load_config(default_config_path())
    else:
        config = parse_config({}, origin="built-in defaults")
    tokenizer_spec(config)  # a tokenizer that cannot be used is the config's one-line error
    return config


def find_ggufs(runs_dir: Path, run: RunLayout | None = None, configured: Sequence[str] = ()) -> list[Path]:
    """GGUF files to chat with: the run's own first, in the order a consumer chooses them
    (``RunLayout.choose_gguf``: the configured quant types first), then other runs'."""
    found: list[Path] = order_ggufs(run.gguf_files(), configured) if run is not None else []
    own = run.root.resolve() if run is not None else None
    for folder in reversed(run_folders(runs_dir)):  # oldest run first, as before
        if folder.resolve() != own:
            found += [path for path in RunLayout(folder).gguf_files() if path not in found]
    return found

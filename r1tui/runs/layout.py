"""The run folder: every path of a run is named here, and only here.

A run is a folder ``<runs.dir>/<id>/`` (ids start with the UTC start time, so they sort
by it). ``RunLayout`` names its files; ``resolve_run`` is the one way every command and
the dashboard turn ``RUN`` (an id, a unique id prefix, a run folder or ``latest``) into
a run; ``RunLayout.frozen_config`` is the one place a run's own config is read.

    config.toml      the config frozen when the run was made (what every stage reads)
    source           the config file it was frozen from (shown, never read again)
    events.jsonl     the event log: the contract between the pipeline and its watchers
    lock             the writers' lock (r1tui.runs.lock): who is writing this run now
    cancel-request   a cancel asked through the run folder (r1tui.runs.cancel), for one lock holder
    pid              the pipeline's process (what ``r1tui cancel`` signals)
    pipeline.log     the pipeline's stdout and stderr
    exit.json        how the pipeline process last ended (exit code), written as it exits
    stages.json      what each stage last did, with the fingerprint of its inputs
    generated/       the teacher's traces (traces.jsonl) and every sample's verdict (samples.jsonl)
    data/            the rendered and masked dataset, with stats.json
    base/            the random-init base model of a tiny run (model.random_init)
    checkpoints/     training checkpoints; adapter/ the trained LoRA adapter
    merged/          the adapter merged into the base model
    gguf/            <stem>-<QUANT>.gguf files, parity.json, export.json, Modelfile
    card/README.md   the model card
    eval/results.json  the evaluation
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from r1tui.errors import R1Error
from r1tui.quants import choose_gguf, order_ggufs

if TYPE_CHECKING:
    from r1tui.config import Config

CONFIG_FILE = "config.toml"
EVENTS_FILE = "events.jsonl"
RESULTS_FILE = "results.json"  # eval results, in a run's eval/ or in the folder `r1tui eval --out` names


@dataclass(frozen=True)
class RunLayout:
    """Where everything of one run lives. Paths only: nothing here touches the disk
    except the few readers at the end."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    # -- the contract
    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def events(self) -> Path:
        return self.root / EVENTS_FILE

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def cancel_request(self) -> Path:
        """A cancel asked through the run folder, naming the lock holder it is for
        (r1tui.runs.cancel): how ``r1tui cancel`` reaches ranks on other machines."""
        return self.root / "cancel-request"

    @property
    def pid(self) -> Path:
        return self.root / "pid"

    @property
    def pipeline_log(self) -> Path:
        return self.root / "pipeline.log"

    @property
    def exit_record(self) -> Path:
        """How the pipeline process last ended: {"code", "pid", "ts"} (r1tui.runs.diagnosis)."""
        return self.root / "exit.json"

    @property
    def stages_record(self) -> Path:
        return self.root / "stages.json"

    # -- what the stages write
    @property
    def generated(self) -> Path:
        """The generate stage's folder: traces.jsonl (kept conversations) and samples.jsonl
        (every finished sample with its verdict: what a rerun continues from)."""
        return self.root / "generated"

    @property
    def traces(self) -> Path:
        return self.generated / "traces.jsonl"

    @property
    def samples(self) -> Path:
        return self.generated / "samples.jsonl"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def data_stats(self) -> Path:
        return self.data / "stats.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def base(self) -> Path:
        """The random-init base model a tiny run builds (model.random_init)."""
        return self.root / "base"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def gguf_dir(self) -> Path:
        return self.root / "gguf"

    @property
    def parity(self) -> Path:
        return self.gguf_dir / "parity.json"

    @property
    def export_manifest(self) -> Path:
        return self.gguf_dir / "export.json"

    @property
    def convert_log(self) -> Path:
        return self.gguf_dir / "convert.log"

    @property
    def modelfile(self) -> Path:
        return self.gguf_dir / "Modelfile"

    @property
    def card_dir(self) -> Path:
        return self.root / "card"

    @property
    def card(self) -> Path:
        return self.card_dir / "README.md"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def eval_results(self) -> Path:
        return self.eval_dir / RESULTS_FILE

    def eval_journal(self, out_dir: Path | None = None, vs: str = "") -> Path:
        """Where an eval appends each finished sample until its results are saved
        (``eval/journal.jsonl``; ``journal-vs-<name>.jsonl`` for the model compared with)."""
        return eval_journal(out_dir or self.eval_dir, vs)

    @property
    def base_gguf_cache(self) -> Path:
        """GGUFs of base models for ``r1tui eval --vs base``, shared by the runs beside this one
        (``<runs.dir>/.cache/base-gguf``): a 22B base is exported once, not once per run."""
        return self.root.parent / ".cache" / "base-gguf"

    # -- GGUF files
    def gguf(self, stem: str, quant: str) -> Path:
        """The file export writes for ``quant``: ``gguf/<stem>-<QUANT>.gguf``."""
        return self.gguf_dir / f"{stem}-{quant}.gguf"

    def gguf_files(self) -> list[Path]:
        """Every finished GGUF of the run (temporary files start with a dot), in choice order."""
        if not self.gguf_dir.is_dir():
            return []
        return order_ggufs(p for p in self.gguf_dir.glob("*.gguf") if not p.name.startswith("."))

    def choose_gguf(self, configured: Sequence[str] = ()) -> Path | None:
        """The GGUF to load from this run (see ``r1tui.quants.choose_gguf``), or None."""
        return choose_gguf(self.gguf_files(), configured)

    def writer_folders(self) -> list[Path]:
        """The folders writers put temporary files in (``.<name>.tmp-*``, renamed when done)."""
        return [self.root, self.generated, self.checkpoints, self.gguf_dir, self.eval_dir,
                self.card_dir]

    # -- readers
    def frozen_config(self) -> Config:
        """The config the run was made with; one line when it is missing or invalid."""
        from r1tui.config import load_config  # config parses TOML with pydantic: loaded on demand

        if not self.config.is_file():
            raise R1Error(f"{self.root}: no {CONFIG_FILE}; this is not a run folder made by `r1tui run`")
        return load_config(self.config)

    def source_config(self) -> str | None:
        """The config file the run was frozen from, as recorded at creation."""
        try:
            return self.source.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None


def layout_of(gguf: str | Path) -> RunLayout | None:
    """The run a GGUF belongs to (``<run>/gguf/x.gguf``), else None."""
    path = Path(gguf).resolve()
    if path.parent.name == "gguf" and is_run_dir(path.parent.parent):
        return RunLayout(path.parent.parent)
    return None


def eval_journal(out_dir: str | Path, vs: str = "") -> Path:
    """An eval's sample journal in ``out_dir`` (any folder ``r1tui eval --out`` names)."""
    return Path(out_dir) / (f"journal-vs-{vs}.jsonl" if vs else "journal.jsonl")


def is_run_dir(path: str | Path) -> bool:
    """A run folder holds its frozen config (written first) or its event log."""
    path = Path(path)
    return path.is_dir() and ((path / CONFIG_FILE).is_file() or (path / EVENTS_FILE).is_file())


def run_folders(runs_dir: str | Path) -> list[Path]:
    """Run folders under ``runs_dir``, newest first (ids start with the UTC start time)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted((p for p in runs_dir.iterdir() if is_run_dir(p)), key=lambda p: p.name, reverse=True)


def new_run_id(now: float | None = None) -> str:
    """UTC start time to the second plus a random suffix: sorts by time, never collides."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def resolve_run(runs_dir: str | Path, ref: str | Path | None) -> RunLayout:
    """The one way every command and the dashboard find a run: a run folder's path, an id
    under ``runs_dir``, a unique id prefix, or "latest"/"last"/None for the newest (the
    largest id: ids start with the UTC start time)."""
    runs_dir = Path(runs_dir)
    text = str(ref) if ref is not None else ""
    path = Path(text).expanduser()
    if text and path.is_dir():
        if is_run_dir(path):
            return RunLayout(path.resolve())
        raise R1Error(f"{text} is a folder but not a run (no {CONFIG_FILE} or {EVENTS_FILE} in it); "
                      f"pass a run id or a folder that `r1tui run` made")
    runs = run_folders(runs_dir)
    if not runs:
        raise R1Error(f"no runs in {runs_dir}; start one with `r1tui run` (or pass --config for another runs.dir)")
    if text in ("", "latest", "last"):
        return RunLayout(runs[0].resolve())
    matches = [p for p in runs if p.name == text] or [p for p in runs if p.name.startswith(text)]
    if len(matches) == 1:
        return RunLayout(matches[0].resolve())
    if not matches:
        known = ", ".join(p.name for p in runs[:3]) + (", …" if len(runs) > 3 else "")
        raise R1Error(f"no run {text!r} in {runs_dir} (newest: {known}); `r1tui runs` lists them all")
    raise R1Error(f"{text!r} matches {len(matches)} runs ({', '.join(p.name for p in matches[:3])}…); "
                  f"give more of the id")

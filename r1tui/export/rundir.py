"""Finding a run folder from what the user typed, and the config it was run with."""

from __future__ import annotations

from pathlib import Path

from r1tui.errors import R1Error


def resolve_run_dir(run: str | Path, runs_dir: Path) -> Path:
    """RUN is a folder, a run id under runs.dir, or "latest" (the newest run there)."""
    text = str(run)
    if text == "latest":
        runs = [p for p in Path(runs_dir).glob("*") if p.is_dir() and not p.name.startswith(".")]
        if not runs:
            raise R1Error(f"no runs under {runs_dir}; start one with `r1tui run` or pass a run folder")
        return max(runs, key=lambda p: p.stat().st_mtime).resolve()
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve()
    candidate = Path(runs_dir) / text
    if candidate.is_dir():
        return candidate.resolve()
    raise R1Error(f"run {text!r} not found: not a folder, and no such run under {runs_dir}; `r1tui runs` lists them")


def run_config(run_dir: Path, fallback):
    """The run's frozen config.toml when it has one, else `fallback`."""
    from r1tui.config import load_config

    frozen = Path(run_dir) / "config.toml"
    return load_config(frozen) if frozen.is_file() else fallback


def refuse_if_running(run_dir: Path, doing: str) -> None:
    """A command that writes into a run folder must not race the run's own pipeline."""
    from r1tui.runs.runner import run_status

    status = run_status(run_dir)
    if status.status == "running":
        raise R1Error(f"run {Path(run_dir).name} is still running (pid {status.pid}); {doing} when it has "
                      f"finished, or stop it first with `r1tui cancel {Path(run_dir).name}`")


def run_for_writing(run: str | Path, fallback_config, doing: str):
    """(run folder, its frozen config) for a command that writes into the run; refuses a live one."""
    run_dir = resolve_run_dir(run, fallback_config.runs.dir)
    refuse_if_running(run_dir, doing)
    return run_dir, run_config(run_dir, fallback_config)

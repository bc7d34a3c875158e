"""The config a run was made with, and the guard for commands that write into a run."""

from __future__ import annotations

from pathlib import Path

from r1tui.errors import R1Error


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
    from r1tui.runs.runner import resolve_run

    run_dir = resolve_run(fallback_config.runs.dir, run)
    refuse_if_running(run_dir, doing)
    return run_dir, run_config(run_dir, fallback_config)

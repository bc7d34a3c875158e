"""Helpers shared by the command modules: config loading, consoles, progress."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from r1tui.config import Config, default_config_path, load_config, parse_config
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import ConfigError, R1Error
from r1tui.runs.layout import RunLayout, resolve_run


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", metavar="PATH", default=None,
        help="config file (default: $R1TUI_CONFIG, else ./config.toml, else built-in defaults)",
    )


def add_runs_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", metavar="DIR", default=None,
                        help="where runs live (default: runs.dir of the config)")


def runs_dir_of(args: argparse.Namespace) -> Path:
    """--runs-dir when given (no config is read then), else runs.dir of the config."""
    if getattr(args, "runs_dir", None):
        return Path(args.runs_dir).expanduser().resolve()
    return Path(load_cli_config(args).runs.dir)


def resolve_cli_run(args: argparse.Namespace, ref: str | None = None) -> RunLayout:
    """The run named on the command line (args.run unless ``ref``), as every command finds it."""
    return resolve_run(runs_dir_of(args), ref if ref is not None else getattr(args, "run", None))


def run_flags(layout: RunLayout) -> str:
    """What a printed hint (``r1tui logs RUN -f``) needs to find this run again from the
    same folder: nothing when the default lookup (./config.toml or $R1TUI_CONFIG, then
    runs.dir) finds it, else ``--runs-dir DIR`` (then no config is read either)."""
    import shlex

    runs_dir = layout.root.parent.resolve()
    try:
        default = Path(load_cli_config(argparse.Namespace()).runs.dir).resolve()
    except Exception:  # noqa: BLE001 - a default lookup that fails cannot find the run either
        default = None
    if default == runs_dir:
        return ""
    shown = os.path.relpath(runs_dir)
    return f" --runs-dir {shlex.quote(str(runs_dir) if shown.startswith('..') else shown)}"


def run_and_config(args: argparse.Namespace, doing: str | None = None) -> tuple[RunLayout | None, Config]:
    """The run named by args.run (if any) and the config to use: the run's frozen copy
    unless --config was given. ``doing``: this command writes into the run, so a run
    that is still running is refused (saying what would have been done)."""
    config = load_cli_config(args)
    if not getattr(args, "run", None):
        return None, config
    layout = resolve_run(Path(config.runs.dir), args.run)
    if doing is not None:
        from r1tui.runs.status import refuse_if_running

        refuse_if_running(layout, doing)
    if not getattr(args, "config", None) and layout.config.is_file():
        config = layout.frozen_config()
    return layout, config


def load_cli_config(args: argparse.Namespace) -> Config:
    """--config if given, else $R1TUI_CONFIG / ./config.toml, else the embedded defaults;
    --runs-dir, where the command has it, overrides runs.dir."""
    if getattr(args, "config", None):
        config = load_config(args.config)
    else:
        path = default_config_path()
        if os.environ.get("R1TUI_CONFIG") and not path.is_file():
            raise ConfigError(f"R1TUI_CONFIG={path}: no such config file; fix the variable or unset it")
        config = load_config(path) if path.is_file() else parse_config({}, origin="built-in defaults")
    if getattr(args, "runs_dir", None):
        config.runs.dir = Path(args.runs_dir).expanduser().resolve()
    tokenizer_spec(config)  # what "auto" stands for, or one line on a tokenizer that cannot be used
    return config


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def progress():
    """The Rich progress bar every long-running command uses (drawn on stderr). It stays on
    screen when the command ends well, and is wiped when it fails, so the one-line error
    stands alone."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console(stderr=True), transient=False,
    )
    with bar:
        try:
            yield bar
        except BaseException:
            bar.live.transient = True
            raise


def resolve_path(path: str | None) -> Path | None:
    return Path(path).expanduser().resolve() if path else None


def source_argument(source: str) -> str:
    """A data source named on the command line: a local file relative to the current
    folder (made absolute), or ``synthetic`` / ``hf:<dataset>`` as given."""
    from r1tui.config import is_local_source

    return str(resolve_path(source)) if is_local_source(source) else source


class EventProgress:
    """An event writer that also draws each stage's progress on a Rich progress bar."""

    def __init__(self, writer, bar):
        self.writer = writer
        self.bar = bar
        self.path = getattr(writer, "path", None)
        self._tasks: dict[str, int] = {}
        self._totals: dict[str, float] = {}

    def emit(self, type: str, stage: str | None = None, **data):
        event = self.writer.emit(type, stage=stage, **data)
        if stage is None:
            return event
        if type == "stage_started":
            self._tasks[stage] = self.bar.add_task(stage, total=None)
        elif type == "stage_progress" and stage in self._tasks:
            from r1tui.present import format_bytes

            message = str(data.get("message") or "")
            if data.get("unit") == "byte":
                message = f"{format_bytes(data['completed'])} / {format_bytes(data['total'])} {message}"
            self._totals[stage] = data.get("total") or 1
            self.bar.update(self._tasks[stage], completed=data.get("completed"), total=data.get("total"),
                            description=f"{stage} {message[:60]}".strip())
        elif type == "stage_finished" and stage in self._tasks:
            total = self._totals.get(stage, 1)
            self.bar.update(self._tasks[stage], completed=total, total=total,
                            description=f"{stage} ({data.get('status')})")
        return event

    def close(self) -> None:
        self.writer.close()


# The [infer] keys each command takes as a flag (r1tui chat, r1tui eval).
INFER_FLAGS = (("--prefill-think", "prefill_think"), ("--max-think-tokens", "max_think_tokens"),
               ("--min-think-tokens", "min_think_tokens"), ("--continuation", "continuation"))


def set_from_flags(section: Any, args: argparse.Namespace, flags: tuple[tuple[str, str], ...],
                   words: dict[str, Any] | None = None) -> None:
    """Set ``section.key`` from each flag given on the command line, validated by the
    config's own model: one line naming the flag on a bad value. ``words`` maps typed
    words to values (``"true"`` -> True)."""
    from pydantic import ValidationError

    for flag, key in flags:
        value = getattr(args, key, None)
        if value is None:
            continue
        if words and isinstance(value, str):
            value = words.get(value, value)
        try:
            setattr(section, key, value)
        except ValidationError as exc:
            raise R1Error(f"{flag} {value}: {exc.errors()[0]['msg']}") from None


def apply_infer_flags(config: Config, args: argparse.Namespace) -> None:
    """The thinking flags (prefill, cap, minimum, continuation) onto ``config.infer``."""
    set_from_flags(config.infer, args, INFER_FLAGS, {"true": True, "false": False})
    low, high = config.infer.min_think_tokens, config.infer.max_think_tokens
    if high and low > high:
        raise R1Error(f"--min-think-tokens {low} is above the cap of {high} think tokens; lower it or raise the cap")

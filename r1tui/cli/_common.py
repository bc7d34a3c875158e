"""Helpers shared by the command modules: config loading, consoles, progress."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from r1tui.config import Config, default_config_path, load_config, parse_config
from r1tui.errors import ConfigError


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
    return config


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def progress():
    """The Rich progress bar every long-running command uses (drawn on stderr)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console(stderr=True), transient=False,
    )


def resolve_path(path: str | None) -> Path | None:
    return Path(path).expanduser().resolve() if path else None

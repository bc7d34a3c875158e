"""`r1tui` command line: one sub-command per module, imported only when it runs.

Each command module exposes ``HELP`` (one line), ``DESCRIPTION`` (a paragraph for
--help), ``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy
libraries (torch, transformers, llama_cpp) inside ``run`` only, so ``r1tui --help``
and the dashboard start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from r1tui.errors import R1Error, scrub, scrub_logging
from r1tui.runs.events import StageCancelled

# name -> module under r1tui.cli; order is the order shown in --help
COMMANDS: dict[str, str] = {
    "dry-run": "dry_run",
    "generate": "generate",
    "decontaminate": "decontaminate",
    "curate": "curate",
    "prepare": "prepare",
    "train": "train",
    "run": "run",
    "export": "export",
    "parity": "parity",
    "eval": "evaluate",
    "push": "push",
    "chat": "chat",
    "runs": "runs",
    "logs": "logs",
    "cancel": "cancel",
    "attach": "attach",
}


class OneLineParser(argparse.ArgumentParser):
    """Bad command-line values get the one line every other bad value gets, not argparse's
    usage block."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{self.prog}: {message}; see {self.prog} --help")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="r1tui",
        description=(
            "Distil DeepSeek-R1-style reasoning traces into Mistral Small with LoRA, export "
            "GGUF, evaluate, and watch it all from a terminal dashboard. With no command, "
            "opens the dashboard on the newest run (under --runs-dir DIR when given)."
        ),
        epilog="Run `r1tui COMMAND --help` for details. Set DRY_RUN=1 to plan without doing.",
        allow_abbrev=False,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    # Before the command they apply to it (when it has the option); with no command, the
    # dashboard opens there: `r1tui --runs-dir DIR`. Their own dests: a sub-command's
    # defaults would otherwise overwrite them.
    parser.add_argument("--runs-dir", dest="main_runs_dir", metavar="DIR", default=None,
                        help="where runs live (with no command: open the dashboard on the runs in DIR)")
    parser.add_argument("--config", "-c", dest="main_config", metavar="PATH", default=None,
                        help="config file (with no command: the dashboard's config)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = _command_module(module_name)
        command_parser = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,  # `--run x` must not quietly mean `--runs-dir x`
        )
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show full tracebacks and debug logs")
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def _command_module(module_name: str):
    return importlib.import_module(f"r1tui.cli.{module_name}")


def dry_run_requested() -> bool:
    return os.environ.get("DRY_RUN", "").strip().lower() in ("1", "true", "yes", "on")


# options given before the command -> the command's own option of the same meaning
_MAIN_OPTIONS = {"main_runs_dir": ("runs_dir", "--runs-dir"), "main_config": ("config", "--config")}


def parse_command(argv: list[str] | None = None,
                  parser: argparse.ArgumentParser | None = None) -> tuple[object, argparse.Namespace]:
    """(the command's module, its arguments). No command: the dashboard (``attach``), with
    the ``--runs-dir`` / ``--config`` given before it."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        extra = [item for main_dest, (_, flag) in _MAIN_OPTIONS.items() if getattr(args, main_dest, None)
                 for item in (flag, getattr(args, main_dest))]
        debug = ["--debug"] if getattr(args, "debug", False) else []
        args = parser.parse_args(["attach", *extra, *debug])
        return args._module, args
    for main_dest, (dest, flag) in _MAIN_OPTIONS.items():
        value = getattr(args, main_dest, None)
        if value is None:
            continue
        if not hasattr(args, dest):
            parser.error(f"{flag} does not apply to `{args.command}`")
        if getattr(args, dest) is None:  # given after the command too: that one wins
            setattr(args, dest, value)
    return module, args


def main(argv: list[str] | None = None) -> int:
    module, args = parse_command(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    scrub_logging()  # no token reaches the terminal through a log record, ours or a library's
    if not debug:
        # huggingface_hub logs every retry of an unreachable Hub (our own error says it in one
        # line); bitsandbytes warns on every import about an optional kernels package
        for noisy in ("huggingface_hub", "bitsandbytes"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(module.run(args) or 0)
    except R1Error as exc:
        if debug:
            _traceback()
        _fail(str(exc))
        return 1
    except (KeyboardInterrupt, StageCancelled) as exc:
        _fail("cancelled" if isinstance(exc, StageCancelled) else "interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if debug:
            _traceback()
            return 1
        _fail(f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)")
        return 1


def _traceback() -> None:
    """--debug: the whole traceback, scrubbed of secrets (an HTTP error may quote a header)."""
    import traceback

    sys.stderr.write(scrub(traceback.format_exc()))


def _fail(message: str) -> None:
    from rich.console import Console

    message = scrub(message)
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    Console(stderr=True).print(f"[bold red]error:[/] {first_line}", highlight=False, markup=True, soft_wrap=True)

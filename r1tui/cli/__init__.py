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
            "opens the dashboard on the newest run."
        ),
        epilog="Run `r1tui COMMAND --help` for details. Set DRY_RUN=1 to plan without doing.",
        allow_abbrev=False,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    scrub_logging()  # no token reaches the terminal through a log record, ours or a library's
    if not debug:
        # huggingface_hub logs every retry of an unreachable Hub (our own error says it in one
        # line); bitsandbytes warns on every import about an optional kernels package
        for noisy in ("huggingface_hub", "bitsandbytes"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    module = getattr(args, "_module", None)
    if module is None:
        module = _command_module("attach")
        args = parser.parse_args(["attach"])
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

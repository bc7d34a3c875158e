"""`r1tui dry-run`: validate the config and show every estimate; write nothing."""

from __future__ import annotations

import argparse

from r1tui.cli._common import add_config_argument, console, load_cli_config, print_json

HELP = "validate the config and print parameter, VRAM, GGUF and masking estimates (no GPU, nothing written)"
DESCRIPTION = """\
Check a config without doing anything: the config is validated, then the model
calculator prints exact parameter and LoRA counts, the training VRAM estimate for
the configured GPU with a fits / does-not-fit verdict, GGUF sizes per quant type,
the masking statistics of the configured data, and the tokens one epoch holds with
the hours it takes on the configured GPU (an ESTIMATE, with its basis). Takes well
under a second, needs no GPU and no network, and writes no file.

Examples:
  r1tui dry-run
  r1tui dry-run --config configs/tiny.toml --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON (schema in README)")
    parser.add_argument("--no-masking", action="store_true", help="skip tokenizing the data for masking stats")
    parser.add_argument("--gpus", metavar="N", type=int, default=1,
                        help="the VRAM estimate per GPU on N GPUs (train.distributed; DDP vs FSDP compared)")


def run(args: argparse.Namespace) -> int:
    from r1tui.dryrun import build_report, report_renderables

    config = load_cli_config(args)
    if args.gpus < 1:
        from r1tui.errors import R1Error

        raise R1Error(f"--gpus {args.gpus}: needs at least 1")
    report = build_report(config, with_masking=not args.no_masking, world_size=args.gpus)
    if args.json:
        print_json(report.to_json())
        return 0
    out = console()
    origin = report.config.path or "built-in defaults"
    out.print(f"[bold green]config OK[/] ({origin}) — dry run: nothing launched, written or downloaded")
    for renderable in report_renderables(report):
        out.print(renderable)
    out.print(f"[dim]computed in {report.elapsed_s * 1000:.0f} ms[/]")
    return 0

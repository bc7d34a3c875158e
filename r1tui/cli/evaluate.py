"""`r1tui eval`: answer accuracy, reasoning depth and format compliance of a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    console,
    print_json,
    progress,
    run_and_config,
)
from r1tui.config import Config
from r1tui.errors import R1Error

HELP = "evaluate a run's GGUF (or any GGUF / model folder): accuracy, reasoning depth, format"
DESCRIPTION = """\
Generate an answer for every row of the eval set and score it:

  accuracy     the FINAL ANSWER line (else the last \\boxed{}) checked against the
               reference with math-verify (symbolic and numeric equivalence, roots as
               sets, eval.numeric_tolerance); coding answers must match exactly
  reasoning    steps in the think block and a depth score from 0.4 to 1.0
  format       think block present and non-empty, answer line present, ended by EOS
               rather than by the token limit

RUN is a run id under runs.dir (or a unique prefix, a run folder, or `latest`); its Q4_K_M GGUF is
evaluated with llama.cpp and results go to RUN/eval/results.json. --gguf evaluates
any GGUF instead (results in ./eval/<name>/ unless it belongs to a run or --out is
given); --hf a merged or adapter folder through transformers. --vs adds a second
model (GGUF or folder) evaluated on the same rows, shown side by side with deltas.
The eval set is eval.source: the synthetic generator's held-out problems (eval.seed),
a .jsonl with question/answer/domain, or hf:<dataset> through the data adapters.

Examples:
  r1tui eval 20261127-101500-tiny
  r1tui eval latest --vs base-Q4_K_M.gguf
  r1tui eval --gguf model-Q4_K_M.gguf --vs model-Q8_0.gguf -n 50
  r1tui eval --gguf model-Q4_K_M.gguf --source my_eval.jsonl --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("run", nargs="?", metavar="RUN", help="run id, id prefix, run folder, or 'latest'")
    parser.add_argument("--gguf", metavar="PATH", help="evaluate this GGUF (default: the run's Q4_K_M)")
    parser.add_argument("--hf", metavar="DIR", help="evaluate a merged model or adapter folder with transformers")
    parser.add_argument("--vs", metavar="PATH", help="a second model (GGUF or folder) to compare against")
    parser.add_argument("--source", metavar="SRC", help="eval set: synthetic, a .jsonl, or hf:<dataset> (default: eval.source)")
    parser.add_argument("-n", "--num-samples", type=int, metavar="N", help="rows to evaluate (default: eval.num_samples)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="generation budget per answer (default: eval.max_new_tokens)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: eval.temperature)")
    parser.add_argument("--out", metavar="DIR", help="folder for results.json (default: RUN/eval)")
    parser.add_argument("--json", action="store_true", help="print the results (without per-sample rows) as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.runs.layout import layout_of

    layout, config = run_and_config(args, doing="evaluate it")
    if args.num_samples is not None and args.num_samples <= 0:
        raise R1Error(f"--num-samples {args.num_samples}: must be at least 1")
    config = _with_overrides(config, args)
    gguf = Path(args.gguf).expanduser().resolve() if args.gguf else None
    model_dir = Path(args.hf).expanduser().resolve() if args.hf else None
    for path, flag in ((gguf, "--gguf"), (model_dir, "--hf")):
        if path is not None and not path.exists():
            raise R1Error(f"{flag} {path}: not found")
    if layout is None and gguf is not None and layout_of(gguf) is not None:
        layout = layout_of(gguf)  # a run's own GGUF: its results and events belong to that run
        if layout.config.is_file() and not args.config:
            config = _with_overrides(layout.frozen_config(), args)
    if layout is None and gguf is None and model_dir is None:
        raise R1Error("nothing to evaluate: give a RUN, --gguf PATH or --hf DIR (see r1tui eval --help)")
    vs, vs_dir = _split_model(args.vs)
    out_dir = Path(args.out).expanduser().resolve() if args.out else None
    if out_dir is None and layout is None:
        out_dir = Path.cwd() / "eval" / (gguf or model_dir).stem

    from r1tui.eval.run import RESULTS_FILE, find_run_gguf

    if gguf is None and model_dir is None:
        gguf = find_run_gguf(layout, config)
    out = console()
    if dry_run_requested():
        _print_plan(out, config, args, gguf or model_dir, vs or vs_dir, (out_dir or layout.eval_dir) / RESULTS_FILE)
        return 0

    from r1tui.eval.report import comparison_table, results_table, summary_text
    from r1tui.eval.run import evaluate_run
    from r1tui.runs.events import EventWriter
    from r1tui.runs.lock import RunLock

    lock = RunLock(layout, "r1tui eval").acquire() if layout is not None else None
    if layout is not None and out_dir is None:
        from r1tui.pipeline.orchestrator import forget

        forget(layout, "eval")  # eval/ is about to hold this command's results, not the eval stage's
    events = EventWriter(layout.events) if layout is not None else None
    try:
        with progress() as bar:
            task = bar.add_task("eval", total=None)

            def on_sample(done: int, total: int, record: dict) -> None:
                verdict = "[green]correct[/]" if record["correct"] else "[red]wrong[/]"
                bar.update(task, completed=done, total=total,
                           description=f"eval {record['domain']} {verdict}")

            results = evaluate_run(config, layout.root if layout else None, events=events, gguf=gguf, model_dir=model_dir, vs=vs,
                                   vs_model_dir=vs_dir, source=args.source, num_samples=args.num_samples,
                                   out_dir=out_dir, on_sample=on_sample)
    finally:
        if events is not None:
            events.close()
        if lock is not None:
            lock.release()
    if args.json:
        print_json({key: value for key, value in results.items() if key != "samples"})
        return 0
    out.print(summary_text(results), highlight=False)
    out.print()
    out.print(results_table(results))
    if "comparison" in results:
        out.print()
        out.print(comparison_table(results["comparison"]))
    out.print(f"\n[dim]results: {results['path']} ({results['elapsed_s']:.1f} s)[/]")
    return 0


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    from pydantic import ValidationError

    for flag, key in (("--max-new-tokens", "max_new_tokens"), ("--temperature", "temperature")):
        value = getattr(args, key)
        if value is None:
            continue
        try:
            setattr(config.eval, key, value)
        except ValidationError as exc:
            raise R1Error(f"{flag} {value}: {exc.errors()[0]['msg']}") from None
    return config


def _split_model(path: str | None) -> tuple[Path | None, Path | None]:
    """--vs PATH: (gguf, None) for a file, (None, folder) for a model or adapter folder."""
    if not path:
        return None, None
    resolved = Path(path).expanduser().resolve()
    if resolved.is_file():
        return resolved, None
    if resolved.is_dir():
        return None, resolved
    raise R1Error(f"--vs {path}: not found; give a .gguf file or a model/adapter folder")


def _print_plan(out, config: Config, args: argparse.Namespace, model: Path, vs: Path | None, results: Path) -> None:
    out.print("[bold]dry run[/]: nothing generated or written")
    out.print(f"  model     {model}")
    if vs is not None:
        out.print(f"  vs        {vs}")
    source = args.source or config.eval.source
    n = args.num_samples or config.eval.num_samples
    seed = f" (seed {config.eval.seed})" if source == "synthetic" else ""
    out.print(f"  eval set  {source}{seed}, {n} rows")
    out.print(f"  generate  max {config.eval.max_new_tokens} new tokens, temperature {config.eval.temperature}, "
              f"n_ctx {config.eval.n_ctx}")
    out.print(f"  results   {results}")

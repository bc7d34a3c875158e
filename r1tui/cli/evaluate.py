"""`r1tui eval`: answer accuracy, reasoning depth and format compliance of a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from r1tui.cli._common import (
    add_config_argument,
    add_runs_dir_argument,
    apply_infer_flags,
    console,
    load_cli_config,
    print_json,
    progress,
    run_and_config,
    set_from_flags,
)
from r1tui.config import Config
from r1tui.errors import R1Error

HELP = "evaluate a run's GGUF (or any GGUF / model folder): accuracy, reasoning depth, format"
DESCRIPTION = """\
Generate eval.samples_per_question answers for every question of the eval set and score them:

  answers      the FINAL ANSWER line (else the last \\boxed{}) checked against the
               reference with math-verify (symbolic and numeric equivalence, roots as
               sets, eval.numeric_tolerance); coding answers must match exactly, multiple
               choice (GPQA) by its letter. Each sample is correct, wrong, truncated (the
               token limit came first) or no answer (finished, nothing to read)
  protocol     pass@1 averaged over the samples with its standard error, pass@k
               (unbiased estimator) and maj@k; sampled at temperature 0.6, top_p 0.95
               when there are several samples per question, greedy otherwise
  reasoning    steps in the think block, a depth score from 0.4 to 1.0, think length
  format       think block present and non-empty, answer line present, ended by EOS
  thinking     [infer]: the reply prefilled with training's "<think>\n" (--prefill-think;
               auto: when the run's training replies open with it) and s1's budget forcing
               (--max-think-tokens, --min-think-tokens); --think-budget N,N,... runs the set
               at each cap and prints accuracy and compliance against budget

RUN is a run id under runs.dir (or a unique prefix, a run folder, or `latest`; with no RUN, --gguf,
--hf or base URL, the newest run); its Q4_K_M GGUF is
evaluated with llama.cpp and results go to RUN/eval/results.json. --gguf evaluates
any GGUF instead (results in ./eval/<name>/ unless it belongs to a run or --out is
given); --hf a merged or adapter folder through transformers; eval.base_url (or
--base-url) an OpenAI-compatible server. --vs adds a second model evaluated on the same
questions with the same seeds, shown side by side with deltas: `base` (the run's base
model exported to a GGUF at the same quant, cached under runs.dir/.cache), `merged` (the
run's F16 GGUF), or a GGUF / model folder. Before it starts the eval says how many
tokens and how long it expects; a killed eval run again resumes where it stopped.
The eval set is eval.source: the synthetic generator's held-out problems (eval.seed),
a standard set (gsm8k, math500, aime24, aime25, gpqa-diamond), a .jsonl with
question/answer/domain, or hf:<dataset> through the data adapters.

Examples:
  r1tui eval 20261127-101500-tiny
  r1tui eval latest --vs base
  r1tui eval latest --source math500 -n 100 --samples-per-question 4 --slots 4
  r1tui eval --gguf model-Q4_K_M.gguf --vs model-Q8_0.gguf -n 50
  r1tui eval --gguf model-Q4_K_M.gguf --source my_eval.jsonl --json
  r1tui eval latest --think-budget 256,512,1024
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="run id, id prefix, run folder, or 'latest' (default: the newest, unless a model is named)")
    parser.add_argument("--gguf", metavar="PATH", help="evaluate this GGUF (default: the run's Q4_K_M)")
    parser.add_argument("--hf", metavar="DIR", help="evaluate a merged model or adapter folder with transformers")
    parser.add_argument("--vs", metavar="MODEL", help="a second model to compare against: base, merged, a GGUF or a folder")
    parser.add_argument("--source", metavar="SRC", help="eval set: synthetic, gsm8k, math500, aime24, aime25, gpqa-diamond, a .jsonl, or hf:<dataset> (default: eval.source)")
    parser.add_argument("-n", "--num-samples", type=int, metavar="N", help="rows to evaluate (default: eval.num_samples)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="generation budget per answer (default: eval.max_new_tokens)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: eval.temperature)")
    parser.add_argument("--samples-per-question", type=int, metavar="N",
                        help="samples of every question (default: eval.samples_per_question)")
    parser.add_argument("--slots", type=int, metavar="N", help="generations at once (default: eval.slots)")
    parser.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server to generate with (default: eval.base_url)")
    parser.add_argument("--prefill-think", choices=("auto", "true", "false"),
                        help="start every reply with the think opening as training rendered it (default: "
                             "infer.prefill_think; auto: when the run's training replies open with it)")
    parser.add_argument("--max-think-tokens", type=int, metavar="N",
                        help="close the think block at N tokens and force the answer line (default: infer.max_think_tokens; 0: no cap)")
    parser.add_argument("--min-think-tokens", type=int, metavar="N",
                        help="below N think tokens a closing tag becomes infer.continuation (default: infer.min_think_tokens)")
    parser.add_argument("--think-budget", metavar="N,N,...",
                        help="evaluate at each thinking budget (e.g. 256,512,1024): accuracy and compliance against budget")
    parser.add_argument("--out", metavar="DIR", help="folder for results.json (default: RUN/eval)")
    parser.add_argument("--json", action="store_true", help="print the results (without per-sample rows) as JSON")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.config import is_local_source
    from r1tui.eval.sets import hub_set
    from r1tui.runs.layout import layout_of

    if not args.run and not (args.gguf or args.hf or args.base_url or load_cli_config(args).eval.base_url):
        args.run = "latest"  # like `logs` and `attach`: no model named means the newest run's
    layout, config = run_and_config(args, doing="evaluate it")
    if args.num_samples is not None and args.num_samples <= 0:
        raise R1Error(f"--num-samples {args.num_samples}: must be at least 1")
    config = _with_overrides(config, args)
    budgets = parse_budgets(args.think_budget)
    if budgets and args.vs:
        raise R1Error("--think-budget runs one model at several thinking budgets; drop --vs, or compare two "
                      "models at one budget (--max-think-tokens N)")
    if config.eval.base_url and (budgets or config.infer.max_think_tokens or config.infer.min_think_tokens):
        raise R1Error(f"a think budget forces the think block token by token, which generating on "
                      f"{config.eval.base_url} cannot do; evaluate a GGUF (--gguf) or a folder (--hf) instead")
    gguf = Path(args.gguf).expanduser().resolve() if args.gguf else None
    model_dir = Path(args.hf).expanduser().resolve() if args.hf else None
    for path, flag in ((gguf, "--gguf"), (model_dir, "--hf")):
        if path is not None and not path.exists():
            raise R1Error(f"{flag} {path}: not found")
    if layout is None and gguf is not None and layout_of(gguf) is not None:
        layout = layout_of(gguf)  # a run's own GGUF: its results and events belong to that run
        if layout.config.is_file() and not args.config:
            config = _with_overrides(layout.frozen_config(), args)
    if args.source and is_local_source(args.source) and hub_set(args.source) is None \
            and not Path(args.source).expanduser().exists():
        # checked before the run is locked and its log written: a typo is not a failed eval of the run
        raise R1Error(f"--source {args.source}: no such file; give a .jsonl/.json/.parquet file, synthetic, "
                      "hf:<dataset> or a standard set (gsm8k, math500, aime24, aime25, gpqa-diamond)")
    served = config.eval.base_url
    if layout is None and gguf is None and model_dir is None and not served:
        raise R1Error("nothing to evaluate: give a RUN, --gguf PATH, --hf DIR or --base-url URL (see r1tui eval --help)")
    vs, vs_dir = _split_model(args.vs, layout)
    out_dir = Path(args.out).expanduser().resolve() if args.out else None
    if out_dir is None and layout is None:
        out_dir = Path.cwd() / "eval" / (_served_name(config) if served else (gguf or model_dir).stem)

    from r1tui.eval.run import RESULTS_FILE, find_run_gguf

    if gguf is None and model_dir is None and not served:
        gguf = find_run_gguf(layout, config)
    out = console()
    if dry_run_requested():
        _print_plan(out, config, args, served or gguf or model_dir, vs or vs_dir,
                    (out_dir or layout.eval_dir) / RESULTS_FILE)
        return 0

    from r1tui.eval.report import (
        comparison_table,
        reasoning_table,
        results_table,
        summary_text,
        think_budget_table,
        thinking_text,
    )
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
                style = {"correct": "green", "wrong": "red"}.get(record["outcome"], "yellow")
                bar.update(task, completed=done, total=total,
                           description=f"eval {record['domain']} [{style}]{record['outcome']}[/]")

            def on_budget(label: str, plan) -> None:
                bar.console.print(f"[bold]{label or 'eval'}[/]: {plan.describe()}", highlight=False)

            results = evaluate_run(config, layout.root if layout else None, events=events, gguf=gguf,
                                   model_dir=model_dir, vs=vs, vs_model_dir=vs_dir, source=args.source,
                                   num_samples=args.num_samples, out_dir=out_dir, on_sample=on_sample,
                                   on_budget=on_budget, think_budgets=budgets)
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
    out.print()
    out.print(reasoning_table(results))
    if "comparison" in results:
        out.print()
        out.print(comparison_table(results["comparison"]))
    if results.get("think_budget"):
        out.print()
        out.print(think_budget_table(results))
    out.print(f"[dim]thinking: {thinking_text(results)}[/]", highlight=False)
    out.print(f"\n[dim]results: {results['path']} ({results['elapsed_s']:.1f} s)[/]")
    return 0


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    set_from_flags(config.eval, args, (("--max-new-tokens", "max_new_tokens"), ("--temperature", "temperature"),
                                       ("--samples-per-question", "samples_per_question"), ("--slots", "slots"),
                                       ("--base-url", "base_url")))
    apply_infer_flags(config, args)
    return config


def parse_budgets(text: str | None) -> list[int] | None:
    """--think-budget 256,512,1024 -> [256, 512, 1024]; one clear line for anything else."""
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise R1Error(f"--think-budget {text}: give positive whole numbers of think tokens separated by commas, "
                      "e.g. 256,512,1024")
    return sorted({int(part) for part in parts})


def _split_model(path: str | None, layout) -> tuple[Path | str | None, Path | None]:
    """--vs MODEL: ("base" | "merged", None) for the run's own models, (gguf, None) for a
    file, (None, folder) for a model or adapter folder."""
    from r1tui.eval.run import VS_KEYWORDS

    if not path:
        return None, None
    if path in VS_KEYWORDS:
        if layout is None:
            raise R1Error(f"--vs {path} compares with a run's own {path} model: give a RUN (or --gguf of a run's file)")
        return path, None
    resolved = Path(path).expanduser().resolve()
    if resolved.is_file():
        return resolved, None
    if resolved.is_dir():
        return None, resolved
    raise R1Error(f"--vs {path}: not found; give base, merged, a .gguf file or a model/adapter folder")


def _served_name(config: Config) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", config.eval.model or config.eval.base_url.split("//")[-1])


def _print_plan(out, config: Config, args: argparse.Namespace, model: Path, vs: Path | None, results: Path) -> None:
    out.print("[bold]dry run[/]: nothing generated or written")
    out.print(f"  model     {model}")
    if vs is not None:
        out.print(f"  vs        {vs}")
    settings = config.eval
    source = args.source or settings.source
    n = args.num_samples or settings.num_samples
    seed = f" (seed {settings.seed})" if source == "synthetic" else ""
    temperature, top_p = settings.sampling
    out.print(f"  eval set  {source}{seed}, {n} questions x {settings.samples_per_question} sample{'s' * settings.sampled}")
    out.print(f"  generate  max {settings.max_new_tokens} new tokens, temperature {temperature}, top_p {top_p}, "
              f"n_ctx {settings.n_ctx}, {settings.slots} slot{'s' * (settings.slots > 1)}")
    budgets = parse_budgets(args.think_budget)
    from r1tui.infer.thinking import settings_from_config

    infer = config.infer
    out.print(f"  thinking  prefill {str(infer.prefill_think).lower()}, "
              + (f"budgets {', '.join(map(str, budgets))}" if budgets else settings_from_config(config, False)
                 .describe().removeprefix("no prefill").lstrip(", ") or "no think budget"))
    runs = len(budgets) if budgets else (2 if vs is not None else 1)
    generations = n * settings.samples_per_question * runs
    reply = max(settings_from_config(config, False).replace(max_think_tokens=cap).reply_limit(settings.max_new_tokens)
                for cap in budgets) if budgets else settings_from_config(config, False).reply_limit(settings.max_new_tokens)
    out.print(f"  budget    {generations:,} generations, at most {generations * reply:,} tokens")
    out.print(f"  results   {results}")

"""Evaluate a model: generate samples per eval row, score them, save JSON.

``evaluate_run`` is the pipeline's ``eval`` stage: it finds the run's Q4_K_M GGUF
(or takes the GGUF / model folder / ``eval.base_url`` server it is given), generates
``eval.samples_per_question`` samples of every row on ``eval.slots`` slots
(``r1tui.eval.sampling``), scores each for correctness and its outcome, reasoning
quality and format, computes the protocol's estimators (``r1tui.eval.protocol``),
emits one ``stage_progress`` event per sample, and writes ``eval/results.json``
atomically. Given a second model (``vs``: a GGUF, or the run's ``base`` / ``merged``
model) it evaluates that one on the same rows with the same seeds and stores the
side-by-side deltas with their paired standard errors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error
from r1tui.eval.answers import check_answer
from r1tui.eval.evaluator import DOMAINS, ReasoningQualityEvaluator, ReasoningScore, summarize
from r1tui.eval.protocol import outcome, paired_delta, protocol_stats
from r1tui.eval.sampling import Budget, Job, Journal, budget, plan_jobs, run_jobs
from r1tui.infer.stream import FINISH_STOPPED, ChatModel, Generation
from r1tui.infer.thinking import ThinkSettings, resolve_prefill, settings_from_config
from r1tui.quants import quant_of
from r1tui.response_format import extract_answer, split_response
from r1tui.runs.events import StageCancelled, stage
from r1tui.runs.files import current_umask, digest, fingerprint
from r1tui.runs.layout import RESULTS_FILE, RunLayout, eval_journal

log = logging.getLogger(__name__)

RESULTS_VERSION = 2
COMPARISON_FILE = "comparison.json"

SampleCallback = Callable[[int, int, dict[str, Any]], None]
BudgetCallback = Callable[[str, Budget], None]


# ----------------------------------------------------------------- one sample


def score_response(response: str, row: dict[str, Any], finish_reason: str,
                   evaluator: ReasoningQualityEvaluator, numeric_tolerance: float,
                   tokenizer: str = "v3") -> dict[str, Any]:
    """Everything measured about one response: correctness and its outcome, reasoning, format."""
    reasoning = evaluator.score(response, row["domain"])
    extracted = extract_answer(response)
    check = check_answer(extracted.text, row["answer"], row["domain"], numeric_tolerance,
                         choice=row.get("format") == "choice")
    answer_line = extracted.source == "final_answer"
    finished_eos = finish_reason == "eos"
    parsed = split_response(response)
    # Format: a closed, non-empty think block (a truncated one still counts for depth).
    think_block = parsed.think_closed and bool(parsed.think)
    return {
        "id": row["id"], "domain": row["domain"], "question": row["question"], "reference": row["answer"],
        "response": response, "answer": extracted.text, "answer_source": extracted.source,
        "correct": check.correct, "check": check.method,
        "outcome": outcome(check.correct, extracted.text, finish_reason),
        "steps": reasoning.steps, "distinct_steps": reasoning.distinct_steps,
        "worked_steps": reasoning.worked_steps, "verified": reasoning.verified, "depth": reasoning.depth,
        "think_present": think_block, "think_tokens": think_tokens(parsed.think, tokenizer),
        "answer_line": answer_line, "finished_eos": finished_eos, "finish_reason": finish_reason,
        "compliant": think_block and answer_line and finished_eos,
    }


def think_tokens(think: str | None, tokenizer: str) -> int:
    """Length of the think block in the training tokenizer's tokens."""
    if not think:
        return 0
    from r1tui.data.tokenizer import load_text_tokenizer

    return len(load_text_tokenizer(tokenizer).encode(think))


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, the protocol's estimators, format compliance, depth and speed for a group of samples."""
    count = len(records)
    if not count:
        return {"count": 0}

    def rate(key: str) -> float:
        return round(sum(1 for r in records if r[key]) / count, 4)

    speeds = [r["tokens_per_s"] for r in records if r.get("tokens_per_s")]
    depths = [r["depth"] for r in records]
    steps = [r["steps"] for r in records]
    stats = protocol_stats(records)
    return {
        "count": count,
        "correct": sum(1 for r in records if r["correct"]),
        "accuracy": rate("correct"),
        **stats,
        "truncated_rate": round(stats["outcomes"]["truncated"] / count, 4),
        "no_answer_rate": round(stats["outcomes"]["no_answer"] / count, 4),
        "avg_depth": round(sum(depths) / count, 4), "min_depth": min(depths), "max_depth": max(depths),
        "avg_steps": round(sum(steps) / count, 2), "min_steps": min(steps), "max_steps": max(steps),
        "think_rate": rate("think_present"),
        "answer_line_rate": rate("answer_line"),
        "eos_rate": rate("finished_eos"),
        "compliance_rate": rate("compliant"),
        "think_capped_rate": round(sum(1 for r in records if r.get("think_capped")) / count, 4),
        "think_continued_rate": round(sum(1 for r in records if r.get("think_continuations")) / count, 4),
        "avg_completion_tokens": round(sum(r.get("completion_tokens", 0) for r in records) / count, 1),
        "tokens_per_s": round(sum(speeds) / len(speeds), 2) if speeds else None,
    }


def domain_order(records: Iterable[dict[str, Any]]) -> list[str]:
    seen = {r["domain"] for r in records}
    return [d for d in DOMAINS if d in seen] + sorted(seen - set(DOMAINS))


# ----------------------------------------------------------------- one model


def evaluate_model(chats: Sequence[ChatModel] | ChatModel, rows: Sequence[dict[str, Any]], config: Config,
                   events=None, model_info: dict[str, Any] | None = None, eval_set: dict[str, Any] | None = None,
                   on_sample: SampleCallback | None = None, stop_event: threading.Event | None = None,
                   label: str = "", progress: tuple[int, int] | None = None, journal: Path | None = None,
                   shared: bool = False, on_budget: BudgetCallback | None = None,
                   measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate and score ``eval.samples_per_question`` samples of every row. Returns the results dict.

    ``chats`` is one chat per slot (or one chat; ``shared``: one chat serving every slot).
    ``progress`` = (generations done before this model, generations in the whole
    stage), so that two models evaluated in one stage count up once. ``journal``: the
    file finished samples are appended to, and taken from when it was made for the same
    model, rows and settings (a killed eval resumes there). ``measured``: speed and reply
    length of an earlier eval of this model, for the budget stated before it starts.
    """
    chats = [chats] if isinstance(chats, ChatModel) else list(chats)
    settings = config.eval
    tokenizer = tokenizer_spec(config)
    temperature, top_p = settings.sampling
    thinking = chats[0].thinking  # set by open_models (infer.*), the same on every slot
    jobs = plan_jobs(rows, settings.samples_per_question, settings.seed)
    book = Journal(journal, digest({
        "model": model_info, "rows": [[r["id"], r["question"], r["answer"]] for r in rows],
        "generation": [settings.max_new_tokens, temperature, top_p, settings.n_ctx, settings.seed,
                       settings.numeric_tolerance, config.data.system_prompt, tokenizer],
        **({"thinking": thinking.to_dict()} if thinking != ThinkSettings() else {}),
    })) if journal is not None else None
    wanted = {job.key for job in jobs}
    records = [r for key, r in (book.done.items() if book else ()) if key in wanted]
    todo = [job for job in jobs if book is None or job.key not in book.done]
    done_before, total = progress or (0, len(jobs))
    done_before += len(jobs) - len(todo)
    plan = budget(len(todo), records, thinking.reply_limit(settings.max_new_tokens),
                  len(chats) if not shared else settings.slots, measured)
    if on_budget is not None:
        on_budget(label, plan)
    if events is not None:
        events.emit("log", stage="eval", level="info", message=f"{label + ': ' if label else ''}{plan.describe()}")
    evaluator = ReasoningQualityEvaluator()
    started = time.perf_counter()
    finished = 0
    messages_of = _messages(config)

    def generate(chat: ChatModel, job: Job, stop: threading.Event) -> tuple[Job, Generation] | None:
        generation = chat.generate(messages_of(job.row), max_tokens=settings.max_new_tokens,
                                   temperature=temperature, top_p=top_p, stop_event=stop, seed=job.seed)
        if generation.stats.finish_reason == FINISH_STOPPED:
            return None  # cut short by a stop: not a sample
        return job, generation

    def done(finished_job: tuple[Job, Generation]) -> None:
        # Scored here, on the calling thread: math-verify's timeout needs the main thread.
        nonlocal finished
        job, generation = finished_job
        record = score_response(generation.text, job.row, generation.stats.finish_reason, evaluator,
                                settings.numeric_tolerance, tokenizer)
        record.update({
            "sample": job.sample, "seed": job.seed,
            "prompt_tokens": generation.stats.prompt_tokens,
            "completion_tokens": generation.stats.completion_tokens,
            "tokens_per_s": round(generation.stats.tokens_per_s, 2),
            "elapsed_s": round(generation.stats.elapsed_s, 3),
            "think_tokens_generated": generation.stats.think_tokens,
            "think_prefilled": generation.stats.think_prefilled,
            "think_capped": generation.stats.think_capped,
            "think_continuations": generation.stats.think_continuations,
        })
        records.append(record)
        if book is not None:
            book.add(record)
        finished += 1
        completed = done_before + finished
        if events is not None:
            events.emit("stage_progress", stage="eval", completed=completed, total=total, unit="samples",
                        message=f"{label + ': ' if label else ''}{record['domain']} {record['outcome']}, "
                                f"depth {record['depth']:.2f}, {record['steps']} steps")
        if on_sample is not None:
            on_sample(completed, total, record)

    def results(complete: bool) -> dict[str, Any]:
        ordered = sorted(records, key=lambda r: (order[r["id"]], r["sample"]))
        return build_results(ordered, config, model_info or {}, eval_set or {},
                             elapsed_s=time.perf_counter() - started, complete=complete, thinking=thinking)

    order = {row["id"]: index for index, row in enumerate(rows)}
    try:
        run_jobs(chats, todo, generate, done, slots=settings.slots, shared=shared, stop_event=stop_event)
    except (KeyboardInterrupt, StageCancelled) as exc:
        # keep what was measured: the caller saves it (complete: false) before stopping
        exc.partial_results = results(complete=False)
        raise
    finally:
        if book is not None:
            book.close()
    return results(complete=len(records) == len(jobs))


def _messages(config: Config) -> Callable[[dict[str, Any]], list[dict[str, str]]]:
    def messages(row: dict[str, Any]) -> list[dict[str, str]]:
        system = [{"role": "system", "content": config.data.system_prompt}] if config.data.system_prompt else []
        return [*system, {"role": "user", "content": row["question"]}]
    return messages


def build_results(records: list[dict[str, Any]], config: Config, model_info: dict[str, Any],
                  eval_set: dict[str, Any], elapsed_s: float, complete: bool = True,
                  thinking: ThinkSettings | None = None) -> dict[str, Any]:
    settings = config.eval
    temperature, top_p = settings.sampling
    thinking = thinking or ThinkSettings()
    return {
        "version": RESULTS_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "model": model_info,
        "eval_set": {key: value for key, value in eval_set.items() if key != "rows"}
                    | {"count": len({r["id"] for r in records})},
        "generation": {"max_new_tokens": settings.max_new_tokens, "temperature": temperature, "top_p": top_p,
                       "samples_per_question": settings.samples_per_question, "seed": settings.seed,
                       "slots": settings.slots, "n_ctx": settings.n_ctx,
                       "numeric_tolerance": settings.numeric_tolerance,
                       "system_prompt": config.data.system_prompt,
                       "thinking": {**thinking.to_dict(),
                                    "prefill_reason": model_info.get("prefill_reason", "")}},
        "summary": aggregate(records),
        "domains": {d: aggregate([r for r in records if r["domain"] == d]) for d in domain_order(records)},
        "reasoning": summarize(ReasoningScore(r["domain"], r["steps"], r["distinct_steps"], r["worked_steps"],
                                              r["verified"], r["think_present"], r["depth"]) for r in records),
        "elapsed_s": round(elapsed_s, 2),
        "samples": records,
    }


# ----------------------------------------------------------------- models


def find_run_gguf(layout: RunLayout | Path, config: Config | None = None) -> Path:
    """The GGUF of a run to evaluate or chat with: the configured quant types first, then
    the documented order (``r1tui.quants.GGUF_PREFERENCE``: Q4_K_M first, F16 last)."""
    layout = layout if isinstance(layout, RunLayout) else RunLayout(Path(layout))
    chosen = layout.choose_gguf(config.export.quant_types if config else ())
    if chosen is None:
        raise R1Error(f"{layout.run_id}: no GGUF in {layout.gguf_dir}; export it first "
                      f"(r1tui export {layout.run_id}) or pass --gguf PATH")
    return chosen


def open_model(config: Config, gguf: str | Path | None = None, model_dir: str | Path | None = None,
               n_threads: int | None = None):
    """(chat, model_info) for a GGUF (llama.cpp) or a model/adapter folder (transformers)."""
    settings = config.eval
    tokenizer = tokenizer_spec(config)
    if gguf is not None:
        from r1tui.infer.llama import LlamaChat

        path = Path(gguf).expanduser().resolve()
        chat = LlamaChat(path, tokenizer_spec=tokenizer, n_ctx=settings.n_ctx, seed=settings.seed,
                         n_threads=n_threads)
        return chat, {"backend": "llama.cpp", "path": str(path), "name": path.name, "quant": quant_of(path),
                      "bytes": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns, "tokenizer": tokenizer}
    if model_dir is not None:
        from r1tui.infer.hf import HFChat

        path = Path(model_dir).expanduser().resolve()
        chat = HFChat(path, tokenizer_spec=tokenizer, n_ctx=settings.n_ctx, seed=settings.seed)
        kind = "adapter" if (path / "adapter_config.json").is_file() else "merged"
        return chat, {"backend": "transformers", "path": str(path), "name": path.name, "quant": kind,
                      "fingerprint": fingerprint(path), "tokenizer": tokenizer}
    raise R1Error("nothing to evaluate: pass a GGUF (--gguf PATH) or a model folder (--hf PATH)")


def trained_in(model: str | Path | None) -> Path | None:
    """The run a model file or folder was trained in (``RUN/gguf/x.gguf``, ``RUN/merged``,
    ``RUN/adapter``), whose training data decides ``infer.prefill_think = "auto"``; else None."""
    from r1tui.runs.layout import is_run_dir, layout_of

    if model is None:
        return None
    path = Path(model).expanduser().resolve()
    layout = layout_of(path)
    if layout is not None:
        return layout.root
    return path.parent if path.name in ("merged", "adapter") and is_run_dir(path.parent) else None


def open_models(config: Config, gguf: str | Path | None = None, model_dir: str | Path | None = None,
                run_dir: str | Path | None = None):
    """(chats, shared, model_info): what generates the samples, ``eval.slots`` at once.

    With ``eval.base_url``, one thread-safe client of that server (``shared``); for a
    GGUF, one llama.cpp context per slot over the same memory-mapped file, half the
    cores (llama-cpp-python's default for one context) split between them; a
    transformers folder generates one sample at a time. Every chat gets the ``infer``
    settings (``chat.thinking``), with ``infer.prefill_think = "auto"`` decided by the
    training data of ``run_dir`` (the run the model was trained in; None: none).
    """
    chats, shared, info = _open_models(config, gguf, model_dir)
    prefill, reason = resolve_prefill(config, run_dir, tokenizer_spec(config))
    thinking = settings_from_config(config, prefill)
    if shared and thinking.forcing:
        for chat in chats:
            chat.close()
        raise R1Error(f"infer.max_think_tokens / min_think_tokens force the think block token by token, which "
                      f"generating on eval.base_url {config.eval.base_url} cannot do; evaluate a GGUF or a model "
                      "folder here, or set both to 0 (prefill works on a server)")
    for chat in chats:
        chat.thinking = thinking
    return chats, shared, {**info, "prefill_reason": reason}


def _open_models(config: Config, gguf: str | Path | None, model_dir: str | Path | None):
    settings = config.eval
    if settings.base_url:
        from r1tui.infer.endpoint import EndpointChat

        chat = EndpointChat(settings.base_url, settings.model, tokenizer_spec(config), n_ctx=settings.n_ctx,
                            api_key_env=settings.api_key_env)
        return [chat], True, {"backend": "endpoint", "path": settings.base_url, "name": chat.model,
                              "quant": None, "tokenizer": tokenizer_spec(config)}
    if gguf is None or settings.slots == 1:
        if model_dir is not None and settings.slots > 1:
            log.info("eval.slots = %d: a transformers folder generates one sample at a time", settings.slots)
        chat, info = open_model(config, gguf=gguf, model_dir=model_dir)
        return [chat], False, info
    threads = max(1, (os.cpu_count() or 2) // 2 // settings.slots)  # half the cores in all, as for one slot
    chats = []
    try:
        for _ in range(settings.slots):
            chat, info = open_model(config, gguf=gguf, n_threads=threads)
            chats.append(chat)
    except BaseException:
        for chat in chats:
            chat.close()
        raise
    return chats, False, info


def evaluate_one(config: Config, rows: list[dict[str, Any]], eval_set: dict[str, Any], *,
                 gguf: str | Path | None = None, model_dir: str | Path | None = None, events=None,
                 on_sample: SampleCallback | None = None, stop_event: threading.Event | None = None,
                 label: str = "", progress: tuple[int, int] | None = None, journal: Path | None = None,
                 measured: dict[str, Any] | None = None, on_budget: BudgetCallback | None = None,
                 run_dir: str | Path | None = None) -> dict[str, Any]:
    chats, shared, info = open_models(config, gguf=gguf, model_dir=model_dir, run_dir=run_dir)
    try:
        return evaluate_model(chats, rows, config, events=events, model_info=info, eval_set=eval_set,
                              on_sample=on_sample, stop_event=stop_event, label=label, progress=progress,
                              journal=journal, shared=shared, on_budget=on_budget, measured=measured)
    finally:
        for chat in chats:
            chat.close()


# ----------------------------------------------------------------- the stage

VS_KEYWORDS = ("base", "merged")


def resolve_vs(config: Config, layout: RunLayout | None, vs: str | Path, quant: str | None,
               events=None) -> tuple[Path | None, Path | None]:
    """(gguf, folder) of the model ``--vs`` names: ``base`` (the run's base model exported to a
    GGUF at ``quant``, cached), ``merged`` (the run's F16 GGUF, else its merged folder), or a path."""
    if str(vs) not in VS_KEYWORDS:
        path = Path(vs)
        return (path, None) if path.is_file() else (None, path)
    if layout is None:
        raise R1Error(f"--vs {vs} compares with a run's own {vs} model: give a RUN")
    if str(vs) == "merged":
        from r1tui.export.gguf import gguf_stem

        f16 = layout.gguf(gguf_stem(config), "F16")
        if f16.is_file():
            return f16, None
        if layout.merged.is_dir():
            return None, layout.merged
        raise R1Error(f"{layout.run_id}: no merged model (gguf/*-F16.gguf or merged/); export the run first")
    from r1tui.export.base_gguf import build_base_gguf

    def step(message: str) -> None:
        if events is not None:
            events.emit("stage_progress", stage="eval", unit="step", message=f"base GGUF: {message}")

    return build_base_gguf(config, layout, quant or "Q4_K_M", on_step=step), None


def evaluate_run(config: Config, run_dir: str | Path | None, events=None, gguf: str | Path | None = None, *,
                 model_dir: str | Path | None = None, vs: str | Path | None = None,
                 vs_model_dir: str | Path | None = None, source: str | None = None,
                 num_samples: int | None = None, out_dir: str | Path | None = None,
                 on_sample: SampleCallback | None = None, on_budget: BudgetCallback | None = None,
                 stop_event: threading.Event | None = None,
                 think_budgets: Sequence[int] | None = None) -> dict[str, Any]:
    """The eval stage: results of the run's model (and of ``vs`` when given), saved as JSON.

    ``think_budgets`` (``r1tui eval --think-budget 256,512,1024``) evaluates the model once per
    ``infer.max_think_tokens`` instead: ``think-budget-<N>.json`` each, and results.json is
    the largest budget's results with ``think_budget``: accuracy and compliance per budget.

    The model is ``gguf`` or ``model_dir`` when given, else the run's Q4_K_M GGUF.
    ``vs`` is a GGUF, ``base`` or ``merged`` (see ``resolve_vs``); ``vs_model_dir`` a
    folder. Results go to ``out_dir`` (default ``run_dir/eval``): ``results.json``, and
    with a second model also ``vs-<name>.json`` and ``comparison.json`` (the comparison
    is also inside results.json). Each model's finished samples are journaled until
    then, so a killed eval resumes where it stopped. Returns the results dict.
    """
    from r1tui.eval.sets import load_eval_set

    run_dir = Path(run_dir) if run_dir is not None else None
    layout = RunLayout(run_dir) if run_dir is not None else None
    if gguf is None and model_dir is None and not config.eval.base_url:
        if layout is None:
            raise R1Error("nothing to evaluate: give a run, --gguf PATH or --hf PATH")
        gguf = find_run_gguf(layout, config)
    if config.eval.base_url and (gguf is not None or model_dir is not None):
        raise R1Error(f"eval.base_url {config.eval.base_url} generates on a server, so the model given here "
                      f"({gguf or model_dir}) would not be the one evaluated; give one of them")
    two = vs is not None or vs_model_dir is not None
    if think_budgets and two:
        raise R1Error("--think-budget runs one model at several thinking budgets; drop --vs, or compare two "
                      "models at one budget (infer.max_think_tokens)")
    if two and config.eval.base_url:
        raise R1Error("--vs compares two local models on one engine, but eval.base_url sends generation to a "
                      "server; unset eval.base_url, or evaluate each served model on its own")
    if out_dir is None:
        if layout is None:
            raise R1Error("where should results go? pass --out DIR")
        out_dir = layout.eval_dir
    out_dir = Path(out_dir)
    model_name = config.eval.base_url if config.eval.base_url else str(gguf or model_dir)
    with stage(events, "eval", model=model_name, vs=str(vs or vs_model_dir or "") or None) as outputs:
        eval_set = load_eval_set(config, source=source, num_samples=num_samples)
        rows = eval_set["rows"]
        if not rows:
            raise R1Error(f"eval set {eval_set['source']} is empty; check eval.source and eval.num_samples")
        ids = [row["id"] for row in rows]
        if len(set(ids)) < len(ids):
            repeated = next(row_id for row_id in ids if ids.count(row_id) > 1)
            raise R1Error(f"eval set {eval_set['source']}: the id {repeated!r} is used by more than one row; "
                          "give every row its own id (samples, seeds and the journal are keyed by it)")
        if vs is not None:
            vs, vs_model_dir = resolve_vs(config, layout, vs, quant_of(Path(gguf)) if gguf else None, events)
        per_model = len(rows) * config.eval.samples_per_question
        total = per_model * (2 if two else 1)
        main_label = Path(model_name).name if two else ""
        main_run = trained_in(gguf or model_dir) if (gguf or model_dir) else run_dir
        try:
            if think_budgets:
                results = evaluate_budgets(config, rows, eval_set, sorted(set(think_budgets)), out_dir,
                                           gguf=gguf, model_dir=model_dir, events=events, on_sample=on_sample,
                                           stop_event=stop_event, on_budget=on_budget, run_dir=main_run)
            else:
                results = evaluate_one(config, rows, eval_set, gguf=gguf, model_dir=model_dir, events=events,
                                       on_sample=on_sample, stop_event=stop_event, label=main_label,
                                       progress=(0, total), journal=eval_journal(out_dir),
                                       measured=_measured(out_dir / RESULTS_FILE, model_name),
                                       on_budget=on_budget, run_dir=main_run)
        except (KeyboardInterrupt, StageCancelled) as exc:
            partial = getattr(exc, "partial_results", None)
            if partial is not None and partial["samples"]:
                if run_dir is not None:
                    partial["run"] = run_dir.name
                outputs["results"] = str(write_json(out_dir / RESULTS_FILE, partial))
            raise
        if run_dir is not None:
            results["run"] = run_dir.name
        journals = [eval_journal(out_dir)]
        if two and not results["complete"]:
            two = False  # stopped during the first model: no second model, no comparison of halves
        if two:
            other_model = Path(vs or vs_model_dir)
            other_name = _safe_name(other_model)
            other_path = out_dir / f"vs-{other_name}.json"
            journals.append(eval_journal(out_dir, other_name))
            try:
                other = evaluate_one(config, rows, eval_set, gguf=vs, model_dir=vs_model_dir, events=events,
                                     on_sample=on_sample, stop_event=stop_event, label=other_model.name,
                                     progress=(per_model, total), journal=journals[-1],
                                     measured=_measured(other_path, other_model), on_budget=on_budget,
                                     run_dir=trained_in(other_model))
            except (KeyboardInterrupt, StageCancelled) as exc:
                outputs["results"] = str(write_json(out_dir / RESULTS_FILE, results))
                partial = getattr(exc, "partial_results", None)
                if partial is not None and partial["samples"]:
                    outputs["vs_results"] = str(write_json(other_path, partial))
                raise
            comparison = compare_results(results, other)
            results["comparison"] = comparison
            write_json(other_path, other)
            write_json(out_dir / COMPARISON_FILE, comparison)
            outputs["vs_results"] = str(other_path)
        path = out_dir / RESULTS_FILE
        write_json(path, results)
        if results["complete"] and (not two or other["complete"]):
            for journal in journals:
                journal.unlink(missing_ok=True)
        results["path"] = str(path)
        if events is not None:
            events.emit("artifact", stage="eval", kind="eval_results", path=str(path), bytes=path.stat().st_size,
                        accuracy=results["summary"].get("accuracy"))
        outputs.update({"results": str(path), "accuracy": results["summary"].get("accuracy"),
                        "pass@1": results["summary"].get("pass@1"),
                        "compliance_rate": results["summary"].get("compliance_rate"),
                        "avg_depth": results["summary"].get("avg_depth")})
        if not results["complete"]:
            outputs["_status"] = "cancelled"
    return results


BUDGET_KEYS = ("count", "accuracy", "pass@1", "pass@1_se", "compliance_rate", "think_tokens_median",
               "think_capped_rate", "truncated_rate", "avg_completion_tokens")


def budget_file(out_dir: Path, cap: int) -> Path:
    return out_dir / f"think-budget-{cap}.json"


def evaluate_budgets(config: Config, rows: list[dict[str, Any]], eval_set: dict[str, Any], caps: Sequence[int],
                     out_dir: Path, *, gguf=None, model_dir=None, events=None, on_sample=None, stop_event=None,
                     on_budget=None, run_dir=None) -> dict[str, Any]:
    """The test-time-scaling curve: the same rows and seeds at each ``infer.max_think_tokens``."""
    low = config.infer.min_think_tokens
    if low and low > caps[0]:
        raise R1Error(f"--think-budget {caps[0]}: below infer.min_think_tokens = {low}; lower the minimum "
                      "or give budgets of at least it")
    per_model = len(rows) * config.eval.samples_per_question
    curve: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    for index, cap in enumerate(caps):
        capped = config.model_copy(deep=True)
        capped.infer.max_think_tokens = cap
        path = budget_file(out_dir, cap)
        journal = eval_journal(out_dir, f"think-{cap}")
        try:
            results = evaluate_one(capped, rows, eval_set, gguf=gguf, model_dir=model_dir, events=events,
                                   on_sample=on_sample, stop_event=stop_event, label=f"think ≤ {cap}",
                                   progress=(index * per_model, per_model * len(caps)), journal=journal,
                                   measured=_measured(path, gguf or model_dir or config.eval.base_url),
                                   on_budget=on_budget, run_dir=run_dir)
        except (KeyboardInterrupt, StageCancelled) as exc:
            partial = getattr(exc, "partial_results", None)
            if partial is not None and partial["samples"]:
                write_json(path, partial)
            raise
        write_json(path, results)
        if results["complete"]:
            journal.unlink(missing_ok=True)
        generated = [sample.get("think_tokens_generated", 0) for sample in results["samples"]]
        curve.append({"max_think_tokens": cap, **{key: results["summary"].get(key) for key in BUDGET_KEYS},
                      # what the cap bounds: the think tokens as generated (the summary re-encodes the text)
                      "think_tokens_generated_median": statistics.median(generated) if generated else None,
                      "think_tokens_generated_max": max(generated, default=None),
                      "file": path.name})
    results["think_budget"] = curve
    return results


def _measured(path: Path, model: str | Path | None) -> dict[str, Any] | None:
    """Speed and reply length of an earlier eval of the same model (``model``: its path or
    server URL) saved at ``path``, for the budget; None when there is none."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    summary = earlier.get("summary") or {}
    same = model is not None and (earlier.get("model") or {}).get("path") == str(model)
    return {key: summary.get(key) for key in ("tokens_per_s", "avg_completion_tokens")} if summary and same else None


def _safe_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem if path.suffix == ".gguf" else path.name)


# ----------------------------------------------------------------- comparison

# metric -> the per-sample flag whose per-question mean the paired standard error is over
PAIRED = {"pass@1": "correct", "compliance_rate": "compliant", "eos_rate": "finished_eos"}
COMPARED_METRICS = ("pass@1", "compliance_rate", "eos_rate", "truncated_rate", "avg_depth", "avg_steps",
                    "think_tokens_median", "tokens_per_s")


def compare_results(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Side by side: for overall and each domain, each metric of A and B, the delta A − B and,
    for the rates, its paired standard error over the questions both answered."""
    groups = ["all"] + [d for d in a.get("domains", {}) if d in b.get("domains", {})]
    rows = []
    for group in groups:
        stats_a = a["summary"] if group == "all" else a["domains"][group]
        stats_b = b["summary"] if group == "all" else b["domains"][group]
        samples_a = [s for s in a.get("samples", ()) if group in ("all", s["domain"])]
        samples_b = [s for s in b.get("samples", ()) if group in ("all", s["domain"])]
        for metric in COMPARED_METRICS if group == "all" else COMPARED_METRICS[:-1]:  # speed: overall only
            value_a, value_b = stats_a.get(metric), stats_b.get(metric)
            delta = None if value_a is None or value_b is None else round(value_a - value_b, 4)
            se = paired_delta(samples_b, samples_a, PAIRED[metric])["se"] if metric in PAIRED else None
            rows.append({"group": group, "metric": metric, "a": value_a, "b": value_b, "delta": delta, "se": se})
    return {
        "a": {"name": a.get("model", {}).get("name"), "path": a.get("model", {}).get("path")},
        "b": {"name": b.get("model", {}).get("name"), "path": b.get("model", {}).get("path")},
        "rows": rows,
    }


# ----------------------------------------------------------------- files


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (a temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False, default=str)
            file.write("\n")
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp makes 0600; results are for everyone the umask allows
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = RunLayout(path).eval_results if RunLayout(path).eval_dir.is_dir() else path / RESULTS_FILE
    if not path.is_file():
        raise R1Error(f"{path}: no eval results; run r1tui eval first")
    return json.loads(path.read_text(encoding="utf-8"))

"""Evaluate a model: generate an answer per eval row, score it, save JSON.

``evaluate_run`` is the pipeline's ``eval`` stage: it finds the run's Q4_K_M GGUF
(or takes the GGUF / model folder it is given), generates with llama.cpp (or
transformers), scores every response for correctness, reasoning quality and format,
emits one ``stage_progress`` event per sample, and writes ``eval/results.json``
atomically. Given a second model (``vs``) it evaluates that one on the same rows
and stores the side-by-side deltas.
"""

from __future__ import annotations

import json
import logging
import os
import re
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
from r1tui.eval.evaluator import DOMAINS, ReasoningQualityEvaluator, summarize
from r1tui.quants import quant_of
from r1tui.response_format import extract_answer, split_response
from r1tui.runs.events import StageCancelled, stage
from r1tui.runs.layout import RESULTS_FILE, RunLayout

log = logging.getLogger(__name__)

RESULTS_VERSION = 1
COMPARISON_FILE = "comparison.json"

SampleCallback = Callable[[int, int, dict[str, Any]], None]


# ----------------------------------------------------------------- one sample


def score_response(response: str, row: dict[str, Any], finish_reason: str,
                   evaluator: ReasoningQualityEvaluator, numeric_tolerance: float) -> dict[str, Any]:
    """Everything measured about one response (the reasoning score is also kept by ``evaluator``)."""
    reasoning = evaluator.add(response, row["domain"])
    extracted = extract_answer(response)
    check = check_answer(extracted.text, row["answer"], row["domain"], numeric_tolerance)
    answer_line = extracted.source == "final_answer"
    finished_eos = finish_reason == "eos"
    parsed = split_response(response)
    # Format: a closed, non-empty think block (a truncated one still counts for depth).
    think_block = parsed.think_closed and bool(parsed.think)
    return {
        "id": row["id"], "domain": row["domain"], "question": row["question"], "reference": row["answer"],
        "response": response, "answer": extracted.text, "answer_source": extracted.source,
        "correct": check.correct, "check": check.method,
        "steps": reasoning.steps, "distinct_steps": reasoning.distinct_steps,
        "worked_steps": reasoning.worked_steps, "verified": reasoning.verified, "depth": reasoning.depth,
        "think_present": think_block, "answer_line": answer_line,
        "finished_eos": finished_eos, "finish_reason": finish_reason,
        "compliant": think_block and answer_line and finished_eos,
    }


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, format compliance, depth and speed for a group of sample records."""
    count = len(records)
    if not count:
        return {"count": 0}

    def rate(key: str) -> float:
        return round(sum(1 for r in records if r[key]) / count, 4)

    speeds = [r["tokens_per_s"] for r in records if r.get("tokens_per_s")]
    depths = [r["depth"] for r in records]
    steps = [r["steps"] for r in records]
    return {
        "count": count,
        "correct": sum(1 for r in records if r["correct"]),
        "accuracy": rate("correct"),
        "avg_depth": round(sum(depths) / count, 4), "min_depth": min(depths), "max_depth": max(depths),
        "avg_steps": round(sum(steps) / count, 2), "min_steps": min(steps), "max_steps": max(steps),
        "think_rate": rate("think_present"),
        "answer_line_rate": rate("answer_line"),
        "eos_rate": rate("finished_eos"),
        "compliance_rate": rate("compliant"),
        "avg_completion_tokens": round(sum(r.get("completion_tokens", 0) for r in records) / count, 1),
        "tokens_per_s": round(sum(speeds) / len(speeds), 2) if speeds else None,
    }


def domain_order(records: Iterable[dict[str, Any]]) -> list[str]:
    seen = {r["domain"] for r in records}
    return [d for d in DOMAINS if d in seen] + sorted(seen - set(DOMAINS))


# ----------------------------------------------------------------- one model


def evaluate_model(chat, rows: Sequence[dict[str, Any]], config: Config, events=None,
                   model_info: dict[str, Any] | None = None, eval_set: dict[str, Any] | None = None,
                   on_sample: SampleCallback | None = None, stop_event: threading.Event | None = None,
                   label: str = "", progress: tuple[int, int] | None = None) -> dict[str, Any]:
    """Generate and score every row with ``chat`` (a LlamaChat or HFChat). Returns the results dict.

    ``progress`` = (samples done before this model, samples in the whole stage), so
    that two models evaluated in one stage count up once.
    """
    evaluator = ReasoningQualityEvaluator()
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    done_before, total = progress or (0, len(rows))
    try:
        _generate_all(chat, rows, config, records, evaluator, events, on_sample, stop_event, label,
                      done_before, total)
    except (KeyboardInterrupt, StageCancelled) as exc:
        # keep what was measured: the caller saves it (complete: false) before stopping
        exc.partial_results = build_results(records, evaluator, config, model_info or {}, eval_set or {},
                                            elapsed_s=time.perf_counter() - started, complete=False)
        raise
    return build_results(records, evaluator, config, model_info or {}, eval_set or {},
                         elapsed_s=time.perf_counter() - started, complete=len(records) == len(rows))


def _generate_all(chat, rows, config: Config, records, evaluator, events, on_sample, stop_event, label,
                  done_before, total) -> None:
    settings = config.eval
    for index, row in enumerate(rows):
        if stop_event is not None and stop_event.is_set():
            break
        messages = []
        if config.data.system_prompt:
            messages.append({"role": "system", "content": config.data.system_prompt})
        messages.append({"role": "user", "content": row["question"]})
        generation = chat.generate(messages, max_tokens=settings.max_new_tokens,
                                   temperature=settings.temperature, top_p=settings.top_p)
        record = score_response(generation.text, row, generation.stats.finish_reason, evaluator,
                                settings.numeric_tolerance)
        record.update({
            "prompt_tokens": generation.stats.prompt_tokens,
            "completion_tokens": generation.stats.completion_tokens,
            "tokens_per_s": round(generation.stats.tokens_per_s, 2),
            "elapsed_s": round(generation.stats.elapsed_s, 3),
        })
        records.append(record)
        if events is not None:
            verdict = "correct" if record["correct"] else "wrong"
            events.emit("stage_progress", stage="eval", completed=done_before + index + 1, total=total, unit="samples",
                        message=f"{label + ': ' if label else ''}{row['domain']} {verdict}, "
                                f"depth {record['depth']:.2f}, {record['steps']} steps")
        if on_sample is not None:
            on_sample(done_before + index + 1, total, record)


def build_results(records: list[dict[str, Any]], evaluator: ReasoningQualityEvaluator, config: Config,
                  model_info: dict[str, Any], eval_set: dict[str, Any], elapsed_s: float,
                  complete: bool = True) -> dict[str, Any]:
    settings = config.eval
    return {
        "version": RESULTS_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "model": model_info,
        "eval_set": {key: value for key, value in eval_set.items() if key != "rows"} | {"count": len(records)},
        "generation": {"max_new_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                       "top_p": settings.top_p, "n_ctx": settings.n_ctx,
                       "numeric_tolerance": settings.numeric_tolerance,
                       "system_prompt": config.data.system_prompt},
        "summary": aggregate(records),
        "domains": {d: aggregate([r for r in records if r["domain"] == d]) for d in domain_order(records)},
        "reasoning": summarize(evaluator.scores),
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


def open_model(config: Config, gguf: str | Path | None = None, model_dir: str | Path | None = None):
    """(chat, model_info) for a GGUF (llama.cpp) or a model/adapter folder (transformers)."""
    settings = config.eval
    tokenizer = tokenizer_spec(config)
    if gguf is not None:
        from r1tui.infer.llama import LlamaChat

        path = Path(gguf).expanduser().resolve()
        chat = LlamaChat(path, tokenizer_spec=tokenizer, n_ctx=settings.n_ctx, seed=settings.seed)
        return chat, {"backend": "llama.cpp", "path": str(path), "name": path.name, "quant": quant_of(path),
                      "bytes": path.stat().st_size, "tokenizer": tokenizer}
    if model_dir is not None:
        from r1tui.infer.hf import HFChat

        path = Path(model_dir).expanduser().resolve()
        chat = HFChat(path, tokenizer_spec=tokenizer, n_ctx=settings.n_ctx, seed=settings.seed)
        kind = "adapter" if (path / "adapter_config.json").is_file() else "merged"
        return chat, {"backend": "transformers", "path": str(path), "name": path.name, "quant": kind,
                      "tokenizer": tokenizer}
    raise R1Error("nothing to evaluate: pass a GGUF (--gguf PATH) or a model folder (--hf PATH)")


def evaluate_one(config: Config, rows: list[dict[str, Any]], eval_set: dict[str, Any], *,
                 gguf: str | Path | None = None, model_dir: str | Path | None = None, events=None,
                 on_sample: SampleCallback | None = None, stop_event: threading.Event | None = None,
                 label: str = "", progress: tuple[int, int] | None = None) -> dict[str, Any]:
    chat, info = open_model(config, gguf=gguf, model_dir=model_dir)
    try:
        return evaluate_model(chat, rows, config, events=events, model_info=info, eval_set=eval_set,
                              on_sample=on_sample, stop_event=stop_event, label=label, progress=progress)
    finally:
        chat.close()


# ----------------------------------------------------------------- the stage


def evaluate_run(config: Config, run_dir: str | Path | None, events=None, gguf: str | Path | None = None, *,
                 model_dir: str | Path | None = None, vs: str | Path | None = None,
                 vs_model_dir: str | Path | None = None, source: str | None = None,
                 num_samples: int | None = None, out_dir: str | Path | None = None,
                 on_sample: SampleCallback | None = None,
                 stop_event: threading.Event | None = None) -> dict[str, Any]:
    """The eval stage: results of the run's model (and of ``vs`` when given), saved as JSON.

    The model is ``gguf`` or ``model_dir`` when given, else the run's Q4_K_M GGUF.
    Results go to ``out_dir`` (default ``run_dir/eval``): ``results.json``, and with a
    second model also ``vs-<name>.json`` and ``comparison.json`` (the comparison is
    also inside results.json). Returns the results dict.
    """
    from r1tui.eval.sets import load_eval_set

    run_dir = Path(run_dir) if run_dir is not None else None
    layout = RunLayout(run_dir) if run_dir is not None else None
    if gguf is None and model_dir is None:
        if layout is None:
            raise R1Error("nothing to evaluate: give a run, --gguf PATH or --hf PATH")
        gguf = find_run_gguf(layout, config)
    if out_dir is None:
        if layout is None:
            raise R1Error("where should results go? pass --out DIR")
        out_dir = layout.eval_dir
    out_dir = Path(out_dir)
    model_path = Path(gguf or model_dir)
    with stage(events, "eval", model=str(model_path), vs=str(vs or vs_model_dir or "") or None) as outputs:
        eval_set = load_eval_set(config, source=source, num_samples=num_samples)
        rows = eval_set["rows"]
        if not rows:
            raise R1Error(f"eval set {eval_set['source']} is empty; check eval.source and eval.num_samples")
        two = vs is not None or vs_model_dir is not None
        total = len(rows) * (2 if two else 1)
        try:
            results = evaluate_one(config, rows, eval_set, gguf=gguf, model_dir=model_dir, events=events,
                                   on_sample=on_sample, stop_event=stop_event,
                                   label=model_path.name if two else "", progress=(0, total))
        except (KeyboardInterrupt, StageCancelled) as exc:
            partial = getattr(exc, "partial_results", None)
            if partial is not None and partial["samples"]:
                outputs["results"] = str(write_json(out_dir / RESULTS_FILE, partial))
            raise
        if run_dir is not None:
            results["run"] = run_dir.name
        if two:
            other_path = out_dir / f"vs-{_safe_name(Path(vs or vs_model_dir))}.json"
            try:
                other = evaluate_one(config, rows, eval_set, gguf=vs, model_dir=vs_model_dir, events=events,
                                     on_sample=on_sample, stop_event=stop_event,
                                     label=Path(vs or vs_model_dir).name, progress=(len(rows), total))
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
        results["path"] = str(path)
        if events is not None:
            events.emit("artifact", stage="eval", kind="eval_results", path=str(path), bytes=path.stat().st_size,
                        accuracy=results["summary"].get("accuracy"))
        outputs.update({"results": str(path), "accuracy": results["summary"].get("accuracy"),
                        "compliance_rate": results["summary"].get("compliance_rate"),
                        "avg_depth": results["summary"].get("avg_depth")})
        if not results["complete"]:
            outputs["_status"] = "cancelled"
    return results


def _safe_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem if path.suffix == ".gguf" else path.name)


# ----------------------------------------------------------------- comparison

COMPARED_METRICS = ("accuracy", "compliance_rate", "eos_rate", "avg_depth", "avg_steps", "tokens_per_s")


def compare_results(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Side by side: for overall and each domain, each metric of A and B and the delta B - A."""
    groups = ["all"] + [d for d in a.get("domains", {}) if d in b.get("domains", {})]
    rows = []
    for group in groups:
        stats_a = a["summary"] if group == "all" else a["domains"][group]
        stats_b = b["summary"] if group == "all" else b["domains"][group]
        for metric in COMPARED_METRICS if group == "all" else COMPARED_METRICS[:-1]:  # speed: overall only
            value_a, value_b = stats_a.get(metric), stats_b.get(metric)
            delta = None if value_a is None or value_b is None else round(value_b - value_a, 4)
            rows.append({"group": group, "metric": metric, "a": value_a, "b": value_b, "delta": delta})
    return {
        "a": {"name": a.get("model", {}).get("name"), "path": a.get("model", {}).get("path")},
        "b": {"name": b.get("model", {}).get("name"), "path": b.get("model", {}).get("path")},
        "rows": rows,
    }


# ----------------------------------------------------------------- files


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (a temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False, default=str)
            file.write("\n")
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone the umask allows
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

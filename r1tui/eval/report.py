"""Rich tables for eval results (Rich is imported inside the functions; no Textual here).

Three tables, each within 80 columns: answers (pass@1 with its standard error, pass@k
and maj@k at the largest k, the four outcomes: right, wrong, truncated, no answer),
reasoning and format (depth, steps,
think length, the format rates), and the comparison of two models (A − B with the
paired standard error). ``markdown_tables`` writes the same figures for the model card.
"""

from __future__ import annotations

from typing import Any

from r1tui.eval.evaluator import format_summary

_PERCENT_METRICS = {"pass@1", "accuracy", "compliance_rate", "eos_rate", "think_rate", "answer_line_rate",
                    "truncated_rate", "no_answer_rate"}
_LOWER_IS_BETTER = {"truncated_rate", "no_answer_rate"}
_NEUTRAL = {"avg_steps", "think_tokens_median"}  # longer thinking is neither better nor worse by itself
METRIC_LABELS = {"pass@1": "pass@1", "compliance_rate": "format", "eos_rate": "ends by EOS",
                 "truncated_rate": "truncated", "avg_depth": "depth", "avg_steps": "steps",
                 "think_tokens_median": "think tokens (median)", "tokens_per_s": "tokens/s"}


def summary_text(results: dict[str, Any]) -> str:
    """The reasoning summary in the documented plain-text shape."""
    return format_summary(results["reasoning"])


def groups(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, stats) per domain, then "all"."""
    return [(name, stats) for name, stats in [*results.get("domains", {}).items(), ("all", results["summary"])]
            if stats.get("count")]


def top_k(stats: dict[str, Any]) -> int | None:
    """The largest k with a pass@k figure (None with one sample per question)."""
    ks = [int(key[5:]) for key in stats if key.startswith("pass@") and key[5:].isdigit() and key != "pass@1"]
    return max(ks) if ks else None


def pass1_text(stats: dict[str, Any]) -> str:
    """``62.5% ± 4.1`` (the standard error in percentage points), or the bare rate."""
    value = stats.get("pass@1", stats.get("accuracy"))
    if value is None:
        return "–"
    se = stats.get("pass@1_se")
    return f"{value * 100:.1f}%" + (f" ± {se * 100:.1f}" if se is not None else "")


def results_table(results: dict[str, Any], title: str | None = None):
    """Per domain and overall: pass@1 ± SE, pass@k and maj@k, the four outcomes (questions
    and samples per question are in the title, so the table fits 80 columns)."""
    from rich.table import Table

    model = results.get("model", {})
    n = results["summary"].get("samples_per_question", 1)
    questions = results["summary"].get("questions", results["summary"].get("count"))
    k = top_k(results["summary"])
    table = Table(title=title or f"eval: {model.get('name', '?')} ({model.get('backend', '?')}), "
                                 f"{questions} questions x {n} sample{'s' * (n > 1)}",
                  title_justify="left", show_edge=False)
    columns = ["domain", "pass@1 ± SE"] + ([f"pass@{k}", f"maj@{k}"] if k else []) + \
              ["right", "wrong", "trunc.", "none"]
    for name in columns:
        table.add_column(name, justify="left" if name == "domain" else "right", no_wrap=True)
    rows = groups(results)
    for index, (name, stats) in enumerate(rows):
        outcomes = stats.get("outcomes") or {}
        cells = [f"[bold]{name}[/]" if name == "all" else name, pass1_text(stats)]
        if k:
            cells += [_percent(stats.get(f"pass@{k}")), _percent(stats.get(f"maj@{k}"))]
        cells += [str(outcomes.get(key, "–")) for key in ("correct", "wrong", "truncated", "no_answer")]
        table.add_row(*cells, end_section=index == len(rows) - 2)
    return table


def reasoning_table(results: dict[str, Any]):
    """Per domain and overall: depth, steps, think length (median and p90 tokens), format rates."""
    from rich.table import Table

    table = Table(title="reasoning and format", title_justify="left", show_edge=False)
    for name in ("domain", "depth", "steps", "think p50", "p90", "think", "answer", "eos", "format"):
        table.add_column(name, justify="left" if name == "domain" else "right")
    rows = groups(results)
    for index, (name, stats) in enumerate(rows):
        table.add_row(
            f"[bold]{name}[/]" if name == "all" else name,
            f"{stats['avg_depth']:.4f}", f"{stats['avg_steps']:.1f}",
            _tokens(stats.get("think_tokens_median")), _tokens(stats.get("think_tokens_p90")),
            _whole_percent(stats["think_rate"]), _whole_percent(stats["answer_line_rate"]),
            _whole_percent(stats["eos_rate"]), _whole_percent(stats["compliance_rate"]),
            end_section=index == len(rows) - 2,
        )
    return table


def comparison_table(comparison: dict[str, Any]):
    """A vs B with the delta A − B (± its paired standard error for the rates), per domain and overall."""
    from rich.table import Table

    name_a = comparison["a"].get("name") or "A"
    name_b = comparison["b"].get("name") or "B"
    table = Table(title=f"{name_a} (A) vs {name_b} (B)", title_justify="left", show_edge=False)
    table.add_column("domain")
    table.add_column("metric")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("Δ (A − B) ± SE", justify="right")
    rows = comparison["rows"]
    for index, row in enumerate(rows):
        last_of_group = index == len(rows) - 1 or rows[index + 1]["group"] != row["group"]
        table.add_row(row["group"], METRIC_LABELS.get(row["metric"], row["metric"]),
                      _value(row["metric"], row["a"]), _value(row["metric"], row["b"]),
                      delta_text(row["metric"], row["delta"], row.get("se"), markup=True), end_section=last_of_group)
    return table


def thinking_text(results: dict[str, Any]) -> str:
    """How the replies were generated: prefill (and why), the think budget, continuations."""
    thinking = (results.get("generation") or {}).get("thinking") or {}
    if not thinking:
        return "no prefill, no think budget"
    parts = ["prefilled <think>" if thinking.get("prefill") else "no prefill"]
    if thinking.get("prefill_reason"):
        parts[0] += f" ({thinking['prefill_reason']})"
    if thinking.get("max_think_tokens"):
        parts.append(f"think ≤ {thinking['max_think_tokens']} tokens, answer ≤ {thinking.get('answer_tokens')}")
    if thinking.get("min_think_tokens"):
        parts.append(f"think ≥ {thinking['min_think_tokens']} ({thinking.get('continuation')!r} appended)")
    return ", ".join(parts)


def think_budget_table(results: dict[str, Any]):
    """Accuracy and compliance against the thinking budget (the test-time-scaling curve)."""
    from rich.table import Table

    table = Table(title="accuracy and compliance against the thinking budget", title_justify="left",
                  show_edge=False)
    for name in ("budget", "pass@1 ± SE", "format", "think p50", "max", "capped", "trunc.", "reply"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in results.get("think_budget") or []:
        table.add_row(str(row["max_think_tokens"]), pass1_text(row), _whole_percent(row.get("compliance_rate")),
                      _tokens(row.get("think_tokens_generated_median")), _tokens(row.get("think_tokens_generated_max")),
                      _whole_percent(row.get("think_capped_rate")), _whole_percent(row.get("truncated_rate")),
                      _tokens(row.get("avg_completion_tokens")))
    return table


def think_budget_markdown(results: dict[str, Any]) -> str:
    rows = results.get("think_budget") or []
    if not rows:
        return ""
    out = ["Accuracy and format compliance against the thinking budget (budget forcing as in s1: at the "
           "budget the think block is closed and the answer line started):", "",
           "| think budget | pass@1 ± SE | format | think tokens (median) | cut by the budget | truncated |",
           "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        out.append(f"| {row['max_think_tokens']} | {pass1_text(row)} | {_percent(row.get('compliance_rate'))} | "
                   f"{_tokens(row.get('think_tokens_generated_median'))} | {_percent(row.get('think_capped_rate'))} | "
                   f"{_percent(row.get('truncated_rate'))} |")
    return "\n".join(out)


def markdown_tables(results: dict[str, Any]) -> str:
    """The answers table, and the comparison when there is one, as Markdown (no local paths)."""
    n = results["summary"].get("samples_per_question", 1)
    k = top_k(results["summary"])
    head = ["domain", "questions", "pass@1 ± SE"] + ([f"pass@{k}", f"maj@{k}"] if k else []) + \
           ["truncated", "no answer", "format", "avg depth", "think tokens (median)"]
    generation = results.get("generation") or {}
    out = [f"{n} sample{'s' * (n > 1)} per question, temperature {generation.get('temperature', '?')}, "
           f"top_p {generation.get('top_p', '?')}, at most {generation.get('max_new_tokens', '?')} new tokens. "
           f"Thinking: {_public_thinking(results)}.",
           "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, stats in groups(results):
        cells = [name, str(stats.get("questions", stats["count"])), pass1_text(stats)]
        if k:
            cells += [_percent(stats.get(f"pass@{k}")), _percent(stats.get(f"maj@{k}"))]
        cells += [_percent(stats.get("truncated_rate")), _percent(stats.get("no_answer_rate")),
                  _percent(stats.get("compliance_rate")), f"{stats['avg_depth']:.4f}",
                  _tokens(stats.get("think_tokens_median"))]
        out.append("| " + " | ".join(cells) + " |")
    comparison = results.get("comparison")
    if isinstance(comparison, dict):
        out += ["", f"Compared with **{comparison['b'].get('name')}** on the same questions and seeds "
                "(Δ = this model − that one, ± the paired standard error over questions):", "",
                "| domain | metric | this model | compared | Δ |", "| --- | --- | --- | --- | --- |"]
        for row in comparison["rows"]:
            out.append(f"| {row['group']} | {METRIC_LABELS.get(row['metric'], row['metric'])} | "
                       f"{_value(row['metric'], row['a'])} | {_value(row['metric'], row['b'])} | "
                       f"{delta_text(row['metric'], row['delta'], row.get('se'))} |")
    budgets = think_budget_markdown(results)
    if budgets:
        out += ["", budgets]
    if results.get("complete") is False:
        out.append("\n_Evaluation was stopped early: these rows cover the samples done._")
    return "\n".join(out)


def _public_thinking(results: dict[str, Any]) -> str:
    """thinking_text without the run folder's name (the card is published)."""
    thinking = (results.get("generation") or {}).get("thinking") or {}
    return thinking_text({"generation": {"thinking": {**thinking, "prefill_reason": ""}}}) if thinking \
        else "no prefill, no think budget"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _whole_percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _tokens(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if metric in _PERCENT_METRICS:
        return _percent(value)
    if metric == "avg_depth":
        return f"{value:.4f}"
    return f"{value:.1f}"


def delta_text(metric: str, delta: float | None, se: float | None = None, markup: bool = False) -> str:
    """``+12.5 pt ± 3.1`` for rates (percentage points), ``+0.0123`` for depth, ``+4.0`` otherwise."""
    if delta is None:
        return "–"
    if metric in _PERCENT_METRICS:
        text = f"{delta * 100:+.1f} pt" + (f" ± {se * 100:.1f}" if se is not None else "")
    elif metric == "avg_depth":
        text = f"{delta:+.4f}"
    else:
        text = f"{delta:+.1f}"
    if not markup or delta == 0 or metric in _NEUTRAL:
        return text
    better = delta < 0 if metric in _LOWER_IS_BETTER else delta > 0
    return f"[green]{text}[/]" if better else f"[red]{text}[/]"

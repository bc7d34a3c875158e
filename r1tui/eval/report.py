"""Rich tables for eval results (Rich is imported inside the functions; no Textual here)."""

from __future__ import annotations

from typing import Any

from r1tui.eval.evaluator import format_summary

_PERCENT_METRICS = {"accuracy", "compliance_rate", "eos_rate", "think_rate", "answer_line_rate"}


def summary_text(results: dict[str, Any]) -> str:
    """The reasoning summary in the documented plain-text shape."""
    return format_summary(results["reasoning"])


def results_table(results: dict[str, Any], title: str | None = None):
    """Per domain and overall: correct answers, accuracy, depth, steps and format compliance.

    Fits 80 columns: the format rates (think block, answer line, ended by EOS, all
    three) are whole percentages.
    """
    from rich.table import Table

    model = results.get("model", {})
    table = Table(title=title or f"eval: {model.get('name', '?')} ({model.get('backend', '?')})",
                  title_justify="left", show_edge=False)
    for name in ("domain", "correct", "accuracy", "depth", "steps", "think", "answer", "eos", "format"):
        table.add_column(name, justify="left" if name == "domain" else "right")
    groups = list(results.get("domains", {}).items()) + [("all", results["summary"])]
    for index, (name, stats) in enumerate(groups):
        if not stats.get("count"):
            continue
        table.add_row(
            f"[bold]{name}[/]" if name == "all" else name,
            f"{stats['correct']}/{stats['count']}",
            _percent(stats["accuracy"]),
            f"{stats['avg_depth']:.4f}",
            f"{stats['avg_steps']:.1f}",
            _whole_percent(stats["think_rate"]),
            _whole_percent(stats["answer_line_rate"]),
            _whole_percent(stats["eos_rate"]),
            _whole_percent(stats["compliance_rate"]),
            end_section=index == len(groups) - 2,
        )
    return table


def comparison_table(comparison: dict[str, Any]):
    """A vs B with the delta B - A, per domain and overall."""
    from rich.table import Table

    name_a = comparison["a"].get("name") or "A"
    name_b = comparison["b"].get("name") or "B"
    table = Table(title=f"{name_a} (A) vs {name_b} (B)", title_justify="left", show_edge=False)
    table.add_column("domain")
    table.add_column("metric")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("Δ (B − A)", justify="right")
    rows = comparison["rows"]
    for index, row in enumerate(rows):
        last_of_group = index == len(rows) - 1 or rows[index + 1]["group"] != row["group"]
        table.add_row(row["group"], row["metric"], _value(row["metric"], row["a"]), _value(row["metric"], row["b"]),
                      _delta(row["metric"], row["delta"]), end_section=last_of_group)
    return table


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _whole_percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if metric in _PERCENT_METRICS:
        return _percent(value)
    if metric == "avg_depth":
        return f"{value:.4f}"
    return f"{value:.1f}"


def _delta(metric: str, delta: float | None) -> str:
    if delta is None:
        return "–"
    if metric in _PERCENT_METRICS:
        text = f"{delta * 100:+.1f} pt"
    elif metric == "avg_depth":
        text = f"{delta:+.4f}"
    else:
        text = f"{delta:+.1f}"
    if delta > 0:
        return f"[green]{text}[/]"
    if delta < 0:
        return f"[red]{text}[/]"
    return text

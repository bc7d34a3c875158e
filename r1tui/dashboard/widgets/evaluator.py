"""Evaluator: the per-domain table (count, depth, steps, accuracy, format compliance),
base vs tuned when both were evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.format import bar, status_text
from r1tui.dashboard.source import read_json
from r1tui.dashboard.widgets.base import Panel

# Columns in the order a reader wants them; anything else numeric follows.
PREFERRED = ("count", "accuracy", "format_compliance", "avg_depth", "avg_steps")
LABELS = {"count": "n", "accuracy": "accuracy", "format_compliance": "format", "avg_depth": "depth",
          "avg_steps": "steps"}
MODEL_KEYS = ("base", "tuned")


def _domains(block: Any) -> dict[str, dict[str, Any]] | None:
    """The per-domain mapping of one model's results, wherever it sits."""
    if not isinstance(block, dict):
        return None
    for key in ("domains", "per_domain", "by_domain"):
        if isinstance(block.get(key), dict):
            return block[key]
    for key in ("summary", "reasoning", "results"):
        found = _domains(block.get(key))
        if found is not None:
            return found
    return None


def _overall(block: dict[str, Any]) -> dict[str, Any]:
    summary = block.get("summary") if isinstance(block.get("summary"), dict) else block
    return {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def models_in(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"tuned": {...}, "base": {...}} when both exist, else {"tuned": results}."""
    models = results.get("models") if isinstance(results.get("models"), dict) else results
    found = {key: models[key] for key in MODEL_KEYS if isinstance(models.get(key), dict)}
    return found or {"tuned": results}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("accuracy", "format_compliance") and isinstance(value, (int, float)) and value <= 1:
        return f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def results_table(results: dict[str, Any]) -> Table:
    models = models_in(results)
    per_model = {name: (_domains(block) or {}) for name, block in models.items()}
    domains: list[str] = []
    for mapping in per_model.values():
        domains += [d for d in mapping if d not in domains]
    keys: list[str] = [k for k in PREFERRED if any(k in row for m in per_model.values() for row in m.values())]
    for mapping in per_model.values():
        for row in mapping.values():
            keys += [k for k, v in row.items() if k not in keys and isinstance(v, (int, float))
                     and not k.startswith(("min_", "max_"))]
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("domain", no_wrap=True)
    names = list(per_model)
    for key in keys:
        for name in names:
            label = LABELS.get(key, key.replace("_", " "))
            table.add_column(f"{label}" + (f" {name}" if len(names) > 1 else ""), justify="right", no_wrap=True)
    for domain in [*domains, "overall"]:
        cells = []
        for key in keys:
            for name in names:
                row = per_model[name].get(domain) if domain != "overall" else _overall(models[name])
                cells.append(_cell(key, (row or {}).get(key)))
        table.add_row(Text(domain, style="bold" if domain == "overall" else ""), *cells)
    return table


def find_results(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    data = read_json(run_dir / "eval" / "results.json")
    if isinstance(data, dict):
        base = read_json(run_dir / "eval" / "base_results.json")
        if isinstance(base, dict) and "base" not in data:
            data = {"tuned": data, "base": base}
        return data
    return None


class EvaluatorPanel(Panel):
    PANEL_ID = "evaluator"
    TITLE = "Eval"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="eval-body")

    def refresh_view(self) -> None:
        app = self.dashboard
        state = app.state
        run_dir = app.run_ref.run_dir if app.run_ref else None
        stage = state.stages["eval"]
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append("eval ", style="bold")
        head.append_text(status_text(state.stage_status("eval")))
        if stage.progress is not None and stage.progress.total:
            head.append(" ")
            head.append_text(bar(stage.progress.fraction, 16, "yellow"))
            head.append(f" {int(stage.progress.completed)}/{int(stage.progress.total)} {stage.progress.unit}")
        parts: list[Any] = [head]
        results = find_results(run_dir)
        if results is None:
            results = stage.outputs if _domains(stage.outputs) else None
        if results is None:
            message = ("no results yet: v evaluates the run's GGUF in a detached process" if run_dir
                       else "no run yet")
            parts.append(Text(message, style="dim"))
        else:
            parts.append(results_table(results))
        self.query_one("#eval-body", Static).update(Group(*parts))

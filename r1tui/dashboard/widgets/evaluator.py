"""Evaluator: the per-domain tables (pass@1 ± SE, pass@k, maj@k, outcomes; depth, steps, think
length, format compliance) from the run's eval results (``RunLayout.eval_results``), and tuned vs
base when the run was evaluated against a second model (the results' ``comparison``), and
accuracy and compliance against the thinking budget when it was evaluated with
``--think-budget`` (the results' ``think_budget``, in report.py's table). Enter
opens the samples themselves (``screens/samples.py``)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.format import bar, status_text
from r1tui.dashboard.widgets.base import Panel
from r1tui.present import format_duration
from r1tui.runs.files import read_json
from r1tui.runs.layout import RunLayout


def results_renderables(results: dict[str, Any]) -> list[Any]:
    from r1tui.eval.report import (
        comparison_table,
        reasoning_table,
        results_table,
        think_budget_table,
    )

    parts: list[Any] = []
    try:
        for table in (results_table(results), reasoning_table(results)):
            table.pad_edge = False  # at 80 columns every header and domain fits whole
            parts.append(table)
        if isinstance(results.get("comparison"), dict):
            comparison = comparison_table(results["comparison"])
            comparison.pad_edge = False
            parts.append(comparison)
        if isinstance(results.get("think_budget"), list) and results["think_budget"]:
            curve = think_budget_table(results)  # `r1tui eval --think-budget`: the CLI's own table
            curve.pad_edge = False
            parts.append(curve)
    except (KeyError, TypeError, ValueError) as exc:
        parts.append(Text(f"the eval results have an unexpected shape ({exc}); re-run r1tui eval", style="red"))
    if results.get("complete") is False:
        parts.append(Text("incomplete: the evaluation was stopped before every sample", style="yellow"))
    return parts


class EvaluatorPanel(Panel):
    PANEL_ID = "evaluator"
    TITLE = "Eval"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="eval-body")

    def refresh_view(self) -> None:
        app = self.dashboard
        state = app.state
        run: RunLayout | None = app.run_ref.layout if app.run_ref else None
        stage = state.stage("eval")
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append("eval ", style="bold")
        head.append_text(status_text(state.stage_status("eval")))
        if stage.progress is not None and stage.progress.total:
            head.append(" ")
            head.append_text(bar(stage.progress.fraction, 16, "yellow" if stage.status == "running" else "green"))
            head.append(f" {int(stage.progress.completed)}/{int(stage.progress.total)} {stage.progress.unit}")
            if stage.eta_s() is not None:
                head.append(f" · ETA {format_duration(stage.eta_s())}")
            if stage.status == "running" and stage.progress.message:
                head.append(f" · {stage.progress.message}", style="dim")
        parts: list[Any] = [head]
        results = read_json(run.eval_results) if run is not None else None
        if isinstance(results, dict):
            parts += results_renderables(results)
            if isinstance(results.get("samples"), list) and results["samples"]:
                parts.append(Text(f"enter: the {len(results['samples']):,} samples (question, response, verdict)",
                                  style="dim"))
        else:
            parts.append(Text("no results yet: v evaluates the run's GGUF in a detached process" if run
                              else "no run yet", style="dim"))
        self.query_one("#eval-body", Static).update(Group(*parts))

    def open_samples(self) -> None:
        """The samples of the run's results, one by one (or one line saying why there are none)."""
        from r1tui.dashboard.screens.samples import SamplesScreen

        run = self.dashboard.run_ref
        results = read_json(run.layout.eval_results) if run is not None else None
        samples = results.get("samples") if isinstance(results, dict) else None
        if not isinstance(samples, list) or not samples:
            self.notify("no eval samples yet: v evaluates the run's GGUF" if run else "no run yet",
                        severity="warning")
            return
        model = results.get("model") if isinstance(results.get("model"), dict) else {}
        self.app.push_screen(SamplesScreen([s for s in samples if isinstance(s, dict)], str(model.get("name") or "")))

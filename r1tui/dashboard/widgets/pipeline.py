"""Pipeline: every stage with its status, duration, progress and artifacts; the log."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.format import bar, display_path, in_run, status_text
from r1tui.dashboard.widgets.base import Panel
from r1tui.pipeline import registry
from r1tui.present import format_bytes, format_duration
from r1tui.runs.reducer import RunState, StageState

LOG_STYLE = {"error": "bold red", "warning": "yellow", "debug": "dim"}


def artifact_summary(stage: StageState, run_id: str | None = None) -> Text:
    """The stage's artifacts in one line: the first path and size, and how many more."""
    items: list[tuple[str, Any]] = []
    for artifact in stage.artifacts:
        if artifact.get("kind") == "checkpoint":
            continue
        items.append((in_run(artifact.get("path", "?"), run_id), artifact.get("bytes")))
    if not items:
        for key, value in stage.outputs.items():
            if isinstance(value, str) and ("/" in value or value.endswith((".gguf", ".json"))):
                items.append((in_run(value, run_id), None))
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith("bytes"):
                continue
    checkpoints = sum(1 for a in stage.artifacts if a.get("kind") == "checkpoint")
    text = Text(no_wrap=True, overflow="ellipsis")
    if items:
        path, n = items[0]
        text.append(path)
        if n:
            text.append(f" {format_bytes(n)}", style="dim")
        if len(items) > 1:
            text.append(f" +{len(items) - 1}", style="dim")
    if checkpoints:
        text.append(f"{' · ' if items else ''}{checkpoints} ckpt", style="dim")
    if stage.error:
        text = Text(stage.error, style="red", no_wrap=True, overflow="ellipsis")
    return text


def stage_rows(state: RunState) -> list[str]:
    """Every registered stage in pipeline order, then any other stage the log mentions."""
    known = registry.stage_names()
    return [*known, *(name for name in state.stages if name not in known)]


def stage_table(state: RunState, now: float) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    table.add_column("stage", no_wrap=True, width=8)
    table.add_column("status", no_wrap=True, width=11)
    table.add_column("time", justify="right", no_wrap=True, width=7)
    table.add_column("progress", no_wrap=True, width=14)
    table.add_column("artifacts", ratio=1, no_wrap=True, overflow="ellipsis")
    planned = set(state.planned_stages) or set(registry.stage_names())
    for name in stage_rows(state):
        stage = state.stage(name)
        status = state.stage_status(name)
        label = Text(name, style="" if name in planned else "dim")
        progress = Text()
        if stage.progress is not None and stage.progress.total:
            progress = bar(stage.progress.fraction, 8, "green" if status == "finished" else "yellow")
            progress.append(f" {stage.progress.fraction:>4.0%}")
        elapsed = stage.elapsed(now if state.status == "running" else (state.last_ts or now))
        table.add_row(label, status_text(status), format_duration(elapsed), progress, artifact_summary(stage, state.run_id))
    return table


def log_lines(state: RunState, limit: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    lines = list(state.logs)[-limit:] if limit > 0 else []
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        where = f"[{line.stage}] " if line.stage else ""
        text.append(f"{where}{line.message}", style=LOG_STYLE.get(line.level.lower(), ""))
    if not lines:
        text.append("no log lines yet", style="dim")
    return text


class PipelinePanel(Panel):
    PANEL_ID = "pipeline"
    TITLE = "Pipeline"

    def compose(self) -> ComposeResult:
        yield Static(id="stages")
        yield Static(id="run-summary")
        with VerticalScroll(id="pipeline-log"):
            yield Static(id="log-lines")

    def refresh_view(self) -> None:
        app = self.dashboard
        state = app.state
        self.query_one("#stages", Static).update(stage_table(state, app.clock()))
        summary = Text(no_wrap=True, overflow="ellipsis")
        if app.run_ref is None:
            config_path = app.start_config()[0]
            summary.append("No run yet. ", style="bold")
            summary.append(f"s starts one with {app.show_path(str(config_path)) if config_path else 'the built-in config'}"
                           " (dry run: the plan only).", style="dim")
        elif state.status == "crashed":
            why = ("the process lives but the log went silent" if state.stuck
                   else "the process is gone without a finish event")
            summary.append(f"crashed: {why}. ", style="bold red")
            summary.append("r resumes.", style="dim")
        elif state.error and state.status == "failed":
            summary.append(f"failed: {state.error}", style="red")
        else:
            summary.append(f"{state.events_seen:,} events · log: {display_path(app.run_ref.layout.events, app.runs_dir)}",
                           style="dim")
        self.query_one("#run-summary", Static).update(summary)
        self.query_one("#log-lines", Static).update(log_lines(state, 200))
        self.query_one("#pipeline-log", VerticalScroll).scroll_end(animate=False)

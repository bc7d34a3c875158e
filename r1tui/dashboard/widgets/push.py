"""Push: the upload plan (what goes where, and how big), a confirmation, the upload
progress and the resulting URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.actions import export_stages
from r1tui.dashboard.format import bar, short_path, status_text
from r1tui.dashboard.widgets.base import Panel
from r1tui.export.push import PushPlan, plan_push
from r1tui.present import format_bytes
from r1tui.runs.layout import RunLayout
from r1tui.runs.reducer import RunState


def plan_renderable(plan: PushPlan | None, error: str | None = None) -> Any:
    """The upload plan: the repo, every file with its size, and what stops the push."""
    parts: list[Any] = []
    if plan is not None:
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold", title="upload plan",
                      title_justify="left", title_style="bold")
        table.add_column("file", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("size", justify="right", no_wrap=True)
        for item in plan.files:
            table.add_row(short_path(item.path_in_repo, 3), format_bytes(item.bytes))
        if plan.files:
            table.add_row(Text("total", style="bold"), Text(format_bytes(plan.total_bytes), style="bold"))
        head = Text()
        head.append("repo ", style="bold")
        head.append(plan.repo_id or "(no repo id: set hub.repo_id or HF_REPO_ID)")
        head.append(" · private" if plan.private else " · public", style="dim")
        head.append(f" · token {'from ' + plan.token if plan.token else 'missing (HF_TOKEN or hf auth login)'}",
                    style="dim" if plan.token else "yellow")
        parts += [head, table]
    if error:
        parts.append(Text(f"✗ {error}", style="red"))
    return Group(*parts)


def plan_key(run_dir: Path | None, state: RunState) -> tuple[Any, ...]:
    """What the upload plan depends on: the run folder and how far its export went (the plan
    lists what is on disk; the export stages and push change it, and their status and
    artifacts tell when)."""
    stages = (state.stage(name) for name in (*export_stages(), "push"))
    return (run_dir, *((stage.status, len(stage.artifacts)) for stage in stages))


def push_url(state: RunState) -> str | None:
    stage = state.stages.get("push")
    if stage is not None:
        for key in ("url", "repo_url"):
            if isinstance(stage.outputs.get(key), str):
                return stage.outputs[key]
        for artifact in reversed(stage.artifacts):
            if isinstance(artifact.get("url"), str):
                return artifact["url"]
            if artifact.get("kind") == "hub" and isinstance(artifact.get("path"), str):
                return artifact["path"]
    return None


class PushPanel(Panel):
    PANEL_ID = "push"
    TITLE = "Push"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan: PushPlan | None = None
        self.plan_error: str | None = None  # why there is no plan (no exported GGUF yet, …)
        self._planned_for: tuple[Any, ...] | None = None  # plan_key of the plan shown (or being made)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="push-status")
            yield Static(id="push-plan")

    def refresh_view(self) -> None:
        app = self.dashboard
        state = app.state
        run_dir = app.run_ref.run_dir if app.run_ref else None
        key = plan_key(run_dir, state)
        if key != self._planned_for:  # another run, or an export stage finished since: plan again
            if self._planned_for is None or self._planned_for[0] != run_dir:
                self.plan = self.plan_error = None  # a plan of the same run stays shown until the new one is ready
                self.query_one("#push-plan", Static).update(
                    Text("computing the upload plan…" if run_dir else "no run yet: nothing to push", style="dim"))
            self._planned_for = key
            if app.run_ref is not None:
                self.compute_plan(app.run_ref.layout, key)
        stage = state.stage("push")
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append("push ", style="bold")
        status.append_text(status_text(state.stage_status("push")))
        if stage.progress is not None and stage.progress.total:
            status.append(" ")
            status.append_text(bar(stage.progress.fraction, 20, "yellow"))
            status.append(f" {format_bytes(stage.progress.completed)} / {format_bytes(stage.progress.total)}"
                          if stage.progress.unit in ("B", "byte", "bytes") else
                          f" {int(stage.progress.completed)}/{int(stage.progress.total)} {stage.progress.unit}")
        url = push_url(state)
        if url:
            status.append("\n")
            status.append(url, style="bold underline cyan")
        elif stage.error:
            status.append(f"\n{stage.error}", style="red")
        else:
            status.append("\np pushes after a confirmation (dry run on: shows this plan only)", style="dim")
        self.query_one("#push-status", Static).update(status)

    @work(thread=True, exclusive=True, group="push-plan", exit_on_error=False)
    def compute_plan(self, run: RunLayout, key: tuple[Any, ...]) -> None:
        """What `r1tui push` would upload (``r1tui.export.push.plan_push``: the run folder only, no network)."""
        plan: PushPlan | None = None
        error: str | None = None
        try:
            plan = plan_push(self.dashboard.config, run)
        except Exception as exc:  # noqa: BLE001 - a plan that cannot be made is shown, not raised
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.app.call_from_thread(self._planned, key, plan, error)

    def _planned(self, key: tuple[Any, ...], plan: PushPlan | None, error: str | None) -> None:
        if key != self._planned_for:
            return  # the run or its export moved on meanwhile: a newer plan is coming
        self.plan, self.plan_error = plan, error
        self.query_one("#push-plan", Static).update(plan_renderable(plan, error))

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

from r1tui.dashboard.format import bar, short_path, size, status_text
from r1tui.dashboard.state import RunState
from r1tui.dashboard.widgets.base import Panel


def plan_renderable(plan: dict[str, Any]) -> Any:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold", title="upload plan",
                  title_justify="left", title_style="bold")
    table.add_column("file", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("size", justify="right", no_wrap=True)
    files = plan.get("files") or plan.get("uploads") or []
    total = 0
    for item in files:
        if isinstance(item, dict):
            name = item.get("path_in_repo") or item.get("path") or item.get("name") or "?"
            n = item.get("bytes") or item.get("size")
        else:
            name, n = str(item), None
        total += n or 0
        table.add_row(short_path(str(name), 3), size(n))
    if files:
        table.add_row(Text("total", style="bold"), Text(size(total), style="bold"))
    head = Text()
    repo = plan.get("repo_id") or plan.get("repo") or "(no repo id: set hub.repo_id or HF_REPO_ID)"
    head.append("repo ", style="bold")
    head.append(str(repo))
    if "private" in plan:
        head.append(" · private" if plan["private"] else " · public", style="dim")
    if "token" in plan:
        head.append(f" · token {'from ' + str(plan['token']) if plan['token'] else 'missing (HF_TOKEN or hf auth login)'}",
                    style="dim" if plan["token"] else "yellow")
    parts: list[Any] = [head, table]
    problems = plan.get("problems") or plan.get("errors") or []
    if plan.get("error"):
        problems = [plan["error"], *problems]
    for problem in problems:
        parts.append(Text(f"✗ {problem}", style="red"))
    return Group(*parts)


# The plan lists what is on disk; these stages change it (their status and artifacts tell when).
PLAN_INPUTS = ("merge", "gguf", "quantize", "parity", "push")


def plan_key(run_dir: Path | None, state: RunState) -> tuple[Any, ...]:
    """What the upload plan depends on: the run folder and how far its export went."""
    return (run_dir, *((state.stages[name].status, len(state.stages[name].artifacts)) for name in PLAN_INPUTS))


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
        self.plan: dict[str, Any] | None = None
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
                self.plan = None  # a plan of the same run stays shown until the new one is ready
                self.query_one("#push-plan", Static).update(
                    Text("computing the upload plan…" if run_dir else "no run yet: nothing to push", style="dim"))
            self._planned_for = key
            if run_dir is not None:
                self.compute_plan(run_dir, key)
        stage = state.stages["push"]
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append("push ", style="bold")
        status.append_text(status_text(state.stage_status("push")))
        if stage.progress is not None and stage.progress.total:
            status.append(" ")
            status.append_text(bar(stage.progress.fraction, 20, "yellow"))
            status.append(f" {size(stage.progress.completed)} / {size(stage.progress.total)}"
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
    def compute_plan(self, run_dir: Path, key: tuple[Any, ...]) -> None:
        config = self.dashboard.config
        try:
            from r1tui.export.push import push_run
        except ImportError:
            plan: dict[str, Any] = {"error": "r1tui.export.push is not installed in this build"}
        else:
            try:
                plan = push_run(config, run_dir, events=None, dry_run=True)
            except Exception as exc:  # noqa: BLE001 - a plan that cannot be made is shown, not raised
                plan = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        self.app.call_from_thread(self._planned, key, plan)

    def _planned(self, key: tuple[Any, ...], plan: dict[str, Any]) -> None:
        if key != self._planned_for:
            return  # the run or its export moved on meanwhile: a newer plan is coming
        self.plan = plan
        self.query_one("#push-plan", Static).update(plan_renderable(plan))

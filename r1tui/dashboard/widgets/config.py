"""Config & estimates: the calculator's tables for the run's (or the default) config."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.format import display_path
from r1tui.dashboard.widgets.base import Panel


class ConfigPanel(Panel):
    PANEL_ID = "config"
    TITLE = "Config"

    _shown_for: object = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="config-origin")
            yield Static(id="config-tables")

    def refresh_view(self) -> None:
        app = self.dashboard
        report = app.report
        key = (id(report), id(app.masking_stats), app.config_error)
        if key == self._shown_for:
            return
        self._shown_for = key
        origin = Text(no_wrap=True, overflow="ellipsis")
        if app.config_error:
            origin.append(f"config error: {app.config_error}", style="bold red")
        elif report is not None:
            origin.append("config ", style="bold")
            path = report.config.path
            origin.append(display_path(path, app.runs_dir) if path else "built-in defaults")
            origin.append("  (estimates are computed, nothing is launched)", style="dim")
        self.query_one("#config-origin", Static).update(origin)
        tables = self.query_one("#config-tables", Static)
        if report is None:
            tables.update(Text("no config to estimate", style="dim"))
            return
        from r1tui.dryrun import report_renderables, with_masking

        masking = app.masking_stats if app.masking_stats and "error" not in app.masking_stats else None
        # the masking statistics arrive from a worker; with them, the epoch's tokens and hours
        parts = list(report_renderables(with_masking(report, app.config, masking) if app.config is not None
                                        else report))
        if app.masking_stats is None:
            parts.append(Text("masking statistics: computing…", style="dim"))
        elif "error" in app.masking_stats:
            parts.append(Text(f"masking statistics: {app.masking_stats['error']}", style="red"))
        tables.update(Group(*parts))

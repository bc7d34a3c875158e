"""The main screen: the header, one tab per panel, and the footer of bindings.

Bindings live here so that the footer always shows them; the ones that belong to a
panel (start/resume/cancel on Pipeline, paging on Data, …) are shown only while that
panel is visible (``check_action``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from r1tui.dashboard.widgets.base import Panel
from r1tui.dashboard.widgets.config import ConfigPanel
from r1tui.dashboard.widgets.data import DataPanel
from r1tui.dashboard.widgets.evaluator import EvaluatorPanel
from r1tui.dashboard.widgets.export import ExportPanel
from r1tui.dashboard.widgets.generate import GeneratePanel
from r1tui.dashboard.widgets.gpu import GpuPanel
from r1tui.dashboard.widgets.header import RunHeader
from r1tui.dashboard.widgets.pipeline import PipelinePanel
from r1tui.dashboard.widgets.push import PushPanel
from r1tui.dashboard.widgets.repl import ReplPanel
from r1tui.dashboard.widgets.training import TrainingPanel

if TYPE_CHECKING:
    from r1tui.dashboard.app import DashboardApp

# In the order of the tabs. Generate came last (key 0), so the keys people already know
# (1 Pipeline … 9 Push) kept their panels.
PANELS: tuple[type[Panel], ...] = (PipelinePanel, ConfigPanel, DataPanel, TrainingPanel, GpuPanel, ExportPanel,
                                   EvaluatorPanel, ReplPanel, PushPanel, GeneratePanel)
PANEL_IDS = tuple(panel.PANEL_ID for panel in PANELS)
# The digit that shows each panel: 1-9, then 0 for the tenth (the order of the keyboard's row).
if len(PANELS) > 10:
    raise RuntimeError("one digit key per panel: ten panels at most")
PANEL_KEYS = {panel.PANEL_ID: str((index + 1) % 10) for index, panel in enumerate(PANELS)}
PANELS_GROUP = Binding.Group("panel", compact=True)

# Which panel an action's binding belongs to (shown in the footer only there).
ACTION_PANEL = {"start": "pipeline", "resume": "pipeline", "cancel": "pipeline", "export": "export",
                "evaluate": "evaluator", "push": "push"}


class MainScreen(Screen):
    BINDINGS = [
        *(Binding(PANEL_KEYS[panel.PANEL_ID], f"show_panel('{panel.PANEL_ID}')", panel.TITLE, group=PANELS_GROUP)
          for panel in PANELS),
        Binding("d", "toggle_dry_run", "dry run"),
        Binding("s", "act('start')", "start"),
        Binding("r", "act('resume')", "resume"),
        Binding("x", "act('cancel')", "cancel"),
        Binding("e", "act('export')", "export"),
        Binding("v", "act('evaluate')", "evaluate"),
        Binding("p", "act('push')", "push"),
        Binding("n", "page(1)", "next"),
        Binding("b", "page(-1)", "prev"),
        Binding("i", "toggle_ids", "ids"),
        Binding("q", "app.quit", "quit"),
    ]

    @property
    def dashboard(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with TabbedContent(initial=self.dashboard.initial_panel, id="panels"):
            for panel in PANELS:
                with TabPane(panel.TITLE, id=panel.PANEL_ID):
                    yield panel(id=f"panel-{panel.PANEL_ID}")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self.dashboard.refresh_views)  # what arrived before the screen was there

    # -- panels ----------------------------------------------------------------
    @property
    def active_panel_id(self) -> str:
        return self.query_one("#panels", TabbedContent).active

    def active_panel(self) -> Panel | None:
        """The visible panel; None while the screen is still composing or shutting down."""
        tabs = self.query("#panels").results(TabbedContent)
        active = next((t.active for t in tabs), "")
        return next(iter(self.query(f"#panel-{active}").results(Panel)), None) if active else None

    def panel(self, panel_id: str) -> Panel:
        return self.query_one(f"#panel-{panel_id}", Panel)

    def action_show_panel(self, panel_id: str) -> None:
        tabs = self.query_one("#panels", TabbedContent)
        if tabs.active == panel_id == ReplPanel.PANEL_ID:
            self.query_one(ReplPanel).focus_prompt()  # already there (esc left the prompt): back to it
        tabs.active = panel_id

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        if self.active_panel_id != ReplPanel.PANEL_ID:
            self.query_one(Tabs).focus()

    # -- actions -------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        if action == "act" and parameters:
            return ACTION_PANEL.get(str(parameters[0])) == self.active_panel_id
        if action in ("page", "toggle_ids"):
            return self.active_panel_id == DataPanel.PANEL_ID
        return True

    def action_toggle_dry_run(self) -> None:
        self.dashboard.dry_run = not self.dashboard.dry_run

    def action_act(self, name: str) -> None:
        self.dashboard.request_action(name)

    def action_page(self, delta: int) -> None:
        self.query_one(DataPanel).page(delta)

    def action_toggle_ids(self) -> None:
        self.query_one(DataPanel).toggle_ids()

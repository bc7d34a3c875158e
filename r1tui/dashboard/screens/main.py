"""The main screen: the header, one tab per panel, and the footer of bindings.

Bindings live here so that the footer always shows them; the ones that belong to a
panel (start/resume/cancel on Overview, paging on Data, …) are shown only while that
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
from r1tui.dashboard.widgets.header import RunHeader
from r1tui.dashboard.widgets.logs import LogsPanel
from r1tui.dashboard.widgets.overview import OverviewPanel
from r1tui.dashboard.widgets.push import PushPanel
from r1tui.dashboard.widgets.repl import ReplPanel
from r1tui.dashboard.widgets.resources import ResourcesPanel
from r1tui.dashboard.widgets.training import TrainingPanel

if TYPE_CHECKING:
    from r1tui.dashboard.app import DashboardApp

# In the order of the tabs. Generate came last (key 0), so the keys people already know
# kept their panels (Overview took Pipeline's 1, Resources GPU's 5).
PANELS: tuple[type[Panel], ...] = (OverviewPanel, ConfigPanel, DataPanel, TrainingPanel, ResourcesPanel, ExportPanel,
                                   EvaluatorPanel, ReplPanel, PushPanel, GeneratePanel, LogsPanel)
PANEL_IDS = tuple(panel.PANEL_ID for panel in PANELS)
# The key that shows each panel: the first ten take the digits 1-9, then 0 (the order of the
# keyboard's row); panels after them a letter of their name, given here.
LETTER_KEYS = {"logs": "l"}
PANEL_KEYS = {panel.PANEL_ID: str((index + 1) % 10) if index < 10 else LETTER_KEYS[panel.PANEL_ID]
              for index, panel in enumerate(PANELS)}
if len(set(PANEL_KEYS.values())) != len(PANELS):
    raise RuntimeError("two panels share a key")
PANELS_GROUP = Binding.Group("panel", compact=True)

# Which panel an action's binding belongs to (shown in the footer only there).
ACTION_PANEL = {"start": "overview", "resume": "overview", "cancel": "overview", "export": "export",
                "evaluate": "evaluator", "push": "push"}


# keys that scroll the visible panel while the tabs have the focus: (key, action, description)
SCROLL_KEYS = (("up", "scroll_up", "scroll up"), ("down", "scroll_down", "scroll down"),
               ("pageup", "page_up", "page up"), ("pagedown", "page_down", "page down"),
               ("home", "scroll_home", "top"), ("end", "scroll_end", "bottom"))


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
        Binding("m", "chart('smoothing')", "smooth"),
        Binding("g", "chart('log_scale')", "log y"),
        Binding("o", "chart('overlay')", "overlay"),
        Binding("R", "runs", "runs"),
        Binding("ctrl+s", "config('save')", "save config"),
        Binding("ctrl+n", "config('save_as')", "save as"),
        Binding("q", "app.quit", "quit"),
        Binding("enter", "open_samples", "samples"),
        Binding("question_mark", "help", "help"),
        Binding("escape", "close_overlays", "close", show=False),
        # the visible panel scrolls without Tab first (the tabs keep the focus)
        *(Binding(key, f"scroll_panel('{how}')", description, show=False)
          for key, how, description in SCROLL_KEYS),
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
        if self.active_panel_id not in (ReplPanel.PANEL_ID, LogsPanel.PANEL_ID):  # those focus their own
            self.query_one(Tabs).focus()

    # -- actions -------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        if action == "act" and parameters:
            return ACTION_PANEL.get(str(parameters[0])) == self.active_panel_id
        if action == "open_samples":
            return self.active_panel_id == EvaluatorPanel.PANEL_ID
        if action in ("page", "toggle_ids"):
            return self.active_panel_id == DataPanel.PANEL_ID
        if action == "chart":
            return self.active_panel_id == TrainingPanel.PANEL_ID
        if action == "config":
            return self.active_panel_id == ConfigPanel.PANEL_ID
        return True

    def action_help(self) -> None:
        """The key sheet of what is active now: the visible panel's keys, the screen's, the app's."""
        from r1tui.dashboard.screens.help import HelpScreen, key_sheet

        panel = self.active_panel()
        self.app.push_screen(HelpScreen(key_sheet(self, panel), panel.TITLE if panel is not None else ""))

    def action_close_overlays(self) -> None:
        """Esc: close the Keys panel (Textual's, from the palette) and the toasts."""
        self.app.action_hide_help_panel()
        self.app.clear_notifications()

    def action_scroll_panel(self, how: str) -> None:
        from r1tui.dashboard.screens.help import scroll_target

        target = scroll_target(self.active_panel())
        if target is not None:
            getattr(target, f"action_{how}")()

    def action_open_samples(self) -> None:
        self.query_one(EvaluatorPanel).open_samples()

    def action_toggle_dry_run(self) -> None:
        self.dashboard.dry_run = not self.dashboard.dry_run

    def action_act(self, name: str) -> None:
        self.dashboard.request_action(name)

    def action_page(self, delta: int) -> None:
        self.query_one(DataPanel).page(delta)

    def action_toggle_ids(self) -> None:
        self.query_one(DataPanel).toggle_ids()

    def action_runs(self) -> None:
        """Every run under the runs folder: open, compare, resume, cancel, delete."""
        self.dashboard.show_runs()

    def action_config(self, what: str) -> None:
        """The Config panel's keys: save the edited config, or save it as a new one."""
        panel = self.query_one(ConfigPanel)
        {"save": panel.action_save, "save_as": panel.action_save_as}[what]()

    def action_chart(self, what: str) -> None:
        """The Training panel's chart keys: smoothing, log scale, another run's loss."""
        panel = self.query_one(TrainingPanel)
        {"smoothing": panel.cycle_smoothing, "log_scale": panel.toggle_log_scale,
         "overlay": panel.pick_overlay}[what]()

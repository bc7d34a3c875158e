"""The base class of every panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.containers import Vertical

if TYPE_CHECKING:
    from r1tui.dashboard.app import DashboardApp


class Panel(Vertical):
    """One tab of the dashboard. ``refresh_view`` redraws it from the app's state.

    The app calls ``refresh_view`` on the visible panel only (after each batch of
    events, and when the panel is shown), so hidden panels cost nothing.
    """

    PANEL_ID = ""
    TITLE = ""

    @property
    def dashboard(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def refresh_view(self) -> None:  # pragma: no cover - every panel overrides it
        raise NotImplementedError

    def reset_for_run(self) -> None:
        """Forget what was drawn for the previous run (the app switched runs)."""

    def on_show(self) -> None:
        self.refresh_view()

"""The one-line header: run id, model, backend (with the strategy and world size of a
run on several ranks: ``fsdp ×4``), status, elapsed time, dry-run badge.

Clicking the badge toggles dry run (as ``d`` does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual import events
from textual.widgets import Static

from r1tui.dashboard.format import status_text
from r1tui.present import format_duration

if TYPE_CHECKING:
    from r1tui.dashboard.app import DashboardApp


class RunHeader(Static):
    """Redrawn on each batch of events and once a second while a run is live."""

    badge_width = 0  # the badge's cells at the right end, as last drawn

    def on_click(self, event: events.Click) -> None:
        if self.badge_width and event.x >= self.size.width - self.badge_width:
            event.stop()
            app = cast("DashboardApp", self.app)
            app.dry_run = not app.dry_run

    def refresh_view(self) -> None:
        app = cast("DashboardApp", self.app)
        state = app.state
        left = Text(no_wrap=True, overflow="ellipsis")
        left.append(" r1tui ", style="bold reverse")
        if app.run_ref is None:
            left.append("  no run yet" + (" · dry-run view" if app.dry_run else ""), style="italic")
        else:
            left.append(f" {app.run_ref.run_id}", style="bold")
        if app.run_ref is not None:
            left.append(" │ ")
            left.append_text(status_text(state.status))
            left.append(f" │ {format_duration(state.elapsed(app.clock()))}")
        config = app.config
        if config is not None:
            left.append(f" │ {state.backend or config.train.backend}", style="cyan")
            world = state.last_metric.get("world_size")
            if isinstance(world, int) and world > 1:  # several ranks: how they share the model
                left.append(f" {config.train.distributed} ×{world}", style="cyan")
            left.append(f" │ {config.model.name}")
        badge = (Text(" DRY RUN ", style="bold black on yellow") if app.dry_run
                 else Text(" dry run off ", style="dim"))
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(left, badge)
        self.badge_width = badge.cell_len
        self.update(grid, layout=False)  # one fixed line: no relayout, no flicker

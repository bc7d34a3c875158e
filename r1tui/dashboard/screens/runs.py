"""The Runs screen: every run under the runs folder, and what can be done with each.

One row per run (``r1tui.runs.status.list_runs``, the statuses `r1tui runs` prints) with its
stage, step, loss, start, time spent running and size on disk, read in a thread worker (a
long log takes a while to fold). Enter opens a run in the dashboard, ``c`` overlays its loss
on the Training panel's chart (the panel's own overlay), ``r`` / ``x`` resume or cancel it
through the same action plans and guards as the Overview's keys, ``delete`` removes it after
a dialog that says what goes, and ``f`` filters by status.

Deleting never touches a live run (a writer holds its lock, or its pid runs): refused in one
line. A deleted folder first loses the two files that make it a run (its config and event
log) after a rename to a hidden name, so a delete cut short leaves no half run behind.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from r1tui.dashboard.actions import guard_live, plan_action, resume_point
from r1tui.dashboard.format import status_text
from r1tui.dashboard.screens.confirm import ConfirmScreen
from r1tui.dashboard.source import RunRef
from r1tui.present import format_bytes, format_duration, format_number
from r1tui.runs.files import folder_bytes, folder_size
from r1tui.runs.layout import CONFIG_FILE, EVENTS_FILE, RunLayout
from r1tui.runs.status import RunStatus, list_runs, live_runs, writer_alive

if TYPE_CHECKING:
    from r1tui.dashboard.app import DashboardApp

FILTERS = ("all", "running", "finished", "failed", "cancelled", "crashed")
# the start last: at 80 columns it is the one cut (the run id says the day and time too)
COLUMNS = ("run", "status", "stage", "step", "loss", "ran", "size", "started (UTC)")


@dataclass(frozen=True)
class RunRow:
    """A run as the table shows it: its status and its size on disk."""

    status: RunStatus
    size_bytes: int

    @property
    def run_id(self) -> str:
        return self.status.run_id

    @property
    def run_dir(self) -> Path:
        return Path(self.status.run_dir)


def read_rows(runs_dir: Path) -> list[RunRow]:
    return [RunRow(status, folder_bytes(status.run_dir)) for status in list_runs(runs_dir)]


def delete_summary(run_dir: Path) -> list[str]:
    """What deleting ``run_dir`` removes: the total, then each top-level entry by size."""
    total, files = folder_size(run_dir)
    lines = [f"{run_dir}: {files} files, {format_bytes(total)}"]
    entries = []
    for entry in run_dir.iterdir():
        size, count = folder_size(entry)  # a file or a link: its own size, 1
        entries.append((size, entry.name + ("/" if entry.is_dir() else ""), count))
    for size, name, count in sorted(entries, key=lambda e: (-e[0], e[1])):
        lines.append(f"{name:<24} {format_bytes(size):>9}" + (f"  ({count} files)" if name.endswith("/") else ""))
    return lines


def delete_run(run_dir: Path) -> None:
    """Remove a run folder that no writer holds. Raises R1Error (one line) for a live one."""
    from r1tui.errors import R1Error

    alive, who = writer_alive(RunLayout(run_dir))
    if alive:
        raise R1Error(f"run {run_dir.name} is live ({who}); cancel it first (x), then delete it")
    hidden = run_dir.with_name(f".deleting-{run_dir.name}-{os.getpid()}")
    os.replace(run_dir, hidden)
    for marker in (CONFIG_FILE, EVENTS_FILE):  # no longer a run folder, even if the rest stays
        (hidden / marker).unlink(missing_ok=True)
    shutil.rmtree(hidden)


class RunsScreen(Screen):
    """The table of runs; its keys act on the highlighted one."""

    BINDINGS = [
        Binding("enter,o", "open_run", "open"),
        Binding("c", "compare", "compare loss"),
        Binding("r", "act('resume')", "resume"),
        Binding("x", "act('cancel')", "cancel"),
        Binding("delete", "delete", "delete"),
        Binding("f", "cycle_filter", "filter"),
        Binding("g", "reload", "reload"),
        Binding("escape,q", "close", "close"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] | None = None  # None until the first read
        self.filter = "all"

    @property
    def dashboard(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        self._title()
        self.action_reload()

    def on_screen_resume(self) -> None:
        if self.rows is not None:
            self.action_reload()  # back from a dialog: a resume or cancel may have changed a status

    # -- reading ---------------------------------------------------------------
    def action_reload(self) -> None:
        self._read(self.dashboard.runs_dir)

    @work(thread=True, exclusive=True, group="runs-screen", exit_on_error=False)
    def _read(self, runs_dir: Path) -> None:
        try:
            rows = read_rows(runs_dir)
        except OSError as exc:  # the folder went away or cannot be read: one line, the table as it was
            self.app.call_from_thread(self.notify, f"{runs_dir}: {exc.strerror or exc}", severity="error")
            return
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[RunRow]) -> None:
        self.rows = rows
        self._fill()

    def shown(self) -> list[RunRow]:
        rows = self.rows or []
        return rows if self.filter == "all" else [row for row in rows if row.status.status == self.filter]

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        highlighted = self.highlighted()
        table.clear()
        watched = self.dashboard.run_ref.run_id if self.dashboard.run_ref is not None else None
        for row in self.shown():
            status = row.status
            step = f"{status.step:,}" + (f"/{status.max_steps:,}" if status.max_steps else "") \
                if status.step is not None else "—"
            started = time.strftime("%Y-%m-%d %H:%M", time.gmtime(status.started_at)) if status.started_at else "—"
            name = Text(("● " if status.run_id == watched else "  ") + status.run_id)
            table.add_row(name, status_text(status.status), status.stage or "—",
                          step, format_number(status.loss), format_duration(status.active_s),
                          format_bytes(row.size_bytes), started, key=status.run_id)
        if highlighted is not None:
            ids = [row.run_id for row in self.shown()]
            if highlighted.run_id in ids:
                table.move_cursor(row=ids.index(highlighted.run_id))
        self._title()

    def _title(self) -> None:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append("Runs ", style="bold")
        title.append(f"in {self.dashboard.show_path(str(self.dashboard.runs_dir))}")
        if self.rows is None:
            title.append(" · reading…", style="dim")
        else:
            shown = len(self.shown())
            title.append(f" · {shown} of {len(self.rows)}" if self.filter != "all" else f" · {len(self.rows)}")
            title.append(" runs")
        title.append(" · filter ", style="dim")
        title.append(self.filter, style="bold")
        title.append(" (f)", style="dim")
        self.query_one("#runs-title", Static).update(title)

    def highlighted(self) -> RunRow | None:
        table = self.query_one(DataTable)
        shown = self.shown()
        if not shown or table.cursor_row is None or not 0 <= table.cursor_row < len(shown) or table.row_count == 0:
            return None
        return shown[table.cursor_row]

    def _selected(self) -> RunRow | None:
        row = self.highlighted()
        if row is None:
            self.notify("no run here: f changes the filter" if self.rows else "no runs yet", severity="warning")
        return row

    # -- actions ---------------------------------------------------------------
    def action_cycle_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self._fill()

    def action_close(self) -> None:
        self.app.pop_screen()

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        row = self._selected()
        if row is None:
            return
        app = self.dashboard
        self.app.pop_screen()
        if app.run_ref is None or app.run_ref.run_dir.resolve() != row.run_dir.resolve():
            app.switch_run(RunRef.at(row.run_dir))
        if app.main is not None:
            app.main.action_show_panel("overview")

    def action_compare(self) -> None:
        """The highlighted run's loss on the Training panel, over the run shown (its overlay)."""
        from r1tui.dashboard.widgets.training import TrainingPanel

        row = self._selected()
        if row is None:
            return
        app = self.dashboard
        watched = app.run_ref.run_id if app.run_ref is not None else None
        if watched is None or row.run_id == watched:
            self.notify("open a run first (enter), then compare another one with it" if watched is None
                        else f"{row.run_id} is the run shown; pick another run to compare with it",
                        severity="warning")
            return
        self.app.pop_screen()
        if app.main is not None:
            app.main.action_show_panel("training")
            app.main.query_one(TrainingPanel)._read_overlay(str(row.run_dir), watched)

    def action_act(self, name: str) -> None:
        """Resume or cancel the highlighted run: the Overview's plans and guards, for this run."""
        row = self._selected()
        if row is None:
            return
        app = self.dashboard
        if app.run_ref is not None and app.run_ref.run_dir.resolve() == row.run_dir.resolve():
            app.request_action(name)  # the run shown: its live state, as the Overview's keys see it
            return
        status = row.status
        point = resume_point(row.run_dir, status.stage_status.get("train", ""), "train" in status.stages) \
            if name == "resume" else ""
        plan = plan_action(name, run_dir=row.run_dir, config_path=None, run_status=status.status,
                           python=app.python, runs_dir=app.runs_dir, show_path=app.show_path, resume_point=point)
        if name == "resume":
            plan = guard_live(plan, [(layout.run_id, who) for layout, who in live_runs(app.runs_dir)
                                     if layout.root.resolve() != row.run_dir.resolve()])
        app.offer_plan(plan)

    def action_delete(self) -> None:
        row = self._selected()
        if row is None:
            return
        alive, who = writer_alive(RunLayout(row.run_dir))
        if alive or row.status.status == "running":
            self.notify(f"run {row.run_id} is live ({who or 'running'}); cancel it first (x), then delete it",
                        severity="error", timeout=10)
            return
        try:
            summary = delete_summary(row.run_dir)
        except OSError as exc:
            self.notify(f"{row.run_dir}: {exc.strerror or exc}", severity="error")
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self._delete(row)

        self.app.push_screen(DeleteRunScreen(row.run_id, summary), answered)

    def _delete(self, row: RunRow) -> None:
        from r1tui.errors import R1Error

        app = self.dashboard
        try:
            delete_run(row.run_dir)  # checks again: a writer may have taken the run meanwhile
        except (R1Error, OSError) as exc:
            self.notify(f"not deleted: {exc}", severity="error", timeout=10)
            self.action_reload()
            return
        if app.run_ref is not None and app.run_ref.run_id == row.run_id:
            app.switch_run(None)  # the run shown is gone
        self.notify(f"deleted run {row.run_id} ({format_bytes(row.size_bytes)})", timeout=6)
        self.rows = [r for r in (self.rows or []) if r.run_id != row.run_id]
        self._fill()


class DeleteRunScreen(ConfirmScreen):
    """What deleting a run removes; y deletes, n / Esc keeps it."""

    DEFAULT_CSS = """
    #delete-dialog { max-width: 90; border: thick $error; }
    #delete-body { max-height: 16; }
    """
    PREFIX = "delete"
    BUTTON_IDS = ("delete", "keep")

    def __init__(self, run_id: str, summary: list[str]) -> None:
        super().__init__(Text(f"Delete run {run_id}? This cannot be undone.", style="bold"),
                         "Delete the run", "Keep it", body=Text("\n".join(summary)), keys=("delete it", "keep it"),
                         variant="error")
        self.run_id = run_id
        self.summary = summary

"""Logs: the whole log of the run, scrollable, filtered by stage, level and text, following live.

What it shows is what ``r1tui logs`` prints: every event of events.jsonl through
``r1tui.runs.logs.format_event`` (the one formatter), heartbeats and progress ticks at the
``debug`` level (``r1tui logs --all``). ``f`` switches to the pipeline process's own output
(pipeline.log: tracebacks, library warnings). Unlike the Overview panel, which keeps the
reducer's last ``LOG_LINES``, this panel reads the files themselves, from the start, in a
thread worker, a MiB per batch, and draws only the rows on screen (a line-API
``ScrollView``), so a log of 100k lines scrolls as fast as a short one.

Following works like ``less +F``: while the view is at the bottom, new lines scroll it;
scrolling up pauses; ``End`` or ``G`` resumes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from r1tui.dashboard.widgets.base import Panel
from r1tui.runs.logs import (
    LEVELS,
    EventLogSource,
    LogBook,
    LogEntry,
    LogFilter,
    TextLogSource,
    next_in,
)

if TYPE_CHECKING:
    from r1tui.runs.layout import RunLayout

POLL_S = 0.25  # how often a caught-up reader looks for more
SOURCES = ("events", "pipeline.log")
# as `r1tui logs` styles its lines (cli/logs.py STYLES), by level first
LEVEL_STYLES = {"error": "red", "warning": "yellow", "debug": "dim"}
KIND_STYLES = {"run_finished": "bold", "stage_finished": "bold", "gpu": "dim"}


class LogView(ScrollView, can_focus=True):
    """The shown lines of a LogBook; draws only the rows in view."""

    BINDINGS = [Binding("G", "follow", "follow", show=False)]

    DEFAULT_CSS = """
    LogView { height: 1fr; scrollbar-size-vertical: 1; }
    """

    class FollowChanged(Message):
        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.book = LogBook()
        self.following = True
        self._styles: dict[tuple[str, str], Style] = {}

    def show(self, book: LogBook) -> None:
        """Draw ``book`` (another source, or the same one after its filter changed)."""
        self.book = book
        self.grew()
        self.refresh()

    def grew(self) -> None:
        """The book's shown lines changed: resize, and stay at the bottom while following."""
        following = self.following
        self.virtual_size = Size(self.book.widest, len(self.book.shown))
        if following:
            self._to_end()
            self.call_after_refresh(self._to_end)  # once the new size is laid out
        self.refresh()

    def _to_end(self) -> None:
        if self.following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)

    def on_resize(self) -> None:
        self._to_end()  # drawn for the first time, or the terminal changed: stay at the bottom

    def watch_show_horizontal_scrollbar(self, shown: bool) -> None:
        self.call_after_refresh(self._to_end)  # a long line took a row for the scrollbar

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self.size:
            return  # hidden: not a move by the reader
        following = round(new_value) >= self.max_scroll_y
        if following != self.following:
            self.following = following
            self.post_message(self.FollowChanged(following))

    def action_follow(self) -> None:
        self.scroll_end(animate=False, immediate=True)

    # a jump across 100k lines is a jump, not a second of animation
    def action_scroll_home(self) -> None:
        self.scroll_home(animate=False, immediate=True)

    def action_scroll_end(self) -> None:
        self.action_follow()

    def _style(self, entry: LogEntry) -> Style:
        key = (entry.level, entry.kind)
        style = self._styles.get(key)
        if style is None:
            names = " ".join(filter(None, (LEVEL_STYLES.get(entry.level), KIND_STYLES.get(entry.kind))))
            style = self._styles[key] = Style.parse(names) if names else Style()
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if row >= len(self.book.shown):
            return Strip.blank(width, base)
        entry = self.book.line(row)
        return Strip([Segment(entry.text, base + self._style(entry))]).crop_extend(scroll_x, scroll_x + width, base)


class LogsPanel(Panel):
    PANEL_ID = "logs"
    TITLE = "Logs"

    BINDINGS = [
        Binding("t", "cycle_stage", "stage"),
        Binding("w", "cycle_level", "level"),
        Binding("slash", "edit_filter", "find"),
        Binding("f", "switch_source", "source"),  # events.jsonl or pipeline.log
        Binding("escape", "leave_filter", "leave find", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.books = {name: LogBook() for name in SOURCES}
        self.source = SOURCES[0]
        self.caught_up = False  # every source read to its end at least once
        self._generation = 0
        self._reading: RunLayout | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="logs-status")
        yield LogView(id="log-view")
        yield Input(placeholder="lines containing… (enter applies, empty enter clears, esc leaves)", id="logs-find")

    def on_mount(self) -> None:
        self.query_one("#logs-find", Input).display = False

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    @property
    def book(self) -> LogBook:
        return self.books[self.source]

    def on_show(self) -> None:
        super().on_show()
        if not self.query_one("#logs-find", Input).display:
            self.view.focus()

    # -- reading (thread worker) ---------------------------------------------
    def refresh_view(self) -> None:
        run = self.dashboard.run_ref
        if run is not None and self._reading != run.layout:
            self._start(run.layout)
        self._draw_status()

    def reset_for_run(self) -> None:
        """Another run: stop reading this one; the next refresh_view (when shown) reads the new one."""
        self.workers.cancel_group(self, "logs")
        self._generation += 1
        self._reading = None
        self.caught_up = False
        for book in self.books.values():
            book.clear()
        self.view.show(self.book)
        self._draw_status()

    def _start(self, layout: RunLayout) -> None:
        self._generation += 1
        self._reading = layout
        self.caught_up = False
        for book in self.books.values():
            book.clear()
        self.view.show(self.book)
        self.read_logs(layout, self._generation)

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def read_logs(self, layout: RunLayout, generation: int) -> None:
        """Read both logs from the start, a chunk per batch, then follow them."""
        worker = get_current_worker()
        sources = {"events": EventLogSource(layout.events), "pipeline.log": TextLogSource(layout.pipeline_log)}
        told_at_end = False
        while not worker.is_cancelled:
            batch = {name: entries for name, source in sources.items() if (entries := source.read())}
            at_end = all(source.at_end() for source in sources.values())
            if batch or (at_end and not told_at_end):
                told_at_end = at_end
                try:
                    # waits until the batch is drawn: the next read then batches whatever arrived meanwhile
                    self.app.call_from_thread(self._append, generation, batch, at_end)
                except RuntimeError:
                    return  # the app is closing
            if not batch:
                time.sleep(POLL_S)

    def _append(self, generation: int, batch: dict[str, list[LogEntry]], at_end: bool) -> None:
        if generation != self._generation:
            return  # read for a run no longer shown
        for name, entries in batch.items():
            self.books[name].add(entries)
            if name == self.source:
                self.view.grew()
        if batch or at_end != self.caught_up:
            self.caught_up = self.caught_up or at_end
            self._draw_status()

    # -- filters ---------------------------------------------------------------
    def _refilter(self, **change) -> None:
        book = self.book
        current = book.filter
        book.set_filter(LogFilter(**{"stage": current.stage, "min_level": current.min_level,
                                     "text": current.text, **change}))
        self.view.show(book)
        self._draw_status()

    def action_cycle_stage(self) -> None:
        self._refilter(stage=next_in([None, *self.book.stages], self.book.filter.stage))

    def action_cycle_level(self) -> None:
        self._refilter(min_level=next_in(list(LEVELS), self.book.filter.min_level))

    def action_switch_source(self) -> None:
        self.source = next_in(list(SOURCES), self.source)
        self.view.show(self.book)
        self._draw_status()

    def action_edit_filter(self) -> None:
        find = self.query_one("#logs-find", Input)
        find.value = self.book.filter.text
        find.display = True
        find.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_filter":
            return self.is_mounted and self.query_one("#logs-find", Input).display
        return True

    def action_leave_filter(self) -> None:
        self.query_one("#logs-find", Input).display = False
        self.view.focus()

    @on(Input.Submitted, "#logs-find")
    def _find(self, event: Input.Submitted) -> None:
        event.stop()
        self._refilter(text=event.value.strip())
        self.action_leave_filter()

    @on(LogView.FollowChanged)
    def _follow_changed(self, event: LogView.FollowChanged) -> None:
        self._draw_status()

    # -- drawing -----------------------------------------------------------------
    def _draw_status(self) -> None:
        book = self.book
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append(self.source, style="bold")
        status.append(f" {len(book.shown):,}/{len(book.entries):,} lines", style="")
        if self.source == "pipeline.log" or book.filter.stage is None:
            status.append(" · stage all" if self.source == "events" else "")
        else:
            status.append(" · stage ")
            status.append(book.filter.stage, style="bold cyan")
        status.append(f" · ≥ {book.filter.min_level}")
        if book.filter.text:
            status.append(" · “")
            status.append(book.filter.text, style="bold")
            status.append("”")
        errors = book.counts["error"]
        if errors:
            status.append(f" · {errors:,} error{'s' * (errors != 1)}", style="red")
        if not self.caught_up and self.dashboard.run_ref is not None:
            status.append(" · reading…", style="dim")
        elif self.view.following:
            status.append(" · following", style="green")
        else:
            status.append(" · paused: End or G follows", style="yellow")
        if self.dashboard.run_ref is None:
            status = Text("no run yet: the log appears when a run starts", style="dim")
        self.query_one("#logs-status", Static).update(status)

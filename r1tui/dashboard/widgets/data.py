"""Data & masking: statistics, the length histogram against the max length, and the
token preview (masked tokens dim, trained tokens highlighted, ids on demand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.prepared import PreparedData, length_histogram
from r1tui.dashboard.source import read_json
from r1tui.dashboard.widgets.base import Panel


def stats_renderable(stats: dict[str, Any]) -> Any:
    try:
        from r1tui.data.stats import stats_table
    except ImportError:
        stats_table = None
    if stats_table is not None:
        try:
            return stats_table(stats)
        except Exception:  # noqa: BLE001 - an older stats.json must still show something
            pass
    table = Table(title="Masking statistics", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in stats.items():
        if isinstance(value, (int, float, str, bool)):
            table.add_row(key.replace("_", " "), f"{value:,.4g}" if isinstance(value, float) else f"{value}")
    return table


def histogram_renderable(lengths: list[int], max_length: int, width: int = 16) -> Text:
    rows = length_histogram(lengths, max_length)
    text = Text()
    text.append(f"token lengths (max length {max_length:,})\n", style="bold")
    peak = max((c for *_, c in rows), default=0) or 1
    for low, high, count in rows:
        over = low > max_length
        label = f"{low:>5}–{high:<5}"
        text.append(label, style="red" if over else "")
        text.append(" ")
        text.append("█" * max(1 if count else 0, round(count / peak * width)), style="red" if over else "cyan")
        text.append(f" {count}{'  over max' if over else ''}\n", style="red" if over else "dim")
    return text


def fallback_preview(input_ids: list[int], labels: list[int], show_ids: bool) -> Text:
    """Ids only (when r1tui.data.preview is not there): trained bold, masked dim."""
    text = Text()
    for token_id, label in zip(input_ids, labels, strict=False):
        text.append(f"{token_id} ", style="dim" if label == -100 else "bold green")
    return text


class DataPanel(Panel):
    PANEL_ID = "data"
    TITLE = "Data"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = 0
        self.show_ids = False
        self.prepared: PreparedData | None = None
        self.lengths: list[int] = []
        self._loaded_for: Path | None | bool = False

    def compose(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="data-stats"):
                yield Static(id="data-stats-body")
            with VerticalScroll(id="data-preview"):
                yield Static(id="data-preview-title")
                yield Static(id="data-preview-body")

    @property
    def data_dir(self) -> Path | None:
        run = self.dashboard.run_ref
        return run.run_dir / "data" if run is not None else None

    def refresh_view(self) -> None:
        if self._loaded_for != self.data_dir or (self.prepared is None and self.dashboard.state.stages["prepare"].status == "finished"
                                                  and self._loaded_for is not None):
            self._loaded_for = self.data_dir
            self.query_one("#data-preview-title", Static).update(Text("loading examples…", style="dim"))
            self.load_data(self.data_dir)
        self._show_stats()

    def _max_length(self) -> int:
        config = self.dashboard.config
        return config.model.max_seq_length if config is not None else 0

    def _show_stats(self) -> None:
        parts: list[Any] = []
        stats = read_json(self.data_dir / "stats.json") if self.data_dir is not None else None
        if stats is None:
            stats = self.dashboard.masking_stats
        if isinstance(stats, dict):
            parts.append(stats_renderable(stats))
        elif self.data_dir is None:
            parts.append(Text("no run yet: masking statistics appear in Config once computed", style="dim"))
        else:
            parts.append(Text("no data/stats.json yet (the prepare stage writes it)", style="dim"))
        if self.lengths:
            parts.append(histogram_renderable(self.lengths, self._max_length()))
        self.query_one("#data-stats-body", Static).update(Group(*parts))

    @work(thread=True, exclusive=True, group="data-load", exit_on_error=False)
    def load_data(self, data_dir: Path | None) -> None:
        prepared = PreparedData.open(data_dir) if data_dir is not None and data_dir.is_dir() else None
        lengths = prepared.lengths() if prepared is not None else []
        self.app.call_from_thread(self._loaded, prepared, lengths)

    def _loaded(self, prepared: PreparedData | None, lengths: list[int]) -> None:
        self.prepared, self.lengths = prepared, lengths
        self.index = min(self.index, max(0, len(lengths) - 1))
        self._show_stats()
        self.show_example()

    def page(self, delta: int) -> None:
        if self.prepared is None or not len(self.prepared):
            return
        self.index = (self.index + delta) % len(self.prepared)
        self.show_example()

    def toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        self.show_example()

    def show_example(self) -> None:
        title = self.query_one("#data-preview-title", Static)
        if self.prepared is None or not len(self.prepared):
            message = "no prepared examples yet" if self.data_dir is not None else "no run yet: no prepared examples"
            title.update(Text(message, style="dim"))
            self.query_one("#data-preview-body", Static).update("")
            return
        input_ids, labels = self.prepared.example(self.index)
        trained = sum(1 for label in labels if label != -100)
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"example {self.index + 1}/{len(self.prepared)}", style="bold")
        head.append(f" · {len(input_ids)} tokens · {trained} trained ({trained / max(1, len(input_ids)):.0%})")
        head.append(" · ids on" if self.show_ids else "", style="cyan")
        title.update(head)
        self.render_preview(input_ids, labels, self.show_ids)

    @work(thread=True, exclusive=True, group="data-preview", exit_on_error=False)
    def render_preview(self, input_ids: list[int], labels: list[int], show_ids: bool) -> None:
        config = self.dashboard.config
        spec = config.model.tokenizer if config is not None else "v3"
        try:
            from r1tui.data.preview import token_preview
        except ImportError:
            renderable: Any = fallback_preview(input_ids, labels, show_ids)
        else:
            renderable = token_preview(input_ids, labels, spec, show_ids=show_ids)
        self.app.call_from_thread(self._set_preview, renderable)

    def _set_preview(self, renderable: Any) -> None:
        self.query_one("#data-preview-body", Static).update(renderable)

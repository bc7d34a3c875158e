"""Data & masking: statistics, the length histogram against the max length, and the
token preview (masked tokens dim, trained tokens highlighted, ids on demand).

Examples come from the run's prepared dataset (``RunLayout.data``); before there is
one (no run yet, or prepare has not finished) they are rendered in memory from the
config, exactly as prepare would, and labelled as a preview.
"""

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

from r1tui.config import Config
from r1tui.dashboard.prepared import (
    PreparedData,
    PreviewRows,
    length_histogram,
    preview_from_config,
)
from r1tui.dashboard.widgets.base import Panel
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.runs.files import read_json

HISTOGRAM_WIDTH = 14


def stats_renderable(stats: dict[str, Any]) -> Any:
    try:
        from r1tui.data.stats import stats_table

        return stats_table(stats)
    except Exception:  # noqa: BLE001 - an older or foreign stats.json must still show something
        pass
    table = Table(title="Masking statistics", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in stats.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            table.add_row(key.replace("_", " "), f"{value:,.4g}" if isinstance(value, float) else f"{value}")
    return table


def histogram_rows(stats: dict[str, Any] | None, lengths: list[int], max_length: int) -> list[tuple[int, int, int]]:
    """(low, high, count) bins up to max_length, and a last bin for the longer ones.

    The prepare stage's own histogram (stats.json) counts every rendered example,
    including those dropped for being too long; the dataset alone cannot show those.
    """
    histogram = (stats or {}).get("length_histogram")
    if isinstance(histogram, dict) and histogram.get("edges") and histogram.get("counts") is not None:
        edges, counts = histogram["edges"], histogram["counts"]
        rows = [(edges[i] + 1, edges[i + 1], int(c)) for i, c in enumerate(counts)]
        over = int(histogram.get("over_max") or 0)
        if over:
            rows.append((edges[-1] + 1, int((stats or {}).get("longest") or edges[-1] + 1), over))
        return rows
    return length_histogram(lengths, max_length)


def histogram_renderable(rows: list[tuple[int, int, int]], max_length: int) -> Text:
    text = Text()
    text.append(f"token lengths vs max length {max_length:,}\n", style="bold")
    peak = max((c for *_, c in rows), default=0) or 1
    for low, high, count in rows:
        over = low > max_length
        style = "red" if over else "cyan"
        text.append(f"{low:>5}–{high:<5} ", style="red" if over else "")
        text.append("█" * (round(count / peak * HISTOGRAM_WIDTH) or (1 if count else 0)), style=style)
        text.append(f" {count:,}{' over' if over else ''}\n", style="red" if over else "dim")
    return text


class DataPanel(Panel):
    PANEL_ID = "data"
    TITLE = "Data"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = 0
        self.show_ids = False
        self.examples: PreparedData | PreviewRows | None = None
        self.lengths: list[int] = []
        self._loaded_key: object = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="data-stats"):
                yield Static(id="data-stats-body")
            with VerticalScroll(id="data-preview"):
                yield Static(id="data-preview-title")
                yield Static(id="data-preview-body")

    def reset_for_run(self) -> None:
        self._loaded_key = None
        self.examples = None
        self.lengths = []
        self.index = 0

    @property
    def data_dir(self) -> Path | None:
        run = self.dashboard.run_ref
        return run.layout.data if run is not None else None

    def _source_key(self) -> object:
        data_dir = self.data_dir
        prepared = data_dir is not None and (data_dir / "dataset_info.json").is_file()
        return (data_dir, prepared, id(self.dashboard.config))

    def refresh_view(self) -> None:
        key = self._source_key()
        if key != self._loaded_key:
            self._loaded_key = key
            self.query_one("#data-preview-title", Static).update(Text("loading examples…", style="dim"))
            self.load_examples(self.data_dir if key[1] else None, self.dashboard.config)
        self._show_stats()

    def _max_length(self) -> int:
        config = self.dashboard.config
        return config.model.max_seq_length if config is not None else 0

    def _stats(self) -> dict[str, Any] | None:
        run = self.dashboard.run_ref
        stats = read_json(run.layout.data_stats) if run is not None else None
        return stats if isinstance(stats, dict) else self.dashboard.masking_stats

    def _show_stats(self) -> None:
        parts: list[Any] = []
        stats = self._stats()
        if isinstance(stats, dict) and "error" in stats:
            parts.append(Text(f"masking statistics: {stats['error']}", style="red"))
            stats = None
        rows = histogram_rows(stats, self.lengths, self._max_length())
        if rows:
            parts.append(histogram_renderable(rows, self._max_length()))
        if isinstance(stats, dict):
            if stats.get("dry_run"):
                parts.append(Text("dry-run estimate from the config (no prepared data yet)", style="italic dim"))
            parts.append(stats_renderable(stats))
        elif not parts:
            parts.append(Text("masking statistics: computing…" if self.dashboard.config is not None
                              else "no config: no statistics", style="dim"))
        self.query_one("#data-stats-body", Static).update(Group(*parts))

    @work(thread=True, exclusive=True, group="data-load", exit_on_error=False)
    def load_examples(self, data_dir: Path | None, config: Config | None) -> None:
        examples: PreparedData | PreviewRows | None = None
        note = ""
        try:
            if data_dir is not None:
                examples = PreparedData.open(data_dir)
            if examples is None and config is not None:
                examples = preview_from_config(config)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a crash
            note = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        lengths = examples.lengths() if examples is not None else []
        self.app.call_from_thread(self._loaded, examples, lengths, note)

    def _loaded(self, examples: PreparedData | PreviewRows | None, lengths: list[int], note: str) -> None:
        self.examples, self.lengths = examples, lengths
        self.index = min(self.index, max(0, len(lengths) - 1))
        self._show_stats()
        self.show_example(note)

    def page(self, delta: int) -> None:
        if self.examples is None or not len(self.examples):
            return
        self.index = (self.index + delta) % len(self.examples)
        self.show_example()

    def toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        self.show_example()

    def show_example(self, note: str = "") -> None:
        title = self.query_one("#data-preview-title", Static)
        if self.examples is None or not len(self.examples):
            title.update(Text(f"no examples: {note}" if note else "no examples", style="dim"))
            self.query_one("#data-preview-body", Static).update("")
            return
        input_ids, labels = self.examples.example(self.index)
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"example {self.index + 1}/{len(self.examples)}", style="bold")
        if isinstance(self.examples, PreviewRows):
            head.append(" · preview from config", style="italic dim")
        head.append(" · ids shown" if self.show_ids else " · n/b page · i ids", style="dim")
        title.update(head)
        self.render_preview(input_ids, labels, self.show_ids)

    @work(thread=True, exclusive=True, group="data-preview", exit_on_error=False)
    def render_preview(self, input_ids: list[int], labels: list[int], show_ids: bool) -> None:
        config = self.dashboard.config
        spec = tokenizer_spec(config) if config is not None else "v3"
        from r1tui.data.preview import token_preview

        try:
            renderable: Any = token_preview(input_ids, labels, spec, show_ids=show_ids)
        except Exception as exc:  # noqa: BLE001 - a bad example is shown as an error line
            renderable = Text(f"cannot preview this example: {exc}", style="red")
        self.app.call_from_thread(self._set_preview, renderable)

    def _set_preview(self, renderable: Any) -> None:
        self.query_one("#data-preview-body", Static).update(renderable)

"""Reading a run's prepared dataset (``RunLayout.data``) without ``datasets`` or torch.

``datasets.save_to_disk`` writes Arrow IPC stream files (``data-*.arrow``); pyarrow
memory-maps them, so paging through examples costs what one example costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.data.tokenizer import tokenizer_spec


@dataclass
class PreparedData:
    table: Any  # pyarrow.Table
    folder: Path

    @classmethod
    def open(cls, folder: Path) -> PreparedData | None:
        files = sorted(p for p in folder.rglob("*.arrow") if not p.name.startswith("cache-"))
        if not files:
            return None
        import pyarrow as pa

        tables = []
        for path in files:
            with pa.memory_map(str(path)) as source:
                try:
                    tables.append(pa.ipc.open_stream(source).read_all())
                except pa.ArrowInvalid:
                    tables.append(pa.ipc.open_file(source).read_all())
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if "input_ids" not in table.column_names:
            return None
        return cls(table, folder)

    def __len__(self) -> int:
        return self.table.num_rows

    def lengths(self) -> list[int]:
        import pyarrow.compute as pc

        return pc.list_value_length(self.table.column("input_ids")).to_pylist()

    def example(self, index: int) -> tuple[list[int], list[int]]:
        row = self.table.slice(index, 1)
        input_ids = row.column("input_ids")[0].as_py()
        if "labels" in self.table.column_names:
            labels = row.column("labels")[0].as_py()
        else:
            labels = list(input_ids)
        return input_ids, labels


@dataclass
class PreviewRows:
    """Examples rendered in memory from the config (the dry-run view: nothing prepared yet)."""

    rows: list[tuple[list[int], list[int]]]

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[int]:
        return [len(ids) for ids, _ in self.rows]

    def example(self, index: int) -> tuple[list[int], list[int]]:
        return self.rows[index]


def preview_from_config(config: Config, rows: int = 32) -> PreviewRows:
    """Render the first ``rows`` examples of the configured data, as the prepare stage
    would (same renderer, same masking, same length policy); writes nothing. A Hub
    source is not downloaded: the offline synthetic set stands in, as in the dry run."""
    from r1tui.data.prepare import render_examples
    from r1tui.data.render import load_renderer
    from r1tui.data.sources import load_examples, parse_source

    data = config.data
    kind, _, _ = parse_source(data.source)
    source = "synthetic" if kind == "hf" else data.source
    loaded = load_examples(source, split=data.split, fields=data.fields, num_examples=min(rows, data.num_examples),
                           seed=data.seed)
    columns, _ = render_examples(loaded, load_renderer(tokenizer_spec(config)), config)
    return PreviewRows(list(zip(columns["input_ids"], columns["labels"], strict=True)))


def length_histogram(lengths: list[int], max_length: int, bins: int = 8) -> list[tuple[int, int, int]]:
    """(low, high, count) bins from 0 to ``max_length``; longer ones land in a last bin."""
    if max_length <= 0:
        return []
    width = max(1, -(-max_length // bins))
    counts = [0] * bins
    over = 0
    for n in lengths:
        if n > max_length:
            over += 1
        else:
            counts[min(bins - 1, (max(n, 1) - 1) // width)] += 1
    rows = [(i * width + 1, min(max_length, (i + 1) * width), c) for i, c in enumerate(counts)]
    if over:
        rows.append((max_length + 1, max(lengths), over))
    return rows

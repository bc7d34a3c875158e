"""Masking statistics: what the prepared data holds and what the loss will see.

``MaskingStats`` accumulates while rows are rendered; ``to_dict`` is the JSON written
to ``data/stats.json`` and shown by ``r1tui prepare --json`` and the dry run;
``stats_table`` draws it for the CLI and the dashboard. The dry run calls
``r1tui.data.prepare.dry_run_masking_stats(config)``, which renders at most ``DRY_RUN_ROWS`` rows with the
raw SentencePiece model (no mistral-common import) to stay well under a second.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table


STATS_VERSION = 1
HISTOGRAM_BINS = 8
DRY_RUN_ROWS = 256


@dataclass
class MaskingStats:
    max_length: int
    source: str = ""
    tokenizer: str = ""
    train_on: str = "all"
    mask_think: bool = False
    overlong: str = "drop"
    rows_read: int = 0
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    longest: int = 0
    domains: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    # lengths before the length policy, binned against max_length; last bin: over max_length
    histogram: list[int] = field(default_factory=lambda: [0] * (HISTOGRAM_BINS + 1))

    def observe_length(self, length: int) -> None:
        if length > self.max_length:
            self.histogram[-1] += 1
        else:
            self.histogram[min(HISTOGRAM_BINS - 1, max(0, (length - 1) * HISTOGRAM_BINS // self.max_length))] += 1

    def add(self, length: int, trained: int, domain: str) -> None:
        self.examples += 1
        self.tokens += length
        self.trained_tokens += trained
        self.longest = max(self.longest, length)
        self.domains[domain] += 1

    def to_dict(self) -> dict[str, Any]:
        masked = self.tokens - self.trained_tokens
        # bin i holds lengths in (edges[i], edges[i + 1]]: the exact integer rule of observe_length
        edges = [-(-self.max_length * i // HISTOGRAM_BINS) for i in range(HISTOGRAM_BINS + 1)]
        return {
            "version": STATS_VERSION,
            "source": self.source,
            "tokenizer": self.tokenizer,
            "max_length": self.max_length,
            "train_on": self.train_on,
            "mask_think": self.mask_think,
            "overlong": self.overlong,
            "rows_read": self.rows_read,
            "examples": self.examples,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "masked_tokens": masked,
            "masked_fraction": masked / self.tokens if self.tokens else 0.0,
            "mean_length": self.tokens / self.examples if self.examples else 0.0,
            "longest": self.longest,
            "domains": dict(sorted(self.domains.items())),
            "length_histogram": {"edges": edges, "counts": self.histogram[:-1], "over_max": self.histogram[-1]},
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            "truncated": dict(sorted(self.truncated.items())),
            "truncated_total": sum(self.truncated.values()),
        }


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


_SPARK = " ▁▂▃▄▅▆▇█"


def _sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if not top:
        return ""
    return "".join(_SPARK[0 if not c else max(1, round(c / top * (len(_SPARK) - 1)))] for c in counts)


def stats_table(stats: dict[str, Any]) -> Table:
    """The stats as a two-column Rich table (CLI, dry run, dashboard)."""
    from rich.table import Table
    from rich.text import Text

    if stats.get("dry_run"):
        title = f"Masking (dry run: {stats['rows_used']:,} rows of {stats['source']}, tokenizer {stats['tokenizer']})"
    else:
        title = f"Masking ({stats['source']}, tokenizer {stats['tokenizer']})"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("examples", f"{stats['examples']:,} kept of {stats['rows_read']:,} rows read")
    table.add_row("tokens", f"{stats['tokens']:,} (mean {stats['mean_length']:,.0f}, longest {stats['longest']:,} "
                            f"of max {stats['max_length']:,})")
    table.add_row("trained tokens", f"{stats['trained_tokens']:,} ({_share(stats['trained_tokens'], stats['tokens'])})")
    table.add_row("masked fraction", f"{stats['masked_fraction']:.1%}")
    options = f"train_on={stats['train_on']}, mask_think={'yes' if stats['mask_think'] else 'no'}, overlong={stats['overlong']}"
    table.add_row("options", options)
    if stats["domains"]:
        table.add_row("domains", ", ".join(f"{name} {count:,}" for name, count in stats["domains"].items()))
    histogram = stats["length_histogram"]
    edges = histogram["edges"]
    line = Text(_sparkline(histogram["counts"] + [histogram["over_max"]]), style="cyan")
    line.append(f"  {len(edges) - 1} bins of {edges[1]:,} tokens up to {edges[-1]:,}; {histogram['over_max']:,} over",
                style="dim")
    table.add_row("lengths", line)
    for label, key in (("dropped", "dropped"), ("truncated", "truncated")):
        reasons = stats[key]
        text = ", ".join(f"{reason} {count:,}" for reason, count in reasons.items()) if reasons else "none"
        table.add_row(label, Text(text, style="yellow" if reasons else "dim"))
    if stats.get("note"):
        table.add_row("note", Text(stats["note"], style="dim"))
    return table

"""The eval samples (Eval panel, enter): every sample of eval/results.json, filtered by domain
and by verdict, with the one under the cursor in full: question, reference, the response
with its think block folded (``t`` unfolds), the extracted answer and the verdict.

The verdict is the sample's ``outcome`` as ``r1tui.eval.protocol`` decided it when scoring
(correct, wrong, truncated, no answer); nothing is re-scored here. The filtering is plain
functions over the records (``matching``), testable without a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from r1tui.eval.protocol import CORRECT, NO_ANSWER, OUTCOMES, TRUNCATED, WRONG
from r1tui.response_format import split_response
from r1tui.runs.logs import next_in

# the verdict filter, in the order `w` cycles it: (name, label, outcomes it lets through)
VERDICTS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("all", "all", frozenset(OUTCOMES)),
    ("right", "right", frozenset({CORRECT})),
    ("not_right", "not right", frozenset(OUTCOMES) - {CORRECT}),
    (WRONG, "wrong answer", frozenset({WRONG})),
    (TRUNCATED, "truncated", frozenset({TRUNCATED})),
    (NO_ANSWER, "no answer", frozenset({NO_ANSWER})),
)
VERDICT_STYLES = {CORRECT: "bold green", WRONG: "bold red", TRUNCATED: "yellow", NO_ANSWER: "magenta"}


def verdict_of(sample: dict[str, Any]) -> str:
    """The sample's outcome; an older results file without one: correct or wrong by its flag."""
    outcome = sample.get("outcome")
    if outcome in OUTCOMES:
        return str(outcome)
    return CORRECT if sample.get("correct") else WRONG


def domains_of(samples: Sequence[dict[str, Any]]) -> list[str]:
    """The domains, in the order they first appear."""
    return list(dict.fromkeys(str(s.get("domain") or "?") for s in samples))


def matching(samples: Sequence[dict[str, Any]], domain: str | None, verdict: str) -> list[int]:
    """Indices of the samples of ``domain`` (None: all) whose verdict passes ``verdict``."""
    allowed = next(outcomes for name, _, outcomes in VERDICTS if name == verdict)
    return [index for index, sample in enumerate(samples)
            if (domain is None or str(sample.get("domain") or "?") == domain) and verdict_of(sample) in allowed]


def verdict_label(verdict: str) -> str:
    return next(label for name, label, _ in VERDICTS if name == verdict)


def sample_detail(sample: dict[str, Any], think_folded: bool) -> Group:
    """Question, reference, response (think folded or not), extracted answer and verdict."""
    response = str(sample.get("response") or "")
    parsed = split_response(response)
    verdict = verdict_of(sample)
    parts: list[Any] = []

    def field(name: str, value: Text | str, style: str = "") -> None:
        line = Text.assemble((f"{name} ", "bold"))
        line.append_text(value if isinstance(value, Text) else Text(value, style=style))
        parts.append(line)

    field("verdict", Text(verdict.replace("_", " "), style=VERDICT_STYLES.get(verdict, "")))
    details = [f"{sample.get('domain') or '?'}", f"finish {sample.get('finish_reason') or '?'}"]
    if sample.get("completion_tokens") is not None:
        details.append(f"{sample['completion_tokens']} tokens")
    if sample.get("check"):
        details.append(f"check {sample['check']}")
    parts.append(Text(" · ".join(details), style="dim"))
    field("question", str(sample.get("question") or ""))
    field("reference", str(sample.get("reference") or ""), "green")
    answer = sample.get("answer")
    field("answer", Text("(none extracted)", style="dim") if answer is None
          else Text(f"{answer}  ", style="bold").append(f"from {sample.get('answer_source') or '?'}", style="dim"))
    parts.append(Text("response", style="bold"))
    if parsed.think is None:
        parts.append(Text("  (no think block)", style="dim"))
    elif think_folded:
        words = len(parsed.think.split())
        closed = "" if parsed.think_closed else ", never closed"
        parts.append(Text(f"  ▶ think: {words:,} words{closed} (t unfolds)", style="dim italic"))
    else:
        parts.append(Text(f"  ▼ think (t folds)\n{parsed.think}", style="dim italic"))
    answer_part = parsed.answer_part.strip()
    parts.append(Text(answer_part) if answer_part else Text("  (nothing after the think block)", style="dim"))
    return Group(*parts)


class SamplesScreen(Screen[None]):
    """The samples of one results file; Esc or q goes back to the dashboard."""

    BINDINGS = [
        Binding("escape,q", "close", "back"),
        Binding("f", "cycle_domain", "domain"),
        Binding("w", "cycle_verdict", "right/wrong"),
        Binding("t", "toggle_think", "think"),
    ]

    def __init__(self, samples: Sequence[dict[str, Any]], title: str = "") -> None:
        super().__init__()
        self.samples = list(samples)
        self.title_text = title
        self.domain: str | None = None
        self.verdict = "all"
        self.think_folded = True
        self.shown: list[int] = list(range(len(self.samples)))

    def compose(self) -> ComposeResult:
        yield Static(id="samples-status")
        yield DataTable(id="samples-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="sample-detail"):
            yield Static(id="sample-body")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "domain", "verdict", "answer", "question")
        self._fill()
        table.focus()

    # -- filters -----------------------------------------------------------------
    def _fill(self) -> None:
        self.shown = matching(self.samples, self.domain, self.verdict)
        table = self.query_one(DataTable)
        table.clear()
        for index in self.shown:
            sample = self.samples[index]
            verdict = verdict_of(sample)
            answer = sample.get("answer")
            table.add_row(str(index + 1), str(sample.get("domain") or "?"),
                          Text(verdict.replace("_", " "), style=VERDICT_STYLES.get(verdict, "")),
                          Text("—", style="dim") if answer is None else _short(str(answer), 16),
                          _short(str(sample.get("question") or ""), 60), key=str(index))
        self._draw_status()
        self._draw_detail()

    def action_cycle_domain(self) -> None:
        self.domain = next_in([None, *domains_of(self.samples)], self.domain)
        self._fill()

    def action_cycle_verdict(self) -> None:
        self.verdict = next_in([name for name, _, _ in VERDICTS], self.verdict)
        self._fill()

    def action_toggle_think(self) -> None:
        self.think_folded = not self.think_folded
        self._draw_status()
        self._draw_detail()

    def action_close(self) -> None:
        self.dismiss(None)

    # -- drawing -----------------------------------------------------------------
    @property
    def current(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.samples[self.shown[table.cursor_row]]

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._draw_detail()

    def _draw_status(self) -> None:
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append("samples ", style="bold")
        status.append(f"{len(self.shown)}/{len(self.samples)}")
        status.append(f" · domain {self.domain or 'all'} · verdict {verdict_label(self.verdict)}")
        status.append(f" · think {'folded' if self.think_folded else 'shown'}")
        if self.title_text:
            status.append(f" · {self.title_text}", style="dim")
        self.query_one("#samples-status", Static).update(status)

    def _draw_detail(self) -> None:
        sample = self.current
        body = (sample_detail(sample, self.think_folded) if sample is not None
                else Text("no sample matches: f and w change the filters", style="dim"))
        self.query_one("#sample-body", Static).update(body)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

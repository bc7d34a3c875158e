"""Choose the rows that fit a budget, s1K-style: hard prompts first, domains balanced.

s1 (Muennighoff et al., 2025) kept 1,000 of 59k questions by quality, difficulty and
diversity; the same two last ideas, under a budget:

- **difficulty**: a lower teacher ``pass_rate`` is harder (rows from ``r1tui generate``
  carry it: the share of the teacher's samples for that prompt that were right); a row
  without one is ranked by its length (longer traces, harder problems: s1's own proxy),
  after the rows that have one. Between equals, a prompt's first trace goes before any
  prompt's second, then the longer, then the earlier row;
- **balance**: round-robin over the domains (in name order), each turn taking that
  domain's hardest remaining row that still fits;
- **budget**: the sum of the chosen rows' tokens never exceeds it. A row that does not fit
  what is left is skipped (it never will fit later); a shorter one behind it may.

Tokens are the row's ``tokens`` when it has them (``r1tui generate`` writes the user +
assistant tokens in the student's tokenizer), else counted with ``StudentLength`` (the
student's tokenizer and chat format). A row longer than ``model.max_seq_length`` is skipped
when ``data.overlong = "drop"`` (training would drop it) and counted at the maximum when
``"truncate"``.

A time budget becomes tokens through ``r1tui.calculator.training_tokens_per_second`` for
``hardware.gpu_name``: an ESTIMATE, scaled from an H100 measurement (see its docstring),
divided by ``train.epochs``.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from r1tui.calculator import ThroughputEstimate, training_tokens_per_second
from r1tui.data.render import RenderError
from r1tui.errors import R1Error
from r1tui.generate.rows import iter_source_rows
from r1tui.generate.verify import StudentLength

if TYPE_CHECKING:
    from r1tui.config import Config


@dataclass
class Candidate:
    index: int  # position in the source
    row: dict[str, Any]
    domain: str
    tokens: int
    pass_rate: float | None
    trace_rank: int = 0  # 0 for a prompt's first row, 1 for its second, …
    prompt: str = ""


@dataclass
class CurationReport:
    budget_tokens: int
    throughput: ThroughputEstimate | None  # set when the budget was given in hours
    budget_hours: float | None = None
    rows_read: int = 0
    selected: list[Candidate] = field(default_factory=list)  # in source order
    selected_tokens: int = 0
    available: dict[str, int] = field(default_factory=dict)  # domain -> usable rows
    chosen: dict[str, int] = field(default_factory=dict)  # domain -> rows selected
    chosen_tokens: dict[str, int] = field(default_factory=dict)  # domain -> tokens selected
    over_budget: int = 0  # usable rows that did not fit
    skipped: dict[str, int] = field(default_factory=dict)  # unusable rows, by reason
    difficulty: str = "length"  # what ranked the rows: pass_rate | length | pass_rate, then length

    def to_json(self) -> dict[str, Any]:
        return {
            "budget_tokens": self.budget_tokens,
            "budget_hours": self.budget_hours,
            "tokens_per_s": self.throughput.tokens_per_s if self.throughput else None,
            "throughput_basis": self.throughput.basis if self.throughput else None,
            "rows_read": self.rows_read,
            "selected": len(self.selected),
            "selected_tokens": self.selected_tokens,
            "difficulty": self.difficulty,
            "domains": {name: {"available": self.available[name], "selected": self.chosen.get(name, 0),
                               "tokens": self.chosen_tokens.get(name, 0)} for name in sorted(self.available)},
            "over_budget": self.over_budget,
            "skipped": self.skipped,
        }


def budget_for_hours(config: Config, hours: float) -> tuple[int, ThroughputEstimate]:
    """Tokens that ``hours`` of training on ``hardware.gpu_name`` hold, over ``train.epochs``."""
    if hours <= 0:
        raise R1Error(f"--budget-hours {hours:g}: must be more than 0")
    estimate = training_tokens_per_second(config.hardware.gpu_name, config.train.backend, config.model.architecture)
    if estimate.tokens_per_s is None:
        raise R1Error(f"cannot turn hours into tokens: {estimate.basis}; or give --budget-tokens")
    return int(hours * 3600 * estimate.tokens_per_s / config.train.epochs), estimate


def difficulty_key(candidate: Candidate) -> tuple:
    """Sort key: hardest first (see the module docstring)."""
    known = candidate.pass_rate is not None
    return (not known, candidate.pass_rate if known else 0.0, candidate.trace_rank, -candidate.tokens,
            candidate.index)


def curate(candidates: list[Candidate], budget_tokens: int) -> tuple[list[Candidate], int]:
    """(the rows chosen, in source order; how many did not fit). Deterministic."""
    if budget_tokens < 0:
        raise R1Error(f"token budget {budget_tokens}: must be 0 or more")
    queues: dict[str, deque[Candidate]] = {}
    for candidate in sorted(candidates, key=difficulty_key):
        queues.setdefault(candidate.domain, deque()).append(candidate)
    order = sorted(queues)
    left = budget_tokens
    chosen: list[Candidate] = []
    over = 0
    while any(queues[d] for d in order):
        for domain in order:
            queue = queues[domain]
            while queue:
                candidate = queue.popleft()
                if candidate.tokens <= left:
                    chosen.append(candidate)
                    left -= candidate.tokens
                    break
                over += 1  # the budget only shrinks: it will not fit later either
    return sorted(chosen, key=lambda c: c.index), over


def _pass_rate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def candidates_of(config: Config, source: str) -> tuple[list[Candidate], int, dict[str, int]]:
    """(usable rows, rows read, unusable rows by reason) of a data source."""
    length: StudentLength | None = None
    candidates: list[Candidate] = []
    skipped: Counter = Counter()
    seen_prompts: Counter = Counter()
    rows_read = 0
    limit = config.model.max_seq_length
    for item in iter_source_rows(config, source):
        rows_read += 1
        if item.row is None:
            skipped[item.malformed or "malformed"] += 1
            continue
        tokens = item.row.get("tokens")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
            if item.messages is None:
                skipped["no_conversation"] += 1
                continue
            length = length or StudentLength(config)
            try:
                tokens = length(item.messages)
            except RenderError as exc:  # a conversation training could not use either
                skipped[exc.reason] += 1
                continue
        if tokens > limit:
            if config.data.overlong == "drop":
                skipped["too_long"] += 1
                continue
            tokens = limit
        prompt = item.prompt or ""
        candidates.append(Candidate(item.index, item.row, item.domain, tokens, _pass_rate(item.row.get("pass_rate")),
                                    seen_prompts[prompt], prompt))
        seen_prompts[prompt] += 1
    return candidates, rows_read, dict(sorted(skipped.items()))


def curate_source(config: Config, source: str, *, budget_tokens: int | None = None,
                  budget_hours: float | None = None) -> CurationReport:
    """The subset of a data source that fits the budget (give exactly one of the two)."""
    if (budget_tokens is None) == (budget_hours is None):
        raise R1Error("give one budget: --budget-tokens N or --budget-hours H")
    estimate = None
    if budget_hours is not None:
        budget_tokens, estimate = budget_for_hours(config, budget_hours)
    assert budget_tokens is not None
    candidates, rows_read, skipped = candidates_of(config, source)
    chosen, over = curate(candidates, budget_tokens)
    report = CurationReport(budget_tokens, estimate, budget_hours, rows_read, chosen,
                            sum(c.tokens for c in chosen), over_budget=over, skipped=skipped)
    report.available = dict(Counter(c.domain for c in candidates))
    report.chosen = dict(Counter(c.domain for c in chosen))
    for candidate in chosen:
        report.chosen_tokens[candidate.domain] = report.chosen_tokens.get(candidate.domain, 0) + candidate.tokens
    rated = sum(c.pass_rate is not None for c in candidates)
    report.difficulty = ("length" if not rated else "pass_rate" if rated == len(candidates)
                         else "pass_rate, then length")
    return report

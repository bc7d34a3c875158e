"""Generate: the teacher at work while the generate stage asks it for reasoning traces.

Reads ``RunState.generation`` (the reducer folds the stage's ``generation`` events) and
the stage's own status: samples and prompts done, accepted and rejected by reason,
requests and tokens per second, retries, ETA, and the cost estimate when
``teacher.price_in_per_m`` / ``price_out_per_m`` are set. Nothing here is kept between
redraws: every figure is computed from the state and the config when drawn.

With dry run on it shows the plan of ``[teacher]`` first: ``r1tui.generate.run.plan_generation``,
the plan ``DRY_RUN=1 r1tui generate`` prints, from the config alone (``read_prompts=False``:
no prompt file, no tokenizer, no HTTP client loaded; nothing is sent); its time is the
requests left at the samples/s the run's generation events measured, else unknown. Then
the run's generation if it has one.

Exact counts (samples, tokens) have thousands separators and tokens per second are whole
tokens, as the other panels show them; other rates, prices and costs go through
``r1tui.present.format_number``, durations through ``format_duration``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.config import Config, TeacherConfig
from r1tui.dashboard.format import bar, status_text
from r1tui.dashboard.widgets.base import Panel
from r1tui.generate.run import GenerationPlan, cost_usd, plan_generation
from r1tui.present import finite, format_duration, format_number
from r1tui.runs.reducer import GenerationState, RunState

STAGE = "generate"
REASON_ROWS = 6  # rejection reasons listed; the rest are summed in one row (fits 80x24)
HOW_TO_START = "start one with `r1tui generate --out FILE`, or a run with a teacher configured"
NO_TEACHER = "no teacher configured (teacher.model is empty)"
NO_PRICE = "no price set (teacher.price_in_per_m / price_out_per_m)"
LABEL = 9  # width of the labels on the left ("samples  ", "requests ")


# -- figures derived from the state -------------------------------------------------
def tokens_in_per_s(gen: GenerationState) -> float | None:
    """Prompt tokens per second over the reducer's window (first to latest event).

    The reducer keeps the baseline of the completion tokens only; the prompt tokens are
    taken to move with them in the ratio seen so far (in/out × out per second).
    """
    out_rate = gen.tokens_out_per_s
    if out_rate is None or gen.tokens_out <= 0:
        return None
    return out_rate * gen.tokens_in / gen.tokens_out


def estimated_cost(gen: GenerationState, teacher: TeacherConfig | None) -> float | None:
    """The cost so far: the events' ``cost_usd``, else the tokens at the configured prices
    (``r1tui.generate.run.cost_usd``, the one formula); None when no price is set (a 0 from
    the events then means "not priced", not free)."""
    cost = finite(gen.cost_usd)
    priced = teacher is not None and cost_usd(teacher, 0, 0) is not None
    if priced:
        return cost if cost is not None else cost_usd(teacher, gen.tokens_in, gen.tokens_out)
    return cost if cost else None


def _count(value: Any) -> str:
    number = finite(value)
    return f"{int(number):,}" if number is not None else "—"


def _rate(value: float | None, unit: str) -> str:
    return f"{format_number(value)}{unit}" if value is not None else f"—{unit}"


def _tokens_rate(value: float | None) -> str:
    # whole tokens with separators, as the Training panel shows tok/s (format_number would
    # switch to 2.322e+04 past 9,999, the usual range of a teacher's output)
    return f"{value:,.0f} tok/s" if value is not None else "— tok/s"


def _price(per_m: float) -> str:
    return f"${format_number(per_m)}/M"


def _line(label: str = "") -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if label:
        text.append(f"{label:<{LABEL}}", style="bold")
    return text


def _progress(label: str, done: float | None, total: float | None, width: int, finished: bool) -> Text:
    fraction = done / total if done is not None and total else None
    text = _line(label)
    text.append_text(bar(fraction, max(10, min(30, width // 3)), "green" if finished else "yellow"))
    text.append(f" {_count(done)}/{_count(total)}", style="bold")
    if fraction is not None:
        text.append(f" {fraction:.0%}")
    return text


def teacher_lines(config: Config | None, config_error: str | None) -> Text:
    """The configured teacher: its model, then how it is asked (two lines, so 80 columns hold them)."""
    text = _line("teacher")
    if config is None:
        text.append(f"the config does not load: {config_error or 'no config'}", style="red")
        return text
    teacher = config.teacher
    if not teacher.model:
        text.append(NO_TEACHER, style="dim")
        return text
    endpoints = len(teacher.base_urls)
    text.append(teacher.model, style="bold")
    text.append(f"\n{'':<{LABEL}}{endpoints} endpoint{'s' if endpoints != 1 else ''} · {teacher.samples} samples/prompt"
                f" · max {teacher.max_tokens:,} tokens · concurrency {teacher.concurrency}", style="dim")
    return text


# -- the views -----------------------------------------------------------------------
def plan_view(plan: GenerationPlan) -> Group:
    title = Text("dry run: the plan from [teacher]; nothing is sent", style="bold yellow", no_wrap=True,
                 overflow="ellipsis")
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=False, expand=True)
    table.add_column("what", style="bold", no_wrap=True, width=LABEL + 2)
    table.add_column("value", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_row("prompts", f"up to {plan.prompts:,} (teacher.num_prompts)" if not plan.prompts_counted
                  else f"{plan.prompts:,} from {plan.source}")
    per = f"{plan.prompts:,} prompts × {plan.samples_per_prompt} samples"
    if plan.already_done:
        per = f"left after the {plan.already_done:,} samples done"
    table.add_row("requests", f"{plan.requests:,} ({per}; retries extra)")
    table.add_row("completion", f"≤ {plan.max_completion_tokens:,} tokens ({plan.requests:,} × max {plan.max_tokens:,})")
    table.add_row("endpoints", f"{len(plan.endpoints)}: " + ", ".join(plan.endpoints))
    table.add_row("concurrency", f"{plan.concurrency} requests at once")
    if plan.time_s is None:
        table.add_row("time", Text(plan.time_note, style="dim"))
    else:
        table.add_row("time", f"about {format_duration(plan.time_s)} ({plan.time_note})")
    cost = plan.cost_upper_usd
    if cost is None:
        table.add_row("cost", Text(NO_PRICE, style="dim"))
    elif plan.prompt_tokens is None:
        note = f" + prompt tokens at {_price(plan.price_in_per_m)}" if plan.price_in_per_m > 0 else ""
        table.add_row("cost", f"≤ ${format_number(cost)} for completions{note}")
    else:
        table.add_row("cost", f"≤ ${format_number(cost)}")
    return Group(title, table)  # the teacher lines below say when there is no teacher


def rejected_table(gen: GenerationState) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("rejected", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("of samples", justify="right", no_wrap=True)
    reasons = sorted(gen.rejected.items(), key=lambda item: (-item[1], item[0]))
    shown = reasons if len(reasons) <= REASON_ROWS else reasons[:REASON_ROWS - 1]
    done = gen.completed

    def share(count: float) -> str:
        return f"{count / done:.0%}" if done else "—"

    for reason, count in shown:
        table.add_row(reason, _count(count), share(count))
    rest = reasons[len(shown):]
    if rest:
        count = sum(n for _, n in rest)
        table.add_row(Text(f"{len(rest)} more reasons", style="dim"), _count(count), share(count))
    return table


def live_view(state: RunState, config: Config | None, width: int) -> Group:
    gen = state.generation
    stage = state.stage(STAGE)
    status = state.stage_status(STAGE)
    finished = status == "finished"
    head = _line()
    head.append(f"{STAGE} ", style="bold")
    head.append_text(status_text(status))
    if finished and stage.duration_s is not None:
        head.append(f" in {format_duration(stage.duration_s)}")
    elif gen.elapsed_s is not None:
        head.append(f" · {format_duration(gen.elapsed_s)} elapsed")
    if status == "running":
        head.append(f" · ETA {format_duration(gen.eta_s())}", style="bold")

    samples = _progress("samples", gen.completed, gen.total, width, finished)
    samples.append(f" · {_rate(gen.samples_per_s, '/s')}")
    prompts = _progress("prompts", gen.prompts_done, gen.prompts_total, width, finished)

    done = gen.completed
    rejected = sum(gen.rejected.values())
    verdicts = _line("accepted")
    verdicts.append(_count(gen.accepted), style="bold green")
    if done:
        verdicts.append(f" ({gen.accepted / done:.0%})")
    verdicts.append(" · rejected ")
    verdicts.append(_count(rejected), style="bold red" if rejected else "")
    if done:
        verdicts.append(f" ({rejected / done:.0%})")

    requests = _line("requests")
    requests.append(f"{_count(gen.requests)} · {_rate(gen.requests_per_s, '/s')} · retries {_count(gen.retries)}")

    tokens = _line("tokens")
    tokens.append(f"in {_count(gen.tokens_in)} ({_tokens_rate(tokens_in_per_s(gen))})"
                  f" · out {_count(gen.tokens_out)} ({_tokens_rate(gen.tokens_out_per_s)})")

    teacher = config.teacher if config is not None else None
    cost = _line("cost")
    amount = estimated_cost(gen, teacher)
    if amount is None:
        cost.append(NO_PRICE, style="dim")
    else:
        cost.append(f"≈ ${format_number(amount)}", style="bold")
        if teacher is not None and (teacher.price_in_per_m > 0 or teacher.price_out_per_m > 0):
            cost.append(f" at {_price(teacher.price_in_per_m)} in, {_price(teacher.price_out_per_m)} out", style="dim")

    parts: list[Any] = [head, samples, prompts, verdicts, requests, tokens, cost, Text()]
    if gen.rejected:
        parts.append(rejected_table(gen))
    else:
        parts.append(Text("no sample rejected", style="dim"))
    return Group(*parts)


def idle_view(state: RunState, has_run: bool) -> Group:
    """No generation in the log: the stage's status if it has one, and how to start one."""
    parts: list[Any] = []
    stage = state.stages.get(STAGE)
    if stage is not None and stage.status != "pending":
        head = _line()
        head.append(f"{STAGE} ", style="bold")
        head.append_text(status_text(state.stage_status(STAGE)))
        if stage.error:
            head.append(f" · {stage.error}", style="red")
        parts.append(head)
    parts.append(Text("no generation in this run" if has_run else "no run yet", style="dim"))
    parts.append(Text(HOW_TO_START, style="dim"))
    return Group(*parts)


def generate_view(state: RunState, config: Config | None, config_error: str | None, *, dry_run: bool,
                  has_run: bool, width: int = 80) -> Group:
    """Everything the panel shows, as one Rich renderable (no Textual: testable alone)."""
    parts: list[Any] = []
    if dry_run and config is not None:
        plan = plan_generation(config, read_prompts=False, measured=state.generation)
        parts += [plan_view(plan), Text()]
    if state.generation.seen:
        parts += [live_view(state, config, width), Text()]
    elif not dry_run or config is None:
        parts += [idle_view(state, has_run), Text()]
    parts.append(teacher_lines(config, config_error))
    return Group(*parts)


class GeneratePanel(Panel):
    PANEL_ID = "generate"
    TITLE = "Generate"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="generate-body")

    def refresh_view(self) -> None:
        app = self.dashboard
        view = generate_view(app.state, app.config, app.config_error, dry_run=app.dry_run,
                             has_run=app.run_ref is not None, width=self.size.width or 80)
        self.query_one("#generate-body", Static).update(view)

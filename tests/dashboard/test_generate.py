"""The Generate panel: the teacher's progress folded from a constructed generate log,
the dry-run plan from ``[teacher]``, and the digit keys of the panels."""

from __future__ import annotations

import io
import socket

import pytest
from rich.console import Console
from textual.widgets import TabbedContent

from r1tui.config import TeacherConfig, dump_toml
from r1tui.dashboard.screens.main import PANEL_IDS, PANEL_KEYS, PANELS, MainScreen
from r1tui.dashboard.widgets.generate import (
    HOW_TO_START,
    NO_PRICE,
    NO_TEACHER,
    estimated_cost,
    generate_view,
    rejected_table,
    tokens_in_per_s,
)
from r1tui.generate.run import TIME_UNKNOWN, cost_usd, plan_generation
from r1tui.present import format_duration, format_number
from r1tui.runs.events import Event
from r1tui.runs.reducer import GenerationState, RunState

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
KEY = PANEL_KEYS["generate"]


def rendered(renderable, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def figures(events: list[Event]) -> dict[str, str]:
    """What the panel must show, computed here from the generation events' own numbers."""
    generation = [e for e in events if e.type == "generation"]
    first, last = generation[0], generation[-1]
    data, span = last.data, last.ts - first.ts
    per_s = {key: (data[key] - first.data[key]) / span for key in ("completed", "requests", "tokens_in", "tokens_out")}
    rejected = sum(data["rejected"].values())
    return {
        "samples": f"{data['completed']:,}/{data['total']:,} {data['completed'] / data['total']:.0%}",
        "samples_per_s": f"{format_number(per_s['completed'])}/s",
        "prompts": f"{data['prompts_done']:,}/{data['prompts_total']:,}",
        "accepted": f"accepted {data['accepted']:,} ({data['accepted'] / data['completed']:.0%})",
        "rejected": f"rejected {rejected:,} ({rejected / data['completed']:.0%})",
        "requests": f"requests {data['requests']:,} · {format_number(per_s['requests'])}/s · retries {data['retries']:,}",
        # the ratio of prompt to completion tokens is the same in every event of this log,
        # so the panel's in-rate (in/out × out-rate) equals the plain difference quotient
        "tokens": f"in {data['tokens_in']:,} ({per_s['tokens_in']:,.0f} tok/s) · "
                  f"out {data['tokens_out']:,} ({per_s['tokens_out']:,.0f} tok/s)",
        "eta": f"ETA {format_duration((data['total'] - data['completed']) / per_s['completed'])}",
        "cost": f"≈ ${format_number(data['cost_usd'])}",
    }


# ---- the plan (pure) --------------------------------------------------------------------

def test_the_dry_run_plan_is_computed_from_the_teacher_config(generation_log):
    teacher = TeacherConfig(model="teacher-7b", base_url=["http://a:8000/v1", "http://b:8000/v1", "http://c:8000/v1"],
                            num_prompts=37, samples=3, max_tokens=1000, concurrency=8,
                            price_in_per_m=0.4, price_out_per_m=2.5)
    config = generation_log.teacher_config(**teacher.model_dump())
    plan = plan_generation(config, read_prompts=False)  # the panel's plan: the CLI's function, from the config alone
    assert plan.prompts == teacher.num_prompts and not plan.prompts_counted
    assert plan.requests == teacher.num_prompts * teacher.samples
    assert plan.max_completion_tokens == plan.requests * teacher.max_tokens
    assert plan.endpoints == teacher.base_urls and len(plan.endpoints) == 3
    assert plan.prompt_tokens is None  # the prompts are not read for the panel
    assert plan.cost_upper_usd == cost_usd(teacher, 0, plan.max_completion_tokens) == \
        pytest.approx(plan.max_completion_tokens * teacher.price_out_per_m / 1e6)
    assert plan.time_s is None and plan.time_note == TIME_UNKNOWN  # no speed measured: said, not guessed
    text = rendered(generate_view(RunState(), config, None, dry_run=True, has_run=False))
    assert f"{plan.requests:,} ({teacher.num_prompts} prompts × {teacher.samples} samples" in text
    assert f"≤ {plan.max_completion_tokens:,} tokens" in text
    assert f"≤ ${format_number(plan.cost_upper_usd)} for completions" in text
    assert "3: http://a:8000/v1, http://b:8000/v1" in text
    assert next(line for line in text.splitlines() if line.startswith("time")).split(None, 1)[1].strip() == TIME_UNKNOWN


def test_the_plan_time_comes_from_the_measured_speed(generation_log):
    """With a generation running, the plan's time is what is left at the samples/s its
    events measured: the reducer's own figure, the ETA the live view shows."""
    config = generation_log.teacher_config()
    state = fold(generation_log.events(5))
    gen = state.generation
    assert gen.samples_per_s
    plan = plan_generation(config, read_prompts=False, measured=gen)
    assert plan.requests == gen.total - gen.completed and plan.already_done == gen.completed
    assert plan.time_s == pytest.approx(gen.eta_s()) and plan.samples_per_s == gen.samples_per_s
    text = rendered(generate_view(state, config, None, dry_run=True, has_run=True))
    assert next(line for line in text.splitlines() if line.startswith("time")).split(None, 1)[1].startswith(f"about {format_duration(plan.time_s)} (at the ")


def test_the_plan_without_prices_or_teacher(generation_log):
    config = generation_log.teacher_config(model="")
    plan = plan_generation(config, read_prompts=False)
    assert plan.cost_upper_usd is None and plan.model == ""
    text = rendered(generate_view(RunState(), config, None, dry_run=True, has_run=False))
    assert NO_PRICE in text and NO_TEACHER in text


def test_the_panels_plan_loads_no_http_client_nor_heavy_library(generation_log, tmp_path):
    """The panel imports r1tui.generate.run for the plan: drawing it in a fresh interpreter
    loads neither openai nor datasets, torch or transformers (nor a tokenizer)."""
    import json
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "teacher.toml"
    path.write_text(dump_toml(generation_log.teacher_config()), encoding="utf-8")
    heavy = ("openai", "datasets", "torch", "transformers", "mistral_common", "httpx")
    code = textwrap.dedent(f"""
        import io, json, sys
        from rich.console import Console
        from r1tui.config import load_config
        from r1tui.dashboard.widgets.generate import generate_view
        from r1tui.runs.reducer import RunState
        view = generate_view(RunState(), load_config({str(path)!r}), None, dry_run=True, has_run=False)
        Console(file=io.StringIO(), width=80).print(view)
        print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# ---- figures derived in the panel ------------------------------------------------------------

def fold(events: list[Event]) -> RunState:
    state = RunState()
    state.apply_all(events)
    return state


def test_cost_from_events_else_from_prices_else_no_price(generation_log):
    gen = fold(generation_log.events(3)).generation
    priced = TeacherConfig(model="t", price_in_per_m=0.5, price_out_per_m=2.0)
    assert estimated_cost(gen, priced) == gen.cost_usd
    unreported = GenerationState(tokens_in=2_000_000, tokens_out=1_000_000, ts=1.0)
    assert estimated_cost(unreported, priced) == pytest.approx(2 * 0.5 + 1 * 2.0)
    # no price: a cost of 0 in the events means "not priced", and the panel says how to set one
    free = GenerationState(tokens_in=10, tokens_out=10, cost_usd=0.0, ts=1.0)
    assert estimated_cost(free, TeacherConfig(model="t")) is None
    state = fold([Event("generation", {"completed": 1, "total": 2, "accepted": 1, "cost_usd": 0.0}, "generate", 5.0)])
    assert NO_PRICE in rendered(generate_view(state, generation_log.teacher_config(model="t"), None, dry_run=False, has_run=True))


def test_tokens_in_per_s_follows_the_out_rate(generation_log):
    gen = fold(generation_log.events(4)).generation
    assert tokens_in_per_s(gen) == pytest.approx(gen.tokens_out_per_s * gen.tokens_in / gen.tokens_out)
    assert tokens_in_per_s(GenerationState()) is None  # one event or none: no rate yet


def test_many_rejection_reasons_are_summed_in_one_row():
    reasons = {f"reason_{i}": 10 * i for i in range(1, 9)}
    gen = GenerationState(completed=1000, rejected={k: float(v) for k, v in reasons.items()})
    text = rendered(rejected_table(gen))
    kept = sorted(reasons, key=reasons.get, reverse=True)[:5]
    for reason in kept:
        assert reason in text
    rest = sum(v for k, v in reasons.items() if k not in kept)
    line = next(line for line in text.splitlines() if "3 more reasons" in line)
    assert f"{rest:,}" in line and f"{rest / 1000:.0%}" in line


# ---- the panel under the Pilot -----------------------------------------------------------

async def test_live_generation_at_80x24(make_app, generation_run, generation_log, settle, screen_text, wait_for):
    """The numbers on screen are those of the events; everything that matters fits 80x24;
    the stage finishing turns the ETA into its duration."""
    run, events = generation_run(steps=5)
    app = make_app(run, clock=lambda: events[-1].ts + 1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.state.status == "running"
        await pilot.press(KEY)
        await wait_for(pilot, lambda: "samples" in screen_text(app), what="the generate panel")
        text = screen_text(app)
        assert "generate ▶ running" in text
        for name, figure in figures(events).items():
            assert figure in text, (name, figure)
        for reason, count in events[-1].data["rejected"].items():
            row = next(line for line in text.splitlines() if line.split()[:1] == [reason])
            assert f"{count:,}" in row and f"{count / events[-1].data['completed']:.0%}" in row
        assert generation_log.teacher["model"] in text and f"{len(generation_log.teacher['base_url'])} endpoints" in text
        assert "…" not in "\n".join(text.splitlines()[3:-1])  # nothing in the panel cut

        finish = generation_log.events(steps=5, finished=True)[len(events):]
        generation_log.write(run.layout.events, finish, mode="a")
        duration = finish[0].data["duration_s"]
        await wait_for(pilot, lambda: f"generate ✓ finished in {format_duration(duration)}" in screen_text(app),
                       what="the stage finished")
        assert "ETA" not in screen_text(app)


async def test_dry_run_shows_the_plan_and_sends_nothing(make_app, tmp_path, generation_log, settle, screen_text,
                                                        wait_for, monkeypatch):
    config = generation_log.teacher_config()
    path = tmp_path / "teacher.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    connects: list[object] = []
    real_connect = socket.socket.connect

    def recording_connect(self, address):
        connects.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    app = make_app(None, config_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.dry_run
        await pilot.press(KEY)
        plan = plan_generation(config, read_prompts=False)
        await wait_for(pilot, lambda: "the plan from [teacher]" in screen_text(app), what="the plan")
        text = screen_text(app)
        assert f"up to {plan.prompts:,}" in text and f"{plan.requests:,} (" in text
        assert f"≤ {plan.max_completion_tokens:,} tokens" in text
        assert f"≤ ${format_number(plan.cost_upper_usd)} for completions" in text
        assert TIME_UNKNOWN in text
        assert ", ".join(plan.endpoints) in text
        await pilot.press("d")  # dry run off: how to start one instead of the plan
        await wait_for(pilot, lambda: HOW_TO_START in screen_text(app), what="the plan gone")
        assert "the plan from [teacher]" not in screen_text(app)
    assert connects == []  # no request to the teacher, nor anywhere else


async def test_no_generation_says_how_to_start_one(make_app, recorded_run, settle, screen_text, wait_for):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY)
        await wait_for(pilot, lambda: HOW_TO_START in screen_text(app), what="the hint")
        text = screen_text(app)
        assert "no generation in this run" in text
        assert app.config.teacher.model == "" and NO_TEACHER in text


# ---- the panels' keys -------------------------------------------------------------------

def test_every_panel_has_a_key_and_attach_knows_it():
    from r1tui.cli.attach import PANELS as ATTACH_PANELS

    assert ATTACH_PANELS == PANEL_IDS
    # the first ten panels take the digits in keyboard order, the rest a letter each
    assert [PANEL_KEYS[panel.PANEL_ID] for panel in PANELS[:10]] == list("1234567890"[:len(PANELS)])
    assert PANEL_KEYS["logs"] == "l"
    assert len(set(PANEL_KEYS.values())) == len(PANELS)
    bindings = {b.key: b.action for b in MainScreen.BINDINGS if b.action.startswith("show_panel")}
    assert bindings == {PANEL_KEYS[p]: f"show_panel('{p}')" for p in PANEL_IDS}
    # the new panel took the free key: the panels people already know kept theirs
    assert [PANEL_KEYS[p] for p in ("overview", "config", "data", "training", "push", "generate")] == \
        ["1", "2", "3", "4", "9", "0"]


async def test_each_digit_shows_its_panel(make_app, recorded_run, settle):
    app = make_app(recorded_run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for panel_id in (*PANEL_IDS[1:], PANEL_IDS[0]):
            if panel_id == "repl":
                continue  # its input takes the keys (test_repl covers it)
            await pilot.press(PANEL_KEYS[panel_id])
            await pilot.pause(0.05)
            assert app.query_one(TabbedContent).active == panel_id

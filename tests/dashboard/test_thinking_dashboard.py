"""Thinking in the dashboard (issue 21): the REPL's think prefill (ctrl+g) and budget (ctrl+b)
drive real llama.cpp replies through the chat's ``thinking``; the Eval panel shows the
think-budget curve of a real `r1tui eval --think-budget` run.

The scripted tiny GGUF answers tests/tiny_gguf.py's SCRIPT; prefilled with "<think>\\n" it
says "FINAL ANSWER: 4" and stops inside the think block. The random one never stops, so a
cap is the only thing that closes its think block."""

from __future__ import annotations

import json
import shutil

import pytest
from rich.console import Console
from textual.widgets import Collapsible, Input

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.widgets.repl import ReplPanel, ThinkBudgetScreen, Turn, parse_budget
from r1tui.infer.thinking import CLOSING, OPENING, think_tokens_for
from r1tui.response_format import split_response

pytestmark = pytest.mark.anyio


async def ask(pilot, app, panel, question: str, wait_for) -> Turn:
    app.query_one("#prompt", Input).value = question
    await pilot.press("enter")
    await wait_for(pilot, lambda: panel.query(Turn) and not panel.generating, timeout=60, what="the reply")
    return panel.query(Turn).last()


async def test_ctrl_g_prefills_the_think_opening(make_app, exported_run, settle, wait_for, screen_text, script):
    from r1tui.dashboard.widgets.repl import thinking_from_config

    app = make_app(exported_run)
    # "auto", as `r1tui chat` resolves it: this run trained on replies that open with <think>,
    # so its GGUF is prefilled; a GGUF outside any run is not
    gguf = next(exported_run.layout.gguf_dir.glob("*Q4_K_M.gguf"))
    assert app.config.infer.prefill_think == "auto"
    assert thinking_from_config(app.config, gguf).prefill is True
    outside = shutil.copy(gguf, exported_run.layout.root.parent / "elsewhere-Q4_K_M.gguf")
    assert thinking_from_config(app.config, outside).prefill is False
    app.config.infer.prefill_think = False  # from here: off, then ctrl+g turns it on
    async with app.run_test(size=(110, 32)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: "thinking no prefill · no think cap" in screen_text(app), what="the status line")
        plain = await ask(pilot, app, panel, "What is 2+2?", wait_for)
        assert plain.raw == script and not panel._chat.last.think_prefilled
        prompt_tokens = panel._chat.last.prompt_tokens
        await pilot.press("ctrl+l")

        await pilot.press("ctrl+g")
        assert panel.thinking.prefill
        await wait_for(pilot, lambda: "thinking prefill <think> · no think cap" in screen_text(app),
                       what="the status line")
        prefilled = await ask(pilot, app, panel, "What is 2+2?", wait_for)
        stats = panel._chat.last
        # the prompt now ends with the opening's ids, and the reply is the prefill plus the chain's own words
        assert stats.think_prefilled and panel.last_thinking.prefill
        assert stats.prompt_tokens == prompt_tokens + len(think_tokens_for("v3").opening)
        assert prefilled.raw == OPENING + "FINAL ANSWER: 4"

        await pilot.press("ctrl+g")  # and off again: the scripted reply as before
        await pilot.press("ctrl+l")
        again = await ask(pilot, app, panel, "What is 2+2?", wait_for)
        assert again.raw == script and panel._chat.last.prompt_tokens == prompt_tokens


async def test_a_budget_of_n_cuts_the_think_block_and_the_fold_says_so(make_app, new_run, settle, wait_for,
                                                                       screen_text, random_gguf):
    app = make_app(new_run(results=False), gguf=random_gguf)
    async with app.run_test(size=(110, 32)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: panel.gguf == random_gguf, what="the GGUF")
        await pilot.press("ctrl+g")  # prefilled: the random model is inside its think block from the start

        # a bad value: one line at the form, nothing changes
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, ThinkBudgetScreen), what="the form")
        await pilot.press("home", "ctrl+k", *"lots", "enter")
        await pilot.pause(0.05)
        assert isinstance(app.screen, ThinkBudgetScreen)
        assert str(app.screen.query_one("#think-error").content) == \
            "think cap = 'lots': give a whole number of tokens (0: none)"
        await pilot.press("home", "ctrl+k", *"5", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ThinkBudgetScreen), what="the form to close")
        assert panel.thinking.max_think_tokens == 5 and panel.thinking.min_think_tokens == 0
        await wait_for(pilot, lambda: "prefill <think> · think ≤ 5 tokens" in screen_text(app), what="the status line")

        turn = await ask(pilot, app, panel, "Say something.", wait_for)
        stats = panel._chat.last
        assert panel.last_thinking.max_think_tokens == 5
        assert stats.think_capped and stats.think_tokens == 5
        assert "\n" + CLOSING in turn.raw and split_response(turn.raw).think_closed
        title = "thought for 5 tokens · cut by the budget"
        assert turn.query_one(Collapsible).title == title
        await wait_for(pilot, lambda: title in screen_text(app), what="the fold's label")


def test_budget_form_values_are_checked():
    assert parse_budget("256", "") == ((256, 0), "")
    assert parse_budget("0", "8") == ((0, 8), "")  # a minimum with no cap
    assert parse_budget("4", "9") == (None, "think minimum 9 is above the cap of 4; lower it or raise the cap")
    assert parse_budget("12", "-1")[1] == "think minimum = '-1': give a whole number of tokens (0: none)"


@pytest.mark.slow
async def test_eval_panel_shows_the_think_budget_curve(make_app, new_run, settle, wait_for, screen_text,
                                                       scripted_gguf, tmp_path):
    from r1tui.cli import main
    from r1tui.eval.report import think_budget_table

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"question": q, "answer": a, "domain": "math"}) + "\n"
                            for q, a in (("What is 2 + 2?", "4"), ("What is 3 + 5?", "8"))), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["eval", "--gguf", str(scripted_gguf), "--source", str(rows), "--prefill-think", "true",
                 "--think-budget", "64,4", "--out", str(out)]) == 0
    run = new_run(results=False)
    run.layout.eval_results.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "results.json", run.layout.eval_results)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    # the CLI's own rows, as report.py renders them
    console = Console(width=200, record=True)
    console.print(think_budget_table(results))
    expected = [line.strip() for line in console.export_text().splitlines() if line.strip().startswith(("4 ", "64 "))]
    assert len(expected) == 2

    app = make_app(run)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"])
        await wait_for(pilot, lambda: "accuracy and compliance against the thinking budget" in screen_text(app),
                       what="the curve's title")
        text = screen_text(app)
        header = next(line for line in text.splitlines() if "budget" in line and "pass@1 ± SE" in line)
        assert "format" in header and "think p50" in header and "capped" in header
        for line in expected:
            assert line in text, line
        # budget 4: the cap closed every block and the answer was right once; 64: never closed
        assert "50.0% ± 50.0" in expected[0] and expected[0].split("│")[5].strip() == "100%"

"""The REPL panel with real llama.cpp: a scripted tiny GGUF whose reply is known, and a
random one that never stops by itself (to stop it)."""

from __future__ import annotations

import shutil

import pytest
from textual.widgets import Collapsible, Input, OptionList

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.screens.modals import GgufPicker
from r1tui.dashboard.widgets.repl import ReplPanel, Turn
from r1tui.runs.layout import RunLayout

pytestmark = pytest.mark.anyio


async def ask(pilot, app, question: str) -> None:
    await pilot.press(KEY["repl"])
    await pilot.pause(0.05)
    app.query_one("#prompt", Input).value = question
    await pilot.press("enter")


async def test_one_turn_streams_think_apart_from_the_answer(make_app, exported_run, settle, wait_for,
                                                            screen_text, script):
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: "tiny-mistral-random-r1-Q4_K_M.gguf" in screen_text(app), what="the GGUF")
        assert app.focused is app.query_one("#prompt", Input)
        await ask(pilot, app, "What is 2+2?")
        await wait_for(pilot, lambda: not panel.generating and panel.query(Turn), timeout=60, what="the reply")
        turn = panel.query_one(Turn)
        think, answer = script.split("</think>")
        assert turn.think.replace("<think>", "").replace("</think>", "").strip() == think.replace("<think>", "")
        assert turn.answer.strip() == answer.strip()
        assert panel.messages == [{"role": "user", "content": "What is 2+2?"},
                                  {"role": "assistant", "content": turn.raw}]
        await wait_for(pilot, lambda: "tok/s" in screen_text(app), what="the speed")
        text = screen_text(app)
        assert "you What is 2+2?" in text
        assert "Two plus two makes four." in text and "FINAL ANSWER: 4" in text
        assert "thought for" in text and "eos" in text
        think_line = next(line for line in text.splitlines() if "Two plus two" in line)
        answer_line = next(line for line in text.splitlines() if "FINAL ANSWER" in line)
        assert text.splitlines().index(think_line) < text.splitlines().index(answer_line)

        await pilot.press("ctrl+t")  # fold the think block
        await wait_for(pilot, lambda: turn.query_one(Collapsible).collapsed, what="folded")
        await wait_for(pilot, lambda: "Two plus two" not in screen_text(app), what="think hidden")
        assert "FINAL ANSWER: 4" in screen_text(app)

        await pilot.press("ctrl+l")  # clear
        await wait_for(pilot, lambda: not panel.query(Turn), what="cleared")
        assert panel.messages == []


def long_replies(run) -> None:
    """The run's frozen config lets the random GGUF talk for 3,000 tokens (time to act mid-reply)."""
    from r1tui.config import dump_toml

    frozen = run.layout.frozen_config()
    frozen.eval.max_new_tokens = 3000
    frozen.eval.n_ctx = 4096
    run.layout.config.write_text(dump_toml(frozen))


async def first_tokens_of_a_long_reply(pilot, app, settle, wait_for) -> ReplPanel:
    """Ask the random model (which talks for 3,000 tokens) and wait for its first tokens."""
    await settle(pilot, app)
    panel = app.query_one(ReplPanel)
    await ask(pilot, app, "Say something.")
    await wait_for(pilot, lambda: panel.query(Turn) and panel.query_one(Turn).raw, timeout=60,
                   what="the first tokens")
    return panel


async def test_stop_a_generation_that_would_not_end(make_app, new_run, settle, wait_for, random_gguf):
    run = new_run(results=False)
    long_replies(run)
    app = make_app(run, gguf=random_gguf)
    async with app.run_test(size=(100, 30)) as pilot:
        panel = await first_tokens_of_a_long_reply(pilot, app, settle, wait_for)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not panel.generating, timeout=30, what="the stop")
        turn = panel.query_one(Turn)
        assert "stopped" in str(turn.query_one(".turn-note").content)
        assert panel._chat.last.completion_tokens < 3000


async def test_switch_gguf(make_app, exported_run, settle, wait_for, screen_text, random_gguf):
    other = RunLayout(exported_run.run_dir.parent / "other")
    other.gguf_dir.mkdir(parents=True)
    other.config.write_text(exported_run.layout.config.read_text())
    shutil.copy(random_gguf, other.gguf_dir / "random-Q4_K_M.gguf")
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: panel.gguf is not None, what="the default GGUF")
        assert panel.gguf == exported_run.layout.choose_gguf(app.config.export.quant_types)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, GgufPicker), what="the picker")
        options = app.screen.query_one(OptionList)
        assert options.option_count == 2
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, GgufPicker), what="the picker to close")
        assert panel.gguf == other.gguf_dir / "random-Q4_K_M.gguf"
        await wait_for(pilot, lambda: "random-Q4_K_M.gguf" in screen_text(app), what="the status line")


async def test_clear_during_a_reply_then_ask_again(make_app, new_run, settle, wait_for, random_gguf):
    """ctrl+l while tokens stream: the reply of the cleared turn is dropped (its Turn is gone),
    the panel stops generating, and the next question is answered."""
    run = new_run(results=False)
    long_replies(run)
    app = make_app(run, gguf=random_gguf)
    async with app.run_test(size=(100, 30)) as pilot:
        panel = await first_tokens_of_a_long_reply(pilot, app, settle, wait_for)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: not panel.generating, timeout=30, what="generating to end")
        assert not panel.query(Turn) and panel.messages == [] and panel.error == ""
        await ask(pilot, app, "Again.")
        await wait_for(pilot, lambda: panel.query(Turn) and panel.query_one(Turn).raw, timeout=60,
                       what="the second reply")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not panel.generating, timeout=30, what="the stop")
        assert [m["role"] for m in panel.messages] == ["user", "assistant"]
        assert panel.messages[0]["content"] == "Again."


async def test_a_gguf_that_does_not_load_says_so_as_the_answer(make_app, new_run, settle, wait_for, screen_text,
                                                              tmp_path):
    broken = tmp_path / "broken-Q4_K_M.gguf"
    broken.write_bytes(b"GGUF but not really")
    app = make_app(new_run(results=False), gguf=broken)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await ask(pilot, app, "Hello?")
        await wait_for(pilot, lambda: not panel.generating, timeout=60, what="the load to fail")
        answer = str(panel.query_one(Turn).query_one(".answer").content)
        assert answer.startswith("error: ") and answer == panel.error
        status = str(panel.query_one("#repl-status").content)
        assert "error: " in status and "idle" not in status
        assert panel.messages == []  # a failed turn is not history
        await wait_for(pilot, lambda: "error: " in screen_text(app).splitlines()[3], what="the status line")


async def test_history_is_cleared_when_the_model_or_the_run_changes(make_app, exported_run, new_run, settle,
                                                                    wait_for, random_gguf):
    other_run = new_run(run_id="20991231-000000-other")
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        for change in ("gguf", "run"):
            await ask(pilot, app, "What is 2+2?")
            await wait_for(pilot, lambda: not panel.generating and panel.messages, timeout=60, what="the reply")
            assert len(panel.messages) == 2 and panel.tokens_per_s
            if change == "gguf":
                panel.use_gguf(random_gguf)
            else:
                app.switch_run(other_run)
            await pilot.pause(0.1)
            assert panel.messages == [] and not panel.query(Turn) and panel.tokens_per_s is None, change
            if change == "gguf":
                panel.use_gguf(exported_run.layout.gguf_files()[0])


async def test_the_repl_key_brings_back_the_prompt(make_app, exported_run, settle, wait_for):
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        prompt = app.query_one("#prompt", Input)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: app.focused is prompt, what="the prompt")
        await pilot.press("escape")  # nothing generating: leaves the input
        await wait_for(pilot, lambda: app.focused is not prompt, what="focus to leave the prompt")
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: app.focused is prompt, what="the prompt again")
        assert app.query_one("#panels").active == "repl"

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
    app.config.infer.prefill_think = False  # the scripted GGUF writes its own <think>: no prefill on top
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


LONG_REPLY = 30000


def long_replies(run) -> None:
    """The run's frozen config lets the random GGUF talk for 30,000 tokens (time to act
    mid-reply even where it decodes 2,000 tokens a second)."""
    from r1tui.config import dump_toml

    frozen = run.layout.frozen_config()
    frozen.eval.max_new_tokens = LONG_REPLY
    frozen.eval.n_ctx = 32768
    run.layout.config.write_text(dump_toml(frozen))


async def first_tokens_of_a_long_reply(pilot, app, settle, wait_for) -> ReplPanel:
    """Ask the random model (which talks for LONG_REPLY tokens) and wait for its first tokens."""
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
        assert panel._chat.last.completion_tokens < LONG_REPLY


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


async def test_the_fold_state_holds_for_replies_that_arrive_after_the_toggle(make_app, exported_run, settle,
                                                                              wait_for, screen_text):
    """ctrl+t before a question: its reply arrives with the think block folded, the answer shown."""
    app = make_app(exported_run)
    app.config.infer.prefill_think = False  # the scripted GGUF writes its own <think>: no prefill on top
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: panel.gguf is not None, what="the GGUF")
        await pilot.press("ctrl+t")  # fold, with no turn yet
        await ask(pilot, app, "What is 2+2?")
        await wait_for(pilot, lambda: not panel.generating and panel.query(Turn), timeout=60, what="the reply")
        turn = panel.query_one(Turn)
        assert turn.think and turn.query_one(Collapsible).collapsed
        await wait_for(pilot, lambda: "FINAL ANSWER: 4" in screen_text(app), what="the answer")
        assert "Two plus two" not in screen_text(app)
        await pilot.press("ctrl+t")  # unfold: this turn and the next ones
        await wait_for(pilot, lambda: not turn.query_one(Collapsible).collapsed, what="unfolded")
        await ask(pilot, app, "And 3+3?")
        await wait_for(pilot, lambda: not panel.generating and len(panel.query(Turn)) == 2, timeout=60,
                       what="the second reply")
        assert not panel.query(Turn).last().query_one(Collapsible).collapsed


async def test_the_gguf_picker_takes_a_typed_path_without_tab(make_app, exported_run, settle, wait_for,
                                                              random_gguf, tmp_path):
    typed = tmp_path / "typed-Q4_K_M.gguf"
    shutil.copy(random_gguf, typed)
    app = make_app(exported_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: panel.gguf is not None, what="the default GGUF")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, GgufPicker), what="the picker")
        assert isinstance(app.focused, OptionList)  # the list of found GGUFs has the focus
        await pilot.press(*str(typed))  # typed straight away, no Tab
        assert app.screen.query_one("#gguf-path", Input).value == str(typed)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, GgufPicker), what="the picker to close")
        assert panel.gguf == typed


# ---- sampling settings (issue 22): keys, a small form, the status line, kept per GGUF


async def set_sampling(pilot, app, **values: str) -> None:
    """ctrl+r, type each value over the old one, enter."""
    from r1tui.dashboard.widgets.repl import SamplingScreen

    await pilot.press("ctrl+r")
    await pilot.pause(0.05)
    assert isinstance(app.screen, SamplingScreen)
    for name, text in values.items():
        field = app.screen.query_one(f"#sampling-{name}", Input)
        field.focus()
        await pilot.press("home", "ctrl+k", *text)
    await pilot.press("enter")
    await pilot.pause(0.05)


async def reply(pilot, app, panel, question: str) -> tuple[str, object]:
    await ask(pilot, app, question)
    await wait_until(pilot, lambda: not panel.generating and panel.query(Turn))
    turn = panel.query(Turn).last()
    raw, stats = turn.raw, panel._chat.last
    await pilot.press("ctrl+l")
    await wait_until(pilot, lambda: not panel.query(Turn))
    return raw, stats


async def wait_until(pilot, condition, timeout: float = 60.0) -> None:
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_sampling_settings_drive_a_real_generation_and_are_kept_per_model(
        make_app, exported_run, settle, wait_for, screen_text, random_gguf):
    from r1tui.dashboard.widgets.repl import Sampling, SamplingScreen
    from r1tui.infer.prompt import render_prompt_ids

    app = make_app(exported_run, gguf=random_gguf)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ReplPanel)
        await pilot.press(KEY["repl"])
        await wait_for(pilot, lambda: panel.gguf == random_gguf, what="the GGUF")
        config = app.config
        assert panel.sampling == Sampling(0.0, 1.0, config.eval.max_new_tokens, config.eval.seed,
                                          config.data.system_prompt)  # the config's, as `r1tui eval` samples
        await pilot.press("ctrl+up", "ctrl+up")  # the temperature in steps of 0.1
        assert panel.sampling.temperature == 0.2
        await wait_for(pilot, lambda: "T 0.2 · top-p 1" in screen_text(app), what="the status line")

        # an out-of-range value: the config's own words at the field, nothing changes
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplingScreen), what="the form")
        field = app.screen.query_one("#sampling-top_p", Input)
        field.focus()
        await pilot.press("home", "ctrl+k", *"1.5", "enter")
        await pilot.pause(0.05)
        assert isinstance(app.screen, SamplingScreen)
        error = str(app.screen.query_one("#sampling-top_p-error").content)
        assert error == "top_p = '1.5': Input should be less than or equal to 1 (as eval.top_p in the config)"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SamplingScreen), what="the form to close")
        assert panel.sampling.top_p == 1.0

        await set_sampling(pilot, app, temperature="1.5", top_p="0.9", max_new_tokens="12", seed="7",
                           system_prompt="Be brief.")
        expected = Sampling(1.5, 0.9, 12, 7, "Be brief.")
        assert panel.sampling == expected
        await wait_for(pilot, lambda: "T 1.5 · top-p 0.9 · max 12 tokens · seed 7 · system: Be brief." in
                       screen_text(app), what="the settings in the status line")

        first, stats = await reply(pilot, app, panel, "Say something.")
        assert panel.last_sampling == expected
        assert stats.completion_tokens <= 12 and stats.finish_reason == "length"  # the random model never stops
        with_system = render_prompt_ids([{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Say something."}], panel._chat.tokenizer_spec)
        assert stats.prompt_tokens == len(with_system)  # the system prompt went into the prompt
        again, _ = await reply(pilot, app, panel, "Say something.")
        assert again == first  # the same seed: the same reply
        await set_sampling(pilot, app, seed="8")
        other, _ = await reply(pilot, app, panel, "Say something.")
        assert other != first  # another seed, at temperature 1.5: another reply

        # kept per model: another GGUF has its own (the config's), and coming back restores these
        panel.use_gguf(exported_run.layout.gguf_files()[0])
        assert panel.sampling.temperature == 0.0 and panel.sampling.max_new_tokens == config.eval.max_new_tokens
        panel.use_gguf(random_gguf)
        assert panel.sampling == Sampling(1.5, 0.9, 12, 8, "Be brief.")

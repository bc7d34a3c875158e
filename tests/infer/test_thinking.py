"""The think block at inference: prefilled as training rendered it, and its length forced (s1).

Real parts only: the training renderer and Mistral's tokenizers (v3, Tekken), real tiny
GGUFs run by llama.cpp and the same model folder run by transformers.
"""

from __future__ import annotations

import sys

import pytest

from r1tui.data.render import load_renderer
from r1tui.infer.thinking import CLOSING, OPENING, ThinkSettings, reply_text_ids, think_tokens_for
from r1tui.response_format import extract_answer, format_assistant, split_response

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]
CONVERSATIONS = [
    QUESTION,
    [{"role": "system", "content": "Think step by step."}, {"role": "user", "content": "Combien font 7 × 6 ?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nGreet.\n</think>\n\nFINAL ANSWER: hello"},
     {"role": "user", "content": "  Now: 3² + 4² = ?  "}],
]
REASONINGS = ["Two plus two makes four.", "7 × 6 = 42\nCheck: 42 / 6 = 7 ✓", "def f(x):\n    return x * 2", "é 😀 end"]
# A scripted model that closes its think block at once: after the prefilled "<think>\n" it
# says "</think>" (the script spells its second "think" and ">" with byte tokens).
EARLY_CLOSE = "<think>\n</think>FINAL ANSWER: 4"
SPECS = ["v3", "tekken", "tekken-v7"]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_prefilled_prompt_equals_the_training_render_up_to_the_think_opening(spec, messages):
    renderer = load_renderer(spec)
    opening = list(think_tokens_for(spec).opening)
    prompt = renderer.render_prompt(messages)
    for reasoning in REASONINGS:
        full = renderer.render([*messages, {"role": "assistant", "content": format_assistant(reasoning, "42")}])
        assert full.input_ids[:len(prompt) + len(opening)] == prompt + opening
    assert renderer.text.encode(OPENING) == opening  # what the loop re-encodes starts the same way


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("reasoning", REASONINGS)
def test_forced_close_is_the_training_render_of_the_answer_line(spec, reasoning):
    """At the cap the loop feeds prompt + the reply text re-encoded: the same ids as training's
    render of that reasoning followed by its answer line, up to "FINAL ANSWER:"."""
    renderer = load_renderer(spec)
    forced = OPENING + reasoning + "\n" + CLOSING
    ids = reply_text_ids(spec, QUESTION, forced)
    full = renderer.render([*QUESTION, {"role": "assistant", "content": format_assistant(reasoning, "42")}])
    assert full.input_ids[:len(ids)] == ids
    closing = list(think_tokens_for(spec).closing)
    assert ids[-len(closing):] == closing


@pytest.fixture(scope="session")
def early_close_gguf(tmp_path_factory):
    """tests/tiny_gguf.py's scripted GGUF, with EARLY_CLOSE as its script."""
    module = sys.modules["r1tui_test_tiny_gguf"]
    chain = module.script_chain(EARLY_CLOSE)
    original = module.script_chain
    module.script_chain = lambda script=None: chain
    try:
        return module.build_gguf(tmp_path_factory.mktemp("early_close"), "scripted")
    finally:
        module.script_chain = original


@pytest.fixture(scope="module")
def early_chat(early_close_gguf):
    from r1tui.infer.llama import LlamaChat

    with LlamaChat(early_close_gguf, n_ctx=512) as chat:
        yield chat


def test_prefill_is_part_of_the_reply(early_chat):
    early_chat.thinking = ThinkSettings(prefill=True)
    generation = early_chat.generate(QUESTION, max_tokens=64)
    assert generation.text == EARLY_CLOSE  # the prefilled "<think>\n", then the model's own "</think>…"
    parsed = split_response(generation.text)
    assert parsed.think_closed and extract_answer(generation.text).text == "4"
    stats = generation.stats
    assert stats.think_prefilled and stats.think_tokens == 0 and stats.think_continuations == 0
    assert stats.finish_reason == "eos"
    assert stats.prompt_tokens == len(early_chat.prompt_ids(QUESTION)) + len(think_tokens_for("v3").opening)


def test_without_prefill_the_prompt_ends_at_inst(early_chat):
    early_chat.thinking = ThinkSettings(prefill=False)
    generation = early_chat.generate(QUESTION, max_tokens=64)
    assert generation.text == EARLY_CLOSE  # the scripted model opens the block itself
    assert not generation.stats.think_prefilled


def test_minimum_turns_an_early_close_into_the_continuation_word(early_chat):
    early_chat.thinking = ThinkSettings(prefill=True, min_think_tokens=6, continuation="Wait")
    chunks = list(early_chat.stream(QUESTION, max_tokens=200))
    text = "".join(chunks)
    stats = early_chat.last
    parsed = split_response(text)
    assert text.startswith(OPENING + "Wait")  # the tag it tried to write first is gone
    assert parsed.think_closed and "Wait" in parsed.think and "</think>" not in parsed.think
    assert stats.think_continuations >= 1 and stats.think_tokens >= 6
    assert extract_answer(text).text == "4" and stats.finish_reason == "eos"
    assert text.count("</think>") == 1  # the tags taken back never reached the stream


def test_minimum_also_turns_an_early_end_of_sequence_into_the_continuation_word(scripted_gguf, scripted_reply):
    """Prefilled, tests/tiny_gguf.py's scripted model says "FINAL ANSWER: 4" and </s> inside the
    think block; below the minimum that </s> becomes "Wait" and the chain goes on to close it."""
    from r1tui.infer.llama import LlamaChat

    with LlamaChat(scripted_gguf, n_ctx=512) as chat:
        chat.thinking = ThinkSettings(prefill=True)
        assert chat.generate(QUESTION, max_tokens=64).text == OPENING + "FINAL ANSWER: 4"
        chat.thinking = ThinkSettings(prefill=True, min_think_tokens=12)
        generation = chat.generate(QUESTION, max_tokens=200)
    assert generation.text.startswith(OPENING + "FINAL ANSWER: 4\nWait")
    parsed = split_response(generation.text)
    assert parsed.think_closed and generation.stats.think_continuations == 1
    assert generation.stats.think_tokens >= 12 and generation.stats.finish_reason == "eos"


def test_minimum_is_honoured_through_transformers_too(tmp_path_factory, early_close_gguf):
    from r1tui.infer.hf import HFChat

    model_dir = early_close_gguf.parent / "scripted-model"  # the folder the GGUF was converted from
    with HFChat(model_dir, n_ctx=512) as chat:
        chat.thinking = ThinkSettings(prefill=True)
        assert chat.generate(QUESTION, max_tokens=64).text == EARLY_CLOSE
        chat.thinking = ThinkSettings(prefill=True, min_think_tokens=6)
        generation = chat.generate(QUESTION, max_tokens=200)
    parsed = split_response(generation.text)
    assert generation.text.startswith(OPENING + "Wait") and parsed.think_closed
    assert generation.stats.think_continuations >= 1 and extract_answer(generation.text).text == "4"


@pytest.mark.parametrize("cap", [1, 8, 24])
def test_cap_closes_the_block_and_starts_the_answer_line(random_gguf, cap):
    """The random model never closes by itself: every reply is cut at the cap."""
    from r1tui.infer.llama import LlamaChat

    with LlamaChat(random_gguf, n_ctx=512) as chat:
        chat.thinking = ThinkSettings(prefill=True, max_think_tokens=cap, answer_tokens=5)
        for question in CONVERSATIONS[:2]:
            generation = chat.generate(question, max_tokens=400, temperature=0.8, seed=cap)
            stats = generation.stats
            assert stats.think_capped and stats.think_tokens == cap
            text = generation.text
            assert text.startswith(OPENING)
            assert "\n" + CLOSING in text, text
            assert split_response(text).think_closed
            # the answer had its own budget of 5 tokens after "FINAL ANSWER:"
            assert stats.finish_reason in ("length", "eos")
            answer_ids = load_renderer("v3").text.encode("x" + text.split(CLOSING, 1)[1])
            assert len(answer_ids) <= 5 + 2


def test_cap_through_transformers(tmp_path_factory, random_gguf):
    from r1tui.infer.hf import HFChat

    model_dir = random_gguf.parent / "random-model"
    with HFChat(model_dir, n_ctx=512) as chat:
        chat.thinking = ThinkSettings(prefill=True, max_think_tokens=6, answer_tokens=3)
        generation = chat.generate(QUESTION, max_tokens=100)
    assert generation.stats.think_capped and generation.stats.think_tokens == 6
    assert "\n" + CLOSING in generation.text and split_response(generation.text).think_closed


def test_settings_validation_is_one_line(tmp_path):
    from r1tui.config import parse_config
    from r1tui.errors import ConfigError

    with pytest.raises(ConfigError, match=r"infer.min_think_tokens = 9: above infer.max_think_tokens = 4"):
        parse_config({"infer": {"min_think_tokens": 9, "max_think_tokens": 4}})
    with pytest.raises(ConfigError, match=r"infer.prefill_think"):
        parse_config({"infer": {"prefill_think": "sometimes"}})


def test_endpoint_prefill_gives_the_local_reply(llama_teacher, scripted_gguf):
    """llama-cpp-python's own server (it takes the prompt as text: the ids written out, and the
    prompt length it reports checked against them) continues the same prefilled prompt."""
    from r1tui.errors import R1Error
    from r1tui.infer.endpoint import EndpointChat
    from r1tui.infer.llama import LlamaChat

    with LlamaChat(scripted_gguf, n_ctx=512) as local:
        local.thinking = ThinkSettings(prefill=True)
        expected = local.generate(QUESTION, max_tokens=64).text
    with EndpointChat(llama_teacher.url, n_ctx=512) as served:
        served.thinking = ThinkSettings(prefill=True)
        generation = served.generate(QUESTION, max_tokens=64)
        assert generation.text == expected == OPENING + "FINAL ANSWER: 4"
        assert generation.stats.think_prefilled
        served.thinking = ThinkSettings(prefill=True, max_think_tokens=8)
        with pytest.raises(R1Error, match="needs a local model"):
            served.generate(QUESTION, max_tokens=64)


def test_infer_settings_round_trip_through_a_frozen_config(tmp_path):
    import tomllib

    from r1tui.config import dump_toml, parse_config

    for prefill in ("auto", True, False):
        config = parse_config({"infer": {"prefill_think": prefill, "max_think_tokens": 512, "continuation": "Hmm"}})
        again = parse_config(tomllib.loads(dump_toml(config)), base_dir=tmp_path)
        assert again.infer == config.infer and again.infer.prefill_think == prefill

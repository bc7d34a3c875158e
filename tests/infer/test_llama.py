"""LlamaChat on real Q4_K_M GGUFs: the scripted model (known reply, stops at </s>) and a random one."""

from __future__ import annotations

import threading

import pytest

from r1tui.errors import R1Error
from r1tui.infer.llama import LlamaChat

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def scripted_chat(scripted_gguf):
    with LlamaChat(scripted_gguf, n_ctx=512) as chat:
        yield chat


def test_scripted_reply_streams_and_stops_at_eos(scripted_chat, scripted_reply):
    chunks = list(scripted_chat.stream(QUESTION, max_tokens=200))
    assert "".join(chunks) == scripted_reply
    assert len(chunks) > 10  # it streamed, token by token
    stats = scripted_chat.last
    assert stats.finish_reason == "eos"
    assert stats.prompt_tokens == len(scripted_chat.prompt_ids(QUESTION))
    assert stats.completion_tokens == 37  # the chain's tokens, </s> not counted
    assert stats.tokens_per_s > 0


def test_decode_speed_times_reply_tokens_only(scripted_chat, monkeypatch):
    """A clock that ticks once per reading: each reply token after the first adds one tick,
    so decode speed is exactly 1 token per tick; the stop token's step must not count."""
    import itertools

    import r1tui.infer.thinking as loop_module  # the reply loop every local backend shares

    ticks = itertools.count()
    monkeypatch.setattr(loop_module.time, "perf_counter", lambda: float(next(ticks)))
    "".join(scripted_chat.stream(QUESTION, max_tokens=200))
    stats = scripted_chat.last
    assert stats.finish_reason == "eos" and stats.completion_tokens == 37
    assert stats.tokens_per_s == 1.0


def test_prompt_is_the_training_rendering(scripted_chat):
    from r1tui.infer.prompt import reference_prompt_ids

    messages = [{"role": "system", "content": "Be brief."}, *QUESTION]
    assert scripted_chat.prompt_ids(messages) == reference_prompt_ids(messages)


def test_token_limit_and_stop_event(scripted_chat, scripted_reply):
    cut = scripted_chat.generate(QUESTION, max_tokens=5)
    assert cut.stats.finish_reason == "length" and cut.stats.completion_tokens == 5
    assert scripted_reply.startswith(cut.text) and cut.text

    stop = threading.Event()
    received = []
    for chunk in scripted_chat.stream(QUESTION, max_tokens=200, stop_event=stop):
        received.append(chunk)
        stop.set()
    assert scripted_chat.last.finish_reason == "stopped"
    assert scripted_chat.last.completion_tokens == 1

    # a multi-turn conversation after a stopped one still gets the whole reply
    turn_two = [*QUESTION, {"role": "assistant", "content": scripted_reply}, {"role": "user", "content": "Sure?"}]
    assert scripted_chat.generate(turn_two, max_tokens=200).text == scripted_reply


def test_random_model_is_deterministic_at_temperature_zero(random_gguf):
    with LlamaChat(random_gguf, n_ctx=256) as first, LlamaChat(random_gguf, n_ctx=256) as second:
        a = first.generate(QUESTION, max_tokens=24)
        b = second.generate(QUESTION, max_tokens=24)
        again = first.generate(QUESTION, max_tokens=24)
    assert a.text == b.text == again.text and a.text
    assert a.stats.finish_reason == "length" and a.stats.completion_tokens == 24


def test_context_overflow_is_a_clear_error(scripted_gguf):
    with LlamaChat(scripted_gguf, n_ctx=32) as chat:
        with pytest.raises(R1Error, match="context holds 32"):
            chat.generate([{"role": "user", "content": "word " * 60}], max_tokens=8)
        short = chat.generate([{"role": "user", "content": "word " * 10}], max_tokens=100)
    assert short.stats.finish_reason == "length"  # the reply is cut where the context ends
    assert short.stats.prompt_tokens + short.stats.completion_tokens == 32


def test_missing_gguf_and_wrong_tokenizer(tmp_path, scripted_gguf):
    with pytest.raises(R1Error, match="GGUF file not found"):
        LlamaChat(tmp_path / "nope.gguf")
    with pytest.raises(R1Error, match="vocabulary of 32768 but tokenizer 'tekken' has 131072"):
        LlamaChat(scripted_gguf, tokenizer_spec="tekken")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(R1Error, match="could not load this GGUF"):
        LlamaChat(broken)

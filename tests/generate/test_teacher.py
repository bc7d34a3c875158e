"""The teacher pool against the fault-injecting stand-in server (tests/generate/conftest.py):
the openai client's own retries, Retry-After, timeouts, and every failure a counted reason."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from r1tui.config import TeacherConfig
from r1tui.errors import REDACTED, redact
from r1tui.generate.teacher import TeacherPool

SECRET = "sk-r1tui-test-SECRET-0123456789abcdef"
ASK = [{"role": "user", "content": "What is 2 + 2?"}]


def pool_for(*urls: str, key: str | None = SECRET, **settings) -> TeacherPool:
    teacher = TeacherConfig(model="teacher-model", base_url=list(urls) if len(urls) > 1 else urls[0],
                            **{"max_retries": 1, "timeout_s": 5.0, **settings})
    return TeacherPool(teacher, key=key)


def test_standin_reply_with_reasoning_content(standin):
    standin.push({"reply": "FINAL ANSWER: 4", "reasoning_content": "Two and two.", "usage": (11, 22)})
    with pool_for(standin.url) as pool:
        reply = pool.complete(ASK, seed=7)
    assert reply.ok and reply.content == "FINAL ANSWER: 4" and reply.reasoning == "Two and two."
    assert (reply.finish_reason, reply.prompt_tokens, reply.completion_tokens) == ("stop", 11, 22)
    assert reply.endpoint == standin.url and reply.requests == 1
    body = standin.seen[0].body
    assert body["model"] == "teacher-model" and body["messages"] == ASK and body["n"] == 1 and body["seed"] == 7
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.6, 0.95, 16384)
    assert standin.seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_standin_reasoning_field_and_truncation(standin):
    standin.push({"reply": None, "reasoning": "thinking…", "finish_reason": "length"})
    with pool_for(standin.url) as pool:
        reply = pool.complete(ASK)
    assert reply.ok and reply.content == "" and reply.reasoning == "thinking…" and reply.finish_reason == "length"


def test_standin_429_retry_after_is_honoured(standin):
    standin.push({"status": 429, "headers": {"Retry-After": "1"}}, {"reply": "<think>ok</think>\nFINAL ANSWER: 4"})
    with pool_for(standin.url) as pool:
        started = time.monotonic()
        reply = pool.complete(ASK)
        elapsed = time.monotonic() - started
    assert reply.ok and reply.requests == 2 and pool.requests == 2
    assert elapsed >= 1.0  # the server's Retry-After, not the client's 0.5 s first backoff
    assert standin.seen[1].at - standin.seen[0].at >= 1.0


def test_standin_500_is_retried_then_counted_not_raised(standin):
    standin.push({"status": 500}, {"reply": "<think>ok</think>\nFINAL ANSWER: 4"})
    with pool_for(standin.url) as pool:
        assert pool.complete(ASK).requests == 2  # one retry, then the reply
        standin.push({"status": 500}, {"status": 503})
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_http_503" and failure.requests == 2
    assert "503" in failure.message and "\n" not in failure.message


def test_standin_stall_past_the_timeout(standin):
    standin.push({"stall": 3}, {"stall": 3})
    with pool_for(standin.url, timeout_s=0.3) as pool:
        started = time.monotonic()
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_timeout" and failure.requests == 2
    assert time.monotonic() - started < 2.5  # gave up after two 0.3 s attempts, did not wait for the server


@pytest.mark.parametrize("body", [b"{not json", b"<html>Bad Gateway</html>"])
def test_standin_malformed_json_is_a_bad_response(standin, body):
    standin.push({"raw": body})
    with pool_for(standin.url) as pool:
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_bad_response" and failure.requests == 1


def test_standin_connection_cut_mid_body(standin):
    standin.push({"cut": True}, {"reply": "<think>ok</think>\nFINAL ANSWER: 4"})
    with pool_for(standin.url) as pool:
        assert pool.complete(ASK).requests == 2  # the cut attempt was retried
        standin.push({"cut": True}, {"cut": True})
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_connection" and failure.requests == 2


@pytest.mark.parametrize("body, reason", [
    ({"id": "x", "object": "chat.completion", "choices": []}, "teacher_no_choices"),
    ({"id": "x", "object": "chat.completion"}, "teacher_no_choices"),
])
def test_standin_reply_without_choices(standin, body, reason):
    standin.push({"json": body})
    with pool_for(standin.url) as pool:
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == reason


def test_standin_4xx_is_not_retried_and_an_echoed_key_is_redacted(standin):
    standin.push({"status": 401, "body": {"error": {"message": f"Incorrect API key provided: {SECRET}"}}})
    with pool_for(standin.url) as pool:
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_http_401" and failure.requests == 1
    assert SECRET not in failure.message and REDACTED in failure.message


def test_no_key_sends_a_placeholder(standin, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with TeacherPool(TeacherConfig(model="m", base_url=standin.url)) as pool:
        assert pool.complete(ASK).ok
    assert standin.seen[0].headers["authorization"] == "Bearer no-key"


def test_the_key_comes_from_the_configured_variable(standin, monkeypatch):
    monkeypatch.setenv("MY_TEACHER_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    with TeacherPool(TeacherConfig(model="m", base_url=standin.url, api_key_env="MY_TEACHER_KEY")) as pool:
        assert pool.complete(ASK).ok
    assert standin.seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_an_unreachable_endpoint_is_a_connection_failure():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pool_for(f"http://127.0.0.1:{port}/v1", max_retries=0) as pool:
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_connection" and failure.requests == 1


def test_redact():
    assert redact(f"x {SECRET} y {SECRET}", SECRET) == f"x {REDACTED} y {REDACTED}"
    assert redact("nothing", SECRET) == "nothing" and redact("a b c", "a") == "a b c"  # a 1-char "key" is no secret
    assert redact("text", None) == "text"


def test_the_least_loaded_endpoint_gets_the_request(make_standin):
    """While a slow endpoint holds a request, the others get the next ones; then both share."""
    slow = make_standin(lambda body: {"reply": "<think>slow</think>\nFINAL ANSWER: 4", "delay": 1.0})
    fast = make_standin()
    with pool_for(slow.url, fast.url) as pool:
        background = threading.Thread(target=pool.complete, args=(ASK,))
        background.start()  # both idle: the first endpoint
        deadline = time.monotonic() + 5
        while not slow.seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.in_flight() == {slow.url: 1, fast.url: 0}
        replies = [pool.complete(ASK) for _ in range(3)]
        background.join()
        assert {r.endpoint for r in replies} == {fast.url} and len(fast.seen) == 3 and len(slow.seen) == 1
        # idle again: ties go to the endpoint that got fewer so far
        assert pool.complete(ASK).endpoint == slow.url


def _dead_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_a_transport_failure_is_asked_once_more_on_another_endpoint(make_standin):
    """A dead replica (first in the list, so chosen first) or a 503 after the client's own
    retries: the call moves once to the least loaded other endpoint, and says so."""
    live = make_standin()
    dead = _dead_url()
    with pool_for(dead, live.url, max_retries=0) as pool:
        reply = pool.complete(ASK)
        assert reply.ok and reply.endpoint == live.url and reply.requests == 2  # one to each
        assert reply.failover["endpoint"] == dead and reply.failover["reason"] == "teacher_connection"
    busy = make_standin(lambda body: {"status": 503})
    with pool_for(busy.url, live.url, max_retries=1) as pool:
        reply = pool.complete(ASK)
    assert reply.ok and reply.endpoint == live.url and reply.requests == 3 and len(busy.seen) == 2
    assert reply.failover["reason"] == "teacher_http_503"
    # both down: one more try, then the failure of the second endpoint, with the first's
    with pool_for(dead, busy.url, max_retries=0) as pool:
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == "teacher_http_503" and failure.requests == 2
    assert failure.failover["reason"] == "teacher_connection"


@pytest.mark.parametrize("status", [400, 401, 404])
def test_a_refusal_is_final_and_not_moved(make_standin, status):
    refusing = make_standin(lambda body: {"status": status})
    other = make_standin()
    with pool_for(refusing.url, other.url) as pool:
        failure = pool.complete(ASK)
    assert not failure.ok and failure.reason == f"teacher_http_{status}" and failure.failover is None
    assert failure.requests == 1 and other.seen == []


def test_which_failures_are_the_transports():
    from r1tui.generate.failures import is_transport_failure

    for reason in ("teacher_connection", "teacher_timeout", "teacher_http_408", "teacher_http_409",
                   "teacher_http_429", "teacher_http_500", "teacher_http_503", "teacher_http_599"):
        assert is_transport_failure(reason), reason
    for reason in ("teacher_http_400", "teacher_http_401", "teacher_http_403", "teacher_http_404",
                   "teacher_http_422", "teacher_bad_response", "teacher_no_choices", "teacher_error",
                   "wrong_answer", "too_long", None, "teacher_http_x"):
        assert not is_transport_failure(reason), reason

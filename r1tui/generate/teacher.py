"""The teacher: OpenAI-compatible chat-completions endpoints, used at once, least loaded first.

``TeacherPool(config.teacher)`` opens one ``openai.OpenAI`` client per URL of
``teacher.base_urls`` (several vLLM or SGLang replicas, on as many machines as there
are). Each call goes to the endpoint with the fewest requests in flight (ties: the one
that got the fewest so far) and stays there for its retries: the ``openai`` client's own
retries with exponential backoff, honouring ``Retry-After``, on 408/409/429/5xx,
timeouts and dropped connections (``teacher.max_retries``, ``teacher.timeout_s`` per
attempt). When those run out on a transport failure (``r1tui.generate.failures``: the
endpoint down, stalled, overloaded) and there are several endpoints, the call is made
once more on the least loaded *other* endpoint, so a dead replica costs no sample; the
result carries ``failover`` (the first endpoint, its reason and message). Every HTTP
attempt is counted (an httpx request hook), so a result says how many requests it took,
both endpoints' included.

One call is one completion (``n=1``). It returns a ``TeacherReply`` (content, the
separate reasoning field when the server sends one — ``reasoning_content`` from vLLM's and
SGLang's reasoning parsers, ``reasoning`` from others —, finish reason, token usage,
endpoint) or a ``TeacherFailure`` with a short reason: ``teacher_http_<status>``
(retries exhausted, or a 4xx), ``teacher_timeout``, ``teacher_connection`` (refused, cut
mid-body), ``teacher_bad_response`` (not JSON, not a completion), ``teacher_no_choices``,
``teacher_error``. The caller counts it as a rejection, except a transport failure
(``r1tui.generate.failures``), which a later run asks again. Nothing here raises for a
failed request.

The API key is read from ``os.environ[teacher.api_key_env]``; without it a placeholder
is sent (local servers take any key). The key is never written to a file, a log, an
event or an exception: every error text that leaves this module is redacted with
``redact`` first (a server may echo the key it refused).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai

from r1tui.config import TeacherConfig
from r1tui.errors import redact
from r1tui.generate.failures import is_transport_failure

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "no-key"  # sent when the variable is unset: local servers accept any key
_MESSAGE_CHARS = 200  # an error text is kept to one short line


@dataclass(frozen=True)
class TeacherReply:
    """One completion."""

    content: str
    reasoning: str | None  # the separate reasoning field, when the server returned one
    finish_reason: str | None  # "stop", "length", ...
    prompt_tokens: int
    completion_tokens: int
    endpoint: str
    requests: int  # HTTP requests this call took: 1 + retries
    failover: dict[str, str] | None = None  # {"endpoint", "reason", "message"} of a first endpoint that failed

    ok = True


@dataclass(frozen=True)
class TeacherFailure:
    """A call that produced no completion; ``reason`` is what it is counted under."""

    reason: str
    message: str  # one line, the key redacted
    endpoint: str
    requests: int
    failover: dict[str, str] | None = None  # as TeacherReply's

    ok = False


def api_key(teacher: TeacherConfig) -> str | None:
    """The key from the configured variable, or None when it is unset or empty."""
    return os.environ.get(teacher.api_key_env) or None


class _Endpoint:
    def __init__(self, url: str, client: openai.OpenAI):
        self.url = url
        self.client = client
        self.in_flight = 0
        self.sent = 0  # calls sent here so far (the tie-break)
        self.requests = 0  # HTTP attempts, retries included


class TeacherPool:
    """Every configured endpoint, used at once. Thread-safe: call ``complete`` from many threads."""

    def __init__(self, teacher: TeacherConfig, *, key: str | None = None):
        self.teacher = teacher
        self._secret = key if key is not None else api_key(teacher)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.endpoints = [self._open(url) for url in teacher.base_urls]

    def _open(self, url: str) -> _Endpoint:
        endpoint = _Endpoint(url, None)  # type: ignore[arg-type]

        def counted(request: Any) -> None:  # runs in the calling thread, once per HTTP attempt
            with self._lock:
                endpoint.requests += 1
            self._local.requests = getattr(self._local, "requests", 0) + 1

        http = openai.DefaultHttpxClient(event_hooks={"request": [counted]})
        endpoint.client = openai.OpenAI(base_url=url, api_key=self._secret or PLACEHOLDER_KEY,
                                        max_retries=self.teacher.max_retries, timeout=self.teacher.timeout_s,
                                        http_client=http)
        return endpoint

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self.endpoints]

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, retries included, over every endpoint."""
        with self._lock:
            return sum(e.requests for e in self.endpoints)

    def in_flight(self) -> dict[str, int]:
        with self._lock:
            return {e.url: e.in_flight for e in self.endpoints}

    def _acquire(self, avoid: _Endpoint | None = None) -> _Endpoint:
        with self._lock:
            candidates = [e for e in self.endpoints if e is not avoid] or self.endpoints
            endpoint = min(candidates, key=lambda e: (e.in_flight, e.sent))
            endpoint.in_flight += 1
            endpoint.sent += 1
            return endpoint

    def _release(self, endpoint: _Endpoint) -> None:
        with self._lock:
            endpoint.in_flight -= 1

    def complete(self, messages: Sequence[dict[str, str]], *, seed: int | None = None) -> TeacherReply | TeacherFailure:
        """One completion of ``messages`` from the least loaded endpoint; after a transport
        failure there, once more from the least loaded other one (when there is one). Never
        raises for a failed request: a ``TeacherFailure`` says why."""
        self._local.requests = 0
        endpoint = self._acquire()
        first = self._call(endpoint, messages, seed)
        if first.ok or len(self.endpoints) < 2 or not is_transport_failure(first.reason):
            return first
        log.info("teacher %s: %s; asking another endpoint", first.endpoint, first.reason)
        moved = {"endpoint": first.endpoint, "reason": first.reason, "message": first.message}
        second = self._call(self._acquire(avoid=endpoint), messages, seed)
        return dataclasses.replace(second, failover=moved)

    def _call(self, endpoint: _Endpoint, messages: Sequence[dict[str, str]],
              seed: int | None) -> TeacherReply | TeacherFailure:
        """One call on ``endpoint`` (acquired by the caller), its retries included."""
        try:
            extra: dict[str, Any] = {} if seed is None else {"seed": seed}
            response = endpoint.client.chat.completions.create(
                model=self.teacher.model, messages=list(messages), n=1, temperature=self.teacher.temperature,
                top_p=self.teacher.top_p, max_tokens=self.teacher.max_tokens, **extra)
            return self._reply(response, endpoint)
        except Exception as exc:  # noqa: BLE001 - every failure of a request is a counted rejection
            return self._failure(exc, endpoint)
        finally:
            self._release(endpoint)

    def _attempts(self) -> int:
        return max(1, getattr(self._local, "requests", 0))

    def _reply(self, response: Any, endpoint: _Endpoint) -> TeacherReply | TeacherFailure:
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            return TeacherFailure("teacher_no_choices", "the reply has no choices", endpoint.url, self._attempts())
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            return TeacherFailure("teacher_bad_response", "the first choice has no message", endpoint.url,
                                  self._attempts())
        content = getattr(message, "content", None)
        usage = getattr(response, "usage", None)
        return TeacherReply(
            content=content if isinstance(content, str) else "",
            reasoning=reasoning_of(message),
            finish_reason=getattr(choice, "finish_reason", None),
            prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
            completion_tokens=_count(getattr(usage, "completion_tokens", None)),
            endpoint=endpoint.url,
            requests=self._attempts(),
        )

    def _failure(self, exc: Exception, endpoint: _Endpoint) -> TeacherFailure:
        if isinstance(exc, openai.APITimeoutError):
            reason = "teacher_timeout"
        elif isinstance(exc, openai.APIConnectionError):
            reason = "teacher_connection"
        elif isinstance(exc, openai.APIStatusError):
            reason = f"teacher_http_{exc.status_code}"
        elif isinstance(exc, (openai.APIResponseValidationError, ValueError, TypeError, AttributeError)):
            reason = "teacher_bad_response"  # a body that is not JSON, or JSON that is not a completion
        else:
            reason = "teacher_error"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = redact(f"{type(exc).__name__}: {text}", self._secret)[:_MESSAGE_CHARS]
        log.debug("teacher %s: %s", endpoint.url, message)
        return TeacherFailure(reason, message, endpoint.url, self._attempts())

    def close(self) -> None:
        for endpoint in self.endpoints:
            try:
                endpoint.client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def __enter__(self) -> TeacherPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reasoning_of(message: Any) -> str | None:
    """The separate reasoning field of a reply's message, when the server sent one."""
    extra = getattr(message, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = extra.get(name) if isinstance(extra, dict) else None
        if value is None:
            value = getattr(message, name, None)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0

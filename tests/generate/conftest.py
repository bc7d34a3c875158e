"""Teachers for the generate tests: a fault-injecting stand-in (the real llama.cpp server is shared).

- ``standin``: a small OpenAI-compatible chat-completions server written here (a thread
  running ``http.server`` on 127.0.0.1, a free port). It is a *stand-in*: it answers what a
  test scripts — a reply with ``reasoning_content``, 429 with Retry-After, 500, a stall past
  the client's timeout, malformed JSON, a connection cut mid-body — and records every
  request it got (headers included), so a test can count retries and check what was sent.
- ``llama_teacher`` (tests/tiny_gguf.py, shared with the eval tests): the REAL teacher,
  llama-cpp-python's own OpenAI-compatible server serving the scripted tiny GGUF. It
  answers every prompt with tests/tiny_gguf.py's SCRIPT ("… FINAL ANSWER: 4") then EOS.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# A behaviour is a dict, one of:
#   {"reply": content, "reasoning_content": …, "reasoning": …, "finish_reason": "stop", "usage": (in, out)}
#   {"status": 429, "headers": {"Retry-After": "1"}, "body": {...}}   any status with a JSON error body
#   {"stall": seconds}               sleep, then reply (the client has given up by then)
#   {"raw": b"…", "status": 200}     these bytes as the body, content-type application/json
#   {"cut": True}                    headers promising a long body, half of it, then the socket closes
#   {"json": {...}}                  this object as a 200 body (e.g. no choices)
Behaviour = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def completion(content: str | None, *, reasoning_content: str | None = None, reasoning: str | None = None,
               finish_reason: str = "stop", usage: tuple[int, int] = (12, 34), model: str = "stand-in") -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    if reasoning is not None:
        message["reasoning"] = reasoning
    return {"id": "chatcmpl-standin", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]}}


@dataclass
class Seen:
    """One request the stand-in received."""

    at: float
    body: dict
    headers: dict[str, str]


@dataclass
class StandIn:
    """The stand-in server: ``url`` ends in /v1; ``script`` is consumed one behaviour per
    request, then ``default(body)`` answers."""

    url: str = ""
    script: deque = field(default_factory=deque)
    default: Callable[[dict], Behaviour] = lambda body: {"reply": "<think>fine</think>\nFINAL ANSWER: 4"}
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def push(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    def next_behaviour(self, body: dict) -> Behaviour:
        with self.lock:
            if self.script:
                return self.script.popleft()
        return self.default(body)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            return None

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        def do_GET(self) -> None:  # /v1/models: a readiness probe
            self._send(200, json.dumps({"object": "list", "data": [{"id": "stand-in", "object": "model"}]}).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            with standin.lock:
                standin.seen.append(Seen(time.monotonic(), body, {k.lower(): v for k, v in self.headers.items()}))
            behaviour = standin.next_behaviour(body)
            try:
                self._act(behaviour, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a stall past its timeout)

        def _act(self, behaviour: Behaviour, body: dict) -> None:
            if "stall" in behaviour:
                time.sleep(behaviour["stall"])
                behaviour = {"reply": "<think>late</think>\nFINAL ANSWER: 4"}
            if "reply" in behaviour or "reasoning_content" in behaviour:
                payload = completion(behaviour.get("reply"), reasoning_content=behaviour.get("reasoning_content"),
                                     reasoning=behaviour.get("reasoning"),
                                     finish_reason=behaviour.get("finish_reason", "stop"),
                                     usage=behaviour.get("usage", (12, 34)), model=body.get("model", "stand-in"))
                if behaviour.get("delay"):
                    time.sleep(behaviour["delay"])
                self._send(200, json.dumps(payload).encode())
            elif "json" in behaviour:
                self._send(200, json.dumps(behaviour["json"]).encode())
            elif "raw" in behaviour:
                self._send(behaviour.get("status", 200), behaviour["raw"])
            elif behaviour.get("cut"):
                whole = json.dumps(completion("<think>cut</think>\nFINAL ANSWER: 4")).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(whole)))
                self.end_headers()
                self.wfile.write(whole[: len(whole) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                status = behaviour.get("status", 500)
                error = behaviour.get("body", {"error": {"message": f"stand-in error {status}", "type": "server_error"}})
                self._send(status, json.dumps(error).encode(), behaviour.get("headers"))

    return Handler


def start_standin(default: Callable[[dict], Behaviour] | None = None) -> StandIn:
    standin = StandIn()
    if default is not None:
        standin.default = default
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(standin))
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="standin-teacher",
                     daemon=True).start()
    standin.server = server
    standin.url = f"http://127.0.0.1:{port}/v1"
    return standin


@pytest.fixture
def standin():
    """A fresh fault-injecting stand-in teacher (see the module docstring)."""
    server = start_standin()
    yield server
    server.close()


@pytest.fixture
def make_standin():
    """Start stand-ins with a chosen default behaviour; all closed after the test."""
    started: list[StandIn] = []

    def make(default: Callable[[dict], Behaviour] | None = None) -> StandIn:
        started.append(start_standin(default))
        return started[-1]

    yield make
    for server in started:
        server.close()



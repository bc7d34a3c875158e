"""Cancelling a run cleanly: SIGTERM (``r1tui cancel``) or Ctrl-C asks the pipeline to stop.

The signal handler only records the request. Where stopping mid-operation would lose
work (a training step), the code runs inside ``deferred()`` and polls
``requested()`` at a safe point (the training callback saves a checkpoint, then
stops). Everywhere else the handler raises ``StageCancelled`` at once, which the
``stage()`` helper records as a cancelled stage. A second signal while deferred
stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from r1tui.runs.events import StageCancelled

log = logging.getLogger(__name__)

_requested = threading.Event()
_deferred_depth = 0
_signal_name: str | None = None


def requested() -> bool:
    """True once the run was asked to stop."""
    return _requested.is_set()


def request(reason: str = "requested") -> None:
    global _signal_name
    _signal_name = _signal_name or reason
    _requested.set()


def reason() -> str | None:
    return _signal_name if _requested.is_set() else None


def clear() -> None:
    global _signal_name
    _requested.clear()
    _signal_name = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside this block a first signal only sets the flag; the code polls ``requested()``."""
    global _deferred_depth
    _deferred_depth += 1
    try:
        yield
    finally:
        _deferred_depth -= 1


def raise_if_requested() -> None:
    if _requested.is_set():
        raise StageCancelled(f"cancelled ({_signal_name})")


def _handler(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    already = _requested.is_set()
    request(name)
    log.warning("received %s: %s", name, "stopping now" if already or not _deferred_depth else
                "stopping at the next safe point (training saves a checkpoint first)")
    if already or not _deferred_depth:
        raise StageCancelled(f"cancelled ({name})")


def install(ignore_hangup: bool = True) -> dict[int, object]:
    """Route SIGTERM and SIGINT to the cancel request; ignore SIGHUP in a detached run.

    Returns the handlers it replaced (for ``restore``). Only the main thread may install
    handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _handler),
                signal.SIGINT: signal.signal(signal.SIGINT, _handler)}
    if ignore_hangup and hasattr(signal, "SIGHUP"):
        # A closed SSH session or terminal must never stop a detached run.
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return previous


def restore(previous: dict[int, object]) -> None:
    """Put back the handlers ``install`` replaced (a foreground run inside a longer process)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in previous.items():
        if handler is not None:
            signal.signal(signum, handler)

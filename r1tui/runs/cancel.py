"""Cancelling a run cleanly: SIGTERM (``r1tui cancel``) or Ctrl-C asks the pipeline to stop.

The signal handler only records the request. Where stopping mid-operation would lose
work (a training step), the code runs inside ``deferred()`` and polls
``requested()`` at a safe point (the training callback saves a checkpoint, then
stops). Everywhere else the handler raises ``StageCancelled`` at once, which the
``stage()`` helper records as a cancelled stage. A second signal while deferred
stops at once.

A run spanning several machines is asked through its folder instead: ``r1tui cancel``
on a machine other than the lock holder's writes ``<run>/cancel-request`` naming the
holder's tenure (its ``since``), and every rank of the pipeline, on every machine, runs
a ``RequestWatcher`` that sends SIGTERM to its own process when a request names the
current holder, so the path above does the rest. A request naming an earlier holder is
never honoured: a later attempt of the run is never stopped by what an earlier one left.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from r1tui.runs.events import StageCancelled
from r1tui.runs.files import write_text_atomic
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import Holder, recorded, this_host

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


# ---------------------------------------------------------------- asking through the run folder

REQUEST_POLL_S = 1.0  # how often each rank looks (one stat of the request file)
_WATCHING_WRITERS = ("r1tui pipeline", "r1tui run")  # the lock records of a pipeline and its launcher


def watches_requests(who: Holder) -> bool:
    """Does this lock holder watch the run folder for cancel requests? The pipeline does
    (every rank on every machine); a CLI export / eval / push does not (signal those)."""
    return who.what.startswith(_WATCHING_WRITERS)


@dataclass(frozen=True)
class CancelRequest:
    """``<run>/cancel-request``: stop the lock holder of one tenure (``since``, ``host``)."""

    since: float
    pid: int | None
    host: str | None
    asked_by: str
    asked_at: float

    def names(self, who: Holder | None) -> bool:
        """Is this request for ``who`` (the lock's current record)? ``since`` is one tenure of
        the lock; a later attempt of the run took it at another instant."""
        return who is not None and who.since == self.since and who.host == self.host

    def to_dict(self) -> dict:
        return {"for": {"since": self.since, "pid": self.pid, "host": self.host},
                "asked_by": self.asked_by, "asked_at": self.asked_at}


def ask(layout: RunLayout, who: Holder) -> CancelRequest:
    """Write the request for ``who`` (atomically: a watcher reads the old file or the new)."""
    if who.since is None:
        raise ValueError("a cancel request needs the holder's since")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    request = CancelRequest(since=who.since, pid=who.pid, host=who.host,
                            asked_by=f"{user}@{this_host()} pid {os.getpid()}", asked_at=time.time())
    write_text_atomic(layout.cancel_request, json.dumps(request.to_dict()) + "\n")
    return request


def _parse_request(raw: bytes) -> CancelRequest | None:
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
        target = data["for"]
        since = target["since"]
        if not isinstance(since, (int, float)) or isinstance(since, bool):
            return None
        pid, host = target.get("pid"), target.get("host")
        return CancelRequest(since=since, pid=pid if isinstance(pid, int) else None,
                             host=host if isinstance(host, str) else None,
                             asked_by=str(data.get("asked_by") or "?"), asked_at=float(data.get("asked_at") or 0))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def read_request(layout: RunLayout) -> CancelRequest | None:
    """The pending request, or None (none, or unreadable)."""
    try:
        return _parse_request(layout.cancel_request.read_bytes())
    except OSError:
        return None


def clear_request(layout: RunLayout, keep: Holder | None = None) -> None:
    """Remove the request, unless it names ``keep`` (the holder that is about to watch)."""
    if keep is not None:
        request = read_request(layout)
        if request is not None and request.names(keep):
            return
    with contextlib.suppress(OSError):
        layout.cancel_request.unlink(missing_ok=True)


class RequestWatcher(threading.Thread):
    """Polls ``<run>/cancel-request`` and, once a request names the lock's current holder,
    sends SIGTERM to this process: the handler above does the rest (training saves a
    checkpoint, and under DDP/FSDP the flag is all-reduced so every rank stops at the same
    step). At most one signal (a second would stop at once, skipping the checkpoint), none
    when the run was already asked to stop, and none once ``stop`` returned or when this
    process's SIGTERM handler is not ours (a signal would then kill it).

    ``skip_present``: ignore the request already there when the watcher starts. Ranks other
    than rank 0 use it: they may start before rank 0 has taken the lock, while a holder
    killed with -9 still has its record in the lock file and may have left a request
    naming it. Rank 0 clears such a request before it starts watching, and honours any
    request naming it (one rank that stops stops them all in training)."""

    def __init__(self, layout: RunLayout, interval: float = REQUEST_POLL_S, skip_present: bool = False):
        super().__init__(name="r1tui-cancel-request", daemon=True)
        self.layout, self.interval = layout, interval
        self._halt = threading.Event()
        self._sending = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._skip: bytes | None = None
        if skip_present:
            with contextlib.suppress(OSError):
                self._skip = layout.cancel_request.read_bytes()
        self.sent = False

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                if self.check():
                    return
            except Exception:  # noqa: BLE001 - a watcher must never end the run
                log.exception("watching %s for a cancel request", self.layout.cancel_request)

    def check(self) -> bool:
        """One look; True once this process was asked to stop (by the request or otherwise)."""
        if requested():
            return True  # already stopping: a signal now would skip the checkpoint
        try:
            st = os.stat(self.layout.cancel_request)
        except OSError:
            self._seen = None
            return False
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._seen:
            return False  # looked at already and nothing to do
        try:
            raw = self.layout.cancel_request.read_bytes()
        except OSError:
            return False
        if self._skip is not None and raw == self._skip:
            self._seen = key
            return False
        request = _parse_request(raw)
        if request is None:
            self._seen = key
            return False
        if not request.names(recorded(self.layout)):
            return False  # for an earlier holder (looked at again: a lock record read over NFS may lag)
        with self._sending:
            if self._halt.is_set() or requested():
                return True
            if signal.getsignal(signal.SIGTERM) is not _handler:
                log.warning("a cancel request for this run was found, but this process does not handle SIGTERM")
                return True
            log.warning("cancel requested through the run folder by %s: stopping this rank", request.asked_by)
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
            self._halt.set()
        return True

    def stop(self) -> None:
        """No signal is sent once this returns."""
        with self._sending:
            self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2.0)

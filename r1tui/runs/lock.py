"""The writers' lock: at most one process writes a run at a time.

Every writer of a run (the pipeline, a resume, ``r1tui export``, ``eval``, ``push``,
``parity``) holds an exclusive ``flock`` on ``<run>/lock`` while it writes. The lock
belongs to the operating system, not to a pid file: a writer killed with -9 releases
it at once, and a pid reused by another process never looks like a live writer. The
file also records who holds it (pid, host, what, since) for the one-line refusal a second
writer gets; the file itself is never deleted (deleting lock files races). ``since`` names
one tenure of the lock: a cancel request written through the run folder
(``r1tui.runs.cancel``) names it, so it can never stop a later writer of the run.

Watchers ask ``holder(layout)`` (a non-blocking shared lock taken and dropped), which
is how ``r1tui runs`` and the dashboard tell a live stage from one whose writer died.
A writer retries for a moment before giving up, so such a probe can never make a
writer fail by chance.

A detached run is started under the lock: the launching command takes it, passes the
open file to the pipeline process (``--lock-fd``) and lets go of its own copy, so there
is no instant in which a second ``r1tui run --resume`` could slip in.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from r1tui.errors import R1Error
from r1tui.runs.files import remove_stale_temps
from r1tui.runs.layout import RunLayout

ACQUIRE_TIMEOUT_S = 0.5  # longer than any probe holds its shared lock
_held: dict[Path, RunLock] = {}  # locks this process holds, by file: re-entrant within a process


class RunBusy(R1Error):
    """Another process is writing the run."""


def busy(layout: RunLayout, who: str) -> RunBusy:
    """The one line every refused writer gets."""
    run = layout.run_id
    return RunBusy(f"run {run} is busy: {who} is writing it; wait for it to end or stop it with `r1tui cancel {run}`")


def this_host() -> str:
    """The name a lock record gives the machine its writer runs on."""
    return socket.gethostname()


@dataclass(frozen=True)
class Holder:
    pid: int | None
    what: str
    since: float | None
    host: str | None = None  # None: a record written before hosts were recorded

    @property
    def elsewhere(self) -> bool:
        """The writer runs on another machine (its pid means nothing here)."""
        return self.host is not None and self.host != this_host()

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since)) if self.since else "?"
        pid = f"pid {self.pid}" if self.pid else "another process"
        where = f" on {self.host}" if self.elsewhere else ""
        return f"{pid}{where} ({self.what}, since {when})"


def _parse_holder(raw: bytes) -> Holder:
    try:
        text = raw.decode("utf-8", errors="replace")
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    pid, since, host = data.get("pid"), data.get("since"), data.get("host")
    return Holder(pid if isinstance(pid, int) else None, str(data.get("what") or "a writer"),
                  since if isinstance(since, (int, float)) else None, host if isinstance(host, str) else None)


def _read_holder(fd: int) -> Holder:
    try:
        return _parse_holder(os.pread(fd, 4096, 0))
    except OSError:
        return _parse_holder(b"")


def recorded(layout: RunLayout) -> Holder | None:
    """The holder the lock file names, read without taking any lock (any rank on any
    machine can). Only a record: a writer killed with -9 leaves its own behind, so this
    says who holds the run only while ``holder`` says somebody does (or to a process that
    knows the lock is held). None: no record (nobody holds it, or no lock file)."""
    try:
        raw = layout.lock.read_bytes()[:4096]
    except OSError:
        return None
    who = _parse_holder(raw)
    return who if who.pid is not None and who.since is not None else None


def holder(layout: RunLayout) -> Holder | None:
    """Who writes the run now, or None when nobody does (or the run has no lock file yet)."""
    held = _held.get(layout.lock.resolve())
    if held is not None:
        return Holder(os.getpid(), held.what, held.since, this_host())
    try:
        fd = os.open(layout.lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_holder(fd)
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def has_lock_file(layout: RunLayout) -> bool:
    """Runs made before the lock existed have none: their liveness comes from the pid file."""
    return layout.lock.is_file()


class RunLock:
    """``with RunLock(layout, "r1tui export"):`` — exclusive write access to one run.

    Raises ``RunBusy`` (one line naming the holder) when another process holds it.
    Re-entrant within one process: a stage run by the pipeline does not lock again.
    """

    def __init__(self, layout: RunLayout, what: str, timeout_s: float = ACQUIRE_TIMEOUT_S):
        self.layout, self.what, self.timeout_s = layout, what, timeout_s
        self.fd: int | None = None
        self.since: float | None = None
        self._outer: RunLock | None = None

    def acquire(self) -> RunLock:
        key = self.layout.lock.resolve()
        if key in _held:  # this process already writes the run
            self._outer = _held[key]
            return self
        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    who = _read_holder(fd)
                    for _ in range(10):  # a holder that has just won has not yet written who it is
                        if who.pid is not None:
                            break
                        time.sleep(0.02)
                        who = _read_holder(fd)
                    os.close(fd)
                    raise busy(self.layout, who.describe()) from None
                time.sleep(0.02)
        self.fd, self.since = fd, time.time()
        self.record(os.getpid())
        _held[key] = self
        for folder in self.layout.writer_folders():
            remove_stale_temps(folder)  # what a killed writer left half-made: nobody else writes now
        with contextlib.suppress(OSError):  # a cancel request names a former holder: never this one
            self.layout.cancel_request.unlink(missing_ok=True)
        return self

    def record(self, pid: int) -> None:
        """Write who holds the lock (the pipeline's pid once it has taken over)."""
        if self.fd is None:
            return
        payload = json.dumps({"pid": pid, "host": this_host(), "what": self.what,
                              "since": self.since}).encode() + b"\n"
        with contextlib.suppress(OSError):
            # written over the old record, then cut to length: the file is never empty, so a
            # refused writer reading it at that instant still finds a pid (or retries a torn one)
            os.pwrite(self.fd, payload, 0)
            os.ftruncate(self.fd, len(payload))

    def hand_over(self) -> int:
        """The descriptor to pass to a child process that keeps the lock after we let go
        (``release`` then closes our copy without unlocking the shared open file)."""
        if self.fd is None:
            raise RuntimeError("hand_over needs an acquired lock")
        return self.fd

    @classmethod
    def adopt(cls, layout: RunLayout, fd: int, what: str) -> RunLock:
        """Take over a lock a parent process acquired and passed down as ``fd``."""
        lock = cls(layout, what)
        try:
            passed, ours = os.fstat(fd), os.stat(layout.lock)
        except OSError:
            return lock  # not inherited (a worker under accelerate launch): the launcher holds it
        if (passed.st_dev, passed.st_ino) != (ours.st_dev, ours.st_ino):
            return lock  # that number is some other file in this process: never touch it
        os.set_inheritable(fd, False)
        # the same tenure as the launcher's: a cancel request naming it stays valid
        lock.fd, lock.since = fd, _read_holder(fd).since or time.time()
        lock.record(os.getpid())
        _held[layout.lock.resolve()] = lock
        return lock

    def release(self, unlock: bool = True) -> None:
        """Let go. ``unlock=False`` only closes our descriptor: a child that inherited the
        same open file keeps the lock."""
        if self._outer is not None:
            self._outer = None
            return
        if self.fd is None:
            return
        _held.pop(self.layout.lock.resolve(), None)
        with contextlib.suppress(OSError):
            if unlock:
                os.ftruncate(self.fd, 0)  # nobody holds it: no stale name left in the file
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

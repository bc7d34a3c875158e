"""Cancelling through the run folder, with real processes: a lock holder on another machine
is asked with a cancel-request file (never signalled: its pid means nothing here), and a
request naming an earlier holder of the lock never stops a later one.

"Another machine" is a real process holding the lock whose ``socket.gethostname`` names
another host; its own watcher (``r1tui.runs.cancel.RequestWatcher``) then stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1tui.runs import cancel
from r1tui.runs.events import EventWriter
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import Holder, RunLock, recorded, this_host

REPO = Path(__file__).resolve().parents[2]

HOLDER_ON_ANOTHER_HOST = """
import socket, sys, time
socket.gethostname = lambda: "node-b.example"  # this process plays a rank on another machine
from pathlib import Path
from r1tui.runs import cancel
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock
layout = RunLayout(Path(sys.argv[1]))
RunLock(layout, "r1tui pipeline").acquire()
cancel.install()  # a signal from anybody now raises StageCancelled: this process would die
print("ready", flush=True)
sys.stdin.readline()  # the test says when to start watching
watcher = cancel.RequestWatcher(layout, interval=0.05)
watcher.start()
with cancel.deferred():
    while not cancel.requested():
        time.sleep(0.02)
print("stopping", cancel.reason(), watcher.sent, flush=True)
"""

WATCHING_RANK = """
import sys, time
from pathlib import Path
from r1tui.runs import cancel
from r1tui.runs.layout import RunLayout
layout = RunLayout(Path(sys.argv[1]))
cancel.install()
watcher = cancel.RequestWatcher(layout, interval=0.05, skip_present=sys.argv[2] == "skip")
watcher.start()
print("watching", flush=True)
with cancel.deferred():
    while not cancel.requested():
        time.sleep(0.02)
print("stopping", cancel.reason(), watcher.sent, flush=True)
"""


def _run_folder(tmp_path: Path, name: str) -> RunLayout:
    layout = RunLayout(tmp_path / name)
    layout.root.mkdir()
    layout.config.write_text("", encoding="utf-8")
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=layout.run_id, stages=["train"], pid=1, heartbeat_s=1.0)
        writer.emit("heartbeat")
    return layout


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def _r1tui(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1tui", *args], capture_output=True, text=True, timeout=120,
                          env=env or _env(), cwd=REPO)


def _stays_quiet(proc: subprocess.Popen, seconds: float) -> None:
    """Still running, and said nothing (no signal reached it) for ``seconds``."""
    time.sleep(seconds)
    assert proc.poll() is None, proc.communicate(timeout=5)


def test_a_holder_on_another_host_is_asked_through_the_folder_never_signalled(tmp_path):
    layout = _run_folder(tmp_path, "20261201-000000-node")
    holder_proc = subprocess.Popen([sys.executable, "-c", HOLDER_ON_ANOTHER_HOST, str(layout.root)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=_env(), start_new_session=True)
    try:
        assert holder_proc.stdout.readline().strip() == "ready", holder_proc.stderr.read()
        record = recorded(layout)
        assert record.host == "node-b.example" and record.pid == holder_proc.pid and record.elsewhere
        from r1tui.dashboard.monitor import writer_pid
        assert writer_pid(layout) is None  # the dashboard samples no process tree for another machine's pid
        runs = str(layout.root.parent)

        plan = _r1tui("cancel", layout.run_id, "--runs-dir", runs, env=dict(_env(), DRY_RUN="1", COLUMNS="300"))
        words = " ".join(plan.stdout.split())
        assert plan.returncode == 0 and "through the run folder" in words and "node-b.example" in words, plan
        assert "up to about a minute" in words and not layout.cancel_request.exists()

        asked = _r1tui("cancel", layout.run_id, "--runs-dir", runs, "--wait", "0", env=dict(_env(), COLUMNS="300"))
        words = " ".join(asked.stdout.split())
        assert asked.returncode == 0 and "through its run folder" in words and "NFS" in words, asked
        request = json.loads(layout.cancel_request.read_text())
        assert request["for"] == {"since": record.since, "pid": holder_proc.pid, "host": "node-b.example"}
        assert f"@{this_host()} pid " in request["asked_by"] and time.time() - request["asked_at"] < 60
        _stays_quiet(holder_proc, 0.5)  # no SIGTERM was sent: its pid is another machine's

        holder_proc.stdin.write("go\n")  # its own watcher finds the request naming it
        holder_proc.stdin.flush()
        out, err = holder_proc.communicate(timeout=30)
        assert out.split() == ["stopping", "SIGTERM", "True"] and holder_proc.returncode == 0, err
    finally:
        holder_proc.kill()
        holder_proc.wait()


def test_a_request_for_an_earlier_holder_never_stops_a_later_one(tmp_path):
    """A holder killed with -9 leaves its lock record and perhaps a request naming it. A
    rank that starts before rank 0 has taken the lock again ignores that pair; once a new
    holder has the lock, a request naming the old one is ignored by every watcher; a
    request naming the new holder stops the rank."""
    from r1tui.pipeline.launch import cancel_run

    layout = _run_folder(tmp_path, "20261201-000000-old")
    killed = Holder(pid=999_999, what="r1tui pipeline", since=1_000.0, host=this_host())
    layout.lock.write_text(json.dumps({"pid": killed.pid, "host": killed.host, "what": killed.what,
                                       "since": killed.since}) + "\n")
    cancel.ask(layout, killed)

    def rank(mode: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", WATCHING_RANK, str(layout.root), mode], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
        assert proc.stdout.readline().strip() == "watching", proc.stderr.read()
        return proc

    ranks = [rank("skip")]  # a rank other than 0, started before rank 0 took the lock again
    try:
        _stays_quiet(ranks[0], 1.0)  # the leftover pair is not for it
        with RunLock(layout, "r1tui pipeline") as lock:  # the next attempt takes the lock
            assert not layout.cancel_request.exists()  # taking it removed what was left
            ranks.append(rank("all"))  # rank 0 honours any request naming the current holder
            cancel.ask(layout, killed)  # a late request for the old holder names nobody now
            for proc in ranks:
                _stays_quiet(proc, 0.5)
            cancel_run(layout, via_file=True)  # for this holder: every rank stops itself
            assert cancel.read_request(layout).since == lock.since
            for proc in ranks:
                out, err = proc.communicate(timeout=30)
                assert out.split() == ["stopping", "SIGTERM", "True"] and proc.returncode == 0, err
    finally:
        for proc in ranks:
            proc.kill()
            proc.wait()


def test_via_file_is_refused_for_a_writer_that_does_not_watch(tmp_path):
    """Only the pipeline watches the folder: a CLI export holding the run is signalled on its
    own machine, and asked through the folder from nowhere (one line saying so)."""
    from r1tui.errors import R1Error
    from r1tui.pipeline.launch import cancel_plan

    layout = _run_folder(tmp_path, "20261201-000000-expo")
    with RunLock(layout, "r1tui export"):
        assert cancel_plan(layout).how == "signal"
        from r1tui.dashboard.monitor import writer_pid
        assert writer_pid(layout) == os.getpid()  # on this machine: its pid is the writer's
        with pytest.raises(R1Error, match="does not watch the run folder"):
            cancel_plan(layout, via_file=True)
    assert not layout.cancel_request.exists()

"""Finding runs, tailing a log by byte offset, and telling a live process from a dead one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from r1tui.dashboard.prepared import length_histogram
from r1tui.dashboard.source import EventTail, find_runs, pid_alive, process_alive, resolve_run
from r1tui.errors import R1Error
from r1tui.runs.events import EventWriter


def test_find_runs_newest_first_and_resolve(runs_dir, new_run):
    old = new_run(run_id="20250101-000000-aaaa")
    young = runs_dir / "20260101-000000-bbbb"
    young.mkdir()
    with EventWriter(young / "events.jsonl") as writer:  # starts now: newer than the recorded run
        writer.emit("run_started", run_id=young.name, pid=1)
    (runs_dir / "not-a-run").mkdir()
    assert [ref.run_id for ref in find_runs(runs_dir)] == [young.name, old.run_id]
    assert resolve_run(None, runs_dir).run_id == young.name
    assert resolve_run(old.run_id, runs_dir).run_dir == old.run_dir
    assert resolve_run(str(old.run_dir), runs_dir).run_id == old.run_id
    with pytest.raises(R1Error, match="no run 'nope'.*newest: 20260101"):
        resolve_run("nope", runs_dir)


def test_no_runs_means_none(tmp_path):
    assert resolve_run(None, tmp_path / "missing") is None
    assert find_runs(tmp_path) == []


def test_tail_reads_whole_lines_and_continues_from_its_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path, chunk_bytes=1 << 20)
    assert tail.read() == []  # no file yet
    line = json.dumps({"v": 1, "seq": 1, "ts": 1.0, "type": "log", "stage": None, "data": {"message": "a"}})
    path.write_text(line + "\n" + line[:20])  # a writer caught mid-line
    assert [e.data["message"] for e in tail.read()] == ["a"]
    assert tail.offset == len(line) + 1 and not tail.at_end()
    with open(path, "a") as f:
        f.write(line[20:] + "\n")
    assert [e.seq for e in tail.read()] == [1]
    assert tail.at_end() and tail.read() == []


def test_tail_replays_a_long_log_in_chunks(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        for step in range(3000):
            writer.emit("metric", stage="train", step=step, loss=1.0)
    tail = EventTail(path, chunk_bytes=16_384)
    batches = []
    while not tail.at_end():
        batches.append(len(tail.read()))
    assert sum(batches) == 3000 and len(batches) > 5 and max(batches) < 3000


def test_pid_liveness_and_zombies(tmp_path):
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not pid_alive(child.pid)
    (tmp_path / "pid").write_text(f"{child.pid}\n")
    assert process_alive(tmp_path) is False
    child.wait()
    assert not pid_alive(child.pid)
    (tmp_path / "pid").write_text(f"{os.getpid()}\n")
    assert process_alive(tmp_path) is True
    (tmp_path / "pid").unlink()
    assert process_alive(tmp_path) is None
    assert process_alive(tmp_path, pid_from_events=os.getpid()) is True


def test_length_histogram_bins_against_max_length():
    rows = length_histogram([1, 64, 65, 128, 512, 513, 900], max_length=512, bins=8)
    assert rows[0] == (1, 64, 2) and rows[1] == (65, 128, 2) and rows[7] == (449, 512, 1)
    assert rows[-1] == (513, 900, 2)  # longer than the max: their own bin

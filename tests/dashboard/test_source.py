"""Finding runs, tailing a log by byte offset, and the GGUFs the REPL offers."""

from __future__ import annotations

import json
import shutil

import pytest

from r1tui.dashboard.prepared import length_histogram
from r1tui.dashboard.source import (
    EventTail,
    RunRef,
    find_ggufs,
    find_runs,
    load_run_config,
    open_run,
)
from r1tui.errors import R1Error
from r1tui.runs.events import EventWriter
from r1tui.runs.layout import RunLayout, resolve_run


def test_find_runs_newest_first_and_open(runs_dir, new_run):
    old = new_run(run_id="20250101-000000-aaaa")
    young = RunLayout(runs_dir / "20260101-000000-bbbb")
    young.root.mkdir()
    with EventWriter(young.events) as writer:  # starts now: newer than the recorded run
        writer.emit("run_started", run_id=young.run_id, pid=1)
    (runs_dir / "not-a-run").mkdir()
    assert [ref.run_id for ref in find_runs(runs_dir)] == [young.run_id, old.run_id]
    assert open_run(runs_dir).run_id == young.run_id
    assert open_run(runs_dir, old.run_id).run_dir == old.run_dir
    assert open_run(runs_dir, str(old.run_dir)).run_id == old.run_id
    for ref in (None, "latest", "2025", str(old.run_dir)):  # the one resolver decides
        assert open_run(runs_dir, ref).layout == resolve_run(runs_dir, ref)
    with pytest.raises(R1Error, match="no run 'nope'.*newest: 20260101"):
        open_run(runs_dir, "nope")


def test_no_runs_means_none(tmp_path):
    assert open_run(tmp_path / "missing") is None
    assert find_runs(tmp_path) == []
    with pytest.raises(R1Error, match="no runs in"):  # a named run that is not there is an error
        open_run(tmp_path / "missing", "20260101")


def test_the_run_config_is_its_frozen_copy_else_the_fallback(new_run, tmp_path):
    run = new_run(results=False)
    assert load_run_config(run.layout).source_path == run.layout.config
    bare = RunRef.at(tmp_path / "bare")  # a run folder with a log but no config (older runs)
    bare.run_dir.mkdir()
    fallback = load_run_config(bare.layout, run.layout.config)
    assert fallback.source_path == run.layout.config
    assert load_run_config(None, run.layout.config).source_path == run.layout.config


def test_the_runs_own_ggufs_come_first_configured_quant_first(runs_dir, new_run):
    own, other = new_run(results=False), new_run(run_id="20200101-000000-othr", results=False)
    for run, quants in ((own, ("F16", "Q8_0", "Q4_K_M")), (other, ("Q4_K_M",))):
        run.layout.gguf_dir.mkdir()
        for quant in quants:
            run.layout.gguf("m-r1", quant).write_bytes(b"GGUF")
    (own.layout.gguf_dir / ".m-r1-Q6_K.gguf").write_bytes(b"half-written")  # a temporary file: never offered
    found = find_ggufs(runs_dir, own.layout, ["Q8_0"])
    assert [p.name for p in found] == ["m-r1-Q8_0.gguf", "m-r1-Q4_K_M.gguf", "m-r1-F16.gguf", "m-r1-Q4_K_M.gguf"]
    assert found[0] == own.layout.choose_gguf(["Q8_0"]) and found[-1].parent == other.layout.gguf_dir
    assert find_ggufs(runs_dir, own.layout)[0] == own.layout.choose_gguf()
    assert find_ggufs(runs_dir, None) == [*other.layout.gguf_files(), *own.layout.gguf_files()]
    shutil.rmtree(own.layout.gguf_dir)
    assert find_ggufs(runs_dir, own.layout) == other.layout.gguf_files()


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


def test_length_histogram_bins_against_max_length():
    rows = length_histogram([1, 64, 65, 128, 512, 513, 900], max_length=512, bins=8)
    assert rows[0] == (1, 64, 2) and rows[1] == (65, 128, 2) and rows[7] == (449, 512, 1)
    assert rows[-1] == (513, 900, 2)  # longer than the max: their own bin

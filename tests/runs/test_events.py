"""The event log contract: one JSON object per line, tailed by byte offset."""

from __future__ import annotations

import json

import pytest

from r1tui.runs.events import (
    EVENT_VERSION,
    EventReader,
    EventWriter,
    StageCancelled,
    read_events,
    stage,
)


def test_round_trip_with_envelope_and_sequence(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("run_started", run_id="r1", pid=42)
        writer.emit("metric", stage="train", step=1, loss=float("nan"), grad_norm=float("inf"))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == {"v", "seq", "ts", "type", "stage", "data"} and first["v"] == EVENT_VERSION
    events = read_events(path)
    assert [e.seq for e in events] == [1, 2]
    assert events[1].data == {"step": 1, "loss": None, "grad_norm": None}  # JSON has no NaN


def test_unknown_type_is_refused(tmp_path):
    with EventWriter(tmp_path / "e.jsonl") as writer, pytest.raises(ValueError, match="unknown event type"):
        writer.emit("metrics")


def test_reader_tails_by_offset_and_waits_for_a_partial_line(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    reader = EventReader(path)
    assert reader.read_new() == []
    writer.emit("heartbeat")
    assert [e.type for e in reader.read_new()] == ["heartbeat"]
    with open(path, "a") as f:
        f.write('{"v": 1, "seq": 9, "type": "log", "data": {"mess')  # a writer mid-line
    offset = reader.offset
    assert reader.read_new() == [] and reader.offset == offset
    with open(path, "a") as f:
        f.write('age": "hi"}}\n')
    assert [e.data["message"] for e in reader.read_new()] == ["hi"]
    writer.close()


def test_a_line_longer_than_the_read_chunk_does_not_stall_the_tail(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("log", message="x" * 3000)  # one event of ~3 kB
        writer.emit("heartbeat")
    reader = EventReader(path)
    first = reader.read_new(max_bytes=256)  # reads on to the end of the long line (and may take more)
    assert [e.type for e in first + reader.read_new(max_bytes=256)] == ["log", "heartbeat"]
    assert first[0].data["message"] == "x" * 3000 and reader.read_new(max_bytes=256) == []
    with open(path, "a") as f:
        f.write('{"v": 1, "seq": 9, "type": "log", "data": {"message": "' + "y" * 1000)  # long, still being written
    offset = reader.offset
    assert reader.read_new(max_bytes=256) == [] and reader.offset == offset


def test_a_torn_last_line_is_closed_by_the_next_writer(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("run_started", run_id="a")
    with open(path, "a") as f:
        f.write('{"v": 1, "seq": 2, "type": "metr')  # killed mid-write
    with EventWriter(path) as writer:  # the resumed run
        writer.emit("run_started", run_id="b")
    reader = EventReader(path)
    events = reader.read_new()
    assert [e.data.get("run_id") for e in events if e.type == "run_started"] == ["a", "b"]
    assert reader.bad_lines == 1
    assert events[-1].seq == 2  # numbering continues after the last complete event


def test_stage_context_reports_finished_failed_and_cancelled(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        with stage(writer, "prepare", source="synthetic") as outputs:
            outputs["examples"] = 3
        with pytest.raises(RuntimeError), stage(writer, "train"):
            raise RuntimeError("out of memory\nsecond line")
        with pytest.raises(StageCancelled), stage(writer, "quantize"):
            raise StageCancelled()
    finished = {e.stage: e.data for e in read_events(path) if e.type == "stage_finished"}
    assert finished["prepare"]["status"] == "finished" and finished["prepare"]["outputs"] == {"examples": 3}
    assert finished["train"]["status"] == "failed" and finished["quantize"]["status"] == "cancelled"
    errors = [e.data for e in read_events(path) if e.type == "error"]
    assert errors == [{"message": "out of memory", "kind": "RuntimeError"}]

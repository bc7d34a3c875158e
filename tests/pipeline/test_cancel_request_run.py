"""A real detached run of the tiny model cancelled through its folder (`r1tui cancel
--via-file`, the path a rank on another machine gets), then resumed with the request of
the cancelled attempt planted again: the resume ignores it and finishes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from r1tui.runs import cancel
from r1tui.runs.events import EventReader, read_events
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import holder, recorded
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow

MAX_STEPS = 30


def _events(run_dir: Path, kind: str) -> list[dict]:
    return [e.data for e in read_events(run_dir / "events.jsonl") if e.type == kind]


def test_a_run_cancelled_through_its_folder_checkpoints_and_its_resume_ignores_the_old_request(
        tmp_path, prepared_dataset, runs_helpers):
    h = runs_helpers
    runs = tmp_path / "runs"
    config = h.write_config(tmp_path, runs, model={"max_seq_length": 128},
                            train={"max_steps": MAX_STEPS, "save_steps": 1000})
    info = json.loads(h.r1tui("train", "--config", str(config), "--dataset", str(prepared_dataset), "--json").stdout)
    run_dir = Path(info["run_dir"])
    layout = RunLayout(run_dir)
    reader = EventReader(layout.events)
    steps: list[int] = []

    def trained_a_step():
        steps.extend(e.data["step"] for e in reader.read_new() if e.type == "metric")
        assert run_status(run_dir).status == "running", run_status(run_dir)
        return bool(steps)

    h.wait_for(trained_a_step, timeout=300, poll=0.05, what="the first step")
    first = recorded(layout)  # the holder the request will name
    assert first is not None and first.pid == info["pid"]

    out = h.r1tui("cancel", info["run_id"], "--runs-dir", str(runs), "--via-file", "--wait", "120", "--json",
                  timeout=180)
    assert json.loads(out.stdout)["status"] == "cancelled", (run_dir / "pipeline.log").read_text()[-3000:]
    stopped_at = max(m["step"] for m in _events(run_dir, "metric"))
    assert stopped_at < MAX_STEPS, "the run ended before the request reached it"
    assert [c["step"] for c in _events(run_dir, "artifact") if c["kind"] == "checkpoint"] == [stopped_at]
    assert (run_dir / "checkpoints" / f"checkpoint-{stopped_at}" / "optimizer.pt").is_file()
    assert _events(run_dir, "run_finished") == [{"status": "cancelled", "reason": "SIGTERM"}]
    assert "cancel requested through the run folder" in (run_dir / "pipeline.log").read_text()
    assert not layout.cancel_request.exists()  # rank 0 removed it as the run ended

    # The resume: plant the cancelled attempt's request again once the new attempt watches.
    h.r1tui("run", "--resume", info["run_id"], "--runs-dir", str(runs), "--json")
    h.wait_for(lambda: len(_events(run_dir, "run_started")) == 2, timeout=120, what="the resume to start")
    current = holder(layout)
    assert current is not None and current.since != first.since
    cancel.ask(layout, first)
    planted = time.monotonic()
    h.wait_for(lambda: len(_events(run_dir, "run_finished")) == 2 and holder(layout) is None, timeout=400,
               poll=0.2, what="the resume to end")
    assert time.monotonic() - planted > 2 * cancel.REQUEST_POLL_S  # its watchers looked at the request
    assert _events(run_dir, "run_finished")[-1] == {"status": "finished"}, \
        (run_dir / "pipeline.log").read_text()[-3000:]
    assert [m["step"] for m in _events(run_dir, "metric")] == list(range(1, MAX_STEPS + 1))
    assert (run_dir / "pipeline.log").read_text().count("cancel requested through the run folder") == 1
    assert not layout.cancel_request.exists()

"""Per-rank step times (issue 20, item 4): a slow rank stands out.

A real DDP run of the tiny model on two CPU processes (`r1tui train --processes 2`,
gloo) in which rank 1 is really slow: each rank is pinned to a core of its own and a
busy loop shares rank 1's core, so rank 1 gets about half a core (the test process waits
on that core too, leaving rank 0's alone). Its wall time per step
cannot differ from rank 0's (DDP's all-reduce keeps them in step); its own compute time
does. The run's ``ranks`` events say so, and the dashboard's Resources panel marks it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.source import RunRef
from r1tui.runs.events import read_events
from r1tui.runs.reducer import SLOW_RANK_RATIO, reduce
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow

STEPS = 40
LOGGING_STEPS = 5


def _rank_processes(run_dir: Path) -> dict[int, int]:
    """rank -> pid of the pipeline processes of ``run_dir`` (from /proc: their RANK)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "r1tui.pipeline" not in cmdline or str(run_dir) not in cmdline:
                continue
            environ = dict(item.split("=", 1) for item in
                           (entry / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in item)
        except OSError:
            continue
        if "RANK" in environ:
            found[int(environ["RANK"])] = int(entry.name)
    return found


def _pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` onto one CPU (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), {cpu})
        except OSError:
            pass  # a thread that just ended


@pytest.mark.anyio
async def test_a_rank_on_a_busy_core_stands_out_in_the_ranks_events_and_the_resources_panel(
        tmp_path, prepared_dataset, runs_helpers, make_app, settle, screen_text, wait_for):
    cpus = sorted(os.sched_getaffinity(0))
    assert len(cpus) >= 2, "this test needs two CPUs: one per rank"
    h = runs_helpers
    runs = tmp_path / "runs"
    config_path = h.write_config(tmp_path, runs, model={"max_seq_length": 128},
                                 train={"max_steps": STEPS, "save_steps": 1000, "logging_steps": LOGGING_STEPS})
    info = json.loads(h.r1tui("train", "--config", str(config_path), "--dataset", str(prepared_dataset),
                              "--processes", "2", "--json").stdout)
    run_dir = Path(info["run_dir"])
    ranks = h.wait_for(lambda: (found := _rank_processes(run_dir)) and len(found) == 2 and found,
                       timeout=120, what="the two ranks to start")
    # rank 0 gets a core to itself; rank 1 shares the other with a busy loop (and this test)
    _pin(ranks[0], cpus[0])
    _pin(ranks[1], cpus[1])
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpus[1]})
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # noqa: S603 - a busy loop
    try:
        h.wait_for(lambda: run_status(run_dir).status != "running", timeout=600, poll=0.5,
                   what="the DDP run to end")
    finally:
        hog.kill()
        hog.wait()
        os.sched_setaffinity(0, own)
    status = run_status(run_dir)
    assert status.status == "finished", (status, (run_dir / "pipeline.log").read_text()[-3000:])

    events = read_events(run_dir / "events.jsonl")
    windows = [e.data for e in events if e.type == "ranks"]
    # one per logging step, every rank in each, in rank order, from this machine
    assert [w["step"] for w in windows] == list(range(LOGGING_STEPS, STEPS + 1, LOGGING_STEPS))
    for window in windows:
        assert [r["rank"] for r in window["ranks"]] == [0, 1]
        assert {r["steps"] for r in window["ranks"]} == {LOGGING_STEPS}
        assert all(r["compute_s"] > 0 and r["data_s"] > 0 and r["tokens"] > 0 for r in window["ranks"])
        assert window["strategy"] == "ddp" and window["step_s"] > 0
    # the wall time per step is one figure for both; rank 1's own compute is about twice rank 0's
    ratios = [w["ranks"][1]["compute_s"] / w["ranks"][0]["compute_s"] for w in windows[1:]]
    assert sorted(ratios)[len(ratios) // 2] > 1.5, ratios
    # the same rows, split evenly: the tokens do not explain it
    tokens = [(w["ranks"][0]["tokens"], w["ranks"][1]["tokens"]) for w in windows]
    assert sum(t[1] for t in tokens) / sum(t[0] for t in tokens) == pytest.approx(1.0, abs=0.35), tokens

    state = reduce(events)
    assert state.rank_times.slow_ranks() == [1], state.rank_times
    assert state.rank_times.ratios()[1] >= SLOW_RANK_RATIO
    assert len(state.rank_times.history[1]) == len(windows)

    app = make_app(RunRef.at(run_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["resources"])
        await wait_for(pilot, lambda: "ranks at step" in screen_text(app), what="the ranks table")
        text = screen_text(app)
        rows = {line.split()[0]: line for line in text.splitlines()
                if line.strip() and line.split()[0] in ("0", "1") and "×" not in line}
        assert f"ranks at step {STEPS}" in text
        assert "slow" in rows["1"] and "slow" not in rows["0"], text
        assert "rank 1 (" in text and "the other ranks wait for it at every step" in text
        assert "hf ddp ×2" in text.splitlines()[0]  # the header: strategy and world size

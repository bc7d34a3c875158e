"""The one reducer (r1tui.runs.reducer), driven without a terminal: the recorded tiny run
and hand-made logs. (It folds the log for the CLI and the dashboard alike; the test that
both read a run the same way is tests/dashboard/test_agreement.py.)"""

from __future__ import annotations

from pathlib import Path

from r1tui.pipeline import registry
from r1tui.runs.events import Event, EventWriter, read_events
from r1tui.runs.reducer import HISTORY, RunState, reduce

RECORDED = Path(__file__).resolve().parents[1] / "dashboard" / "fixtures" / "tiny_run_events.jsonl"


def ev(type: str, stage: str | None = None, ts: float = 0.0, **data) -> Event:
    return Event(type=type, stage=stage, data=data, ts=ts)


def pipeline_state() -> RunState:
    return RunState(groups=registry.groups())


def test_recorded_run_folds_to_a_finished_pipeline():
    events = read_events(RECORDED)
    state = reduce(events, pipeline_state())
    assert state.events_seen == len(events)
    assert state.status == "finished"
    assert state.run_id == events[0].data["run_id"]
    # the recorded plan, its steps expanded: every stage but generate (the log predates it)
    planned = registry.expand(events[0].data["stages"])
    assert state.planned_stages == planned == [n for n in registry.stage_names() if n != "generate"]
    for name in planned:
        assert state.stage(name).status == "finished", name
        assert state.stage(name).duration_s is not None and state.stage(name).duration_s >= 0
    assert state.stage("push").status == "pending" and "push" not in state.stages  # never planned, never seen
    steps = [e.data["step"] for e in events if e.type == "metric"]
    assert list(state.series("loss").xs) == steps
    assert state.series("loss").last == [e.data["loss"] for e in events if e.type == "metric"][-1]
    assert [c["step"] for c in state.checkpoints] == [e.data["step"] for e in events
                                                      if e.type == "artifact" and e.data.get("kind") == "checkpoint"]
    assert state.stage("train").progress.fraction == 1.0
    assert state.gpu.available is False  # recorded on a machine without a GPU
    quant_artifacts = [e.data["quant"] for e in events if e.type == "artifact" and e.stage == "quantize"]
    assert quant_artifacts and all(state.quant_progress[q].fraction == 1.0 for q in quant_artifacts)
    assert state.elapsed(now=1e12) == events[-1].ts - events[0].ts
    assert state.current_stage == "eval" and state.attempt_stages == {n: "finished" for n in planned}
    assert state.stage("generate").status == "pending"  # registered, never planned by this log


def test_replay_in_any_batching_gives_the_same_state():
    events = read_events(RECORDED)
    whole = reduce(events, pipeline_state())
    chunked = pipeline_state()
    for start in range(0, len(events), 7):
        chunked.apply_all(events[start:start + 7])
    for attribute in ("status", "events_seen", "checkpoints", "last_metric", "artifacts", "planned_stages"):
        assert getattr(whole, attribute) == getattr(chunked, attribute)
    assert {n: s.status for n, s in whole.stages.items()} == {n: s.status for n, s in chunked.stages.items()}


def test_a_run_without_finish_event_is_crashed_once_its_process_is_gone():
    state = reduce([ev("run_started", ts=10, run_id="r", pid=123, stages=["prepare", "train"]),
                    ev("stage_started", "train", ts=11)])
    assert state.status == "running"
    state.set_process_alive(True)
    assert state.status == "running" and state.is_live
    state.set_process_alive(False)
    assert state.status == "crashed"
    assert state.stage_status("train") == "crashed"  # the stage that was running died with it
    assert state.stage_status("prepare") == "pending"
    assert state.elapsed(now=1e9) == 1.0  # frozen at the last event, not growing


def test_a_stage_whose_writer_died_after_the_run_finished_is_crashed():
    """A killed `r1tui export` on a finished run: the run stays finished, its merge crashed."""
    state = reduce([ev("run_started", ts=1, run_id="r", pid=1, stages=["train"]),
                    ev("stage_started", "train", ts=2), ev("stage_finished", "train", ts=3, status="finished"),
                    ev("run_finished", ts=4, status="finished"), ev("stage_started", "merge", ts=10)],
                   pipeline_state())
    assert state.status == "finished" and state.stage_status("merge") == "running"  # liveness not known yet
    state.set_process_alive(True, now=11)
    assert state.stage_status("merge") == "running"
    state.set_process_alive(False, now=12)
    assert state.status == "finished" and state.stage_status("merge") == "crashed"
    assert state.stage_status("train") == "finished"


def test_a_live_process_whose_log_went_silent_is_stuck():
    state = reduce([ev("run_started", ts=100.0, run_id="r", pid=1, heartbeat_s=10.0)])
    state.set_process_alive(True, now=130.0)
    assert state.status == "running"
    state.set_process_alive(True, now=100.0 + 61.0)
    assert state.status == "crashed" and state.stuck
    assert state.silence_s(161.0) == 61.0


def test_resume_starts_live_again_and_keeps_history():
    state = reduce([
        ev("run_started", ts=1, run_id="r", pid=1), ev("stage_started", "train", ts=2),
        ev("metric", "train", ts=3, step=1, loss=10.0), ev("error", "train", ts=3.5, message="boom"),
        ev("run_finished", ts=4, status="failed", error="boom"),
    ])
    assert state.status == "failed" and state.error == "boom"
    assert state.attempt_error == "boom" and state.finished_error == "boom"
    state.apply_all([ev("run_started", ts=5, run_id="r", pid=2), ev("stage_started", "train", ts=6),
                     ev("metric", "train", ts=7, step=2, loss=9.0)])
    assert state.status == "running"
    assert state.attempt_error is None and state.finished_error is None  # the new attempt has none yet
    assert state.attempt_stages == {"train": "running"}
    assert list(state.series("loss").ys) == [10.0, 9.0]
    assert state.started_ts == 1
    assert state.elapsed(now=10) == (4 - 1) + (10 - 5)  # both attempts; the gap between them is not run time


def test_elapsed_sums_the_attempts():
    """A run that crashed (log silent after ts 3), was resumed, cancelled, resumed again."""
    events = [ev("run_started", ts=1, run_id="r", pid=1), ev("metric", "train", ts=3, step=1, loss=9.0),
              ev("run_started", ts=10, run_id="r", pid=2), ev("run_finished", ts=14, status="cancelled"),
              ev("run_started", ts=100, run_id="r", pid=3), ev("heartbeat", ts=107)]
    state = reduce(events)
    assert state.elapsed(now=110) == 2 + 4 + 10
    state.apply(ev("run_finished", ts=108, status="finished"))
    assert state.elapsed(now=500) == 2 + 4 + 8


def test_histories_are_capped():
    state = RunState()
    state.apply_all(ev("metric", "train", ts=i, step=i, loss=float(i)) for i in range(HISTORY + 50))
    loss = state.series("loss")
    assert len(loss) == HISTORY
    assert loss.xs[0] == 50 and loss.last == HISTORY + 49
    state.apply_all(ev("gpu", ts=i, available=True, memory_used=i, memory_total=10) for i in range(HISTORY + 5))
    assert len(state.gpu.memory_history) == HISTORY


def test_training_eta_comes_from_the_rate_in_the_log():
    state = reduce([ev("stage_started", "train", ts=0)] + [
        ev("stage_progress", "train", ts=10.0 + 2 * step, completed=step, total=50, unit="step")
        for step in range(1, 11)
    ])
    assert state.stage("train").eta_s() == 80.0  # 2 s per step, 40 steps left


def test_quantize_progress_is_split_per_quant_type():
    events = [ev("stage_started", "quantize", ts=0, inputs={"quant_types": ["Q4_K_M", "Q8_0"]})]
    events += [ev("stage_progress", "quantize", ts=1, completed=i, total=20, unit="tensor") for i in range(1, 6)]
    state = reduce(events)
    assert state.quant_progress["Q4_K_M"].fraction == 0.5
    assert "Q8_0" not in state.quant_progress
    state.apply(ev("artifact", "quantize", ts=2, kind="gguf", quant="Q4_K_M", path="x-Q4_K_M.gguf", bytes=5))
    state.apply_all(ev("stage_progress", "quantize", ts=3, completed=i, total=20, unit="tensor") for i in (11, 13))
    assert state.quant_progress["Q4_K_M"].fraction == 1.0
    assert state.quant_progress["Q8_0"].fraction == 0.3


def test_unknown_event_types_and_stages_do_not_break_the_fold():
    state = reduce([ev("something_new", ts=1, x=1), ev("stage_started", "distill", ts=2),
                    ev("stage_finished", "distill", ts=3, status="finished")], pipeline_state())
    assert state.events_seen == 3
    assert state.stage("distill").status == "finished"
    assert list(state.stages) == ["distill"]  # stages exist once planned or seen
    assert state.stage("prepare").status == "pending" and state.stage_status("prepare") == "pending"


def test_writer_and_reducer_agree_on_the_contract(tmp_path):
    """Events written with the pipeline's own EventWriter fold as the docs say."""
    with EventWriter(tmp_path / "events.jsonl") as writer:
        writer.emit("run_started", run_id="w", pid=1, stages=["prepare"], dry_run=False)
        writer.emit("gpu", available=True, name="RTX 4090", memory_used=3e9, memory_total=24e9,
                    utilization=97, temperature=71)
        writer.emit("error", stage="prepare", message="disk full")
        writer.emit("run_finished", status="failed", error="disk full")
    state = reduce(read_events(tmp_path / "events.jsonl"))
    assert state.status == "failed"
    assert state.gpu.name == "RTX 4090" and state.gpu.utilization == 97
    assert state.stage("prepare").error == "disk full"
    assert state.logs[-1].level == "error"


def test_a_step_plans_the_stages_the_registry_groups_under_it():
    state = reduce([ev("run_started", ts=1, run_id="r", pid=1, stages=["prepare", "train", "export"],
                       backend="unsloth")], pipeline_state())
    export = [stage.name for stage in registry.stages() if stage.step == "export"]
    assert export == ["merge", "gguf", "quantize", "parity"]
    assert state.planned_stages == ["prepare", "train", *export]
    assert list(state.stages) == state.planned_stages  # planned stages exist, pending
    assert all(state.stage(name).status == "pending" for name in state.planned_stages)
    assert state.backend == "unsloth"
    assert reduce([ev("run_started", ts=1, stages=["export"])]).planned_stages == ["export"]  # no groups given


def test_gpu_samples_stay_per_device():
    """Under --processes N each rank's GPU reports with its index: one gauge must not mix them."""
    events = [
        Event("gpu", {"available": True, "index": 0, "name": "A", "memory_used": 10e9, "memory_total": 24e9}, ts=1),
        Event("gpu", {"available": True, "index": 1, "name": "B", "memory_used": 20e9, "memory_total": 48e9}, ts=2),
        Event("gpu", {"available": True, "index": 0, "name": "A", "memory_used": 11e9, "memory_total": 24e9}, ts=3),
    ]
    state = reduce(events)
    assert sorted(state.gpus) == [0, 1]
    assert state.gpu.name == "A" and list(state.gpu.memory_history) == [10e9, 11e9]
    assert state.gpus[1].memory_total == 48e9 and list(state.gpus[1].memory_history) == [20e9]


def test_generation_events_fold_to_totals_rates_and_an_eta():
    from r1tui.runs.events import Event
    from r1tui.runs.reducer import RunState

    state = RunState()
    state.apply(Event("generation", {"completed": 0, "total": 40, "accepted": 0, "requests": 0, "tokens_out": 0},
                      stage="generate", ts=100.0))
    state.apply(Event("generation", {"completed": 10, "total": 40, "accepted": 6, "rejected": {"wrong_answer": 3,
                      "too_long": 1}, "requests": 12, "retries": 2, "tokens_in": 500, "tokens_out": 2000,
                      "cost_usd": 0.01}, stage="generate", ts=105.0))
    gen = state.generation
    assert gen.seen and (gen.completed, gen.accepted, gen.retries) == (10, 6, 2)
    assert gen.rejected == {"wrong_answer": 3, "too_long": 1}
    assert gen.samples_per_s == 2.0 and gen.requests_per_s == 2.4 and gen.tokens_out_per_s == 400.0
    assert gen.eta_s() == 15.0  # 30 samples left at 2 per second
    state.apply(Event("generation", {"completed": "NaN", "total": 40}, stage="generate", ts=106.0))
    assert gen.completed == 10  # a value that is not a finite number is ignored


def test_rank_times_mark_the_rank_the_others_wait_for():
    def window(step, compute1, data1=0.001):
        return ev("ranks", "train", step=step, step_s=0.2, strategy="ddp", ranks=[
            {"rank": 0, "host": "a", "steps": 5, "compute_s": 0.10, "data_s": 0.001, "tokens": 900.0},
            {"rank": 1, "host": "b", "steps": 5, "compute_s": compute1, "data_s": data1, "tokens": 910.0}])

    state = reduce([window(5, 0.11)])
    times = state.rank_times
    assert (times.step, times.step_s, times.strategy) == (5, 0.2, "ddp")
    assert [(r.rank, r.host) for r in times.ranks] == [(0, "a"), (1, "b")]
    assert times.slow_ranks() == []  # 1.1x: within the band
    state.apply(window(10, 0.10, data1=0.05))  # a slow loader counts as much as slow compute
    assert times.slow_ranks() == [1] and round(times.ratios()[1], 2) == 1.49
    state.apply(window(15, 0.30))
    assert times.slow_ranks() == [1] and times.ratios()[0] == 1.0
    assert [round(v, 3) for v in times.history[1]] == [0.111, 0.15, 0.301]
    # a malformed entry is dropped, not drawn; a window with nothing usable changes nothing
    state.apply(ev("ranks", "train", step=20, ranks=[{"rank": "x"}, {"rank": 2, "compute_s": None}]))
    assert times.step == 15 and len(times.ranks) == 2

"""The eval's plan, journal, slots and budget, on their own."""

from __future__ import annotations

import json
import threading
import time

import pytest

from r1tui.eval.sampling import Journal, budget, plan_jobs, run_jobs, sample_seed

ROWS = [{"id": "a"}, {"id": "b"}]


def test_seeds_depend_on_the_sample_not_on_the_order():
    jobs = plan_jobs(ROWS, 3, 7)
    assert [job.key for job in jobs] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert len({job.seed for job in jobs}) == 6
    assert jobs[4].seed == sample_seed(7, "b", 1) == plan_jobs(list(reversed(ROWS)), 3, 7)[1].seed
    assert sample_seed(8, "b", 1) != jobs[4].seed


def test_journal_keeps_whole_lines_drops_a_cut_one_and_refuses_other_settings(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, "f1")
    journal.add({"id": "a", "sample": 0, "correct": True})
    journal.add({"id": "a", "sample": 1, "correct": False})
    journal.close()
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"id": "b", "sam')  # a kill in the middle of a line

    again = Journal(path, "f1")
    assert set(again.done) == {("a", 0), ("a", 1)}
    again.add({"id": "b", "sample": 0, "correct": True})
    again.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines][-1] == {"id": "b", "sample": 0, "correct": True}  # not glued
    assert set(Journal(path, "f1").done) == {("a", 0), ("a", 1), ("b", 0)}

    fresh = Journal(path, "other settings")
    assert fresh.done == {}
    fresh.discard()
    assert not path.exists()


def test_slots_run_at_once_and_a_failure_stops_the_rest():
    running, peak, lock = [0], [0], threading.Lock()

    def generate(chat, job, stop):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return job.key

    finished = []
    run_jobs(["c1", "c2", "c3"], plan_jobs(ROWS, 3, 0), generate, finished.append, slots=3)
    assert sorted(finished) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)] and peak[0] == 3

    def fail_on_b(chat, job, stop):
        if job.row["id"] == "b":
            raise RuntimeError("server gone")
        return job.key

    with pytest.raises(RuntimeError, match="server gone"):
        run_jobs(["shared"], plan_jobs(ROWS, 3, 0), fail_on_b, lambda sample: None, slots=2, shared=True)


def test_budget_from_measured_replies():
    done = [{"tokens_per_s": 40.0, "completion_tokens": 100}, {"tokens_per_s": 60.0, "completion_tokens": 300}]
    plan = budget(10, done, max_new_tokens=1000, slots=2)
    assert (plan.generations, plan.done, plan.max_tokens, plan.expected_tokens, plan.tokens_per_s) == \
        (10, 2, 10_000, 2000, 50.0)
    assert plan.expected_seconds == 20.0 and plan.max_seconds == 100.0
    assert plan.describe() == ("10 generations (2 already done), at most 10,000 tokens, about 2,000 expected; "
                               "50.0 tokens/s per slot x 2 slots: about 20.0s (at most 1:40)")
    unknown = budget(4, [], max_new_tokens=64, slots=1)
    assert unknown.describe() == "4 generations, at most 256 tokens; time: measured once the first replies are in"
    earlier = budget(4, [], max_new_tokens=64, slots=1, measured={"tokens_per_s": 32.0, "avg_completion_tokens": 80})
    assert earlier.expected_tokens == 256 and earlier.expected_seconds == 8.0  # replies capped at max_new_tokens

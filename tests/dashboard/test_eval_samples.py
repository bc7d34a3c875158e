"""The eval drill-down: enter on the Eval panel opens the samples of eval/results.json,
filtered by domain (f) and verdict (w), with the think block folded (t unfolds); Esc goes back.

The results file is the recorded run's, its samples replaced by five whose answers and
outcomes come from the eval's own code (``extract_answer``, ``protocol.outcome``), one of
each verdict."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.screens.main import MainScreen
from r1tui.dashboard.screens.samples import (
    SamplesScreen,
    domains_of,
    matching,
    sample_detail,
    verdict_of,
)
from r1tui.eval.protocol import outcome
from r1tui.response_format import extract_answer

pytestmark = pytest.mark.anyio

THOUGHT = "Two and two make four, so the total is four."
CASES = [  # (domain, question, reference, response, finish_reason)
    ("math", "What is 2+2?", "4", f"<think>\n{THOUGHT}\n</think>\n\nFINAL ANSWER: 4", "eos"),
    ("physics", "A 2 A current through 12 Ω: what voltage?", "24",
     "<think>\nV = I R = 2 + 12 by mistake.\n</think>\n\nFINAL ANSWER: 14", "eos"),
    ("coding", "What does print(len('abc')) print?", "3", "<think>\nlen counts the characters and then the", "length"),
    ("math", "Solve x + 1 = 3.", "2", "I am not sure how to answer that.", "eos"),
    ("coding", "What is 10 // 3 in Python?", "3", "<think>\nFloor division.\n</think>\n\nFINAL ANSWER: 3", "eos"),
]


def scored_samples() -> list[dict]:
    samples = []
    for index, (domain, question, reference, response, finish) in enumerate(CASES):
        answer = extract_answer(response).text
        correct = answer is not None and answer.strip() == reference
        samples.append({"id": f"case-{index}", "domain": domain, "question": question, "reference": reference,
                        "response": response, "answer": answer, "answer_source": extract_answer(response).source,
                        "correct": correct, "outcome": outcome(correct, answer, finish), "finish_reason": finish,
                        "completion_tokens": len(response.split())})
    return samples


@pytest.fixture
def scored_run(recorded_run):
    results = json.loads(recorded_run.layout.eval_results.read_text(encoding="utf-8"))
    results["samples"] = scored_samples()
    recorded_run.layout.eval_results.write_text(json.dumps(results), encoding="utf-8")
    return recorded_run


def test_the_cases_cover_every_verdict():
    assert [verdict_of(s) for s in scored_samples()] == ["correct", "wrong", "truncated", "no_answer", "correct"]


def test_filters_by_domain_and_verdict():
    samples = scored_samples()
    assert domains_of(samples) == ["math", "physics", "coding"]
    assert matching(samples, None, "all") == [0, 1, 2, 3, 4]
    assert matching(samples, None, "right") == [0, 4]
    assert matching(samples, None, "not_right") == [1, 2, 3]
    assert matching(samples, "coding", "truncated") == [2]
    assert matching(samples, "math", "wrong") == []
    # an older results file without outcomes: right or wrong by its flag
    assert verdict_of({"correct": True}) == "correct" and verdict_of({"correct": False}) == "wrong"


def test_the_detail_folds_the_think_block():
    sample = scored_samples()[0]
    folded = "\n".join(str(part) for part in sample_detail(sample, think_folded=True).renderables)
    unfolded = "\n".join(str(part) for part in sample_detail(sample, think_folded=False).renderables)
    assert THOUGHT not in folded and "think: 10 words" in folded and "FINAL ANSWER: 4" in folded
    assert THOUGHT in unfolded
    truncated = "\n".join(str(p) for p in sample_detail(scored_samples()[2], think_folded=True).renderables)
    assert "never closed" in truncated and "(none extracted)" in truncated


async def test_enter_on_eval_opens_the_samples_filters_and_folds(make_app, scored_run, settle, wait_for,
                                                                  screen_text):
    app = make_app(scored_run)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"])
        await wait_for(pilot, lambda: "enter: the 5 samples" in screen_text(app), what="the hint")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen), what="the samples")
        screen = app.screen
        table = screen.query_one(DataTable)
        assert table.row_count == 5 and app.focused is table
        await wait_for(pilot, lambda: "What is 2+2?" in screen_text(app), what="the first sample")
        text = screen_text(app)
        assert "verdict correct" in text and "reference 4" in text and "answer 4" in text
        assert THOUGHT not in text and "think: 10 words (t unfolds)" in text

        await pilot.press("t")  # unfold
        await wait_for(pilot, lambda: THOUGHT in screen_text(app), what="the think block")
        await pilot.press("t")
        await wait_for(pilot, lambda: THOUGHT not in screen_text(app), what="folded again")

        await pilot.press("down")  # the second sample: wrong
        await wait_for(pilot, lambda: "verdict wrong" in screen_text(app), what="the second sample")
        assert "answer 14" in screen_text(app) and "reference 24" in screen_text(app)

        await pilot.press("w")  # right only
        assert screen.shown == [0, 4] and table.row_count == 2
        await pilot.press("w")  # not right
        assert screen.shown == [1, 2, 3]
        await wait_for(pilot, lambda: "not right" in screen_text(app), what="the filter in the status line")
        await pilot.press("f", "f")  # domain: math, then physics
        assert screen.domain == "physics" and screen.shown == [1]
        await pilot.press("f", "f")  # coding, then all domains again
        assert screen.domain is None
        await pilot.press("w", "w", "w")  # wrong answer, truncated, no answer
        assert screen.verdict == "no_answer" and screen.shown == [3]
        await wait_for(pilot, lambda: "(no think block)" in screen_text(app), what="the no-answer sample")
        await pilot.press("f")  # math and no answer: sample 4; physics: none
        await pilot.press("f")
        assert screen.shown == []
        await wait_for(pilot, lambda: "no sample matches" in screen_text(app), what="the empty filter said")

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="back on the dashboard")
        assert app.main.active_panel_id == "evaluator"


async def test_without_results_enter_says_why_in_one_line(make_app, new_run, settle, wait_for):
    app = make_app(new_run(results=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"], "enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen)
        warnings = [n.message for n in app._notifications if n.severity == "warning"]
        assert warnings == ["no eval samples yet: v evaluates the run's GGUF"]

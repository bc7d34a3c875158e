"""ReasoningQualityEvaluator on hand-written responses with known steps and depth.

Expected depths are worked out by hand from the formula in r1tui/eval/evaluator.py:
depth = 0.4 + 0.6 * (distinct/steps) * (0.45 min(distinct,8)/8 + 0.35 min(worked,4)/4 + 0.20 verified).
"""

from __future__ import annotations

import pytest

from r1tui.eval.evaluator import ReasoningQualityEvaluator, format_summary, summarize, think_steps

LINEAR = """<think>
Step 1: The equation is 2x + 3 = 11.
Step 2: Subtract 3 from both sides: 2x = 8.
Step 3: Divide by 2: x = 4.
Step 4: Check: 2 * 4 + 3 = 11, which matches.
</think>

FINAL ANSWER: 4"""

KINEMATICS = """<think>
A car starts at 10 m/s and accelerates at 2 m/s^2 for 5 s.
Use s = u t + (1/2) a t^2.
u t = 10 * 5 = 50 m.
(1/2) a t^2 = 0.5 * 2 * 25 = 25 m.
s = 50 + 25 = 75 m.
Final speed v = u + a t = 10 + 2 * 5 = 20 m/s.
Average speed is (10 + 20) / 2 = 15 m/s.
Distance from the average: 15 * 5 = 75 m.
Check: both methods give 75 m, consistent.
</think>

FINAL ANSWER: 75"""

EMPTY_THINK = "<think>\n\n</think>\n\nFINAL ANSWER: 4"

REPETITIVE = """<think>
Add the numbers.
Add the numbers.
add the numbers!
2 + 2 = 4.
</think>

FINAL ANSWER: 4"""

TRACE = """<think>
Trace the program line by line.
total starts at 3; i runs over [1, 2].
i = 1: total = 3 + 1 * 4 = 7.
i = 2: total = 7 + 2 * 4 = 15.
After the loop the program prints 15.
</think>

FINAL ANSWER: 15"""


@pytest.mark.parametrize("text, domain, steps, distinct, worked, verified, depth", [
    # 4 distinct steps, 4 with equations, a check: 0.4 + 0.6 (0.225 + 0.35 + 0.2) = 0.865
    (LINEAR, "math", 4, 4, 4, True, 0.865),
    # 9 distinct steps (capped at 8), all worked (equations or quantities with units), verified: the ceiling
    (KINEMATICS, "physics", 9, 9, 9, True, 1.0),
    # nothing to read: the floor
    (EMPTY_THINK, "math", 0, 0, 0, False, 0.4),
    # 4 steps but 2 distinct (case and punctuation ignored), 1 worked: 0.4 + 0.6 * 0.5 * (0.1125 + 0.0875) = 0.46
    (REPETITIVE, "math", 4, 2, 1, False, 0.46),
    # coding work = code or traced state: [1, 2], i = 1 …, i = 2 …: 0.4 + 0.6 (0.28125 + 0.2625) = 0.72625
    (TRACE, "coding", 5, 5, 3, False, 0.72625),
])
def test_known_steps_and_depth(text, domain, steps, distinct, worked, verified, depth):
    score = ReasoningQualityEvaluator().score(text, domain)
    assert (score.steps, score.distinct_steps, score.worked_steps, score.verified) == (steps, distinct, worked, verified)
    assert score.depth == pytest.approx(depth, abs=1e-4)
    assert 0.4 <= score.depth <= 1.0


def test_no_think_block_scores_the_floor():
    score = ReasoningQualityEvaluator().score("The answer is 4.\nFINAL ANSWER: 4", "math")
    assert (score.steps, score.depth, score.think_present) == (0, 0.4, False)


def test_truncated_reasoning_still_counts_its_steps():
    score = ReasoningQualityEvaluator().score("<think>\nStep 1: 2 + 2 = 4.\nStep 2: now multi", "math")
    assert score.steps == 2 and score.think_present


def test_what_counts_as_worked_depends_on_the_domain():
    text = "<think>\nThe current is 2 A through 6 ohm.\nThe power is 24 W.\n</think>\nFINAL ANSWER: 24"
    assert ReasoningQualityEvaluator().score(text, "physics").worked_steps == 2  # quantities with units
    assert ReasoningQualityEvaluator().score(text, "math").worked_steps == 0


def test_steps_sentences_headings_and_code_blocks():
    think = ("**Step 1**\nCompute 2 + 2 = 4. Then double it. so 8.\n"
             "```python\ndef f(x):\n    return 2 * x\n```\n- Verify: f(4) = 8\n---\n")
    assert think_steps(think) == [
        "**Step 1** Compute 2 + 2 = 4.", "Then double it. so 8.",
        "```\ndef f(x):\n    return 2 * x\n```", "- Verify: f(4) = 8",
    ]


def test_deterministic_and_order_independent():
    evaluator = ReasoningQualityEvaluator()
    first = [evaluator.score(t, "math") for t in (LINEAR, REPETITIVE)]
    again = [ReasoningQualityEvaluator().score(t, "math") for t in (REPETITIVE, LINEAR)][::-1]
    assert first == again


def test_summary_in_the_documented_shape():
    evaluator = ReasoningQualityEvaluator()
    evaluator.evaluate([(LINEAR, "math"), (KINEMATICS, "physics"), (EMPTY_THINK, "math")])
    assert evaluator.format_summary() == (
        "Total samples  : 3\n"
        "Avg depth      : 0.7550  (range: 0.4000-1.0000)\n"
        "Avg steps      : 4.3     (range: 0-9)\n"
        "math           count=2   avg_depth=0.6325  avg_steps=2.0\n"
        "physics        count=1   avg_depth=1.0000  avg_steps=9.0"
    )


def test_summary_orders_domains_and_handles_no_samples():
    evaluator = ReasoningQualityEvaluator()
    for text, domain in ((TRACE, "coding"), (LINEAR, "chemistry"), (LINEAR, "math"), (KINEMATICS, "physics")):
        evaluator.add(text, domain)
    assert list(evaluator.summary()["domains"]) == ["math", "physics", "coding", "chemistry"]
    assert format_summary(summarize([])) == "Total samples  : 0"

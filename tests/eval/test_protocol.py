"""The reasoning-eval protocol's estimators against hand-computed cases, and the four outcomes
of crafted replies scored the way the eval scores them."""

from __future__ import annotations

import math

import pytest

from r1tui.eval.evaluator import ReasoningQualityEvaluator
from r1tui.eval.protocol import (
    ks_for,
    majority_correct,
    mean_and_se,
    outcome,
    paired_delta,
    pass_at_k,
    percentile,
    protocol_stats,
)
from r1tui.eval.run import score_response


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 2 / 5),                               # pass@1 = c / n
    (5, 2, 2, 1 - math.comb(3, 2) / math.comb(5, 2)),  # 1 - 3/10 = 0.7
    (5, 2, 4, 1.0),                                 # n - c = 3 < k: every draw of 4 holds a correct one
    (10, 0, 5, 0.0),
    (10, 10, 1, 1.0),
    (16, 3, 8, 1 - math.comb(13, 8) / math.comb(16, 8)),  # 1 - 1287/12870 = 0.9
    (64, 7, 16, 1 - math.comb(57, 16) / math.comb(64, 16)),
])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
    for n, c, k in ((4, 5, 1), (4, 1, 0), (4, 1, 5)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def _sample(qid: str, sample: int, answer: str | None, correct: bool, **extra) -> dict:
    return {"id": qid, "sample": sample, "answer": answer, "correct": correct,
            "outcome": outcome(correct, answer, extra.pop("finish", "eos")), **extra}


def test_majority_vote_counts_answers_and_breaks_ties_by_first_seen():
    votes = [_sample("q", 0, "12", False), _sample("q", 1, "7", True), _sample("q", 2, " 7", True),
             _sample("q", 3, None, False), _sample("q", 4, "12", False), _sample("q", 5, "12", False)]
    assert majority_correct(votes, 3) is True  # "7" twice (spacing ignored) against "12" once
    assert majority_correct(votes, 4) is True  # the missing answer does not vote
    assert majority_correct(votes, 6) is False  # "12" three times
    tie = [_sample("q", 0, "12", False), _sample("q", 1, "7", True)]
    assert majority_correct(tie, 2) is False  # 1-1: the first seen wins
    assert majority_correct([_sample("q", 0, None, False)], 1) is False


def test_mean_se_and_percentiles():
    mean, se = mean_and_se([1.0, 0.0, 1.0, 1.0, 0.0])
    assert mean == pytest.approx(0.6) and se == pytest.approx(math.sqrt(0.3 / 5))
    assert mean_and_se([0.5]) == (0.5, None) and mean_and_se([]) == (None, None)
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([10, 20, 30, 40, 50], 90) == pytest.approx(46.0)
    assert percentile([], 50) is None
    assert ks_for(1) == [1] and ks_for(4) == [1, 2, 4] and ks_for(6) == [1, 2, 4, 6]


def test_protocol_stats_for_two_questions_of_four_samples():
    records = [_sample("a", i, "4" if i < 3 else "5", i < 3, think_tokens=10 * (i + 1)) for i in range(4)]
    records += [_sample("b", i, None, False, finish="length" if i < 2 else "eos", think_tokens=100) for i in range(4)]
    stats = protocol_stats(records)
    assert stats["questions"] == 2 and stats["samples_per_question"] == 4
    assert stats["pass@1"] == pytest.approx((0.75 + 0.0) / 2)
    assert stats["pass@1_se"] == pytest.approx(round(math.sqrt(((0.75 - 0.375) ** 2 * 2) / 1 / 2), 4))
    assert stats["pass@2"] == pytest.approx((1 + 0) / 2)  # a: 1 - C(1,2)/C(4,2) = 1
    assert stats["pass@4"] == 0.5 and stats["maj@4"] == 0.5 and stats["maj@2"] == 0.5
    assert stats["outcomes"] == {"correct": 3, "wrong": 1, "truncated": 2, "no_answer": 2}
    assert stats["think_tokens_median"] == 70.0  # of 10, 20, 30, 40, 100 x4: (40 + 100) / 2
    assert stats["think_tokens_p90"] == 100.0


def test_paired_delta_pairs_by_question():
    a = [_sample("q1", 0, "1", True), _sample("q2", 0, "1", False), _sample("q3", 0, "1", False)]
    b = [_sample("q1", 0, "1", True), _sample("q2", 0, "1", True), _sample("q3", 0, "1", True),
         _sample("q4", 0, "1", True)]  # q4: only B answered it, so it is not paired
    delta = paired_delta(a, b)
    assert delta["questions"] == 3 and delta["delta"] == pytest.approx(2 / 3, abs=1e-4)
    assert delta["se"] == pytest.approx(round(math.sqrt((1 / 3) / 3), 4))  # sd of [0, 1, 1] / sqrt(3)


ROW = {"id": "r1", "question": "What is 2 + 2?", "answer": "4", "domain": "math"}


@pytest.mark.parametrize(("reply", "finish", "expected"), [
    ("<think>2 + 2 = 4.</think>\nFINAL ANSWER: 4", "eos", "correct"),
    ("<think>2 + 2 = 5.</think>\nFINAL ANSWER: 5", "eos", "wrong"),
    ("<think>2 + 2 is, let me see, 2 + 1 = 3 and", "length", "truncated"),  # cut inside the think block
    ("<think>done</think>\nThe sum is four.", "eos", "no_answer"),  # finished, nothing to read
    ("<think>2 + 2 = 4.</think>\nFINAL ANSWER: 4\n\nAlso note", "length", "correct"),  # answered, then cut
    ("<think>2 + 2 = 4.</think>\nFINAL ANSWER: 5 and then", "length", "wrong"),
])
def test_outcomes_of_crafted_replies(reply, finish, expected):
    record = score_response(reply, ROW, finish, ReasoningQualityEvaluator(), 1e-3)
    assert record["outcome"] == expected


def test_think_tokens_are_the_training_tokenizers_count():
    from r1tui.data.tokenizer import load_text_tokenizer

    think = "2 + 2 = 4. Check: 4 - 2 = 2."
    record = score_response(f"<think>{think}</think>\nFINAL ANSWER: 4", ROW, "eos", ReasoningQualityEvaluator(), 1e-3)
    assert record["think_tokens"] == len(load_text_tokenizer("v3").encode(think)) > 0
    empty = score_response("FINAL ANSWER: 4", ROW, "eos", ReasoningQualityEvaluator(), 1e-3)
    assert empty["think_tokens"] == 0

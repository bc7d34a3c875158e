"""The reasoning-eval protocol: outcomes of a sample, and the estimators over n samples.

As the R1 report and lighteval / open-r1 measure reasoning models:

- every question is answered ``n`` times (``eval.samples_per_question``), sampled at
  temperature 0.6 and top_p 0.95 unless set otherwise;
- **pass@1** is the share of correct samples per question, averaged over questions,
  with its standard error across questions (questions are the unit that varies;
  Miller 2024, "Adding Error Bars to Evals");
- **pass@k** is the unbiased estimator of Chen et al. 2021 (the Codex paper):
  ``1 - C(n - c, k) / C(n, k)`` per question with ``c`` correct of ``n``;
- **maj@k** takes the most frequent extracted answer among the first ``k`` samples
  (ties: the one seen first) and scores it.

A sample has exactly one of four outcomes, never merged: ``correct``, ``wrong``,
``truncated`` (the token limit came before any answer) and ``no_answer`` (it finished
but nothing could be read as an answer).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

CORRECT, WRONG, TRUNCATED, NO_ANSWER = "correct", "wrong", "truncated", "no_answer"
OUTCOMES = (CORRECT, WRONG, TRUNCATED, NO_ANSWER)


def outcome(correct: bool, answer: str | None, finish_reason: str) -> str:
    """The one outcome of a sample (``finish_reason``: eos | length | stopped)."""
    if correct:
        return CORRECT
    if answer is None or not answer.strip():
        return TRUNCATED if finish_reason == "length" else NO_ANSWER
    return WRONG


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn from n (c of them correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k) as a product, which stays exact enough for large n
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_correct(samples: Sequence[dict[str, Any]], k: int) -> bool:
    """maj@k for one question: is the most frequent answer of the first k samples correct?

    Answers are compared after trimming and lower-casing; samples without an answer
    do not vote. ``samples`` are the question's records in sample order.
    """
    votes: Counter[str] = Counter()
    first_seen: dict[str, dict[str, Any]] = {}
    for sample in samples[:k]:
        answer = sample.get("answer")
        if answer is None or not str(answer).strip():
            continue
        key = " ".join(str(answer).lower().split())
        votes[key] += 1
        first_seen.setdefault(key, sample)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(key for key in first_seen if votes[key] == top)  # dicts keep insertion order
    return bool(first_seen[winner]["correct"])


def mean_and_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt(m)); SE is None for m < 2."""
    count = len(values)
    if not count:
        return None, None
    mean = sum(values) / count
    if count < 2:
        return mean, None
    variance = sum((value - mean) ** 2 for value in values) / (count - 1)
    return mean, math.sqrt(variance / count)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def by_question(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by question id, each group in sample order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["id"], []).append(record)
    for group in groups.values():
        group.sort(key=lambda record: record.get("sample", 0))
    return groups


def ks_for(n: int) -> list[int]:
    """The k reported for n samples: 1, then powers of two up to n, and n itself."""
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    if ks[-1] != n:
        ks.append(n)
    return ks


def protocol_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """pass@1 ± SE, pass@k and maj@k for each k, outcome counts, and think lengths.

    Questions with fewer samples than the others (an interrupted eval) count with the
    samples they have: k runs up to the smallest sample count.
    """
    groups = by_question(records)
    if not groups:
        return {"questions": 0}
    n = min(len(group) for group in groups.values())
    per_question = [sum(1 for r in group if r["correct"]) / len(group) for group in groups.values()]
    pass1, pass1_se = mean_and_se(per_question)
    stats: dict[str, Any] = {
        "questions": len(groups),
        "samples_per_question": n,
        "pass@1": _round(pass1),
        "pass@1_se": _round(pass1_se),
    }
    for k in ks_for(n)[1:]:
        stats[f"pass@{k}"] = _round(sum(pass_at_k(len(g), sum(1 for r in g if r["correct"]), k)
                                        for g in groups.values()) / len(groups))
    for k in ks_for(n)[1:]:
        stats[f"maj@{k}"] = _round(sum(majority_correct(g, k) for g in groups.values()) / len(groups))
    counts = Counter(record["outcome"] for record in records)
    stats["outcomes"] = {name: counts.get(name, 0) for name in OUTCOMES}
    think = [record["think_tokens"] for record in records if record.get("think_tokens") is not None]
    stats["think_tokens_median"] = _round(percentile(think, 50), 1)
    stats["think_tokens_p90"] = _round(percentile(think, 90), 1)
    return stats


def per_question_rate(records: Iterable[dict[str, Any]], flag: str = "correct") -> dict[str, float]:
    """Each question's share of samples with ``flag`` set (``correct``: its pass@1)."""
    return {qid: sum(1 for r in group if r[flag]) / len(group) for qid, group in by_question(records).items()}


def paired_delta(a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]], flag: str = "correct") -> dict[str, Any]:
    """B's rate of ``flag`` (pass@1 for ``correct``) minus A's — note the order — on the
    questions both answered, with the paired standard error.

    Pairing by question removes the questions' own difficulty from the error, so a
    real difference shows sooner than with two independent errors.
    """
    scores_a, scores_b = per_question_rate(a, flag), per_question_rate(b, flag)
    shared = [qid for qid in scores_a if qid in scores_b]
    delta, se = mean_and_se([scores_b[qid] - scores_a[qid] for qid in shared])
    return {"questions": len(shared), "delta": _round(delta), "se": _round(se)}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)

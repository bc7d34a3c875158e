"""ReasoningQualityEvaluator: how many reasoning steps a response takes, and how deep they go.

Everything here is plain text processing: deterministic, no model, no randomness.

**Steps.** The think block is split into lines, and each line into sentences (a
sentence ends with ``.``, ``!`` or ``?`` followed by a space and a capital letter or
a bracket). Every piece holding a letter or digit is one step. A bare heading
(``Step 3:``, ``2.``) is joined to the line after it; a fenced code block is one step.

**Depth** lies in [0.4, 1.0]::

    distinct     = steps left after dropping repeats (compared without case,
                   punctuation, spacing or a leading "Step n:" / "1." / "-")
    uniqueness   = distinct / steps
    step_part    = min(distinct, 8) / 8          more distinct steps, up to 8
    worked_part  = min(worked, 4) / 4            steps that work something through
    verify_part  = 1 if any step verifies the result, else 0
    depth        = 0.4 + 0.6 * uniqueness * (0.45 step_part + 0.35 worked_part + 0.20 verify_part)

A response with no think block, or an empty one, gets 0 steps and depth 0.4.
"Worked" depends on the domain: in ``math`` a step with an equation or arithmetic
(``=``, ``3 * 4``, ``\\frac``); in ``physics`` the same or a quantity with a unit
(``9.8 m/s^2``, ``12 N``); in ``coding`` a code block or a line of code or of
traced state (``total = 6``, ``f(3)``, ``return``, ``[1, 2]``). Verifying means a
step that checks, verifies, confirms, substitutes or plugs back the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from r1tui.response_format import split_response

DOMAINS = ("math", "physics", "coding")
DEPTH_FLOOR = 0.4
DEPTH_CEILING = 1.0


@dataclass(frozen=True)
class DepthWeights:
    """The knobs of the depth formula (the module docstring explains each)."""

    step_target: int = 8
    worked_target: int = 4
    steps: float = 0.45
    worked: float = 0.35
    verification: float = 0.20


@dataclass(frozen=True)
class ReasoningScore:
    domain: str
    steps: int
    distinct_steps: int
    worked_steps: int
    verified: bool
    think_present: bool  # a think block with something in it
    depth: float

    @property
    def repetition(self) -> float:
        """Share of steps that repeat an earlier one."""
        return 0.0 if self.steps == 0 else 1 - self.distinct_steps / self.steps

    def to_dict(self) -> dict:
        return {**asdict(self), "repetition": round(self.repetition, 4)}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")
_HEADING = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?\s*(?:step\s*\d+|\d+[.)])\s*[:.)]?\s*(?:\*\*)?\s*$", re.IGNORECASE)
_LEADER = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?\s*(?:step\s*\d+\s*[:.)]?|\d+[.)]|[-*•>])\s*(?:\*\*)?\s*", re.IGNORECASE)
_ALNUM = re.compile(r"[A-Za-z0-9]")
_FENCE = re.compile(r"^\s*```")

_VERIFY = re.compile(
    r"\b(?:verif\w*|check\w*|double[- ]check\w*|cross[- ]check\w*|confirm\w*|substitut\w*|"
    r"plug\w*\s+(?:\w+\s+)?back|sanity|re-?comput\w*|consistent)\b|✓",
    re.IGNORECASE,
)
_EQUATION = re.compile(
    r"(?:[\w)\]}]\s*(?:=|≈|<=|>=|≤|≥)\s*[-\w(\[{\\])"      # a = b, x ≈ 2
    r"|(?:\d\s*[-+*/×÷^·]\s*[\d(])"                         # 3 * 4, 2^5
    r"|\\(?:frac|sqrt|cdot|times|sum|int)\b"               # LaTeX worked out
)
_QUANTITY = re.compile(
    r"\d\s*(?:m/s\^?2?|m/s²|km/h|km|cm|mm|m|s|ms|kg|g|N|J|kJ|W|kW|Pa|kPa|Hz|V|A|Ω|ohm|K|°C|mol|L|eV|C)\b"
)
_CODE = re.compile(
    r"(?:\bdef\s+\w+|\breturn\b|\bfor\s+\w+\s+in\b|\bwhile\b|\bprint\(|\bimport\b|\blambda\b"
    r"|\w+\([^()]*\)|\[[^\]]*\]|==|!=|\+=|-=|\w+\s*=\s*\S|`[^`]+`)"
)


def think_steps(think: str) -> list[str]:
    """The steps of a think block, in order (see the module docstring)."""
    steps: list[str] = []
    pending_heading = ""
    in_code = False
    code_lines: list[str] = []
    for line in think.splitlines():
        if _FENCE.match(line):
            if in_code:
                block = "\n".join(code_lines).strip()
                if block:
                    steps.append("```\n" + block + "\n```")
                code_lines = []
            in_code = not in_code
            continue
        if in_code:
            code_lines.append(line)
            continue
        if not _ALNUM.search(line):
            continue
        if _HEADING.match(line):
            pending_heading = line.strip()
            continue
        for piece in _SENTENCE_END.split(line.strip()):
            if _ALNUM.search(piece):
                steps.append(f"{pending_heading} {piece}".strip() if pending_heading else piece.strip())
                pending_heading = ""
    if in_code and "\n".join(code_lines).strip():  # an unclosed fence (truncated output)
        steps.append("```\n" + "\n".join(code_lines).strip())
    if pending_heading:
        steps.append(pending_heading)
    return steps


def _step_key(step: str) -> str:
    text = _LEADER.sub("", step).lower()
    return " ".join(re.sub(r"[^a-z0-9=+\-*/^<>]+", " ", text).split())


def is_worked(step: str, domain: str) -> bool:
    """Does this step work something through, by the domain's idea of work?"""
    if domain == "coding":
        return step.startswith("```") or bool(_CODE.search(step))
    if _EQUATION.search(step):
        return True
    return domain == "physics" and bool(_QUANTITY.search(step))


def is_verification(step: str) -> bool:
    return bool(_VERIFY.search(step))


class ReasoningQualityEvaluator:
    """Scores responses for reasoning steps and depth, and summarises them per domain.

    >>> evaluator = ReasoningQualityEvaluator()
    >>> evaluator.add("<think>2 + 2 = 4. Check: 4 - 2 = 2.</think>\\nFINAL ANSWER: 4", "math").steps
    2
    """

    def __init__(self, weights: DepthWeights | None = None):
        self.weights = weights or DepthWeights()
        self.scores: list[ReasoningScore] = []

    def score(self, response: str, domain: str) -> ReasoningScore:
        """Score one response (does not record it)."""
        think = split_response(response).think
        steps = think_steps(think) if think else []
        if not steps:
            return ReasoningScore(domain, 0, 0, 0, False, False, DEPTH_FLOOR)
        distinct = len({_step_key(step) for step in steps})
        worked = sum(is_worked(step, domain) for step in steps)
        verified = any(is_verification(step) for step in steps)
        w = self.weights
        raw = (w.steps * min(distinct, w.step_target) / w.step_target
               + w.worked * min(worked, w.worked_target) / w.worked_target
               + w.verification * (1.0 if verified else 0.0))
        depth = DEPTH_FLOOR + (DEPTH_CEILING - DEPTH_FLOOR) * (distinct / len(steps)) * raw
        depth = round(min(max(depth, DEPTH_FLOOR), DEPTH_CEILING), 4)
        return ReasoningScore(domain, len(steps), distinct, worked, verified, True, depth)

    def add(self, response: str, domain: str) -> ReasoningScore:
        """Score one response and keep it for the summary."""
        result = self.score(response, domain)
        self.scores.append(result)
        return result

    def evaluate(self, responses: Iterable[tuple[str, str]]) -> list[ReasoningScore]:
        """Score (response, domain) pairs and keep them."""
        return [self.add(response, domain) for response, domain in responses]

    def summary(self) -> dict:
        return summarize(self.scores)

    def format_summary(self) -> str:
        return format_summary(self.summary())


@dataclass
class _Bucket:
    depths: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)


def summarize(scores: Iterable[ReasoningScore]) -> dict:
    """Totals, averages and ranges, overall and per domain (math, physics, coding first)."""
    overall = _Bucket()
    per_domain: dict[str, _Bucket] = {}
    for score in scores:
        for bucket in (overall, per_domain.setdefault(score.domain, _Bucket())):
            bucket.depths.append(score.depth)
            bucket.steps.append(score.steps)
    order = [d for d in DOMAINS if d in per_domain] + sorted(d for d in per_domain if d not in DOMAINS)
    summary = _bucket_summary(overall)
    summary["domains"] = {d: _bucket_summary(per_domain[d]) for d in order}
    return summary


def _bucket_summary(bucket: _Bucket) -> dict:
    count = len(bucket.depths)
    if not count:
        return {"count": 0, "avg_depth": None, "min_depth": None, "max_depth": None,
                "avg_steps": None, "min_steps": None, "max_steps": None}
    return {
        "count": count,
        "avg_depth": round(sum(bucket.depths) / count, 4),
        "min_depth": min(bucket.depths),
        "max_depth": max(bucket.depths),
        "avg_steps": round(sum(bucket.steps) / count, 2),
        "min_steps": min(bucket.steps),
        "max_steps": max(bucket.steps),
    }


def format_summary(summary: dict) -> str:
    """The summary as plain text::

        Total samples  : 10
        Avg depth      : 0.6152  (range: 0.4680-1.0000)
        Avg steps      : 6.3     (range: 4-11)
        math           count=3   avg_depth=0.5220  avg_steps=5.0
    """
    lines = [f"{'Total samples':<15}: {summary['count']}"]
    if summary["count"]:
        lines.append(f"{'Avg depth':<15}: {summary['avg_depth']:.4f}  "
                     f"(range: {summary['min_depth']:.4f}-{summary['max_depth']:.4f})")
        lines.append(f"{'Avg steps':<15}: {summary['avg_steps']:<8.1f}"
                     f"(range: {summary['min_steps']}-{summary['max_steps']})")
    for domain, stats in summary.get("domains", {}).items():
        lines.append(f"{domain:<15}count={stats['count']:<4}avg_depth={stats['avg_depth']:.4f}  "
                     f"avg_steps={stats['avg_steps']:.1f}")
    return "\n".join(lines)

"""Whether a model's answer is right: the reference compared by the domain's rule.

Reading the answer out of a response (its think block, the last ``FINAL ANSWER:`` line,
the last ``\\boxed{…}``) is r1tui.response_format's; ``check_answer`` compares what it
read with the reference by the domain's rule:

- ``coding``: exact match of the output after trimming whitespace and code fences.
- ``math``, ``physics`` and anything else: math-verify's symbolic/numeric equivalence,
  then several roots compared as sets (``x = 3 or x = 2/3`` equals ``3, \\frac{2}{3}``),
  then numbers: an integer reference exactly, a fractional one within a relative
  tolerance or rounded to the digits the answer states (``0.67`` equals ``\\frac{2}{3}``);
  an answer whose unit differs from the reference's is wrong (``12 kg`` is not ``12 N``).

Multiple choice (``choice=True``, rows with ``"format": "choice"``, e.g. GPQA): whatever
the domain, the letters are compared. ``choice_letter`` reads the one letter A-D an answer
names: ``C``, ``(C)``, ``C)``, ``\\boxed{C}``, ``C. <option text>``, ``The answer is C``; an
answer naming no letter, or two (``B or C``), names none.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from decimal import Decimal

from r1tui.response_format import last_boxed

EXACT_DOMAINS = frozenset({"coding"})
# Answers longer than this are not handed to the symbolic parser: math-verify's own
# timeout only works on the main thread, and a bounded input keeps parsing bounded.
MAX_PARSE_CHARS = 400

_VARIABLE_PREFIX = re.compile(r"^\s*[A-Za-z][A-Za-z0-9_]*(?:\([^()]*\))?\s*=\s*(?=\S)")
_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_E_NOTATION = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")
_LEADING_NUMBER = re.compile(r"\s*\$?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(.*)$", re.DOTALL)
_UNIT = re.compile(r"[A-Za-z°%ΩµμÅ][A-Za-z0-9°%ΩµμÅ/^*·.()-]*")
_SET_SEPARATORS = re.compile(r"\s*(?:,|;|\\text\{\s*or\s*\}|\\text\{\s*and\s*\}|\bor\b|\band\b)\s*")
# Multiple choice: "C", "(C)", "C)", "c."; "C. option text", "(C) option text"; "the answer is (C)".
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
_LONE_LETTER = re.compile(r"[(\[]?([A-Da-d])[)\]]?[.:]?")
_LEADING_LETTER = re.compile(r"[(\[]?([A-D])[)\].:]\s+\S")
_NAMED_LETTER = re.compile(r"(?i:answer|option|choice)\W{0,3}(?:(?i:is)\W{0,3})?([A-D])(?![A-Za-z0-9])")
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z0-9])([A-D])(?![A-Za-z0-9])")



@dataclass(frozen=True)
class AnswerCheck:
    correct: bool
    # how it was decided: exact | symbolic | set | numeric | choice | mismatch | no_letter | no_answer | no_reference
    method: str


def check_answer(predicted: str | None, reference: str | None, domain: str,
                 numeric_tolerance: float = 1e-3, *, choice: bool = False) -> AnswerCheck:
    """Is ``predicted`` the ``reference`` answer, by the domain's rule (or, for a
    multiple-choice row, the same letter)?"""
    if reference is None or not str(reference).strip():
        return AnswerCheck(False, "no_reference")
    if predicted is None or not predicted.strip():
        return AnswerCheck(False, "no_answer")
    if choice:
        return _check_choice(predicted, str(reference))
    if domain in EXACT_DOMAINS:
        same = normalize_exact(predicted) == normalize_exact(str(reference))
        return AnswerCheck(same, "exact" if same else "mismatch")
    gold, guess = _normalize_math(str(reference)), _normalize_math(predicted)
    if gold == guess:
        return AnswerCheck(True, "exact")
    gold_parts, guess_parts = split_roots(gold), split_roots(guess)
    if len(gold_parts) > 1 or len(guess_parts) > 1:
        # Several values: equal as wholes (math-verify's sets) or root by root, never by one of them.
        if _math_verify_equal(_parses(gold), _parses(guess)):
            return AnswerCheck(True, "symbolic")
        if _same_set(gold_parts, guess_parts, numeric_tolerance):
            return AnswerCheck(True, "set")
        return AnswerCheck(False, "mismatch")
    method = _equivalent(gold, guess, numeric_tolerance)
    return AnswerCheck(method is not None, method or "mismatch")


def choice_letter(text: str) -> str | None:
    """The one option letter (A-D) an answer names, else None."""
    boxed = last_boxed(text)
    value = boxed if boxed is not None else text
    value = _TEXT_COMMAND.sub(r"\1", value).replace("**", "").replace("$", "").strip()
    whole = _LONE_LETTER.fullmatch(value) or _LEADING_LETTER.match(value)
    if whole:
        return whole.group(1).upper()
    # In prose: the letter named as the answer, else the only capital A-D standing alone.
    for pattern in (_NAMED_LETTER, _STANDALONE_LETTER):
        letters = set(pattern.findall(value))
        if letters:
            return letters.pop() if len(letters) == 1 else None
    return None


def _check_choice(predicted: str, reference: str) -> AnswerCheck:
    gold = choice_letter(reference)
    if gold is None:
        return AnswerCheck(False, "no_reference")
    guess = choice_letter(predicted)
    if guess is None:
        return AnswerCheck(False, "no_letter")
    return AnswerCheck(guess == gold, "choice" if guess == gold else "mismatch")


def normalize_exact(value: str) -> str:
    """Exact-match form: no code fences or surrounding backticks, no trailing spaces, LF line ends."""
    value = value.replace("\r\n", "\n").strip()
    fence = re.fullmatch(r"```[\w+-]*\n?(.*?)\n?```", value, flags=re.DOTALL)
    if fence:
        value = fence.group(1)
    elif len(value) >= 2 and value[0] == value[-1] == "`":
        value = value.strip("`")
    return "\n".join(line.rstrip() for line in value.strip().splitlines())


def _normalize_math(value: str) -> str:
    value = value.strip()
    boxed = last_boxed(value)
    if boxed is not None:
        value = boxed
    value = value.strip().strip("$").strip()
    value = re.sub(r"^\\[\[(]|\\[\])]$", "", value).strip()  # \[ … \] and \( … \)
    value = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), value)
    # "1.6e-19" as a plain decimal: math-verify's LaTeX reading would take the e for Euler's number
    value = _E_NOTATION.sub(lambda m: format(Decimal(m.group(0)), "f"), value)
    return value.rstrip(" .").strip()


def split_roots(value: str) -> list[str]:
    """Split ``a, b or c`` at the top level (never inside brackets) into distinct parts."""
    value = value.strip()
    if value.startswith("\\{") and value.endswith("\\}"):
        value = value[2:-2]
    parts: list[str] = []
    depth = 0
    start = 0
    index = 0
    while index < len(value):
        char = value[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0:
            match = _SET_SEPARATORS.match(value, index)
            if match and match.end() > index and (match.group(0).strip() or value[index] in ",;"):
                parts.append(value[start:index])
                start = index = match.end()
                continue
        index += 1
    parts.append(value[start:])
    cleaned = []
    for part in parts:
        part = _VARIABLE_PREFIX.sub("", part.strip()).strip()
        if part and part not in cleaned:
            cleaned.append(part)
    return cleaned


def _same_set(gold_parts: list[str], guess_parts: list[str], tolerance: float) -> bool:
    if len(gold_parts) != len(guess_parts):
        return False
    unmatched = list(guess_parts)
    for gold in gold_parts:
        for candidate in unmatched:
            if gold == candidate or _equivalent(gold, candidate, tolerance) is not None:
                unmatched.remove(candidate)
                break
        else:
            return False
    return not unmatched


def _equivalent(gold: str, guess: str, tolerance: float) -> str | None:
    """"symbolic" or "numeric" when the two single values are equal, else None."""
    if len(gold) > MAX_PARSE_CHARS or len(guess) > MAX_PARSE_CHARS:
        return None
    gold_unit, guess_unit = unit_of(gold), unit_of(guess)
    if gold_unit and guess_unit and gold_unit != guess_unit:
        return None  # "12 kg" is not "12 N", whatever the number
    gold_parsed = _parses(gold)
    guess_parsed = _parses(guess)
    if _math_verify_equal(gold_parsed, guess_parsed):
        return "symbolic"
    exact = bool(re.fullmatch(r"[-+]?\d+", _lone_number(gold) or ""))
    stated = _lone_number(guess)
    for target in _numbers(gold, gold_parsed):
        for value in _numbers(guess, guess_parsed):
            if numerically_equal(value, target, tolerance, stated=stated, exact=exact):
                return "numeric"
    return None


def unit_of(value: str) -> str:
    """The unit written after an answer's number ("9.8 m/s^2" -> "m/s^2"), else ""."""
    split = _number_and_unit(value)
    return split[1] if split else ""


def _number_and_unit(value: str) -> tuple[str, str] | None:
    """("9.8", "m/s^2") for "v = 9.8 \\text{ m/s^2}": a leading number, then nothing or a unit."""
    match = _LEADING_NUMBER.match(_VARIABLE_PREFIX.sub("", value))
    if match is None:
        return None
    unit = re.sub(r"\\(?:text|mathrm|,|;|!|\s)|[{}$\s~]", "", match.group(2)).replace("\\%", "%")
    return (match.group(1), unit) if not unit or _UNIT.fullmatch(unit) else None


def numerically_equal(value: float, target: float, tolerance: float, stated: str | None = None,
                      exact: bool = False) -> bool:
    """A reference written as an integer (``exact``: "100", "12 N") must be met exactly.
    Any other is met within the relative ``tolerance``, or by an answer that is the
    reference rounded to the digits it states (``stated``, e.g. "9.8" for 9.81: half a
    unit in its last place), given at least two significant digits, so "0.7" is not 2/3
    but "0.67" is."""
    if exact:
        return value == target
    if abs(value - target) <= tolerance * abs(target):
        return True
    if stated is None:
        return False
    digits = stated.lstrip("+-")
    significant = len(digits.replace(".", "").lstrip("0"))
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return significant >= 2 and abs(value - target) <= 0.5 * 10 ** -decimals * (1 + 1e-9)


def _lone_number(text: str) -> str | None:
    """The answer's number as written, when it is one number (with or without a unit)."""
    split = _number_and_unit(text)
    return split[0] if split else None


def _timeout_s() -> int | None:
    # math-verify times out with signal.alarm, which only works on the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parses(value: str) -> list[list]:
    """math-verify's reading of the answer as LaTeX math (``$…$``), else of the text as written.

    The plain-text reading is only a fallback: it keeps the last number it finds, so it
    would read "2, 5" as 5 and "(1, 2)" as 2.
    """
    from math_verify import parse

    _quiet_math_verify()
    for text in (f"${value}$", value):
        try:
            parsed = parse(text, parsing_timeout=_timeout_s())
        except Exception:  # noqa: BLE001 - an unparsable answer is just not equal
            parsed = []
        if parsed:
            return [parsed]
    return []


def _math_verify_equal(gold_readings: list[list], guess_readings: list[list]) -> bool:
    from math_verify import verify

    timeout = _timeout_s()
    for gold in gold_readings:
        for guess in guess_readings:
            try:
                if verify(gold, guess, timeout_seconds=timeout):
                    return True
            except Exception:  # noqa: BLE001
                continue
    return False


def _numbers(text: str, readings: list[list]) -> list[float]:
    """Finite numeric values the answer stands for: from math-verify's parse, else its lone number."""
    values: list[float] = []
    for reading in readings:
        for item in reading:
            number = _as_float(item)
            if number is not None:
                values.append(number)
    lone = None if values else _lone_number(text)
    if lone is not None:  # "9.8 m/s^2": one number and a unit
        values.append(float(lone))
    return values


def _as_float(item) -> float | None:
    if isinstance(item, str):
        return None
    try:
        import sympy

        if isinstance(item, sympy.Eq):
            item = item.rhs
        if getattr(item, "is_number", False):
            number = complex(item.evalf())
            if number.imag == 0 and math.isfinite(number.real):
                return number.real
    except Exception:  # noqa: BLE001
        return None
    return None


_QUIETED = False


def _quiet_math_verify() -> None:
    """Off the main thread the timeout is knowingly off (inputs are length-capped): skip its warning."""
    global _QUIETED
    if _QUIETED:
        return
    import math_verify.grader
    import math_verify.parser

    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    _QUIETED = True

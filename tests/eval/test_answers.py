"""Answer extraction and checking on hand-written responses."""

from __future__ import annotations

import threading

import pytest

from r1tui.eval.answers import check_answer, choice_letter, split_roots
from r1tui.response_format import extract_answer, split_response


def response(think: str, after: str) -> str:
    return f"<think>\n{think}\n</think>\n\n{after}"


# ---- extraction


def test_final_answer_line_is_taken_after_the_think_block():
    text = response("Maybe FINAL ANSWER: 3? No.", "So the total is 12.\nFINAL ANSWER: 12")
    assert extract_answer(text).text == "12"
    assert extract_answer(text).source == "final_answer"


def test_last_final_answer_line_wins_and_markdown_and_boxed_are_unwrapped():
    text = response("x", "FINAL ANSWER: 11\nOops, corrected.\n**Final answer:** $\\boxed{\\frac{3}{4}}$.")
    assert extract_answer(text).text == "\\frac{3}{4}"


def test_answer_on_the_line_after_the_marker():
    assert extract_answer(response("x", "FINAL ANSWER:\n\n  42\n")).text == "42"


def test_boxed_fallback_with_nested_braces():
    found = extract_answer(response("x", "Thus $\\boxed{2^{\\frac{1}{2}}}$ is it."))
    assert (found.text, found.source) == ("2^{\\frac{1}{2}}", "boxed")


@pytest.mark.parametrize("tail, expected", [
    ("**FINAL ANSWER: 21**", "21"),               # the whole line in bold
    ("FINAL ANSWER: **O(n^2)**.", "O(n^2)"),
    ("**Final Answer: O(log n)**", "O(log n)"),
    ("### Final Answer\n42", "42"),               # a heading, the value below it
    ("**Final Answer**\n\n$\\boxed{7}$", "7"),
    ("FINAL ANSWER - 42", "42"),
    ("FINAL ANSWER = 42", "42"),
    ("FINAL_ANSWER: 42", "42"),
    ("__Final answer:__ 6", "6"),
    ("FINAL ANSWER: __init__", "__init__"),       # underscores of an answer are not markdown
])
def test_common_answer_line_forms(tail, expected):
    found = extract_answer(response("x", tail))
    assert (found.text, found.source) == (expected, "final_answer")


@pytest.mark.parametrize("tail, expected", [
    ("FINAL ANSWER: def f(): return 1\n# final answer - computed above", "def f(): return 1"),  # colon line wins
    ("```python\nfinal_answer = n * 2\n```", None),  # a code identifier, not an answer line
    ("so the result:\nFinal answer - the loop runs 3 times", "the loop runs 3 times"),
])
def test_loose_answer_forms_only_start_a_line_and_only_without_a_colon_line(tail, expected):
    assert extract_answer(response("x", tail)).text == expected


def test_missing_answer_line():
    found = extract_answer(response("2 + 2 = 4", "The final answer is 4"))
    assert (found.text, found.source) == (None, "none")


def test_truncated_inside_think_has_no_answer_even_if_one_was_drafted():
    truncated = "<think>\nStep 1: 2 + 2 = 4\nFINAL ANSWER: 4 (draft)\nStep 2: chec"
    parsed = split_response(truncated)
    assert parsed.think.startswith("Step 1") and not parsed.think_closed
    assert extract_answer(truncated).text is None


def test_split_response_without_tags():
    parsed = split_response("FINAL ANSWER: 5")
    assert parsed.think is None and parsed.answer_part == "FINAL ANSWER: 5"


# ---- checking


@pytest.mark.parametrize("predicted, reference, domain, method", [
    ("12", "12", "math", "exact"),
    ("\\boxed{1024}", "1024", "math", "exact"),
    ("1,000", "1000", "math", "exact"),
    ("7.20", "7.2", "math", "symbolic"),
    ("\\frac{1}{2}", "0.5", "math", "symbolic"),
    ("x = 5", "5", "math", "symbolic"),
    ("(x+1)^2", "x^2+2x+1", "math", "symbolic"),
    ("2\\sqrt{3}", "\\sqrt{12}", "math", "symbolic"),
    ("x = 3 or x = 2/3", "3, \\frac{2}{3}", "math", "symbolic"),
    ("-8, -12", "-12, -8", "math", "symbolic"),
    ("x = -8 and x = -12", "-12, -8", "math", "symbolic"),
    ("x = 0.667 or x = 3", "3, \\frac{2}{3}", "math", "set"),   # a rounded root: per-root tolerance
    ("0.6667", "\\frac{2}{3}", "math", "numeric"),
    ("9.8 m/s^2", "9.81", "physics", "numeric"),
    ("361.25 m", "361.25", "physics", "symbolic"),
    ("`O(n)`", "O(n)", "coding", "exact"),
    ("```\n[1, 2]\n```", "[1, 2]", "coding", "exact"),
])
def test_equivalent_forms_are_correct(predicted, reference, domain, method):
    check = check_answer(predicted, reference, domain, numeric_tolerance=1e-2)
    assert check.correct, check
    assert check.method == method


@pytest.mark.parametrize("predicted, reference, domain", [
    ("41", "42", "math"),
    ("0.7", "\\frac{2}{3}", "math"),        # 5 % off: outside a 1 % tolerance
    ("(2, 1)", "(1, 2)", "math"),           # ordered pair, not a set
    ("3", "3, \\frac{2}{3}", "math"),       # a root missing
    ("3, 2/3, 1", "3, \\frac{2}{3}", "math"),
    ("[1,2]", "[1, 2]", "coding"),          # coding output must match exactly
    ("18.0", "18", "coding"),
    ("O(n^2)", "O(n)", "coding"),
])
def test_wrong_answers_are_wrong(predicted, reference, domain):
    check = check_answer(predicted, reference, domain, numeric_tolerance=1e-2)
    assert not check.correct and check.method == "mismatch"


def test_numeric_tolerance_is_the_configured_one():
    # 0.6668 is 2e-4 off 2/3 and not 2/3 rounded to four places.
    assert not check_answer("0.6668", "\\frac{2}{3}", "math", numeric_tolerance=1e-6).correct
    assert check_answer("0.6668", "\\frac{2}{3}", "math", numeric_tolerance=1e-3).correct
    assert not check_answer("1560", "1573.2", "math", numeric_tolerance=1e-3).correct
    assert check_answer("1560", "1573.2", "math", numeric_tolerance=1e-2).correct


@pytest.mark.parametrize("predicted, reference, domain", [
    ("3, 5", "2, 5", "math"),      # a wrong first root
    ("5", "2, 5", "math"),         # a missing first root
    ("x = 1", "-11, 1", "math"),
    ("2", "(1, 2)", "math"),       # one end of an interval / ordered pair
    ("2 and 3", "3", "math"),      # hedging between two answers
    ("101", "100", "math"),        # an integer reference is met exactly, never within a tolerance
    ("99", "100", "math"),
    ("1009", "1000", "math"),
    ("0.7", "\\frac{2}{3}", "math"),  # rounded to one significant digit only
    ("12 kg", "12 N", "physics"),  # the same number in another unit
    ("9.8 m/s^2", "9.81 km/h", "physics"),
])
def test_answers_that_share_only_part_of_the_reference_are_wrong(predicted, reference, domain):
    check = check_answer(predicted, reference, domain)
    assert not check.correct and check.method == "mismatch", check


@pytest.mark.parametrize("predicted, reference", [
    ("0.67", "\\frac{2}{3}"), ("-25", "-24.8"), ("1573", "1573.2"), ("4.9 m/s", "4.905 m/s"), ("3.14", "\\pi"),
])
def test_a_fractional_reference_rounded_to_the_digits_given_is_right(predicted, reference):
    check = check_answer(predicted, reference, "physics", numeric_tolerance=0.0)
    assert check.correct and check.method == "numeric", check


@pytest.mark.parametrize("predicted, reference, domain, correct", [
    ("1.6e-19 C", "1.6e-19", "physics", True),
    ("1.5e-3", "0.0015", "math", True),
    ("3e8", "3.00 \\times 10^8", "physics", True),
    ("6.02e23", "6.02 \\times 10^{23}", "physics", True),
    ("1.5e-3", "0.001234", "physics", False),  # rounding allowance scales with the exponent
    ("12.0", "12 N", "physics", True),
    ("12.4", "12 N", "physics", False),         # an integer reference is met exactly
])
def test_e_notation_is_a_number_not_eulers_e(predicted, reference, domain, correct):
    assert check_answer(predicted, reference, domain).correct is correct


def test_unit_of_an_answer():
    from r1tui.eval.answers import unit_of

    assert unit_of("9.8 m/s^2") == "m/s^2" and unit_of("v = 9.8 \\text{ m/s}") == "m/s"
    assert unit_of("12") == unit_of("3x+1") == unit_of("(1, 2)") == ""


def test_no_answer_and_no_reference():
    assert check_answer(None, "4", "math") == check_answer("  ", "4", "math")
    assert check_answer(None, "4", "math").method == "no_answer"
    assert check_answer("4", "", "math").method == "no_reference"


def test_split_roots_keeps_brackets_whole_and_drops_variables():
    assert split_roots("x = 3 or x = 2/3") == ["3", "2/3"]
    assert split_roots("\\{1, 2\\}") == ["1", "2"]
    assert split_roots("(1, 2)") == ["(1, 2)"]
    assert split_roots("f(x) = 3") == ["3"]


def test_checking_works_off_the_main_thread():
    """The dashboard runs checks in worker threads, where math-verify's signal timeout cannot work."""
    results = []
    worker = threading.Thread(target=lambda: results.append(check_answer("\\frac{1}{2}", "0.5", "math")))
    worker.start()
    worker.join()
    assert results[0].correct and results[0].method == "symbolic"


# ---- multiple choice


@pytest.mark.parametrize("reply", [
    "C", "(C)", "C)", "c", "C.", "[C]", "\\boxed{C}", "$\\boxed{\\text{C}}$", "**C**",
    "C. 10^-4 eV", "(C) 10^-4 eV", "C) the mitochondrial matrix",
    "The answer is C", "The answer is (C).", "Answer: C", "A careful count gives the answer C",
    "The answer is C, not B", "I pick C",
])
def test_a_reply_naming_one_letter_is_that_letter(reply):
    assert choice_letter(reply) == "C"
    check = check_answer(reply, "C", "chemistry", choice=True)
    assert check.correct and check.method == "choice", check


@pytest.mark.parametrize("reply", [
    "10^-4 eV",              # the option's text, not its letter
    "B or C", "C and D",     # hedging between letters
    "None of the above", "E", "AB", "I am not sure",
])
def test_a_reply_naming_no_single_letter_is_not_an_answer(reply):
    assert choice_letter(reply) is None
    check = check_answer(reply, "C", "physics", choice=True)
    assert not check.correct and check.method == "no_letter", check


def test_choice_answers_compare_letters_whatever_the_domain():
    assert check_answer("B", "C", "math", choice=True) == check_answer("(B) 12", "C", "coding", choice=True)
    assert check_answer("B", "C", "math", choice=True).method == "mismatch"
    assert check_answer(None, "C", "physics", choice=True).method == "no_answer"
    assert check_answer("C", "", "physics", choice=True).method == "no_reference"
    assert check_answer("C", "10 eV", "physics", choice=True).method == "no_reference"  # a reference that is no letter
    # Without choice=True a letter is an ordinary answer, checked as before.
    assert check_answer("C", "C", "coding").method == "exact"

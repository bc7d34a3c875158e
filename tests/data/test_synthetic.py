"""The offline generator: seeded, balanced, checked answers, disjoint held-out seeds."""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import re
from fractions import Fraction

import pytest

from r1tui.data.synthetic import _TEMPLATES, DOMAINS, PARTITIONS, generate_problems
from r1tui.response_format import extract_final_answer, format_assistant, split_think

EVAL_SEED = 1_000_003  # config.eval.seed's default


@pytest.fixture(scope="module")
def train_rows() -> list[dict[str, str]]:
    return generate_problems(600, seed=0)


def test_same_seed_same_rows_and_prefix_stable(train_rows):
    assert generate_problems(600, seed=0) == train_rows
    assert generate_problems(50, seed=0) == train_rows[:50]
    assert generate_problems(50, seed=1) != train_rows[:50]


def test_rows_have_the_four_fields_and_balanced_domains(train_rows):
    for row in train_rows:
        assert set(row) == {"question", "reasoning", "answer", "domain"}
        assert all(isinstance(value, str) and value.strip() for value in row.values())
        assert len(row["reasoning"].splitlines()) >= 2  # a step-by-step trace
    counts = {domain: sum(row["domain"] == domain for row in train_rows) for domain in DOMAINS}
    assert counts == {"math": 200, "physics": 200, "coding": 200}


def test_questions_are_distinct_within_a_seed(train_rows):
    assert len({row["question"] for row in train_rows}) == len(train_rows)


@pytest.mark.parametrize("other_seed", [EVAL_SEED, 1, 5, PARTITIONS - 1, 12345])
def test_seeds_in_different_partitions_give_disjoint_problems(train_rows, other_seed):
    assert other_seed % PARTITIONS != 0
    held_out = generate_problems(600, seed=other_seed)
    assert not {row["question"] for row in train_rows} & {row["question"] for row in held_out}


def test_signatures_are_canonical():
    """Disjointness hashes the parameters: two different parameter tuples must never print the
    same question, or two seeds could share a problem."""
    for templates in _TEMPLATES.values():
        for name, sample, build in templates:
            rng, seen = random.Random(3), {}
            for _ in range(1500):
                params = sample(rng)
                question = build(*params)[0]
                assert seen.setdefault(question, params) == params, f"{name}: {params} and {seen[question]}"


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})
    return out.getvalue().strip()


def test_answers_check_out_independently(train_rows):
    """Re-derive answers here, without the generator's own code paths."""
    checked = {"program": 0, "linear": 0, "quadratic": 0, "percent": 0}
    for row in train_rows:
        question, answer = row["question"], row["answer"]
        if question.startswith("What does this Python program print?"):
            code = question.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
            assert _run(code) == answer
            checked["program"] += 1
        elif match := re.fullmatch(r"Solve for (\w): (-?\d+)\1 ([+-]) (\d+) = (-?\d+)", question):
            a, sign, b, c = int(match[2]), match[3], int(match[4]), int(match[5])
            x = int(answer)
            assert a * x + (b if sign == "+" else -b) == c
            checked["linear"] += 1
        elif question.startswith("Find all real solutions of"):
            poly = question.split("of ", 1)[1].split(" = 0")[0]
            expression = re.sub(r"(\d)x", r"\1*x", poly).replace("^", "**")
            for root in answer.split(", "):
                assert eval(expression, {"x": Fraction(root)}) == 0
            checked["quadratic"] += 1
        elif match := re.fullmatch(r"What is (\d+)% of (\d+)\?", question):
            assert Fraction(answer) == Fraction(int(match[1]), 100) * int(match[2])
            checked["percent"] += 1
    assert all(count > 5 for count in checked.values()), checked


def test_complexity_answers_are_big_o(train_rows):
    answers = {row["answer"] for row in train_rows if "time complexity" in row["question"]}
    assert answers and answers <= {"O(log n)", "O(n)", "O(n log n)", "O(n^2)", "O(n^3)"}
    assert len(answers) >= 4


def test_assistant_format_round_trips(train_rows):
    row = train_rows[0]
    content = format_assistant(row["reasoning"], row["answer"])
    assert content.startswith("<think>\n") and "\n</think>\n\nFINAL ANSWER: " in content
    assert split_think(content) == (row["reasoning"], f"FINAL ANSWER: {row['answer']}")
    assert extract_final_answer(content) == row["answer"]
    assert extract_final_answer("no answer here") is None
    assert extract_final_answer("<think>FINAL ANSWER: 1</think>\n\nFINAL ANSWER: 2\nmore") == "2"


def _exact(expression: str) -> Fraction:
    """An arithmetic expression (+ - * / ^, brackets, decimals) evaluated exactly."""
    import ast
    import operator

    def evaluate(node):
        if isinstance(node, ast.Constant):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -evaluate(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = evaluate(node.left), evaluate(node.right)
            if isinstance(node.op, ast.Pow):
                return left ** int(right)
            operation = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                         ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}[type(node.op)]
            return Fraction(operation(left, right))
        raise ValueError(ast.dump(node))

    return evaluate(ast.parse(expression.strip().replace("^", "**"), mode="eval").body)


def test_every_arithmetic_equality_in_the_traces_holds():
    """Each `a = b` between two plain arithmetic expressions in a trace is exactly true
    (so no trace teaches "630 * 0.277778 = 175"); a percentage on the right is /100."""
    left_expr = re.compile(r"(?:^|(?<=[\s:,]))(-?[\d.(][\d.\s*/+()^-]*)$")
    right_expr = re.compile(r"\s*(-?[\d.(][\d.\s*/+()^-]*?)(?=\s*(?:[A-Za-z%,;]|\.\s|\.$|$))")
    checked = 0
    for seed in (0, EVAL_SEED):
        for row in generate_problems(1500, seed=seed):
            for line in row["reasoning"].splitlines():
                sides = line.split(" = ")
                for left, right in itertools.pairwise(sides):
                    a, b = left_expr.search(left.strip()), right_expr.match(right)
                    if not a or not b:
                        continue
                    expected = _exact(b.group(1))
                    if right[b.end():].lstrip().startswith("%"):
                        expected /= 100
                    assert _exact(a.group(1)) == expected, line
                    checked += 1
    assert checked > 5000

"""Eval sets: synthetic held-out rows, local files, and rows through the data adapters."""

from __future__ import annotations

import json

import pytest

from r1tui.config import parse_config
from r1tui.errors import R1Error
from r1tui.eval.sets import example_row, load_eval_set


def test_synthetic_rows_are_held_out_from_training():
    from r1tui.data.synthetic import generate_problems

    config = parse_config({"data": {"seed": 0, "num_examples": 400}, "eval": {"seed": 1_000_003, "num_samples": 60}})
    eval_set = load_eval_set(config)
    training = {row["question"] for row in generate_problems(config.data.num_examples, config.data.seed)}
    rows = eval_set["rows"]
    assert len(rows) == 60 and eval_set["seed"] == 1_000_003 and eval_set["set"] == "synthetic"
    assert not training & {row["question"] for row in rows}
    assert {row["domain"] for row in rows} == {"math", "physics", "coding"}
    assert load_eval_set(config)["rows"] == rows  # seeded: the same rows every time


def test_an_eval_seed_in_the_training_partition_is_refused():
    from r1tui.data.synthetic import PARTITIONS

    config = parse_config({"data": {"seed": 5}, "eval": {"seed": 5 + PARTITIONS}})
    with pytest.raises(R1Error, match="same problem partition"):
        load_eval_set(config)


def test_local_jsonl_rows_with_aliases_gsm8k_answers_and_messages(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [
        {"question": "What is 6 * 7?", "answer": "42", "domain": "Math"},
        {"problem": "Simplify 2/4.", "answer": "\\frac{1}{2}", "subject": "Algebra"},           # MATH-500 shape
        {"question": "Natalia sold 48 clips ...", "answer": "48 + 24 = 72\n#### 1,272"},         # GSM8K shape
        {"messages": [{"role": "user", "content": "How far?"},
                      {"role": "assistant", "content": "<think>\nv t\n</think>\n\nFINAL ANSWER: 12 m"}],
         "domain": "physics"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    eval_set = load_eval_set(parse_config({}), source=str(path), num_samples=10)
    assert eval_set["set"] is None  # mixed shapes: no standard set's schema
    loaded = eval_set["rows"]
    assert [(r["question"][:8], r["answer"], r["domain"]) for r in loaded] == [
        ("What is ", "42", "math"), ("Simplify", "\\frac{1}{2}", "math"),
        ("Natalia ", "1272", "math"), ("How far?", "12 m", "physics"),
    ]
    assert load_eval_set(parse_config({}), source=str(path), num_samples=2)["rows"] == loaded[:2]


@pytest.mark.parametrize("line, message", [
    ('{"question": "q"}', r"set.jsonl:2: missing 'answer'"),
    ("{not json", r"set.jsonl:2: not valid JSON"),
    ('["q", "a"]', r"set.jsonl:2: a row must be a JSON object"),
])
def test_a_malformed_row_is_one_line_naming_the_row(tmp_path, line, message):
    path = tmp_path / "set.jsonl"
    path.write_text('{"question": "ok", "answer": "1"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(R1Error, match=message) as raised:
        load_eval_set(parse_config({}), source=str(path))
    assert "\n" not in str(raised.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(R1Error, match="file not found"):
        load_eval_set(parse_config({}), source=str(tmp_path / "nope.jsonl"))
    (tmp_path / "set.csv").write_text("q,a\n", encoding="utf-8")
    with pytest.raises(R1Error, match="unknown format"):
        load_eval_set(parse_config({}), source=str(tmp_path / "set.csv"))


def test_parquet_goes_through_the_data_adapters_and_skips_bad_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "set.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"question": "What does print(3) print?", "reasoning": "It prints 3.", "answer": "3", "domain": "coding"},
        {"question": "", "reasoning": "", "answer": "", "domain": None},
        {"question": "Speed?", "reasoning": "d / t", "answer": "5 m/s", "domain": "physics"},
    ]), path)
    rows = load_eval_set(parse_config({}), source=str(path))["rows"]
    assert [(r["answer"], r["domain"]) for r in rows] == [("3", "coding"), ("5 m/s", "physics")]


def test_gsm8k_rows_through_the_hub_adapter_become_eval_rows():
    from r1tui.data.sources import adapt_gsm8k

    example = adapt_gsm8k({"question": "Tom has 3 bags of 4 apples. How many?",
                           "answer": "3 bags * 4 = <<3*4=12>>12 apples\n#### 12"})
    assert example_row(example, "gsm8k-0", "gsm8k row 0") == {
        "id": "gsm8k-0", "question": "Tom has 3 bags of 4 apples. How many?", "answer": "12", "domain": "math"}

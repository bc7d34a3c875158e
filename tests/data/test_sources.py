"""Sources: canonical rows, field mapping, files with bad rows, and each Hub adapter on
hand-written rows of the real shape (no network here)."""

from __future__ import annotations

import json

import pytest

from r1tui.data.sources import (
    HF_ADAPTERS,
    MalformedRow,
    adapt_gsm8k,
    adapt_mixture_of_thoughts,
    adapt_openr1_math,
    adapt_s1k,
    adapt_stratos,
    canonical_example,
    load_examples,
    parse_source,
)
from r1tui.errors import R1Error

GOOD_QA = {"question": "What is 2+2?", "reasoning": "2 plus 2 is 4.", "answer": "4", "domain": "Math"}


def assistant(example) -> str:
    return example.messages[-1]["content"]


def reason_of(call, *args) -> str:
    with pytest.raises(MalformedRow) as error:
        call(*args)
    return error.value.reason


def test_canonical_question_row():
    example = canonical_example(GOOD_QA)
    assert example.domain == "math"
    assert example.messages == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\n2 plus 2 is 4.\n</think>\n\nFINAL ANSWER: 4"},
    ]


def test_canonical_messages_and_sharegpt_rows():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert canonical_example({"messages": messages}).messages == messages
    sharegpt = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    assert canonical_example(sharegpt).messages == messages[1:]
    assert canonical_example({"messages": messages}).domain == "unknown"


def test_field_mapping():
    row = {"prompt": "q?", "cot": "because", "final": "7", "topic": "physics"}
    example = canonical_example(row, {"question": "prompt", "reasoning": "cot", "answer": "final", "domain": "topic"})
    assert example.messages[0]["content"] == "q?"
    assert assistant(example).endswith("FINAL ANSWER: 7") and example.domain == "physics"


@pytest.mark.parametrize("row, reason", [
    ({"question": "q", "reasoning": "r"}, "missing_field:answer"),
    ({"reasoning": "r", "answer": "a"}, "missing_field:question"),
    ({"question": "q", "reasoning": "r", "answer": "   "}, "empty_answer"),
    ({"question": "q", "reasoning": "r", "answer": 4}, "wrong_type"),
    ({"question": "q", "answer": "a"}, "missing_field:reasoning"),
    ({"question": "q\ud800", "reasoning": "r", "answer": "a"}, "undecodable_text"),
    ({"text": "just text"}, "missing_field:messages"),
    ({"messages": "not a list"}, "wrong_type"),
    ({"messages": []}, "bad_messages"),
    ({"messages": [{"role": "user", "content": "q"}]}, "bad_messages"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}, "empty_answer"),
    ({"messages": [{"role": "user", "content": ["chunks"]}, {"role": "assistant", "content": "a"}]}, "wrong_type"),
    ({"messages": [{"role": "wizard", "content": "q"}, {"role": "assistant", "content": "a"}]}, "bad_messages"),
    (["not", "an", "object"], "wrong_type"),
])
def test_malformed_canonical_rows(row, reason):
    assert reason_of(canonical_example, row) == reason


def test_jsonl_with_bad_rows_is_skipped_and_counted(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(GOOD_QA).encode(), b"{not json", "caf\u00e9".encode("latin-1"), b"",
             json.dumps({"question": "q", "reasoning": "r", "answer": ""}).encode(),
             json.dumps({"question": "q", "reasoning": "r", "answer": 4}).encode(),
             b'{"question": "bad \\ud800", "reasoning": "r", "answer": "a"}', b"[1, 2]",
             json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    loaded = load_examples(str(path))
    assert len(loaded.examples) == 2
    assert loaded.rows_read == 8  # the blank line is not a row
    assert dict(loaded.skipped) == {"invalid_json": 1, "undecodable_text": 2, "empty_answer": 1, "wrong_type": 2}


def test_json_file_may_be_an_array_or_json_lines(tmp_path):
    rows = [GOOD_QA, {"question": "q", "reasoning": "r", "answer": ""}, GOOD_QA]
    (tmp_path / "array.json").write_text(json.dumps(rows, indent=2))  # pretty-printed, as tools export it
    loaded = load_examples(str(tmp_path / "array.json"))
    assert (len(loaded.examples), loaded.rows_read, dict(loaded.skipped)) == (2, 3, {"empty_answer": 1})
    (tmp_path / "lines.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert len(load_examples(str(tmp_path / "lines.json")).examples) == 2
    (tmp_path / "broken.json").write_text('[{"question": "q",')
    with pytest.raises(R1Error, match="starts like a JSON array but is not valid JSON"):
        load_examples(str(tmp_path / "broken.json"))


def test_parquet_source_with_field_mapping_and_cap(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": f"q{i}", "cot": "r", "final": str(i)} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    loaded = load_examples(str(tmp_path / "rows.parquet"), num_examples=4,
                           fields={"question": "prompt", "reasoning": "cot", "answer": "final"})
    assert [e.messages[0]["content"] for e in loaded.examples] == ["q0", "q1", "q2", "q3"]
    assert loaded.rows_read == 4


def test_local_file_errors_are_one_line(tmp_path):
    with pytest.raises(R1Error, match="not found"):
        load_examples(str(tmp_path / "missing.jsonl"))
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(R1Error, match="unknown format '.csv'"):
        load_examples(str(tmp_path / "rows.csv"))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(R1Error, match="not a readable Parquet file"):
        load_examples(str(tmp_path / "bad.parquet"))


def test_synthetic_source():
    loaded = load_examples("synthetic", num_examples=9, seed=0)
    assert loaded.rows_read == 9 and not loaded.skipped
    assert {e.domain for e in loaded.examples} == {"math", "physics", "coding"}


def test_parse_source():
    assert parse_source("synthetic") == ("synthetic", "synthetic", None)
    assert parse_source("hf:openai/gsm8k") == ("hf", "openai/gsm8k", "main")
    assert parse_source("hf:open-r1/Mixture-of-Thoughts:math") == ("hf", "open-r1/Mixture-of-Thoughts", "math")
    assert parse_source("/data/x.jsonl") == ("local", "/data/x.jsonl", None)
    with pytest.raises(R1Error, match="hf:<owner>/<name>"):
        parse_source("hf:gsm8k")


def test_hub_source_fails_with_one_line_offline():
    """The Hub itself cannot be reached here (HF_HUB_OFFLINE=1): the error must be one clear line."""
    with pytest.raises(R1Error) as error:
        load_examples("hf:openai/gsm8k", num_examples=2)
    assert "hf:openai/gsm8k" in str(error.value) and "\n" not in str(error.value)


# -- adapters, on rows shaped like the real corpora ------------------------------------------

R1_GENERATION = "<think>\nLet me compute 3 * 4.\n3 * 4 = 12.\n</think>\n\nThe answer is $\\boxed{12}$."


def test_openr1_math_picks_a_verified_complete_generation():
    row = {"problem": "Compute 3 times 4.", "solution": "12", "answer": "12", "problem_type": "Algebra",
           "question_type": "math-word-problem", "source": "olympiads", "uuid": "abc",
           "is_reasoning_complete": [False, True, True],
           "generations": ["<think>\nunfinished", "<think>\nwrong path\n</think>\n\n13", R1_GENERATION],
           "correctness_math_verify": [True, False, True], "correctness_llama": None,
           "finish_reasons": ["length", "stop", "stop"], "correctness_count": 2,
           "messages": [{"role": "user", "content": "Compute 3 times 4."}, {"role": "assistant", "content": R1_GENERATION}]}
    example = adapt_openr1_math(row)
    assert example.domain == "math"
    assert assistant(example) == "<think>\nLet me compute 3 * 4.\n3 * 4 = 12.\n</think>\n\nFINAL ANSWER: 12"
    llama_only = dict(row, correctness_math_verify=[False, False, False], correctness_llama=[False, True, False])
    assert "wrong path" in assistant(adapt_openr1_math(llama_only))
    unverified = dict(row, correctness_math_verify=[False, False, False])
    assert reason_of(adapt_openr1_math, unverified) == "no_verified_generation"
    assert reason_of(adapt_openr1_math, {k: v for k, v in row.items() if k != "generations"}) == "missing_field:generations"
    assert reason_of(adapt_openr1_math, dict(row, answer="")) == "empty_answer"


def test_mixture_of_thoughts_rewrites_the_answer():
    row = {"messages": [{"role": "user", "content": "Write a program that prints 1."},
                        {"role": "assistant", "content": "<think>\nJust print.\n</think>\n\n```cpp\nint main(){}\n```"}],
           "num_tokens": 512, "source": "open-r1/codeforces-cots"}
    example = adapt_mixture_of_thoughts(row)
    assert example.domain == "coding"
    assert assistant(example) == "<think>\nJust print.\n</think>\n\nFINAL ANSWER: ```cpp\nint main(){}\n```"
    science = dict(row, source="nvidia/Llama-Nemotron-Post-Training-Dataset")
    assert adapt_mixture_of_thoughts(science).domain == "science"
    no_think = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "plain"}], "source": "x"}
    assert assistant(adapt_mixture_of_thoughts(no_think)) == "plain"
    empty = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>x</think>"}]}
    assert reason_of(adapt_mixture_of_thoughts, empty) == "empty_answer"


STRATOS_ANSWER = ("<|begin_of_thought|>\n\nOkay, 5 + 7.\n\n<|end_of_thought|>\n\n"
                  "<|begin_of_solution|>\n\nThe sum is **12**.\n\n<|end_of_solution|>")


@pytest.mark.parametrize("name", ["bespokelabs/Bespoke-Stratos-17k", "open-thoughts/OpenThoughts-114k"])
def test_stratos_and_openthoughts(name):
    row = {"system": "Your role as an assistant involves thoroughly exploring questions ...",
           "conversations": [{"from": "user", "value": "What is 5 + 7?"}, {"from": "assistant", "value": STRATOS_ANSWER}]}
    example = HF_ADAPTERS[name](row)
    assert example.messages == [
        {"role": "user", "content": "What is 5 + 7?"},
        {"role": "assistant", "content": "<think>\nOkay, 5 + 7.\n</think>\n\nFINAL ANSWER: The sum is **12**."},
    ]
    no_markers = {"conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "12"}]}
    assert reason_of(adapt_stratos, no_markers) == "missing_markers"
    assert reason_of(adapt_stratos, {"system": "s"}) == "missing_field:conversations"


def test_openthoughts_metadata_shape():
    row = {"problem": "Is 7 prime?", "deepseek_reasoning": "7 has no divisors but 1 and 7.",
           "deepseek_solution": "Yes", "ground_truth_solution": None, "domain": "math", "source": "numina_math",
           "test_cases": None, "starter_code": None}
    example = adapt_stratos(row)
    assert example.domain == "math" and assistant(example).endswith("FINAL ANSWER: Yes")


def test_s1k():
    row = {"solution": "12", "question": "Find 3*4.", "cot_type": "math", "source_type": "AI-MO/NuminaMath-CoT/aops_forum",
           "metadata": "{}", "gemini_thinking_trajectory": "g", "gemini_attempt": "12",
           "deepseek_thinking_trajectory": "3 times 4 is 12.", "deepseek_attempt": "The answer is 12.",
           "gemini_grade": "Yes", "gemini_grade_reason": "", "deepseek_grade": "Yes", "deepseek_grade_reason": ""}
    example = adapt_s1k(row)
    assert example.domain == "math"
    assert assistant(example) == "<think>\n3 times 4 is 12.\n</think>\n\nFINAL ANSWER: The answer is 12."
    assert adapt_s1k(dict(row, cot_type="crossword")).domain == "puzzle"
    assert reason_of(adapt_s1k, dict(row, deepseek_attempt=None)) == "missing_field:deepseek_attempt"


def test_gsm8k():
    row = {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                       "How many clips did Natalia sell altogether in April and May?",
           "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
                     "altogether in April and May.\n#### 72"}
    example = adapt_gsm8k(row)
    assert assistant(example) == ("<think>\nNatalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips "
                                  "altogether in April and May.\n</think>\n\nFINAL ANSWER: 72")
    assert assistant(adapt_gsm8k(dict(row, answer="1,000 + 1 = 1,001\n#### 1,001"))).endswith("FINAL ANSWER: 1001")
    assert reason_of(adapt_gsm8k, dict(row, answer="no marker")) == "missing_markers"
    assert reason_of(adapt_gsm8k, dict(row, answer="work\n####  ")) == "empty_answer"


def test_every_adapter_survives_garbage():
    for adapter in set(HF_ADAPTERS.values()):
        for row in ({}, {"messages": None}, {"question": None}, {"problem": 5, "generations": "x"}):
            with pytest.raises(MalformedRow):
                adapter(row)

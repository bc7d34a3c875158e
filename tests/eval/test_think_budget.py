"""`r1tui eval --think-budget`: the same questions at several thinking budgets, on real tiny GGUFs.

The scripted GGUF answers every prompt with tests/tiny_gguf.py's SCRIPT. Prefilled with
"<think>\\n" it goes on with "FINAL ANSWER: 4" and stops inside the think block (the
newline leads to "FINAL" in its chain): at a budget of 64 no reply closes its block (no
answer, not compliant); at a budget of 4 the cap closes it after "FINAL ANSW", forces the
answer line, and the chain finishes with "…FINAL ANSWER: 4" and </s> (right where the
reference is 4, every reply compliant). So the curve is known before it is measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tui.cli import main
from r1tui.infer.thinking import CLOSING, OPENING
from r1tui.response_format import split_response

ROWS = [
    {"question": "What is 2 + 2?", "answer": "4", "domain": "math"},
    {"question": "What is 3 + 5?", "answer": "8", "domain": "math"},
]


@pytest.fixture
def rows_jsonl(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


@pytest.mark.slow
def test_think_budget_end_to_end(scripted_gguf, rows_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", "--gguf", str(scripted_gguf), "--source", str(rows_jsonl), "--prefill-think", "true",
                 "--think-budget", "64,4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy and compliance against the thinking budget" in printed
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "think-budget-4.json", "think-budget-64.json"]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    curve = {row["max_think_tokens"]: row for row in results["think_budget"]}
    assert list(curve) == [4, 64]
    assert (curve[4]["accuracy"], curve[4]["compliance_rate"], curve[4]["think_capped_rate"]) == (0.5, 1.0, 1.0)
    assert (curve[64]["accuracy"], curve[64]["compliance_rate"], curve[64]["think_capped_rate"]) == (0.0, 0.0, 0.0)
    assert curve[4]["think_tokens_generated_max"] == 4
    # the settings are recorded with the results of each budget
    thinking = results["generation"]["thinking"]
    assert thinking["prefill"] is True and thinking["max_think_tokens"] == 64
    assert thinking["prefill_reason"] == "infer.prefill_think = true"
    capped = json.loads((out / "think-budget-4.json").read_text(encoding="utf-8"))
    assert capped["generation"]["thinking"]["max_think_tokens"] == 4
    for sample in capped["samples"]:
        response = sample["response"]
        assert response.startswith(OPENING) and "\n" + CLOSING in response  # the prefill is part of the reply
        assert sample["think_capped"] and sample["think_tokens_generated"] <= 4
        assert split_response(response).think_closed and sample["answer_line"] and sample["finished_eos"]
    for sample in json.loads((out / "think-budget-64.json").read_text(encoding="utf-8"))["samples"]:
        assert sample["response"] == OPENING + "FINAL ANSWER: 4" and not sample["think_capped"]


@pytest.mark.slow
def test_every_reply_of_a_model_that_never_stops_is_cut_at_its_budget(random_gguf, rows_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", "--gguf", str(random_gguf), "--source", str(rows_jsonl), "--prefill-think", "true",
                 "--think-budget", "3,7", "--out", str(out)]) == 0
    for cap in (3, 7):
        samples = json.loads((out / f"think-budget-{cap}.json").read_text(encoding="utf-8"))["samples"]
        assert len(samples) == len(ROWS)
        for sample in samples:
            assert sample["think_capped"] and sample["think_tokens_generated"] == cap
            assert "\n" + CLOSING in sample["response"] and split_response(sample["response"]).think_closed


def test_markdown_for_the_card_has_the_curve():
    from r1tui.eval.report import markdown_tables

    row = {"max_think_tokens": 256, "count": 4, "accuracy": 0.5, "pass@1": 0.5, "pass@1_se": 0.25,
           "compliance_rate": 0.75, "think_tokens_generated_median": 200, "think_capped_rate": 0.5,
           "truncated_rate": 0.0}
    summary = {"count": 4, "avg_depth": 0.5, "compliance_rate": 0.75, "pass@1": 0.5}
    results = {"summary": summary, "domains": {}, "think_budget": [row],
               "generation": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 64,
                              "thinking": {"prefill": True, "prefill_reason": "auto: 100% of runs/x",
                                           "max_think_tokens": 256, "answer_tokens": 64}}}
    text = markdown_tables(results)
    assert "| 256 | 50.0% ± 25.0 | 75.0% | 200 | 50.0% | 0.0% |" in text
    assert "Thinking: prefilled <think>, think ≤ 256 tokens, answer ≤ 64." in text
    assert "runs/x" not in text  # no local paths in a published card


@pytest.mark.parametrize("extra, fragment", [
    (["--think-budget", "256,0"], "--think-budget 256,0: give positive whole numbers"),
    (["--think-budget", "lots"], "--think-budget lots: give positive whole numbers"),
    (["--think-budget", "8", "--vs", "other.gguf"], "--think-budget runs one model at several thinking budgets"),
    (["--min-think-tokens", "9", "--max-think-tokens", "4"], "--min-think-tokens 9 is above the cap of 4"),
    (["--think-budget", "8", "--base-url", "http://127.0.0.1:9/v1"], "cannot do; evaluate a GGUF"),
    (["--prefill-think", "maybe"], "invalid choice"),
])
def test_bad_thinking_options_are_one_line(scripted_gguf, rows_jsonl, tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    try:
        code = main(["eval", "--gguf", str(scripted_gguf), "--source", str(rows_jsonl), "--out", str(out), *extra])
    except SystemExit as exc:  # argparse's own refusal of a choice
        code = exc.code
    assert code != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert fragment in error[-1] and not out.exists()
    if code == 1:
        assert error == [error[-1]] and error[0].startswith("error: ")


def _prepared(folder: Path, replies: list[str]) -> Path:
    """A prepared dataset (datasets' on-disk format) of rows rendered by the training renderer."""
    import datasets

    from r1tui.data.render import load_renderer

    renderer = load_renderer("v3")
    rendered = [renderer.render([{"role": "user", "content": f"Question {i}?"},
                                 {"role": "assistant", "content": reply}]) for i, reply in enumerate(replies)]
    datasets.Dataset.from_dict({"input_ids": [r.input_ids for r in rendered], "labels": [r.labels for r in rendered],
                                "domain": ["math"] * len(rendered)}).save_to_disk(str(folder))
    return folder


def test_prefill_auto_reads_the_runs_training_data(tmp_path):
    from r1tui.config import parse_config
    from r1tui.infer.thinking import resolve_prefill
    from r1tui.response_format import format_assistant

    thinking_run, plain_run = tmp_path / "thinking", tmp_path / "plain"
    _prepared(thinking_run / "data", [format_assistant(f"Step {i}.", str(i)) for i in range(5)])
    _prepared(plain_run / "data", ["Just the answer: 4."] * 4 + [format_assistant("x", "y")])
    config = parse_config({})
    assert config.infer.prefill_think == "auto"
    assert resolve_prefill(config, thinking_run, "v3") == (True, "auto: 100% of the training replies open with <think>")
    assert resolve_prefill(config, plain_run, "v3") == (False, "auto: 20% of the training replies open with <think>")
    assert resolve_prefill(config, tmp_path / "nothing", "v3")[0] is False
    assert resolve_prefill(config, None, "v3") == (False, "auto: no run, so no training data to read")
    forced = parse_config({"infer": {"prefill_think": False}})
    assert resolve_prefill(forced, thinking_run, "v3") == (False, "infer.prefill_think = false")

"""The protocol end to end on real GGUFs: n samples per question on several llama.cpp slots,
a killed eval resumed from its journal, `--vs base` / `--vs merged` on a tiny run, and an
OpenAI-compatible server (llama-cpp-python's own) as the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tui.cli import main
from r1tui.config import load_config
from r1tui.eval.sampling import plan_jobs
from r1tui.runs.events import EventWriter, StageCancelled, read_events
from r1tui.runs.layout import RunLayout, eval_journal

ROWS = [
    {"id": "q1", "question": "What is 2 + 2?", "answer": "4", "domain": "math"},
    {"id": "q2", "question": "What is 3 + 5?", "answer": "8", "domain": "math"},
    {"id": "q3", "question": "What does print(len('abcd')) print?", "answer": "4", "domain": "coding"},
]


@pytest.fixture
def eval_jsonl(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def _config(run: Path, **eval_settings):
    config = load_config(run / "config.toml")
    for key, value in eval_settings.items():
        setattr(config.eval, key, value)
    return config


def _responses(results: dict) -> dict[tuple[str, int], str]:
    return {(s["id"], s["sample"]): s["response"] for s in results["samples"]}


def test_samples_per_question_on_slots_are_seeded_per_sample(scripted_run, random_gguf, eval_jsonl, tmp_path):
    """4 samples x 3 questions at the protocol's default temperature: every sample has its
    own seed, so 1 slot and 2 slots give the same replies, and the samples differ."""
    from r1tui.eval import evaluate_run

    config = _config(scripted_run, samples_per_question=4, max_new_tokens=12)
    assert config.eval.sampling == (0.6, 0.95)  # the R1 protocol's default once n > 1
    one = evaluate_run(config, None, gguf=random_gguf, source=str(eval_jsonl), out_dir=tmp_path / "one")
    config.eval.slots = 2
    two = evaluate_run(config, None, gguf=random_gguf, source=str(eval_jsonl), out_dir=tmp_path / "two")

    assert _responses(one) == _responses(two)
    assert len(one["samples"]) == 12 and [s["seed"] for s in one["samples"]] == \
        [job.seed for job in plan_jobs(ROWS, 4, config.eval.seed)]
    assert len({s["response"] for s in one["samples"] if s["id"] == "q1"}) > 1  # sampled, not greedy
    summary = one["summary"]
    assert summary["questions"] == 3 and summary["samples_per_question"] == 4
    assert {"pass@1", "pass@1_se", "pass@2", "pass@4", "maj@2", "maj@4"} <= set(summary)
    assert summary["outcomes"]["truncated"] == 12  # the random model never answers in 12 tokens
    assert one["generation"]["temperature"] == 0.6 and two["generation"]["slots"] == 2
    assert not (tmp_path / "one" / "journal.jsonl").exists()  # saved: the journal is gone


def test_a_killed_eval_resumes_without_redoing_samples(scripted_run, random_gguf, eval_jsonl, tmp_path):
    from r1tui.eval import evaluate_run

    config = _config(scripted_run, samples_per_question=3, max_new_tokens=10)
    reference = evaluate_run(config, None, gguf=random_gguf, source=str(eval_jsonl), out_dir=tmp_path / "ref")

    def kill_at_fifth(done, total, record):
        if done == 5:
            raise StageCancelled("killed")

    out = tmp_path / "resumed"
    with pytest.raises(StageCancelled):
        evaluate_run(config, None, gguf=random_gguf, source=str(eval_jsonl), out_dir=out, on_sample=kill_at_fifth)
    journal = eval_journal(out)
    assert len(journal.read_text().splitlines()) == 1 + 5  # the fingerprint line, then 5 samples
    with open(journal, "a", encoding="utf-8") as file:
        file.write('{"id": "q2", "sam')  # a line cut by the kill

    generated = []
    budgets = []
    with EventWriter(tmp_path / "events.jsonl") as events:
        resumed = evaluate_run(config, None, events=events, gguf=random_gguf, source=str(eval_jsonl), out_dir=out,
                               on_sample=lambda done, total, record: generated.append(done),
                               on_budget=lambda label, plan: budgets.append(plan))
    assert generated == list(range(6, 10))  # only the 4 samples not in the journal, counted on from 5
    assert budgets[0].generations == 4 and budgets[0].done == 5 and budgets[0].tokens_per_s
    assert "4 generations (5 already done), at most 40 tokens" in budgets[0].describe()
    assert _responses(resumed) == _responses(reference) and resumed["complete"]
    assert not journal.exists()
    progress = [e.data["completed"] for e in read_events(tmp_path / "events.jsonl") if e.type == "stage_progress"]
    assert progress == [6, 7, 8, 9]

    # other settings: the journal is not reused
    config.eval.max_new_tokens = 11
    evaluate_run(config, None, gguf=random_gguf, source=str(eval_jsonl), out_dir=out,
                 on_sample=lambda done, total, record: generated.append(done))
    assert len(generated) == 4 + 9


def test_vs_base_exports_the_base_once_and_compares_on_the_same_seeds(scripted_run, eval_jsonl, tmp_path,
                                                                      monkeypatch, capsys):
    """The scripted run's base is the scripted model and its adapter is untrained, so base
    and tuned answer alike: every delta is zero, computed by the eval."""
    monkeypatch.chdir(scripted_run.parent.parent)
    layout = RunLayout(scripted_run)
    out = tmp_path / "vs-base"
    events_before = len(read_events(layout.events))
    assert main(["eval", "tiny-run", "--source", str(eval_jsonl), "--vs", "base", "--out", str(out)]) == 0
    cached = sorted(layout.base_gguf_cache.glob("*/*.gguf"))
    assert [p.name for p in cached] == ["tiny-mistral-random-base-Q4_K_M.gguf"]
    assert not [p for p in layout.base_gguf_cache.rglob("*") if p.name.startswith(".")]  # no leftovers
    results = json.loads((out / "results.json").read_text())
    base = json.loads((out / "vs-tiny-mistral-random-base-Q4_K_M.json").read_text())
    assert base["model"]["path"] == str(cached[0]) and base["model"]["quant"] == "Q4_K_M"
    assert [s["seed"] for s in base["samples"]] == [s["seed"] for s in results["samples"]]
    assert _responses(base) == _responses(results)
    assert {row["delta"] for row in results["comparison"]["rows"] if row["metric"] != "tokens_per_s"} == {0.0}
    printed = capsys.readouterr().out
    assert "tiny-mistral-random-base-Q4_K_M.gguf (B)" in printed and "+0.0 pt ± 0.0" in printed
    steps = [e.data["message"] for e in read_events(layout.events)[events_before:]
             if e.type == "stage_progress" and "base GGUF" in (e.data.get("message") or "")]
    assert any("quantizing to Q4_K_M" in step for step in steps)

    made = cached[0].stat().st_mtime_ns
    events_before = len(read_events(layout.events))
    assert main(["eval", "tiny-run", "--source", str(eval_jsonl), "--vs", "base", "--out", str(out)]) == 0
    assert cached[0].stat().st_mtime_ns == made  # reused, not exported again
    assert not [e for e in read_events(layout.events)[events_before:]
                if "base GGUF" in (e.data.get("message") or "")]


def test_vs_merged_is_the_runs_f16_gguf(scripted_run, eval_jsonl, tmp_path, monkeypatch):
    monkeypatch.chdir(scripted_run.parent.parent)
    out = tmp_path / "vs-merged"
    assert main(["eval", "tiny-run", "--source", str(eval_jsonl), "--vs", "merged", "--out", str(out)]) == 0
    other = json.loads(next(out.glob("vs-*.json")).read_text())
    assert other["model"]["quant"] == "F16" and Path(other["model"]["path"]).parent == scripted_run / "gguf"


def test_vs_base_needs_a_run(random_gguf, eval_jsonl, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--gguf", str(random_gguf), "--source", str(eval_jsonl), "--vs", "base"]) != 0
    assert "--vs base compares with a run's own base model: give a RUN" in capsys.readouterr().err


def test_an_openai_compatible_server_as_the_engine(scripted_run, llama_teacher, eval_jsonl, scripted_reply, tmp_path):
    """llama-cpp-python's server refuses token-id prompts: the prompt goes as text and its
    token count is checked against training's; the replies are the scripted GGUF's."""
    from r1tui.eval import evaluate_run

    config = _config(scripted_run, base_url=llama_teacher.url, slots=2)
    results = evaluate_run(config, None, source=str(eval_jsonl), out_dir=tmp_path / "served")
    assert results["model"]["backend"] == "endpoint" and results["model"]["path"] == llama_teacher.url
    assert all(s["response"] == scripted_reply and s["finish_reason"] == "eos" for s in results["samples"])
    assert [s["correct"] for s in results["samples"]] == [True, False, True]
    from r1tui.infer.prompt import render_prompt_ids

    assert results["samples"][0]["prompt_tokens"] == len(render_prompt_ids(
        [{"role": "user", "content": ROWS[0]["question"]}], "v3"))

    with pytest.raises(Exception, match="compares two local models"):
        evaluate_run(config, None, source=str(eval_jsonl), out_dir=tmp_path / "x", vs=scripted_run)


def test_an_unreachable_server_is_one_clear_line(scripted_run, eval_jsonl, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(scripted_run.parent.parent)
    assert main(["eval", "--base-url", "http://127.0.0.1:9/v1", "--source", str(eval_jsonl),
                 "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "eval.base_url http://127.0.0.1:9/v1: APIConnectionError" in err and "Traceback" not in err


def test_one_engine_and_unique_ids(scripted_run, random_gguf, tmp_path):
    from r1tui.errors import R1Error
    from r1tui.eval import evaluate_run

    config = _config(scripted_run, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(R1Error, match="generates on a server, so the model given here"):
        evaluate_run(config, None, gguf=random_gguf, out_dir=tmp_path / "x")
    rows = tmp_path / "dup.jsonl"
    rows.write_text("".join(json.dumps({**row, "id": "same"}) + "\n" for row in ROWS), encoding="utf-8")
    with pytest.raises(R1Error, match="the id 'same' is used by more than one row"):
        evaluate_run(_config(scripted_run), None, gguf=random_gguf, source=str(rows), out_dir=tmp_path / "y")

"""`r1tui generate` and the generate stage: prompts in, verified and curated traces out.

Most tests talk to the fault-injecting stand-in (tests/generate/conftest.py), an
"arithmetic teacher" that adds the two numbers of the question; the REAL teacher test
runs llama-cpp-python's own server on the scripted tiny GGUF. The CLI is run as a real
subprocess where a kill, a secret or the whole command line matters.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from r1tui.config import load_config
from r1tui.data.sources import canonical_example
from r1tui.errors import R1Error
from r1tui.generate.run import (
    generate_traces,
    load_prompts,
    plan_generation,
    prompt_id,
    samples_file_for,
)
from r1tui.runs.events import EVENT_SCHEMA, EventWriter, read_events

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-r1tui-test-SECRET-0123456789abcdef"
ROW_KEYS = {"messages", "domain", "reference", "prompt_id", "sample", "teacher", "sampling", "verdict", "tokens",
            "pass_rate"}


def arithmetic(body: dict) -> dict:
    """The stand-in's default: add the question's two numbers; a few words in the question
    ask for the other shapes a teacher replies in."""
    question = body["messages"][-1]["content"]
    a, b = (int(n) for n in re.search(r"(\d+) \+ (\d+)", question).groups())
    draw = (body.get("seed") or 0) % 1000  # two samples of one prompt differ, as sampled ones do
    if "separately" in question:
        return {"reply": f"So the sum is \\boxed{{{a + b}}}.", "reasoning_content": f"{a} and {b} make {a + b}. ({draw})"}
    if "ramble" in question:
        return {"reply": f"<think>{a} plus {b} is, let me see, and then", "finish_reason": "length"}
    if "refuse" in question:
        return {"status": 400, "body": {"error": {"message": "this prompt is refused"}}}
    if "shapeless" in question:
        return {"reply": f"it is {a + b}"}
    if "same" in question:
        draw = 0
    return {"reply": f"<think>{a} plus {b}: add them, {a + b}. Check: {a + b} - {b} = {a}. Draw {draw}.</think>\n"
                     f"FINAL ANSWER: {a + b}"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_config(tmp_path: Path, runs_helpers, url: str | list[str], **teacher):
    settings = {"model": "arithmetic-teacher", "base_url": url, "samples": 2, "concurrency": 4, "max_retries": 0,
                "timeout_s": 10.0, "num_prompts": 50, **teacher}
    path = runs_helpers.write_config(tmp_path, tmp_path / "runs", teacher=settings)
    return path, load_config(path)


PROMPTS = [
    {"question": "What is 2 + 2?", "answer": "4", "domain": "math"},
    {"question": "What is 3 + 4?", "answer": "8"},  # the teacher says 7: wrong_answer
    {"problem": "What is 5 + 5? Reason separately.", "answer": "10"},  # reasoning_content + \boxed{}
    {"question": "What is 1 + 1? ramble", "answer": "2"},  # cut at max_tokens
    {"question": "What is 6 + 1? refuse", "answer": "7"},  # a 400 from the server
    {"question": "What is 9 + 9? shapeless", "answer": "18"},  # no think block
    {"question": "What is 2 + 2?", "answer": "4"},  # the same prompt again
    {"question": "What is 8 + 8?"},  # no reference answer
    {"question": "What is 10 + 5?", "answer": "Ten plus five.\n#### 15"},  # GSM8K's shape
    {"messages": [{"role": "user", "content": "What is 7 + 7?"}], "answer": "14", "domain": "Math"},
]


def test_standin_generate_verifies_writes_and_counts(tmp_path, runs_helpers, make_standin):
    teacher = make_standin(arithmetic)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    out = tmp_path / "traces.jsonl"
    seen: list[int] = []
    with EventWriter(tmp_path / "events.jsonl") as events:
        summary = generate_traces(config, out, events=events, on_progress=lambda s: seen.append(s.completed))

    assert (summary.prompts, summary.total, summary.completed, summary.resumed) == (8, 16, 16, 0)
    assert summary.prompts_skipped == {"duplicate_prompt": 1, "missing_field:answer": 1}
    assert summary.accepted == 8 and summary.kept == 8 and summary.dropped == {}
    assert summary.rejected == {"wrong_answer": 2, "truncated": 2, "teacher_http_400": 2, "bad_format": 2}
    assert summary.requests == 16 and summary.retries == 0 and summary.tokens_in == 14 * 12  # the 400s used none
    assert summary.cost_usd is None  # no prices configured
    assert seen[-1] == 16 and seen == sorted(seen)

    rows = read_jsonl(out)
    assert len(rows) == 8 and all(set(row) == ROW_KEYS for row in rows)
    by_question = Counter(row["messages"][0]["content"] for row in rows)
    assert by_question == {"What is 2 + 2?": 2, "What is 5 + 5? Reason separately.": 2, "What is 10 + 5?": 2,
                           "What is 7 + 7?": 2}
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert assistant["content"].startswith("<think>\n") and "\n</think>\n\nFINAL ANSWER: " in assistant["content"]
        assert row["prompt_id"] == prompt_id(user["content"]) and row["verdict"] == "correct"
        assert row["teacher"] == {"model": "arithmetic-teacher", "endpoint": teacher.url}
        assert {k: row["sampling"][k] for k in ("temperature", "top_p", "max_tokens")} == \
            {"temperature": 0.6, "top_p": 0.95, "max_tokens": 16384}
        assert row["pass_rate"] == 1.0 and isinstance(row["tokens"], int) and row["tokens"] > 0
        example = canonical_example(row)  # what `r1tui prepare --data` reads
        assert example.messages == row["messages"] and example.domain == "math"
    separate = next(r for r in rows if "separately" in r["messages"][0]["content"])
    assert re.fullmatch(r"<think>\n5 and 5 make 10\. \(\d+\)\n</think>\n\nFINAL ANSWER: 10",
                        separate["messages"][1]["content"])
    assert next(r for r in rows if "10 + 5" in r["messages"][0]["content"])["reference"] == "15"

    samples = read_jsonl(samples_file_for(out))
    assert samples_file_for(out) == tmp_path / "traces.samples.jsonl"
    assert len(samples) == 16 and len({(s["prompt_id"], s["sample"]) for s in samples}) == 16
    wrong = [s for s in samples if s["reason"] == "wrong_answer"]
    assert all(s["answer"] == "7" and s["status"] == "rejected" and s["content"] for s in wrong)
    refused = next(s for s in samples if s["reason"] == "teacher_http_400")
    assert "refused" in refused["error"] and refused["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}

    events = read_events(tmp_path / "events.jsonl")
    assert [e.type for e in events][0] == "stage_started" and events[-1].type == "stage_finished"
    assert events[-1].data["status"] == "finished" and events[-1].data["outputs"]["kept"] == 8
    totals = [e.data for e in events if e.type == "generation"]
    assert totals[-1]["completed"] == 16 and totals[-1]["kept"] == 8
    assert totals[-1]["rejected"] == summary.rejected and totals[-1]["prompts_done"] == 8
    assert all(set(t) <= EVENT_SCHEMA["generation"] for t in totals)
    assert len(totals) <= 3 + 2 * summary.elapsed_s  # at most about two a second
    progress = [e.data for e in events if e.type == "stage_progress" and e.data.get("unit") == "sample"]
    assert progress[-1]["completed"] == progress[-1]["total"] == 16


def test_standin_duplicates_and_keep_shortest(tmp_path, runs_helpers, make_standin):
    teacher = make_standin(arithmetic)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [
        {"question": "What is 1 + 2? same", "answer": "3"},  # both samples say the very same thing
        {"question": "What is 4 + 4?", "answer": "8"},
    ])
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts), samples=3)
    summary = generate_traces(config, tmp_path / "all.jsonl")
    assert summary.accepted == 6 and summary.kept == 4 and summary.dropped == {"duplicate": 2}

    config.teacher.keep, config.teacher.keep_n = "shortest", 1
    summary = generate_traces(config, tmp_path / "shortest.jsonl")
    assert summary.kept == 2 and summary.dropped == {"duplicate": 2, "not_kept": 2}
    rows = read_jsonl(tmp_path / "shortest.jsonl")
    assert sorted(r["messages"][0]["content"] for r in rows) == ["What is 1 + 2? same", "What is 4 + 4?"]


def test_standin_rerun_after_torn_lines_writes_nothing_twice(tmp_path, runs_helpers, make_standin):
    """What a kill leaves: a torn last line in both files, a prompt finished but not written,
    samples never asked. The rerun cuts the torn lines, asks only for the missing samples and
    ends with the same rows as an uninterrupted run."""
    teacher = make_standin(arithmetic)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + {n}?", "answer": str(2 * n)}
                                                       for n in range(1, 6)])
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    whole = tmp_path / "whole.jsonl"
    generate_traces(config, whole)
    expected = sorted(whole.read_text().splitlines())

    cut = tmp_path / "cut.jsonl"
    cut_samples = samples_file_for(cut)
    samples = samples_file_for(whole).read_text().splitlines(keepends=True)
    rows = whole.read_text().splitlines(keepends=True)
    last = json.loads(rows[-1])["prompt_id"]
    # rows: the last prompt's rows never written (its samples are in); one more row torn
    kept_rows = [r for r in rows if json.loads(r)["prompt_id"] != last]
    cut.write_text("".join(kept_rows[:-1]) + kept_rows[-1][:30])
    # samples: two never finished, a torn one at the end
    finished = [s for s in samples if json.loads(s)["prompt_id"] == last] + \
        [s for s in samples if json.loads(s)["prompt_id"] != last][:-2]
    cut_samples.write_text("".join(finished) + samples[-1][:25])
    asked_before = len(teacher.seen)

    summary = generate_traces(config, cut)
    assert len(teacher.seen) - asked_before == 2  # only the two unfinished samples
    assert summary.resumed == 8 and summary.completed == 10
    assert sorted(cut.read_text().splitlines()) == expected
    keys = [(s["prompt_id"], s["sample"]) for s in read_jsonl(cut_samples)]
    assert len(keys) == len(set(keys)) == 10

    again = generate_traces(config, cut)  # a third run finds everything done
    assert again.resumed == 10 and len(teacher.seen) - asked_before == 2
    assert sorted(cut.read_text().splitlines()) == expected


def test_a_file_from_another_teacher_or_tool_is_refused(tmp_path, runs_helpers, make_standin):
    teacher = make_standin(arithmetic)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": "What is 1 + 1?", "answer": "2"}])
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    out = tmp_path / "traces.jsonl"
    generate_traces(config, out)
    config.teacher.model = "another-teacher"
    with pytest.raises(R1Error, match="another-teacher"):
        generate_traces(config, out)
    dataset = write_jsonl(tmp_path / "mine.jsonl", [{"question": "q", "reasoning": "r", "answer": "a"}])
    with pytest.raises(R1Error, match="not written by r1tui generate"):
        generate_traces(config, dataset)
    assert read_jsonl(dataset) == [{"question": "q", "reasoning": "r", "answer": "a"}]  # untouched
    one_line = tmp_path / "one.jsonl"
    one_line.write_text('{"question": "q", "answer": "a"}')  # no newline at the end: still not ours
    with pytest.raises(R1Error, match="not written by r1tui generate"):
        generate_traces(config, one_line)
    assert one_line.read_text() == '{"question": "q", "answer": "a"}'


# ---------------------------------------------------------------- prompts


def test_synthetic_prompts_come_from_the_training_partition(tmp_path, runs_helpers):
    from r1tui.data.synthetic import generate_problems
    from r1tui.eval.sets import synthetic_rows

    _, config = make_config(tmp_path, runs_helpers, "http://127.0.0.1:9/v1", num_prompts=12)
    loaded = load_prompts(config)
    training = generate_problems(12, config.data.seed)
    assert [p.question for p in loaded.prompts] == [r["question"].strip() for r in training]
    assert [p.reference for p in loaded.prompts] == [r["answer"] for r in training]
    eval_questions = {r["question"].strip() for r in synthetic_rows(config, 200, config.eval.seed)}
    assert not eval_questions & {p.question for p in loaded.prompts}
    config.data.seed = config.eval.seed + 16  # the eval's partition
    with pytest.raises(R1Error, match="eval.seed"):
        load_prompts(config)


def test_hub_prompts_expose_the_reference_answer(tmp_path, runs_helpers, monkeypatch):
    """The adapters of gsm8k, OpenR1-Math, MATH-500 and NuminaMath-CoT, on hand-written rows of
    their real shape (no network): every prompt has its reference answer."""
    from r1tui.data import sources

    rows = {
        "openai/gsm8k": [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"}],
        "open-r1/OpenR1-Math-220k": [{"problem": "Compute 6 * 7.", "answer": "42", "generations": ["<think>6*7</think> 42"],
                                      "correctness_math_verify": [True], "is_reasoning_complete": [True]}],
        "HuggingFaceH4/MATH-500": [{"problem": "Simplify 2/4.", "solution": "Divide: $\\boxed{\\frac12}$",
                                    "answer": "\\frac{1}{2}", "subject": "Algebra", "level": 1}],
        "AI-MO/NuminaMath-CoT": [{"source": "olympiads", "problem": "Find x if x + 1 = 3.",
                                  "solution": "Subtract 1: x = \\boxed{2}.", "messages": []}],
    }
    monkeypatch.setattr(sources, "iter_hf_rows", lambda name, config, split: iter(rows[name]))
    _, config = make_config(tmp_path, runs_helpers, "http://127.0.0.1:9/v1")
    references = {name: [(p.question, p.reference) for p in load_prompts(config, f"hf:{name}").prompts]
                  for name in rows}
    assert references == {
        "openai/gsm8k": [("Tom has 3 apples and buys 4. How many?", "7")],
        "open-r1/OpenR1-Math-220k": [("Compute 6 * 7.", "42")],
        "HuggingFaceH4/MATH-500": [("Simplify 2/4.", "\\frac{1}{2}")],
        "AI-MO/NuminaMath-CoT": [("Find x if x + 1 = 3.", "2")],
    }


def test_a_prompts_file_is_relative_to_the_config(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.toml").write_text('[teacher]\nmodel = "m"\nprompts = "p.jsonl"\n')
    assert load_config(tmp_path / "cfg" / "config.toml").teacher.prompts == str(tmp_path / "cfg" / "p.jsonl")


def test_num_prompts_caps_the_prompts(tmp_path, runs_helpers):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": f"What is {n} + 1?", "answer": str(n + 1)}
                                                  for n in range(10)])
    _, config = make_config(tmp_path, runs_helpers, "http://127.0.0.1:9/v1", prompts=str(prompts), num_prompts=3)
    assert len(load_prompts(config).prompts) == 3


# ---------------------------------------------------------------- the command


def r1tui(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1tui", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_real_teacher_llama_cpp_server(tmp_path, runs_helpers, llama_teacher):
    """The REAL teacher: llama-cpp-python's OpenAI-compatible server on the scripted tiny GGUF,
    which answers every prompt '<think>Two plus two makes four. …</think> FINAL ANSWER: 4'.
    Prompts whose reference is 4 are kept, the others rejected as wrong answers; then
    `r1tui prepare --data OUT` takes the output as it is."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [
        {"question": "What is 2 + 2?", "answer": "4", "domain": "math"},
        {"question": "How many legs has a dog?", "answer": "4"},
        {"question": "What is the square root of 16?", "answer": "4.0"},
        {"question": "What is 2 + 3?", "answer": "5"},
        {"question": "What is 10 / 2?", "answer": "5"},
    ])
    config_path, _ = make_config(tmp_path, runs_helpers, llama_teacher.url, prompts=str(prompts),
                                 model="scripted-tiny", temperature=0.0, max_tokens=96, concurrency=2,
                                 max_retries=1)
    out = tmp_path / "traces.jsonl"
    started = time.monotonic()
    proc = r1tui("generate", "--config", str(config_path), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["completed"] == 10 and summary["accepted"] == 6 and summary["rejected"] == {"wrong_answer": 4}
    assert summary["kept"] == 3 and summary["dropped"] == {"duplicate": 3}  # temperature 0: two equal samples
    assert summary["tokens_out"] > 0 and summary["requests"] == 10
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(set(r) == ROW_KEYS for r in rows)
    assert {r["messages"][1]["content"] for r in rows} == {
        "<think>\nTwo plus two makes four. Verify: 4-2=2, so it holds.\n</think>\n\nFINAL ANSWER: 4"}
    assert all(r["pass_rate"] == 1.0 and r["teacher"]["endpoint"] == llama_teacher.url for r in rows)
    wrong = [s for s in read_jsonl(samples_file_for(out)) if s["status"] == "rejected"]
    assert {s["reason"] for s in wrong} == {"wrong_answer"} and {s["answer"] for s in wrong} == {"4"}

    prepared = tmp_path / "prepared"
    proc = r1tui("prepare", "--config", str(config_path), "--data", str(out), "--out", str(prepared), "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["examples"] == 3 and stats["dropped_total"] == 0
    print(f"real teacher: generate + prepare {time.monotonic() - started:.1f} s")


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path, runs_helpers, make_standin):
    teacher = make_standin(lambda body: {**arithmetic(body), "delay": 0.08})
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + {n + 1}?", "answer": str(2 * n + 1)}
                                                       for n in range(14)])
    config_path, _ = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts), concurrency=2)
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    assert r1tui("generate", "--config", str(config_path), "--out", str(whole), "--json").returncode == 0

    command = [sys.executable, "-m", "r1tui", "generate", "--config", str(config_path), "--out", str(cut), "--json"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if samples_file_for(cut).is_file() and len(samples_file_for(cut).read_bytes().splitlines()) >= 9:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = len(read_jsonl(samples_file_for(cut)))
    assert 9 <= done_at_kill < 28, done_at_kill  # killed mid-way

    proc = r1tui("generate", "--config", str(config_path), "--out", str(cut), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["resumed"] >= 9
    rows = cut.read_text().splitlines()
    assert len(rows) == len(set(rows)) == 28
    assert set(rows) == set(whole.read_text().splitlines())
    keys = [(s["prompt_id"], s["sample"]) for s in read_jsonl(samples_file_for(cut))]
    assert len(keys) == len(set(keys)) == 28


def test_the_api_key_is_never_written_or_shown(tmp_path, runs_helpers, make_standin):
    """OPENAI_API_KEY set to a recognisable secret; one endpoint echoes it back in its 401s,
    another refuses connections. It reaches the server and nowhere else: not a file, not
    stdout or stderr, not (in a run) the event log."""
    def echo(body: dict) -> dict:
        if "7" in body["messages"][-1]["content"]:
            return {"status": 401, "body": {"error": {"message": f"Incorrect API key provided: {SECRET}"}}}
        return arithmetic(body)

    teacher = make_standin(echo)
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 7?", "answer": str(n + 7)}
                                                       for n in range(4)] + [{"question": "What is 1 + 1?", "answer": "2"}])
    config_path, _ = make_config(tmp_path, runs_helpers, [teacher.url, dead], prompts=str(prompts))
    env = {"OPENAI_API_KEY": SECRET}
    out = tmp_path / "traces.jsonl"
    cli = r1tui("generate", "--config", str(config_path), "--out", str(out), env=env)
    debug = r1tui("generate", "--debug", "--config", str(config_path), "--out", str(tmp_path / "debug.jsonl"),
                  "--json", env=env)
    assert cli.returncode == 0 and debug.returncode == 0, cli.stderr + debug.stderr
    run = r1tui("run", "--config", str(config_path), "--stages", "generate", "--foreground", "--json", env=env)
    assert run.returncode == 0, run.stderr

    assert any(s.headers.get("authorization") == f"Bearer {SECRET}" for s in teacher.seen)  # it was used
    run_dir = Path(json.loads(run.stdout)["run_dir"])
    totals = [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "generation"][-1]
    assert totals["completed"] == 10 and {"teacher_http_401", "teacher_connection"} <= set(totals["rejected"])
    samples = read_jsonl(samples_file_for(out))
    reasons = Counter(s["reason"] for s in samples)
    assert reasons["teacher_http_401"] > 0 and reasons["teacher_connection"] > 0  # both failures happened
    assert any("[redacted]" in (s.get("error") or "") for s in samples)
    for text in (cli.stdout, cli.stderr, debug.stdout, debug.stderr, run.stdout, run.stderr):
        assert SECRET not in text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in written) and len(written) > 6
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


def test_no_teacher_is_one_line_saying_how_to_set_it(tmp_path, tiny_config_path, capsys):
    from r1tui.cli import main

    assert main(["generate", "--config", str(tiny_config_path), "--out", str(tmp_path / "t.jsonl")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no teacher configured: set teacher.model") and "\n" not in err
    assert not (tmp_path / "t.jsonl").exists()


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path, runs_helpers, standin, capsys, monkeypatch):
    from r1tui.cli import main

    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": f"What is {n} + 1?", "answer": str(n + 1)}
                                                  for n in range(5)])
    config_path, config = make_config(tmp_path, runs_helpers, standin.url, prompts=str(prompts), samples=3,
                                      max_tokens=1000, price_in_per_m=1.0, price_out_per_m=2.0)
    monkeypatch.setenv("DRY_RUN", "1")
    out = tmp_path / "t.jsonl"
    assert main(["generate", "--config", str(config_path), "--out", str(out), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["prompts"], plan["requests"], plan["max_completion_tokens"]) == (5, 15, 15_000)
    assert plan["endpoints"] == [standin.url] and plan["prompt_tokens"] > 0
    assert plan["cost_upper_usd"] == pytest.approx((plan["prompt_tokens"] * 1.0 + 15_000 * 2.0) / 1e6)
    assert main(["generate", "--config", str(config_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nothing sent" in text and "15 (3 per prompt)" in text and standin.url in text
    assert standin.seen == [] and not out.exists() and not samples_file_for(out).exists()
    assert plan_generation(config, out).requests == 15


# ---------------------------------------------------------------- the generate stage in a run


def test_generate_stage_feeds_prepare_in_a_run(tmp_path, runs_helpers, make_standin, capsys, monkeypatch):
    from r1tui.cli import main

    monkeypatch.chdir(tmp_path)
    teacher = make_standin(arithmetic)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 2?", "answer": str(n + 2)}
                                                       for n in range(6)] + [{"question": "What is 1 + 1?", "answer": "3"}])
    config_path, _ = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    assert main(["run", "--config", str(config_path), "--stages", "generate,prepare", "--foreground", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["status"] == "finished", started
    run_dir = Path(started["run_dir"])
    traces = run_dir / "generated" / "traces.jsonl"
    assert len(read_jsonl(traces)) == 12 and len(read_jsonl(run_dir / "generated" / "samples.jsonl")) == 14
    events = read_events(run_dir / "events.jsonl")
    prepare_started = next(e for e in events if e.type == "stage_started" and e.stage == "prepare")
    assert prepare_started.data["inputs"]["source"] == str(traces)  # prepare read the teacher's traces
    stats = json.loads((run_dir / "data" / "stats.json").read_text())
    assert stats["examples"] == 12
    assert any(e.type == "generation" and e.data["kept"] == 12 for e in events)
    record = json.loads((run_dir / "stages.json").read_text())
    assert record["generate"]["status"] == "finished" and record["generate"]["outputs"]["kept"] == 12

    asked = len(teacher.seen)
    assert main(["run", "--resume", run_dir.name, "--runs-dir", str(tmp_path / "runs"), "--foreground", "--json"]) == 0
    capsys.readouterr()
    finished = [(e.stage, e.data["status"]) for e in read_events(run_dir / "events.jsonl") if e.type == "stage_finished"]
    assert finished[-2:] == [("generate", "skipped"), ("prepare", "skipped")] and len(teacher.seen) == asked


def test_generate_stage_is_skipped_without_a_teacher(tmp_path, tiny_config_path, capsys, monkeypatch):
    from r1tui.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "--config", str(tiny_config_path), "--runs-dir", str(tmp_path / "runs"), "--stages", "generate",
                 "--foreground", "--json"]) == 0
    run_dir = Path(json.loads(capsys.readouterr().out)["run_dir"])
    finished = [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "stage_finished"]
    assert finished == [{"status": "skipped", "duration_s": finished[0]["duration_s"],
                         "outputs": {"reason": "no teacher configured (teacher.model is empty)"}}]
    assert not (run_dir / "generated").exists()

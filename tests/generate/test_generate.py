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
    # the dead endpoint's requests moved to the live one: no sample lost to it
    assert totals["completed"] == 10 and set(totals["rejected"]) == {"teacher_http_401"}
    samples = read_jsonl(samples_file_for(out))
    reasons = Counter(s["reason"] for s in samples)
    moved = [s["failover"] for s in samples if s.get("failover")]
    assert reasons["teacher_http_401"] > 0 and moved  # both failures happened
    assert {m["endpoint"] for m in moved} == {dead} and {m["reason"] for m in moved} == {"teacher_connection"}
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


# ---------------------------------------------------------------- transport failures are asked again


def dead_url() -> str:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_samples_the_teacher_was_not_reached_for_are_asked_again(tmp_path, runs_helpers, make_standin):
    """A 503 after the client's retries is no verdict: the next run asks those samples again
    (and only those), counts them as asked again, not as resumed; a 400 stays a rejection."""
    busy = {"on": True}

    def flaky(body: dict) -> dict:
        if busy["on"] and "busy" in body["messages"][-1]["content"]:
            return {"status": 503}
        return arithmetic(body)

    teacher = make_standin(flaky)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [
        {"question": "What is 1 + 1?", "answer": "2"},
        {"question": "What is 2 + 3? busy", "answer": "5"},
        {"question": "What is 6 + 1? refuse", "answer": "7"},
    ])
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    out = tmp_path / "traces.jsonl"
    first = generate_traces(config, out)
    assert first.completed == 6 and first.unanswered == 2
    assert first.rejected == {"teacher_http_503": 2, "teacher_http_400": 2} and first.kept == 2

    busy["on"] = False
    asked = len(teacher.seen)
    second = generate_traces(config, out)
    assert len(teacher.seen) - asked == 2  # the two 503s, not the 400s, not the finished ones
    assert {s.body["messages"][-1]["content"] for s in teacher.seen[asked:]} == {"What is 2 + 3? busy"}
    assert (second.resumed, second.asked_again, second.completed, second.unanswered) == (4, 2, 6, 0)
    assert second.rejected == {"teacher_http_400": 2} and second.accepted == 4 and second.kept == 4
    assert (second.requests, second.retries) == (8, 2)  # the 503 attempts are counted, as retries
    rows = read_jsonl(out)
    assert len(rows) == 4 and {r["messages"][0]["content"] for r in rows} == {"What is 1 + 1?", "What is 2 + 3? busy"}
    assert len(read_jsonl(samples_file_for(out))) == 8  # the failed attempts stay in the file, superseded

    third = generate_traces(config, out)
    assert len(teacher.seen) - asked == 2 and third.resumed == 6 and third.asked_again == 0


def test_a_teacher_that_is_down_fails_the_run_and_loses_no_sample(tmp_path, runs_helpers, make_standin):
    """Nothing answers: the run fails in one line; when the teacher is up (here: at another
    address, which is not part of the samples' identity) every sample is asked."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 2?", "answer": str(n + 2)}
                                                       for n in range(3)])
    _, config = make_config(tmp_path, runs_helpers, dead_url(), prompts=str(prompts))
    out = tmp_path / "traces.jsonl"
    with pytest.raises(R1Error, match=r"answered none of 6 requests \(teacher_connection 6\).*asked again"):
        generate_traces(config, out)
    assert {s["reason"] for s in read_jsonl(samples_file_for(out))} == {"teacher_connection"}

    teacher = make_standin(arithmetic)
    config.teacher.base_url = teacher.url
    summary = generate_traces(config, out)
    assert len(teacher.seen) == 6 and summary.asked_again == 6 and summary.resumed == 0
    assert summary.accepted == 6 and summary.kept == 6 and summary.rejected == {}


def test_a_dead_replica_costs_no_sample(tmp_path, runs_helpers, make_standin):
    """Two endpoints, one refusing connections: every request that met it moved to the
    other, so every sample is answered (and says where it was moved from)."""
    live = make_standin(arithmetic)
    dead = dead_url()
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 5?", "answer": str(n + 5)}
                                                       for n in range(10)])
    _, config = make_config(tmp_path, runs_helpers, [dead, live.url], prompts=str(prompts), max_retries=1)
    out = tmp_path / "traces.jsonl"
    summary = generate_traces(config, out)
    assert summary.completed == 20 and summary.accepted == 20 and summary.rejected == {}
    assert len(live.seen) == 20 and summary.unanswered == 0
    samples = read_jsonl(samples_file_for(out))
    moved = [s for s in samples if s.get("failover")]
    assert moved and all(s["failover"]["endpoint"] == dead and s["endpoint"] == live.url for s in moved)
    assert all(s["requests"] == 3 for s in moved)  # two to the dead one (max_retries 1), one to the live one


# ---------------------------------------------------------------- the generate stage keeps what it paid for


def _stage_run(tmp_path: Path, config):
    from r1tui.config import dump_toml
    from r1tui.pipeline import orchestrator  # (importing r1tui.pipeline registers the stages)
    from r1tui.runs.layout import RunLayout

    root = tmp_path / "runs" / "20260101-000000-gen0"
    root.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(root)

    def run(cfg) -> list[str]:
        layout.config.write_text(dump_toml(cfg))
        return orchestrator.run_named(cfg, layout, ["generate"])

    return layout, run


def test_the_stage_reuses_its_samples_when_the_settings_change(tmp_path, runs_helpers, make_standin):
    """teacher.keep, num_prompts, the reference answers, model.max_seq_length: the stage
    runs again (its inputs changed) but asks only for samples it never had; the traces are
    chosen again from the stored samples, verified again where the verdict inputs changed.
    Only a new teacher model or sampling starts over."""
    teacher = make_standin(arithmetic)
    rows = [{"question": f"What is {n} + 3?", "answer": str(n + 3)} for n in range(4)]
    rows[1]["answer"] = "99"  # a wrong reference: the teacher's right answers are rejected
    prompts = write_jsonl(tmp_path / "prompts.jsonl", rows)
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts), num_prompts=3, keep="all")
    layout, run = _stage_run(tmp_path, config)

    run(config)
    assert len(teacher.seen) == 6 and len(read_jsonl(layout.traces)) == 4  # 2 prompts × 2, the third rejected

    config.teacher.keep, config.teacher.keep_n = "shortest", 1
    assert run(config) == []  # ran: its inputs changed
    assert len(teacher.seen) == 6  # … and asked nothing
    traces = read_jsonl(layout.traces)
    assert len(traces) == 2 and len({r["prompt_id"] for r in traces}) == 2

    config.teacher.num_prompts = 4
    run(config)
    assert len(teacher.seen) == 8  # the new prompt's two samples only
    assert len(read_jsonl(layout.traces)) == 3

    rows[1]["answer"] = "4"  # the reference fixed: verified again from the stored text, no request
    write_jsonl(prompts, rows)
    os.utime(prompts, (time.time() + 5, time.time() + 5))
    run(config)
    assert len(teacher.seen) == 8
    traces = read_jsonl(layout.traces)
    assert len(traces) == 4 and any(r["messages"][0]["content"] == "What is 1 + 3?" for r in traces)
    records = read_jsonl(layout.samples)
    fixed = prompt_id("What is 1 + 3?")
    assert len(records) == 8 and [r["status"] for r in records if r["prompt_id"] == fixed] == ["accepted"] * 2

    config.model.max_seq_length = 16  # every trace is now too long for the student
    run(config)
    assert len(teacher.seen) == 8 and read_jsonl(layout.traces) == []
    assert {r["reason"] for r in read_jsonl(layout.samples)} == {"too_long"}
    record = json.loads((layout.root / "stages.json").read_text())["generate"]
    assert record["status"] == "finished" and record["outputs"]["kept"] == 0

    config.model.max_seq_length = 8192
    config.teacher.temperature = 0.7  # another sampling: the stored samples are not these
    run(config)
    assert len(teacher.seen) == 16 and len(read_jsonl(layout.samples)) == 8
    assert {r["sampling"]["temperature"] for r in read_jsonl(layout.samples)} == {0.7}


def test_a_resumed_run_asks_again_what_got_no_answer(tmp_path, runs_helpers, make_standin):
    """The stage is not up to date while samples got no answer: resuming the run runs it
    again, which asks only those; then it is up to date."""
    busy = {"on": True}

    def flaky(body: dict) -> dict:
        if busy["on"] and "9 + 9" in body["messages"][-1]["content"]:
            return {"status": 429}
        return arithmetic(body)

    teacher = make_standin(flaky)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 9?", "answer": str(n + 9)}
                                                       for n in range(7, 10)])
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    layout, run = _stage_run(tmp_path, config)
    assert run(config) == [] and len(teacher.seen) == 6
    record = json.loads((layout.root / "stages.json").read_text())["generate"]
    assert record["status"] == "finished" and record["outputs"]["unanswered"] == 2
    busy["on"] = False
    assert run(config) == [] and len(teacher.seen) == 8  # not up to date: ran, asked the two again
    assert len(read_jsonl(layout.traces)) == 6
    assert run(config) == ["generate"] and len(teacher.seen) == 8  # now up to date


def test_a_rerun_of_the_command_chooses_again_without_asking(tmp_path, runs_helpers, make_standin):
    """Outside a run too: the same --out with another teacher.keep rewrites the traces file
    from the stored samples; nothing is asked, no row is left from the earlier choice."""
    teacher = make_standin(arithmetic)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 4?", "answer": str(n + 4)}
                                                       for n in range(3)])
    _, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts), samples=3)
    out = tmp_path / "traces.jsonl"
    assert generate_traces(config, out).kept == 9
    config.teacher.keep, config.teacher.keep_n = "shortest", 1
    summary = generate_traces(config, out)
    assert len(teacher.seen) == 9 and summary.kept == 3 and summary.dropped == {"not_kept": 6}
    rows = read_jsonl(out)
    assert len(rows) == 3 and len({r["prompt_id"] for r in rows}) == 3
    config.teacher.keep = "all"
    assert generate_traces(config, out).kept == 9 and len(read_jsonl(out)) == 9 and len(teacher.seen) == 9


# ---------------------------------------------------------------- no eval prompt reaches the teacher


EVAL_QUESTION = "A farmer has 12 sheep and buys 30 more at the market; how many sheep does he have now?"


def test_prompts_that_overlap_an_eval_set_are_not_sent(tmp_path, runs_helpers, make_standin, capsys):
    """An eval prompt planted among the teacher's prompts (respelled: case, punctuation) is
    dropped before anything is sent, counted as contaminated in the summary, the stage's
    outputs and the command's output; so is one that overlaps a decontaminate.against file
    and one from the default synthetic eval set."""
    from r1tui.cli import main
    from r1tui.eval.sets import synthetic_rows

    teacher = make_standin(arithmetic)
    eval_file = write_jsonl(tmp_path / "eval.jsonl", [{"question": EVAL_QUESTION, "answer": "42"}])
    against = write_jsonl(tmp_path / "aime.jsonl", [{"problem": "Find the number of ordered pairs of positive "
                                                                "integers whose sum is 20 + 4 exactly."}])
    planted = [
        {"question": "a FARMER has 12 sheep, and buys 30 more at the market: how many sheep? 12 + 30", "answer": "42"},
        {"question": "Find the number of ordered pairs of positive integers whose sum is 20 + 4 exactly.",
         "answer": "24"},
    ]
    clean = [{"question": f"What is {n} + 6?", "answer": str(n + 6)} for n in range(3)]
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [clean[0], *planted, *clean[1:]])
    config_path, config = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts))
    config.eval.source = str(eval_file)
    config.decontaminate.against = [str(against)]
    from r1tui.config import dump_toml

    config_path.write_text(dump_toml(config), encoding="utf-8")

    loaded = load_prompts(config)
    assert [p.question for p in loaded.prompts] == [c["question"] for c in clean]
    assert loaded.skipped == {"contaminated": 2} and loaded.contaminated_by == {"eval.jsonl": 1, "aime.jsonl": 1}

    assert main(["generate", "--config", str(config_path), "--out", str(tmp_path / "t.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "dropped 2 prompts that overlap an eval set" in text and "eval.jsonl 1" in text
    sent = {s.body["messages"][-1]["content"] for s in teacher.seen}
    assert sent == {c["question"] for c in clean}

    assert main(["run", "--config", str(config_path), "--stages", "generate", "--foreground", "--json",
                 "--runs-dir", str(tmp_path / "runs")]) == 0
    run_dir = Path(json.loads(capsys.readouterr().out)["run_dir"])
    finished = next(e for e in read_events(run_dir / "events.jsonl") if e.type == "stage_finished")
    assert finished.data["outputs"]["contaminated"] == 2
    assert finished.data["outputs"]["prompts_skipped"] == {"contaminated": 2}
    assert json.loads((run_dir / "stages.json").read_text())["generate"]["outputs"]["contaminated"] == 2
    assert {s.body["messages"][-1]["content"] for s in teacher.seen} == sent

    # the default eval set (synthetic, eval.seed) is checked too
    config.eval.source, config.decontaminate.against = "synthetic", []
    eval_row = synthetic_rows(config, config.eval.num_samples, config.eval.seed)[0]
    write_jsonl(prompts, [*clean, {"question": eval_row["question"], "answer": eval_row["answer"]}])
    loaded = load_prompts(config)
    assert len(loaded.prompts) == 3 and loaded.skipped == {"contaminated": 1}
    assert list(loaded.contaminated_by) == [f"synthetic (eval.seed {config.eval.seed})"]


# ---------------------------------------------------------------- Hub prompts: the problem, not the trace


def test_hub_prompts_are_read_from_their_problem_and_answer(tmp_path, runs_helpers, monkeypatch):
    """OpenR1-Math: a problem whose R1 traces all failed verification (the hardest) is still a
    prompt, with its reference answer; a row without an answer is not. Another Hub id keeps
    its adapter, and falls back to the question/answer columns when the adapter refuses a
    row only for its trace (here: no reasoning column)."""
    from r1tui.data import sources

    rows = {
        "open-r1/OpenR1-Math-220k": [
            {"problem": "Compute 6 * 7.", "answer": "42", "generations": ["<think>6*7</think> 42"],
             "correctness_math_verify": [True], "is_reasoning_complete": [True]},
            {"problem": "Find the least n with n! > 10^6.", "answer": "10",
             "generations": ["<think>guess</think> 9", "<think>guess</think> 11"],
             "correctness_math_verify": [False, False], "correctness_llama": [False, None],
             "is_reasoning_complete": [True, False]},
            {"problem": "No trace at all: 2 + 2?", "answer": "4"},
            {"problem": "No answer column."},
        ],
        "someone/qa-prompts": [{"question": "What is 2 + 5?", "answer": "7"},
                               {"question": "Only a question."}],
        "openai/gsm8k": [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
                         {"question": "No final line.", "answer": "It is 5."}],
    }
    monkeypatch.setattr(sources, "iter_hf_rows", lambda name, config, split: iter(rows[name]))
    _, config = make_config(tmp_path, runs_helpers, "http://127.0.0.1:9/v1")
    loaded = {name: load_prompts(config, f"hf:{name}") for name in rows}
    assert [(p.question, p.reference) for p in loaded["open-r1/OpenR1-Math-220k"].prompts] == [
        ("Compute 6 * 7.", "42"), ("Find the least n with n! > 10^6.", "10"), ("No trace at all: 2 + 2?", "4")]
    assert loaded["open-r1/OpenR1-Math-220k"].skipped == {"missing_field:answer": 1}
    assert [(p.question, p.reference) for p in loaded["someone/qa-prompts"].prompts] == [("What is 2 + 5?", "7")]
    assert loaded["someone/qa-prompts"].skipped == {"missing_field:reasoning": 1}
    assert [(p.question, p.reference) for p in loaded["openai/gsm8k"].prompts] == [
        ("Tom has 3 apples and buys 4. How many?", "7")]
    assert loaded["openai/gsm8k"].skipped == {"missing_markers": 1}  # its answer column is no reference


# ---------------------------------------------------------------- the plan's time


def test_dry_run_plan_says_the_time_is_unknown_and_counts_samples_to_ask_again(tmp_path, runs_helpers, standin,
                                                                                capsys, monkeypatch):
    from r1tui.cli import main
    from r1tui.generate.run import TIME_UNKNOWN, cost_usd

    prompts = write_jsonl(tmp_path / "p.jsonl", [{"question": f"What is {n} + 1?", "answer": str(n + 1)}
                                                  for n in range(3)])
    config_path, config = make_config(tmp_path, runs_helpers, standin.url, prompts=str(prompts), samples=2,
                                      max_tokens=100, price_in_per_m=1.0, price_out_per_m=2.0)
    out = tmp_path / "t.jsonl"
    pid = prompt_id("What is 0 + 1?")
    base = {"model": config.teacher.model, "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 100},
            "prompt_id": pid, "requests": 1}
    write_jsonl(samples_file_for(out), [{**base, "sample": 0, "status": "rejected", "reason": "wrong_answer"},
                                        {**base, "sample": 1, "status": "rejected", "reason": "teacher_timeout"}])
    monkeypatch.setenv("DRY_RUN", "1")
    assert main(["generate", "--config", str(config_path), "--out", str(out), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["requests"], plan["already_done"], plan["asked_again"]) == (5, 1, 1)
    assert plan["time_s"] is None and plan["time_note"] == TIME_UNKNOWN
    assert plan["cost_upper_usd"] == cost_usd(config.teacher, plan["prompt_tokens"], 500)
    assert main(["generate", "--config", str(config_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"time\s+│\s+unknown until the teacher's speed is measured", text), text
    assert "1 asked again" in text and standin.seen == []


# ---------------------------------------------------------------- one generation per file


def test_a_second_generation_into_the_same_file_is_refused(tmp_path, runs_helpers, make_standin):
    """Two real `r1tui generate --out same.jsonl`: the second is refused in one line naming the
    first's pid and sends nothing; the first ends as if alone; once it ended, a third runs."""
    teacher = make_standin(lambda body: {**arithmetic(body), "delay": 0.3})
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"question": f"What is {n} + 8?", "answer": str(n + 8)}
                                                       for n in range(6)])
    config_path, _ = make_config(tmp_path, runs_helpers, teacher.url, prompts=str(prompts), concurrency=1)
    out = tmp_path / "same.jsonl"
    command = [sys.executable, "-m", "r1tui", "generate", "--config", str(config_path), "--out", str(out), "--json"]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not teacher.seen and time.monotonic() < deadline:  # it holds the files once it asks
            time.sleep(0.02)
        second = r1tui("generate", "--config", str(config_path), "--out", str(out), "--json")
        seen_by_then = len(teacher.seen)
        stdout, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1 and second.stdout == ""
    error = second.stderr.strip()
    assert "\n" not in error and f"pid {first.pid} (r1tui generate, since " in error and str(out) in error, error
    assert first.returncode == 0, stderr
    assert json.loads(stdout)["completed"] == 12 and len(teacher.seen) == 12 and seen_by_then < 12
    rows = out.read_text().splitlines()
    assert len(rows) == len(set(rows)) == 12
    keys = [(s["prompt_id"], s["sample"]) for s in read_jsonl(samples_file_for(out))]
    assert len(keys) == len(set(keys)) == 12
    third = r1tui("generate", "--config", str(config_path), "--out", str(out), "--json")
    assert third.returncode == 0 and json.loads(third.stdout)["resumed"] == 12 and len(teacher.seen) == 12

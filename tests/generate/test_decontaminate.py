"""Decontamination against the real synthetic eval set and files given with --against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1tui.config import load_config
from r1tui.eval.sets import load_eval_set
from r1tui.generate.decontaminate import (
    build_index,
    decontaminate_rows,
    decontaminate_source,
    normalize_words,
)

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.toml"
SYNTHETIC = "synthetic (eval.seed 1000003)"

CLEAN = [
    "Explain why the sky looks blue at noon but red and orange when the sun sets over the sea.",
    "Write a haiku about a lighthouse keeper who counts the ships that pass in the night.",
    "A gardener plants tulips in rows of seven and has three bulbs left over; how many bulbs could she have had?",
    "Which is heavier, a kilogram of feathers or a kilogram of iron, and why do people get this wrong?",
]
AIME_LIKE = [
    {"problem": "Find the number of ordered pairs of positive integers (m, n) such that m^2 n = 20^20.", "answer": "231"},
    {"problem": "Let N be the greatest four-digit positive integer with the property that changing any digit to 1 "
                "gives a multiple of 7.", "answer": "699"},
    {"problem": "Compute 17 * 23.", "answer": "391"},  # shorter than 8 words: compared whole
]


@pytest.fixture
def config():
    return load_config(TINY)


@pytest.fixture
def against(tmp_path) -> Path:
    path = tmp_path / "aime_like.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in AIME_LIKE), encoding="utf-8")
    return path


def test_words_are_normalised_like_open_r1_with_punctuation_stripped():
    assert normalize_words("What is 2+3?  It's  $5.50 — x^2 {a}\n\\frac{1}{2}") == \
        ["what", "is", "2", "3", "it", "s", "5", "50", "x", "2", "a", "frac", "1", "2"]
    assert normalize_words("ＡＢＣ, déjà-vu!") == ["abc", "déjà", "vu"]  # NFKC folds full-width letters


def _planted(config, against: Path) -> list[dict]:
    eval_rows = load_eval_set(config)["rows"]
    return [
        {"question": CLEAN[0], "tag": "clean"},
        # an eval question verbatim inside a longer prompt
        {"question": "Please solve the following. " + eval_rows[4]["question"] + " Show your steps.", "tag": "eval4"},
        {"question": CLEAN[1], "tag": "clean"},
        # 8 words of a --against prompt, with other case and punctuation
        {"messages": [{"role": "user", "content": "Homework: LET N BE THE GREATEST four digit POSITIVE integer; then what?"},
                      {"role": "assistant", "content": "<think>\nhm\n</think>\n\nFINAL ANSWER: 1"}], "tag": "aime"},
        {"question": CLEAN[2], "tag": "clean"},
        {"question": "compute 17*23", "tag": "short"},        # equals a short --against prompt
        {"question": "Compute 17 * 24.", "tag": "clean"},     # short and different: kept
        {"question": CLEAN[3], "tag": "clean"},
        {"reasoning": "no prompt at all", "tag": "clean"},    # nothing to compare: kept, counted
    ]


def test_planted_overlaps_are_found_and_clean_rows_kept(config, against):
    rows = _planted(config, against)
    eval_rows = load_eval_set(config)["rows"]
    report = decontaminate_rows(config, rows, against=[against])
    assert [row["tag"] for row in report.kept] == ["clean"] * 6
    assert [(d.index, d.eval_set) for d in report.dropped] == [(1, SYNTHETIC), (3, "aime_like.jsonl"),
                                                                (5, "aime_like.jsonl")]
    first = report.dropped[0]
    assert first.eval_id == eval_rows[4]["id"]
    assert " ".join(normalize_words(first.ngram)) == first.ngram and len(first.ngram.split()) == 8
    assert first.ngram in " ".join(normalize_words(eval_rows[4]["question"]))
    assert report.dropped[1].ngram == "let n be the greatest four digit positive"
    assert report.dropped[2].ngram == "compute 17 23"
    assert report.eval_sets == {SYNTHETIC: config.eval.num_samples, "aime_like.jsonl": 3}
    assert report.counts == {SYNTHETIC: 1, "aime_like.jsonl": 2}
    assert report.no_prompt == 1 and report.rows_read == len(rows)


def test_the_ngram_size_decides(config, tmp_path):
    evals = tmp_path / "evals.jsonl"
    evals.write_text(json.dumps({"question": "one two three four five six seven eight nine ten"}) + "\n")
    seven = [{"question": "zero one two three four five six seven zero"}]  # shares 7 words in a row
    assert len(decontaminate_rows(config, seven, [evals], include_eval=False).dropped) == 0
    assert len(decontaminate_rows(config, seven, [evals], ngram=7, include_eval=False).dropped) == 1


def test_configured_against_files_are_relative_to_the_config(tmp_path, against):
    config_path = tmp_path / "config.toml"
    config_path.write_text(TINY.read_text() + f'\n[decontaminate]\nngram = 8\nagainst = ["{against.name}"]\n')
    config = load_config(config_path)
    index = build_index(config)
    assert index.sizes == {SYNTHETIC: config.eval.num_samples, "aime_like.jsonl": 3}


def test_a_source_file_keeps_its_rows_exactly(config, against, tmp_path):
    data = tmp_path / "traces.jsonl"
    planted = _planted(config, against)
    lines = [json.dumps({**row, "pass_rate": 0.5, "tokens": 99}) for row in planted]
    data.write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n", encoding="utf-8")
    report = decontaminate_source(config, str(data), [against])
    assert report.malformed == {"invalid_json": 1}
    assert report.rows_read == len(planted) + 1
    assert [d.index for d in report.dropped] == [1, 4, 6]  # positions in the file, the bad line counted
    assert all(row["pass_rate"] == 0.5 and row["tokens"] == 99 for row in report.kept)


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1tui", "decontaminate", "--config", str(TINY), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120, env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_the_command(config, against, tmp_path):
    data = tmp_path / "traces.jsonl"
    planted = _planted(config, against)
    data.write_text("".join(json.dumps(row) + "\n" for row in planted), encoding="utf-8")
    out = tmp_path / "clean" / "traces.jsonl"
    result = _cli("--data", data.name, "--out", str(out), "--against", against.name, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["kept"], report["dropped"]) == (9, 6, 3)
    assert report["counts"] == {SYNTHETIC: 1, "aime_like.jsonl": 2}
    assert [row["index"] for row in report["dropped_rows"]] == [1, 3, 5]
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == [row for index, row in enumerate(planted) if index not in (1, 3, 5)]
    assert [p.name for p in out.parent.iterdir()] == ["traces.jsonl"]  # no temp file left

    text = _cli("--data", str(data), "--out", str(tmp_path / "again.jsonl"), "--against", str(against), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    for fragment in ("aime_like.jsonl", "kept 6, dropped 3", '"let n be the greatest four digit positive"', "wrote 6"):
        assert fragment in text.stdout

    dry = _cli("--data", str(data), "--out", str(tmp_path / "dry.jsonl"), cwd=tmp_path, env={"DRY_RUN": "1"})
    assert dry.returncode == 0 and "nothing written" in dry.stdout
    assert not (tmp_path / "dry.jsonl").exists()

    missing = _cli("--data", str(data), "--out", str(tmp_path / "x.jsonl"), "--against", "nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 1 and "nope.jsonl: file not found" in missing.stderr

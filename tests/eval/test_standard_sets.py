"""The standard eval sets (GSM8K, MATH-500, AIME 2024/2025, GPQA-Diamond) from small fixtures
in their real Hub schemas (tests/fixtures/eval_sets/), as local files, as Hub rows, and
from a Hugging Face cache with no network."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from r1tui.config import parse_config
from r1tui.errors import R1Error
from r1tui.eval import standard_sets
from r1tui.eval.answers import check_answer
from r1tui.eval.sets import load_eval_set

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "eval_sets"


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]


def load(source, num_samples=100) -> dict:
    return load_eval_set(parse_config({}), source=str(source), num_samples=num_samples)


def write_parquet(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ----------------------------------------------------------------- each schema from its fixture


def test_gsm8k_reference_is_the_number_after_the_hashes_without_commas():
    loaded = load(FIXTURES / "gsm8k_test.jsonl")
    assert loaded["set"] == "gsm8k"
    assert [(r["id"], r["answer"], r["domain"]) for r in loaded["rows"]] == [
        ("gsm8k-0", "12", "math"), ("gsm8k-1", "1200", "math"), ("gsm8k-2", "1236", "math"), ("gsm8k-3", "1234", "math")]
    assert loaded["rows"][0]["question"] == fixture_rows("gsm8k_test.jsonl")[0]["question"]
    assert set(loaded["rows"][0]) == {"id", "question", "answer", "domain"}


def test_math500_keeps_its_unique_ids_and_latex_answers():
    loaded = load(FIXTURES / "math500_test.jsonl")
    assert loaded["set"] == "math500"
    assert [(r["id"], r["answer"]) for r in loaded["rows"]] == [
        ("test/prealgebra/1001.json", "12"), ("test/algebra/2002.json", "2, 3"),
        ("test/counting_and_probability/303.json", "56"), ("test/number_theory/404.json", "\\frac{1}{3}")]
    assert loaded["rows"][2]["question"] == "Compute $\\dbinom{8}{3}$."
    assert {r["domain"] for r in loaded["rows"]} == {"math"}


def test_aime24_parquet_with_integer_answers(tmp_path):
    # The Hub file is aime_2024_problems.parquet, where Answer is int64.
    path = write_parquet(fixture_rows("aime_2024.jsonl"), tmp_path / "aime_2024_problems.parquet")
    loaded = load(path)
    assert loaded["set"] == "aime24" and loaded["source"] == str(path)
    assert [(r["id"], r["answer"], r["domain"]) for r in loaded["rows"]] == [
        ("2024-I-1", "130", "math"), ("2024-I-2", "28", "math"), ("2024-II-3", "376", "math")]
    assert loaded["rows"][1]["question"].startswith("The sum of two positive integers is $50$")
    assert load(FIXTURES / "aime_2024.jsonl")["rows"] == loaded["rows"]  # the same rows from the .jsonl


def test_aime25_local_copies_read_as_plain_question_answer_rows():
    """Its shapes are the plain eval row's: a local copy is read as such, not named aime25."""
    opencompass = load(FIXTURES / "aime2025-I.jsonl")
    math_ai = load(FIXTURES / "aime25_math_ai.jsonl")
    assert opencompass["set"] is None and math_ai["set"] is None
    pairs = [(r["question"], r["answer"], r["domain"]) for r in opencompass["rows"]]
    assert pairs == [(r["question"], r["answer"], r["domain"]) for r in math_ai["rows"]]
    assert pairs[1][1:] == ("25", "math")


def test_gpqa_options_are_lettered_and_the_reference_is_the_correct_letter():
    raw = fixture_rows("gpqa_diamond.jsonl")
    loaded = load(FIXTURES / "gpqa_diamond.jsonl")
    assert loaded["set"] == "gpqa-diamond"
    rows = loaded["rows"]
    assert [r["id"] for r in rows] == [r["Record ID"] for r in raw]
    assert [r["domain"] for r in rows] == ["physics", "chemistry", "biology", "physics", "chemistry"]
    for row, source in zip(rows, raw, strict=True):
        assert row["format"] == "choice" and len(row["choices"]) == 4
        options = [source["Correct Answer"], *(source[f"Incorrect Answer {n}"] for n in (1, 2, 3))]
        assert sorted(row["choices"]) == sorted(option.strip() for option in options)
        assert row["choices"]["ABCD".index(row["answer"])] == source["Correct Answer"].strip()
        assert row["question"].startswith(source["Question"].strip() + "\n\n(A) ")
        for letter, text in zip("ABCD", row["choices"], strict=True):
            assert f"\n({letter}) {text}\n" in row["question"]
        assert row["question"].endswith("FINAL ANSWER: <letter>")
    assert len({r["answer"] for r in rows}) > 1  # the correct option is not always in one place


def test_gpqa_order_is_fixed_by_the_record_id_alone(tmp_path):
    first = load(FIXTURES / "gpqa_diamond.jsonl")["rows"]
    assert load(FIXTURES / "gpqa_diamond.jsonl")["rows"] == first  # every call
    shuffled = fixture_rows("gpqa_diamond.jsonl")
    random.Random(7).shuffle(shuffled)
    path = write_parquet(shuffled, tmp_path / "gpqa_diamond.parquet")
    by_id = {r["id"]: r for r in load(path)["rows"]}
    assert all(by_id[r["id"]] == r for r in first)  # whatever the file's order or format
    # A row's order comes from the id, not the text: the same options under another id may differ.
    renamed = [dict(r, **{"Record ID": r["Record ID"] + "x"}) for r in fixture_rows("gpqa_diamond.jsonl")]
    other = load(write_parquet(renamed, tmp_path / "renamed.parquet"))["rows"]
    assert [r["choices"] for r in other] != [r["choices"] for r in first]


def test_gpqa_rows_are_checked_by_letter():
    row = load(FIXTURES / "gpqa_diamond.jsonl")["rows"][0]  # the correct option is (D)
    check = lambda reply: check_answer(reply, row["answer"], row["domain"], 1e-3,  # noqa: E731
                                       choice=row.get("format") == "choice")
    assert check("D").correct and check("(D) 10^-4 eV").method == "choice"
    assert check("A").method == "mismatch" and check("10^-4 eV").method == "no_letter"


# ----------------------------------------------------------------- from the Hub


@pytest.fixture
def hub(monkeypatch):
    """iter_hf_rows serving the fixtures as the Hub would, recording what was asked for."""
    served = {
        ("openai/gsm8k", "main", "test"): fixture_rows("gsm8k_test.jsonl"),
        ("HuggingFaceH4/MATH-500", None, "test"): fixture_rows("math500_test.jsonl"),
        ("Maxwell-Jia/AIME_2024", None, "train"): fixture_rows("aime_2024.jsonl"),
        ("opencompass/AIME2025", "AIME2025-I", "test"): fixture_rows("aime2025-I.jsonl"),
        ("opencompass/AIME2025", "AIME2025-II", "test"): fixture_rows("aime2025-II.jsonl"),
        ("math-ai/aime25", None, "test"): fixture_rows("aime25_math_ai.jsonl"),
        ("yentinglin/aime_2025", None, "train"): fixture_rows("aime25_math_ai.jsonl"),
        ("Idavidrein/gpqa", "gpqa_diamond", "train"): fixture_rows("gpqa_diamond.jsonl"),
        ("Idavidrein/gpqa", "gpqa_main", "train"): fixture_rows("gpqa_diamond.jsonl")[:2],
    }
    asked = []

    def iter_hf_rows(name, config, split):
        asked.append((name, config, split))
        return iter(served[name, config, split])

    monkeypatch.setattr(standard_sets, "iter_hf_rows", iter_hf_rows)
    return asked


@pytest.mark.parametrize("name, local", [
    ("gsm8k", "gsm8k_test.jsonl"), ("math500", "math500_test.jsonl"), ("aime24", "aime_2024.jsonl"),
    ("gpqa-diamond", "gpqa_diamond.jsonl"),
])
def test_a_short_name_and_its_hf_source_read_the_hub_rows_as_the_local_file(hub, name, local):
    standard = standard_sets.STANDARD_SETS[name]
    by_name = load(name)
    by_hub_name = load(f"hf:{standard.dataset}")
    assert by_name["rows"] == by_hub_name["rows"] == load(FIXTURES / local)["rows"]
    assert (by_name["set"], by_name["split"], by_hub_name["set"]) == (name, standard.split, name)
    assert hub == [(standard.dataset, config, standard.split) for config in standard.configs] * 2


def test_aime25_reads_both_opencompass_configs_in_turn(hub):
    loaded = load("aime25")
    assert loaded["set"] == "aime25" and loaded["split"] == "test"
    assert [(r["id"], r["answer"]) for r in loaded["rows"]] == [
        ("aime25-0", "16"), ("aime25-1", "25"), ("aime25-2", "31"), ("aime25-3", "144")]
    assert hub == [("opencompass/AIME2025", "AIME2025-I", "test"), ("opencompass/AIME2025", "AIME2025-II", "test")]
    assert [r["answer"] for r in load("aime25", num_samples=3)["rows"]] == ["16", "25", "31"]  # a cap across configs
    for source, split in (("hf:math-ai/aime25", "test"), ("hf:yentinglin/aime_2025", "train")):
        other = load(source)
        assert (other["set"], other["split"]) == ("aime25", split)
        assert [r["question"] for r in other["rows"]] == [r["question"] for r in loaded["rows"][:2]]


def test_another_config_of_a_known_dataset_keeps_the_adapter_and_is_named_by_its_source(hub):
    loaded = load("hf:Idavidrein/gpqa:gpqa_main")
    assert loaded["set"] == "hf:Idavidrein/gpqa:gpqa_main" and hub == [("Idavidrein/gpqa", "gpqa_main", "train")]
    assert [r["answer"] for r in loaded["rows"]] == [r["answer"] for r in load("gpqa-diamond")["rows"][:2]]
    assert load("hf:Idavidrein/gpqa:gpqa_diamond")["set"] == "gpqa-diamond"


def test_a_hub_set_loads_from_the_local_cache_with_no_network(tmp_path, monkeypatch):
    """What datasets.load_dataset leaves in the cache on a machine with network, read with
    HF_HUB_OFFLINE=1 (set for every test) through r1tui.data.sources."""
    import datasets.config
    from datasets.packaged_modules.parquet.parquet import Parquet

    cache = tmp_path / "datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # even if datasets was imported before the env was set
    data = write_parquet(fixture_rows("gpqa_diamond.jsonl"), tmp_path / "gpqa_diamond.parquet")
    builder = Parquet(cache_dir=str(cache), dataset_name="gpqa", repo_id="Idavidrein/gpqa", config_name="gpqa_diamond",
                      data_files={"train": [str(data)]}, hash="0123456789abcdef")
    builder.download_and_prepare()
    # A Hub download's config folder is named by the config alone; a local build's adds a hash of its files.
    shutil.move(str(cache / "Idavidrein___gpqa" / builder.config_id), cache / "Idavidrein___gpqa" / "gpqa_diamond")
    loaded = load("gpqa-diamond")
    assert loaded["set"] == "gpqa-diamond" and loaded["rows"] == load(FIXTURES / "gpqa_diamond.jsonl")["rows"]


# ----------------------------------------------------------------- errors, one line each


def test_a_set_that_is_not_cached_offline_is_one_line_saying_how_to_get_it():
    with pytest.raises(R1Error) as raised:
        load("gpqa-diamond")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("eval set gpqa-diamond: Idavidrein/gpqa (split train) could not be loaded from the Hub "
                              "or the local Hugging Face cache (")
    assert "datasets.load_dataset('Idavidrein/gpqa', 'gpqa_diamond', split='train')" in message
    assert "HF_HUB_OFFLINE=1" in message and "local .jsonl/.parquet" in message
    assert "data.source" not in message


def test_an_unknown_set_name_lists_the_standard_sets():
    with pytest.raises(R1Error) as raised:
        load("aime2024")
    assert str(raised.value) == ("eval source 'aime2024': no such eval set or file; use synthetic, a standard set "
                                 "(gsm8k, math500, aime24, aime25, gpqa-diamond), a .jsonl/.json/.parquet file or "
                                 "hf:<dataset>")


@pytest.mark.parametrize("change, message", [
    (lambda row: row.pop("Record ID"), "row 2: missing or empty column 'Record ID'"),
    (lambda row: row.update({"Incorrect Answer 3": " "}), "row 2: missing or empty column 'Incorrect Answer 3'"),
])
def test_a_row_missing_a_column_of_its_schema_is_named(tmp_path, change, message):
    rows = fixture_rows("gpqa_diamond.jsonl")
    change(rows[1])
    path = tmp_path / "gpqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(R1Error, match=f"^{path} {message}; fix or remove the row$"):
        load(path)


def test_a_gsm8k_row_without_its_final_line_or_not_json_is_named(tmp_path):
    rows = fixture_rows("gsm8k_test.jsonl")
    lines = [json.dumps(r) for r in rows]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join([*lines[:3], "{broken", lines[3]]) + "\n", encoding="utf-8")
    with pytest.raises(R1Error, match="gsm8k.jsonl row 4: line is not valid JSON; fix or remove the row$"):
        load(path)
    rows[2]["answer"] = "3 * 412 = 1236 pencils."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(R1Error, match="gsm8k.jsonl row 3: the answer has no '#### <number>' line; fix or remove"):
        load(path)

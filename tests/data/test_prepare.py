"""The prepare stage, its stats, the dry-run stats, the preview and `r1tui prepare`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from r1tui.config import load_config, parse_config
from r1tui.data.prepare import STATS_FILE, dry_run_masking_stats, load_stats, prepare_dataset
from r1tui.data.render import IGNORE_INDEX, load_renderer
from r1tui.data.stats import DRY_RUN_ROWS, stats_table
from r1tui.runs.events import EventWriter, read_events


def tiny(tiny_config_path, **data):
    config = load_config(tiny_config_path)
    for key, value in data.items():
        if key == "max_seq_length":
            config.model.max_seq_length = value
        else:
            setattr(config.data, key, value)
    return config


def test_prepare_writes_dataset_stats_and_events(tmp_path, tiny_config_path):
    from datasets import load_from_disk

    config = tiny(tiny_config_path, num_examples=30)
    out = tmp_path / "run" / "data"
    with EventWriter(tmp_path / "events.jsonl") as events:
        stats = prepare_dataset(config, out, events=events)
    dataset = load_from_disk(str(out))
    assert dataset.column_names == ["input_ids", "labels", "domain"]
    assert len(dataset) == stats["examples"] == 30
    assert load_stats(out) == json.loads((out / STATS_FILE).read_text())
    assert load_stats(out)["tokens"] == stats["tokens"] == sum(len(ids) for ids in dataset["input_ids"])
    assert stats["trained_tokens"] == sum(sum(1 for x in labels if x != IGNORE_INDEX) for labels in dataset["labels"])
    assert stats["domains"] == {"coding": 10, "math": 10, "physics": 10}
    assert 0 < stats["masked_fraction"] < 1
    assert sum(stats["length_histogram"]["counts"]) == 30
    # the ids are exactly the renderer's, which the render tests hold equal to mistral-common's
    renderer = load_renderer("v3")
    assert dataset[0]["input_ids"][0] == renderer.bos_id and dataset[0]["input_ids"][-1] == renderer.eos_id
    kinds = [(e.type, e.stage) for e in read_events(tmp_path / "events.jsonl")]
    assert kinds[0] == ("stage_started", "prepare") and kinds[-1] == ("stage_finished", "prepare")
    assert ("stage_progress", "prepare") in kinds and ("artifact", "prepare") in kinds
    finished = read_events(tmp_path / "events.jsonl")[-1]
    assert finished.data["status"] == "finished" and finished.data["outputs"]["examples"] == 30
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_eval_rows_are_held_out_disjoint_and_deterministic(tmp_path, tiny_config_path):
    """data.eval_rows: a seeded pick of rows written to data/eval, none of them trained on;
    the same config picks the same rows, another seed others."""
    from datasets import load_from_disk

    from r1tui.data.prepare import EVAL_DIR, eval_row_indices

    everything = tmp_path / "all"
    prepare_dataset(tiny(tiny_config_path, num_examples=30), everything)
    every_row = [tuple(ids) for ids in load_from_disk(str(everything))["input_ids"]]
    assert len(set(every_row)) == 30 and not (everything / EVAL_DIR).exists()

    out = tmp_path / "split"
    stats = prepare_dataset(tiny(tiny_config_path, num_examples=30, eval_rows=6), out)
    train, held = load_from_disk(str(out)), load_from_disk(str(out / EVAL_DIR))
    assert (len(train), len(held)) == (24, 6) == (stats["train_examples"], stats["eval_examples"])
    assert stats["examples"] == 30 and load_stats(out)["eval_examples"] == 6
    train_rows, held_rows = [tuple(ids) for ids in train["input_ids"]], [tuple(ids) for ids in held["input_ids"]]
    assert not set(train_rows) & set(held_rows)  # disjoint
    assert sorted(train_rows + held_rows) == sorted(every_row)  # every row on exactly one side
    picked = eval_row_indices(30, 6, 0)
    assert held_rows == [every_row[i] for i in picked]  # the seeded pick, in row order
    assert train_rows == [row for i, row in enumerate(every_row) if i not in picked]
    assert held.column_names == train.column_names == ["input_ids", "labels", "domain"]

    again = tmp_path / "again"
    prepare_dataset(tiny(tiny_config_path, num_examples=30, eval_rows=6), again)
    assert load_from_disk(str(again / EVAL_DIR))["input_ids"] == held["input_ids"]  # deterministic
    assert eval_row_indices(30, 6, 1) != picked and eval_row_indices(30, 0, 0) == []


def test_eval_rows_leaving_nothing_to_train_on_is_one_line(tmp_path, tiny_config_path):
    """More held-out rows than survive the length policy: refused before anything is written."""
    from r1tui.errors import R1Error

    config = tiny(tiny_config_path, num_examples=20, eval_rows=12, max_seq_length=160)
    with pytest.raises(R1Error) as excinfo:
        prepare_dataset(config, tmp_path / "data")
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith("data.eval_rows = 12: only ")
    assert "rows are left after the length policy" in message and not (tmp_path / "data").exists()


def test_prepare_replaces_an_existing_folder(tmp_path, tiny_config_path):
    out = tmp_path / "data"
    prepare_dataset(tiny(tiny_config_path, num_examples=12), out)
    (out / "stale.txt").write_text("old")
    stats = prepare_dataset(tiny(tiny_config_path, num_examples=6), out)
    assert stats["examples"] == 6 and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_prepare_refuses_a_folder_that_is_not_a_prepared_dataset(tmp_path, tiny_config_path):
    from r1tui.errors import R1Error

    notes = tmp_path / "work"
    notes.mkdir()
    (notes / "notes.txt").write_text("keep me")
    with pytest.raises(R1Error, match="not a prepared dataset"):
        prepare_dataset(tiny(tiny_config_path, num_examples=6), notes)
    assert (notes / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in notes.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(R1Error, match="is a file"):
        prepare_dataset(tiny(tiny_config_path, num_examples=6), tmp_path / "file")


def test_length_policy_drop_and_truncate(tmp_path, tiny_config_path):
    from datasets import load_from_disk

    dropped = prepare_dataset(tiny(tiny_config_path, num_examples=60, overlong="drop", max_seq_length=160),
                              tmp_path / "drop")
    assert dropped["dropped"]["too_long"] == dropped["length_histogram"]["over_max"] > 0
    assert dropped["examples"] + dropped["dropped_total"] == 60 and not dropped["truncated"]
    assert max(len(ids) for ids in load_from_disk(str(tmp_path / "drop"))["input_ids"]) <= 160

    cut = prepare_dataset(tiny(tiny_config_path, num_examples=60, overlong="truncate", max_seq_length=160),
                          tmp_path / "cut")
    assert cut["truncated"]["too_long"] == dropped["dropped"]["too_long"]
    rows = load_from_disk(str(tmp_path / "cut"))
    assert max(len(ids) for ids in rows["input_ids"]) == 160
    for labels in rows["labels"]:
        assert any(label != IGNORE_INDEX for label in labels)  # never an all-masked row

    # a window too short for any response: every row would be all -100, so every row is dropped
    with pytest.raises(Exception, match="no usable rows"):
        prepare_dataset(tiny(tiny_config_path, num_examples=6, overlong="truncate", max_seq_length=20),
                        tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_malformed_rows_and_system_prompt(tmp_path, tiny_config_path):
    from datasets import load_from_disk

    path = tmp_path / "rows.jsonl"
    good = {"question": "2+2?", "reasoning": "4", "answer": "4", "domain": "math"}
    path.write_text("\n".join([json.dumps(good), "{oops", json.dumps({"question": "q"}),
                               json.dumps({**good, "answer": ""})]) + "\n")
    config = tiny(tiny_config_path, system_prompt="Think step by step.")
    stats = prepare_dataset(config, tmp_path / "out", data_path=path)
    assert stats["examples"] == 1 and stats["rows_read"] == 4
    assert stats["dropped"] == {"empty_answer": 1, "invalid_json": 1, "missing_field:reasoning": 1}
    ids = load_from_disk(str(tmp_path / "out"))[0]["input_ids"]
    text = "".join(load_renderer("v3").piece(t) for t in ids)
    assert "Think step by step.\n\n2+2?" in text


def test_train_on_last_and_mask_think_lower_trained_tokens(tmp_path, tiny_config_path):
    base = prepare_dataset(tiny(tiny_config_path, num_examples=12), tmp_path / "a")
    think = prepare_dataset(tiny(tiny_config_path, num_examples=12, mask_think=True), tmp_path / "b")
    assert think["tokens"] == base["tokens"] and think["trained_tokens"] < base["trained_tokens"] / 3
    assert think["mask_think"] is True


def test_dry_run_stats_are_capped_and_write_nothing(tmp_path, tiny_config_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config({"data": {"num_examples": 5000}})
    stats = dry_run_masking_stats(config)
    assert stats["dry_run"] and stats["rows_used"] == stats["rows_cap"] == DRY_RUN_ROWS
    assert stats["examples"] == DRY_RUN_ROWS and stats["max_length"] == 8192
    hub = dry_run_masking_stats(parse_config({"data": {"source": "hf:openai/gsm8k"}}))
    assert hub["source"] == "synthetic" and "not downloaded" in hub["note"]
    assert list(tmp_path.iterdir()) == []
    table = stats_table(hub)
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "masked fraction" in text and f"{hub['trained_tokens']:,}" in text and "not downloaded" in text


def test_dry_run_stats_import_neither_mistral_common_nor_torch(tiny_config_path):
    """The v3 dry run must stay fast: raw SentencePiece, no mistral-common/torch/datasets/textual."""
    code = (
        "import sys, json\n"
        "from r1tui.config import load_config\n"
        "from r1tui.data.prepare import dry_run_masking_stats\nfrom r1tui.data.stats import stats_table\n"
        "from r1tui.data.preview import token_preview\n"
        f"stats = dry_run_masking_stats(load_config({str(tiny_config_path)!r}))\n"
        "stats_table(stats)\n"
        "heavy = [m for m in ('mistral_common', 'torch', 'transformers', 'datasets', 'textual') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'examples': stats['examples']}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "examples": 200}


def test_token_preview_styles_masked_and_trained_tokens():
    from rich.console import Console

    renderer = load_renderer("v3")
    rendered = renderer.render([{"role": "user", "content": "Hi there"},
                                {"role": "assistant", "content": "Hello back"}])
    from r1tui.data.preview import token_preview

    console = Console(record=True, width=200, color_system="truecolor")
    console.print(token_preview(rendered.input_ids, rendered.labels, "v3", show_ids=True))
    text = console.export_text(styles=False)
    assert "[INST]₃" in text and "</s>₂" in text and "Hi there" not in text  # ids interleave the pieces
    assert f"{rendered.trained_tokens} trained" in text
    plain = Console(record=True, width=200)
    plain.print(token_preview(rendered.input_ids, rendered.labels, "v3"))
    assert " Hi there[/INST] Hello back</s>" in plain.export_text()
    # styles: every trained piece is bold green, every masked piece is not
    group = token_preview(rendered.input_ids, rendered.labels, "v3")
    body = group.renderables[1]
    for span in body.spans:
        piece = body.plain[span.start:span.end]
        trained = "bright_green" in str(span.style) or "bold magenta" in str(span.style)
        assert trained == (piece in (" Hello", " back", "</s>")), piece
    with pytest.raises(ValueError):
        token_preview([1, 2], [1], "v3")


def test_cli_prepare_json_and_preview(tmp_path, tiny_config_path):
    env = {**os.environ, "DRY_RUN": ""}
    out = tmp_path / "ds"
    result = subprocess.run([sys.executable, "-m", "r1tui", "prepare", "--config", str(tiny_config_path),
                             "--out", str(out), "--json", "--preview", "1", "--ids"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["examples"] == 200 and (out / STATS_FILE).is_file()
    assert "[INST]" in result.stderr and "trained" in result.stderr  # preview went to stderr


def test_cli_prepare_dry_run_and_errors(tmp_path, tiny_config_path):
    env = {**os.environ, "DRY_RUN": "1"}
    out = tmp_path / "ds"
    result = subprocess.run([sys.executable, "-m", "r1tui", "prepare", "--config", str(tiny_config_path),
                             "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nothing written" in result.stdout and not out.exists()
    env["DRY_RUN"] = ""
    result = subprocess.run([sys.executable, "-m", "r1tui", "prepare", "--config", str(tiny_config_path),
                             "--data", str(tmp_path / "missing.jsonl"), "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "missing.jsonl not found" in error_lines[0]
    assert result.stderr.strip().splitlines()[-1] == error_lines[0] and not out.exists()


def test_cli_prepare_data_takes_any_source_and_an_unreachable_hub_fails_at_once(tmp_path, tiny_config_path):
    """--data hf:... is a Hub source, not a file name; with the Hub's host unresolvable
    (HF_ENDPOINT on the reserved .invalid domain, offline mode off) the error is one line,
    with none of datasets' five "Retrying" warnings before it."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(DRY_RUN="", HF_ENDPOINT="https://hub.invalid", TERM="dumb")
    out = tmp_path / "ds"
    result = subprocess.run([sys.executable, "-m", "r1tui", "prepare", "--config", str(tiny_config_path),
                             "--data", "hf:openai/gsm8k", "--out", str(out)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Retrying" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: data.source = hf:openai/gsm8k: the Hub is not reachable (hub.invalid cannot "
                            "be resolved: ")
    assert error.endswith("); check the network, set HF_HUB_OFFLINE=1 to use a cached copy, or point "
                          "data.source at a local .jsonl/.parquet file")
    assert not out.exists()
    result = subprocess.run([sys.executable, "-m", "r1tui", "prepare", "--config", str(tiny_config_path),
                             "--data", "synthetic", "--out", str(out), "--json"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["examples"] == 200


@pytest.mark.parametrize("max_length", [100, 512, 8192, 7])
def test_histogram_edges_are_the_bins_lengths_are_counted_in(max_length):
    """Every length from 1 to the maximum lands in the bin whose printed edges hold it."""
    from r1tui.data.stats import MaskingStats

    for length in range(1, max_length + 1):
        stats = MaskingStats(max_length)
        stats.observe_length(length)
        histogram = stats.to_dict()["length_histogram"]
        edges, counts = histogram["edges"], histogram["counts"]
        [bin_index] = [i for i, count in enumerate(counts) if count]
        assert edges[bin_index] < length <= edges[bin_index + 1], (length, edges)

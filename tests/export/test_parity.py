"""Tokenizer parity: the GGUF must tokenize the training format exactly like training."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from r1tui.errors import R1Error

STEM = "tiny-mistral-random-r1"


def vocab_only_gguf(tmp_path: Path, model_config: Path, converter_dir: Path, trap: str) -> tuple[Path, dict]:
    """A vocabulary-only GGUF converted by llama.cpp from a tokenizer folder with one known trap."""
    from r1tui.data.tokenizer import save_hf_tokenizer
    from r1tui.export.gguf import convert_to_gguf, read_gguf

    folder = save_hf_tokenizer("v3", tmp_path / trap)
    shutil.copyfile(model_config, folder / "config.json")
    if trap == "space-prefix":
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["add_prefix_space"] = True
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    elif trap == "no-tokenizer-model":
        (folder / "tokenizer.model").unlink()
    gguf = convert_to_gguf(folder, tmp_path / f"{trap}.gguf", converter_dir, vocab_only=True)
    return gguf, read_gguf(gguf, converter_dir)


@pytest.fixture(scope="module")
def space_prefix_gguf(tmp_path_factory, exported_run, converter_dir) -> tuple[Path, dict]:
    run_dir, _, _ = exported_run
    return vocab_only_gguf(tmp_path_factory.mktemp("trap"), run_dir / "merged" / "config.json", converter_dir,
                           "space-prefix")


def test_exported_ggufs_tokenize_every_sample_like_training(exported_run):
    from r1tui.export.parity import SAMPLE_CONVERSATIONS, check_parity, training_encoding

    run_dir, _, _ = exported_run
    report = check_parity(run_dir / "gguf" / f"{STEM}-Q4_K_M.gguf", "v3")
    assert report["ok"] and len(report["cases"]) == len(SAMPLE_CONVERSATIONS)
    names = {case["name"] for case in report["cases"]}
    assert {"multi-turn", "accents and emoji", "code", "leading and repeated spaces", "inference prompt"} <= names
    ids, text = training_encoding(SAMPLE_CONVERSATIONS[0][1])
    assert text.startswith("<s>[INST] What is 17 * 23?[/INST] <think>") and text.endswith("</s>")
    assert ids[:2] == [1, 3] and ids[-1] == 2


def test_sample_texts_are_the_training_chat_template(exported_run):
    """The text handed to llama.cpp is the Jinja template the GGUF embeds, sample by sample
    (the template strips an assistant's trailing spaces as Mistral's encoding does)."""
    from r1tui.export.parity import (
        SAMPLE_CONVERSATIONS,
        render_template,
        template_differences,
        training_encoding,
    )

    assert template_differences("v3") == []
    for _name, messages in SAMPLE_CONVERSATIONS:
        assert render_template(messages) == training_encoding(messages)[1]


def test_chat_template_merges_roles_as_mistral_common_does():
    """Every role sequence mistral-common accepts (system messages anywhere it allows them,
    runs of one role, empty messages) renders through the embedded template to the
    training text."""
    import itertools

    from r1tui.errors import R1Error
    from r1tui.export.parity import render_template, training_encoding

    checked = 0
    for length in range(1, 6):
        for roles in itertools.product(("system", "user", "assistant"), repeat=length):
            # every message with text, and (up to 4 messages) each also empty, as chat clients send
            for empty in itertools.product((False, True), repeat=length if length <= 4 else 0):
                messages = [{"role": role, "content": "" if empty and empty[i] else f"{role[0]}{i}  text "}
                            for i, role in enumerate(roles)]
                try:
                    expected = training_encoding(messages)[1]
                except R1Error:
                    continue  # refused by Mistral's rules (e.g. nothing to answer): no template text to match
                assert render_template(messages) == expected, messages
                checked += 1
    assert checked > 500


def test_space_prefix_trap_fails_with_the_first_differing_tokens(space_prefix_gguf):
    from r1tui.export.parity import check_parity, describe_failure

    gguf, info = space_prefix_gguf
    assert info["metadata"]["add_space_prefix"] is True
    report = check_parity(gguf, "v3", gguf_info=info)
    assert not report["ok"]
    first = next(case for case in report["cases"] if not case["ok"])["first_difference"]
    assert first["index"] == 2  # right after <s>[INST]
    assert first["expected"][:2] == first["gguf"][:2] == [[1, "<s>"], [3, "[INST]"]]
    assert first["gguf"][2][1] == " "  # llama.cpp's extra space after the control token
    line = describe_failure(report)
    assert "at token 2" in line and "training [" in line and "vs GGUF [" in line and "add_space_prefix" in line
    assert "\n" not in line


@pytest.mark.slow
def test_tokenizer_json_fallback_trap_is_caught(tmp_path, exported_run, converter_dir):
    from r1tui.export.parity import check_parity

    run_dir, _, _ = exported_run
    gguf, info = vocab_only_gguf(tmp_path, run_dir / "merged" / "config.json", converter_dir, "no-tokenizer-model")
    assert info["metadata"]["scores_all_default"] is True
    report = check_parity(gguf, "v3", gguf_info=info)
    assert not report["ok"] and "every token score is -1000" in report["hints"][0]


def test_parity_command_passes_and_fails_in_one_line(exported_run, tmp_path, capsys, space_prefix_gguf):
    from r1tui.cli import main

    run_dir, _, _ = exported_run
    good = run_dir / "gguf" / f"{STEM}-Q4_K_M.gguf"
    assert main(["parity", "--gguf", str(good)]) == 0
    assert "parity OK" in capsys.readouterr().out
    assert main(["parity", "--gguf", str(good), "--tokenizer", str(run_dir / "merged")]) == 0
    capsys.readouterr()

    bad, _ = space_prefix_gguf
    assert main(["parity", "--gguf", str(bad)]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and "first:" in errors[0]
    assert "no, from token 2" in captured.out

    assert main(["parity", "--gguf", str(tmp_path / "missing.gguf")]) == 1
    assert "GGUF not found" in capsys.readouterr().err


def test_parity_command_on_a_run_logs_events(exported_run, tmp_path, capsys):
    from r1tui.cli import main
    from r1tui.runs.events import read_events

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir, ignore=shutil.ignore_patterns("base", "merged", "events.jsonl"))
    assert main(["parity", str(run_dir)]) == 0  # the export checked these files: up to date
    assert "parity OK" in capsys.readouterr().out
    events = read_events(run_dir / "events.jsonl")
    assert events[-1].type == "stage_finished" and events[-1].data["status"] == "skipped"

    from r1tui.export.card import parity_is_current, read_parity
    from r1tui.runs.layout import RunLayout

    layout = RunLayout(run_dir)
    gguf = layout.gguf_files()[0]
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 1_000_000_000))  # rewritten since
    assert main(["parity", str(run_dir)]) == 0
    capsys.readouterr()
    events = read_events(run_dir / "events.jsonl")
    parity_events = [e for e in events if e.stage == "parity"]
    assert "stage_progress" in [e.type for e in parity_events[-6:]]  # each file checked again
    assert parity_events[-1].type == "stage_finished" and parity_events[-1].data["status"] == "finished"
    parity = read_parity(layout)
    assert parity["ok"] is True and parity_is_current(layout, parity)  # push trusts it afterwards


def test_export_fails_when_the_gguf_does_not_tokenize_like_training(exported_run, tmp_path, run_export):
    """The trap put back into the merged folder: export converts again, and parity stops it."""
    from r1tui.runs.events import EventWriter, read_events
    from r1tui.runs.files import read_json_object

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    tokenizer_config = run_dir / "merged" / "tokenizer_config.json"
    data = json.loads(tokenizer_config.read_text())
    data["add_prefix_space"] = True
    tokenizer_config.write_text(json.dumps(data))
    with EventWriter(run_dir / "events.jsonl") as events, pytest.raises(R1Error) as error:
        run_export(run_dir, events=events)
    message = str(error.value)
    assert "tokenizer parity failed" in message and "training [" in message and "parity.json" in message
    assert "\n" not in message
    assert json.loads((run_dir / "gguf" / "parity.json").read_text())["ok"] is False
    finished = {e.stage: e.data["status"] for e in read_events(run_dir / "events.jsonl") if e.type == "stage_finished"}
    assert finished["merge"] == "skipped" and finished["gguf"] == "finished" and finished["parity"] == "failed"
    assert read_json_object(run_dir / "stages.json")["parity"]["status"] == "started"  # not finished: redone next time

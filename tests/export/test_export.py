"""The tiny run exported for real: merge, F16 GGUF, Q4_K_M, read-back, parity, Modelfile, card,
as the pipeline's stages run by the orchestrator (resume through stages.json)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r1tui.errors import R1Error

STEM = "tiny-mistral-random-r1"
EXPORT_STAGES = ["merge", "gguf", "quantize", "parity"]


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def export_logged(export, run_dir: Path, **options):
    """Export with the run's event log; returns (ExportResult, the events this export wrote)."""
    from r1tui.runs.events import EventWriter

    log = run_dir / "events.jsonl"
    before = len(events_of(log)) if log.exists() else 0
    with EventWriter(log) as events:
        result = export(run_dir, events=events, **options)
    return result, events_of(log)[before:]


def statuses(events: list[dict]) -> dict[str, str]:
    return {e["stage"]: e["data"]["status"] for e in events if e["type"] == "stage_finished"}


def quantized(events: list[dict]) -> int:
    """Tensors quantized (the tiny model has 21 per quant type)."""
    return sum(1 for e in events if e["type"] == "stage_progress" and e["stage"] == "quantize")


def test_tiny_run_exports_every_artifact(exported_run):
    from r1tui.runs.files import read_json_object

    run_dir, result, _ = exported_run
    merged = run_dir / "merged"
    assert (merged / "model.safetensors").is_file()
    assert (merged / "tokenizer.model").is_file()  # the converter's only faithful source of scores
    assert json.loads((merged / "tokenizer_config.json").read_text())["add_prefix_space"] is False
    assert json.loads((merged / "config.json").read_text())["dtype"] == "float16"
    for quant in ("F16", "Q4_K_M"):
        assert (run_dir / "gguf" / f"{STEM}-{quant}.gguf").is_file()
        assert result.gguf[quant]["metadata"]["has_chat_template"] is True
    assert result.parity.ok is True and result.parity.samples >= 8
    parity = json.loads((run_dir / "gguf" / "parity.json").read_text())
    assert parity["ok"] and set(parity["files"]) == {f"{STEM}-F16.gguf", f"{STEM}-Q4_K_M.gguf"}
    assert (run_dir / "gguf" / "Modelfile").is_file() and (run_dir / "card" / "README.md").is_file()
    assert result.skipped == []
    assert not [p for p in run_dir.rglob(".*.tmp-*")]
    # Resume is the orchestrator's: every stage recorded with its inputs, no stamp files of export's own.
    records = read_json_object(run_dir / "stages.json")
    assert {name: records[name]["status"] for name in EXPORT_STAGES} == dict.fromkeys(EXPORT_STAGES, "finished")
    assert all(records[name]["inputs"] for name in EXPORT_STAGES)
    assert records["parity"]["inputs"] == parity["inputs"]  # parity.json publishes the same fingerprint
    assert not [p for p in run_dir.rglob("*stamp*")]


def test_gguf_read_back_equals_the_calculator(exported_run):
    """For the tiny model the calculator's tensor bytes and per-tensor types are exact."""
    from r1tui.calculator import PRESETS, gguf_size_bytes

    _, result, _ = exported_run
    for quant in ("F16", "Q4_K_M"):
        report = result.gguf[quant]
        assert report["types_match_calculator"], report["type_differences"]
        assert report["tensor_bytes"] == report["calculator_bytes"] == gguf_size_bytes(PRESETS["tiny"], quant)
        assert 0 < report["metadata_bytes"] < 1_000_000  # the vocabulary, scores and template
    assert result.gguf["Q4_K_M"]["type_counts"] == {"F32": 5, "Q4_K": 13, "Q6_K": 3}


def test_merged_weights_are_base_plus_scaled_lora(exported_run):
    import torch
    from safetensors.torch import load_file

    run_dir, _, _ = exported_run
    base = load_file(run_dir / "base" / "model.safetensors")
    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    merged = load_file(run_dir / "merged" / "model.safetensors")
    scale = 32 / 16  # lora_alpha / r
    for module in ("self_attn.q_proj", "mlp.down_proj"):
        name = f"model.layers.1.{module}.weight"
        a = next(v for k, v in adapter.items() if f"layers.1.{module}.lora_A" in k)
        b = next(v for k, v in adapter.items() if f"layers.1.{module}.lora_B" in k)
        expected = base[name].float() + scale * (b.float() @ a.float())
        assert merged[name].dtype == torch.float16
        assert not torch.allclose(merged[name].float(), base[name].float(), atol=1e-3)
        assert torch.allclose(merged[name].float(), expected, atol=2e-3)


def test_quantized_gguf_loads_and_generates_from_the_training_prompt(exported_run):
    import llama_cpp

    from r1tui.data.render import load_renderer

    run_dir, _, _ = exported_run
    llm = llama_cpp.Llama(model_path=str(run_dir / "gguf" / f"{STEM}-Q4_K_M.gguf"), n_ctx=256, verbose=False,
                          seed=0)
    messages = [{"role": "user", "content": "What is 17 * 23?"}]
    prompt = load_renderer("v3").render_prompt(messages)
    generated = []
    for token in llm.generate(prompt, temp=0.0):
        generated.append(token)
        if len(generated) == 8:
            break
    assert len(generated) == 8 and all(0 <= t < 32768 for t in generated)
    # llama-cpp-python's chat API uses the template embedded in the GGUF: same prompt ids
    reply = llm.create_chat_completion(messages, max_tokens=4, stop=["</s>", "[INST]"])
    assert reply["usage"]["prompt_tokens"] == len(prompt)


def test_export_events_cover_every_stage_with_progress(exported_run):
    _, _, events_path = exported_run
    events = events_of(events_path)
    finished = {e["stage"]: e["data"]["status"] for e in events if e["type"] == "stage_finished"}
    assert finished == {"merge": "finished", "gguf": "finished", "quantize": "finished", "parity": "finished"}
    quantize = [e["data"] for e in events if e["type"] == "stage_progress" and e["stage"] == "quantize"]
    assert [p["completed"] for p in quantize] == list(range(1, 22)) and {p["total"] for p in quantize} == {21}
    assert {p["unit"] for p in quantize} == {"tensor"} and any("q6_K" in p["message"] for p in quantize)
    convert = [e["data"] for e in events if e["type"] == "stage_progress" and e["stage"] == "gguf"]
    assert convert[-1]["completed"] == convert[-1]["total"] == 21
    kinds = {e["data"]["kind"] for e in events if e["type"] == "artifact"}
    assert kinds == {"merged", "gguf", "parity", "modelfile", "card"}


def test_export_again_skips_what_is_up_to_date_and_redoes_what_changed(exported_run, tmp_path, run_export):
    import torch
    from safetensors.torch import load_file, save_file

    source, _, _ = exported_run
    run_dir = tmp_path / "moved-run"  # a moved run folder stays up to date
    shutil.copytree(source, run_dir)
    gguf = run_dir / "gguf" / f"{STEM}-Q4_K_M.gguf"
    before = gguf.stat().st_mtime_ns
    result, events = export_logged(run_export, run_dir)
    assert result.skipped == EXPORT_STAGES
    assert statuses(events) == dict.fromkeys(EXPORT_STAGES, "skipped")
    assert gguf.stat().st_mtime_ns == before
    assert result.gguf["Q4_K_M"]["type_counts"] == {"F32": 5, "Q4_K": 13, "Q6_K": 3}  # read from the records

    adapter_file = run_dir / "adapter" / "adapter_model.safetensors"
    weights = load_file(adapter_file)
    save_file({k: (v * 2 if "lora_B" in k else v) for k, v in weights.items()}, adapter_file,
              metadata={"format": "pt"})
    old_merged = load_file(run_dir / "merged" / "model.safetensors")
    result, events = export_logged(run_export, run_dir)
    assert result.skipped == [] and result.parity.ok
    assert statuses(events) == dict.fromkeys(EXPORT_STAGES, "finished")
    new_merged = load_file(run_dir / "merged" / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(old_merged[name], new_merged[name])
    assert gguf.stat().st_mtime_ns != before


def test_only_missing_or_new_quant_types_are_quantized(exported_run, tmp_path, run_export):
    """Adding a quant type quantizes only it; deleting one file redoes only that quant and parity;
    a quant made earlier from the same F16 is not made again."""
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    q4 = run_dir / "gguf" / f"{STEM}-Q4_K_M.gguf"
    q8 = run_dir / "gguf" / f"{STEM}-Q8_0.gguf"
    q4_made = q4.stat().st_mtime_ns

    result, events = export_logged(run_export, run_dir, quant_types=["Q4_K_M", "Q8_0"])
    assert result.skipped == ["merge", "gguf"]
    assert statuses(events) == {"merge": "skipped", "gguf": "skipped", "quantize": "finished", "parity": "finished"}
    assert quantized(events) == 21  # Q8_0 only
    assert q4.stat().st_mtime_ns == q4_made and q8.is_file()
    assert set(result.gguf) == {"F16", "Q4_K_M", "Q8_0"} and result.gguf["Q8_0"]["types_match_calculator"]
    parity = json.loads((run_dir / "gguf" / "parity.json").read_text())
    assert set(parity["files"]) == {f"{STEM}-F16.gguf", q4.name, q8.name}
    q8_made = q8.stat().st_mtime_ns

    q4.unlink()
    result, events = export_logged(run_export, run_dir, quant_types=["Q4_K_M", "Q8_0"])
    assert statuses(events) == {"merge": "skipped", "gguf": "skipped", "quantize": "finished", "parity": "finished"}
    assert quantized(events) == 21  # Q4_K_M only
    assert q4.is_file() and q8.stat().st_mtime_ns == q8_made
    assert {e["data"]["quant"] for e in events if e["type"] == "artifact" and e["stage"] == "quantize"} == {
        "Q4_K_M", "Q8_0"}

    result, events = export_logged(run_export, run_dir, quant_types=["Q4_K_M", "Q8_0"])
    assert result.skipped == EXPORT_STAGES

    # Back to the configured Q4_K_M alone, then Q8_0 again: it is still known as made from this F16.
    result, events = export_logged(run_export, run_dir)
    assert statuses(events)["quantize"] == "skipped" and quantized(events) == 0
    assert set(result.gguf) == {"F16", "Q4_K_M"}
    result, events = export_logged(run_export, run_dir, quant_types=["Q4_K_M", "Q8_0"])
    assert quantized(events) == 0 and q8.stat().st_mtime_ns == q8_made and result.gguf["Q8_0"]["file_bytes"]


@pytest.mark.slow
def test_two_exports_started_at_the_same_instant_export_once(fresh_run, tmp_path):
    """Two `r1tui export RUN` processes at once: one exports, the other is refused in one line
    naming the process that holds the run."""
    from r1tui.runs.events import read_events
    from r1tui.runs.files import read_json_object

    run_dir = fresh_run()
    command = [sys.executable, "-m", "r1tui", "export", str(run_dir)]
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("DRY_RUN", None)
    procs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(proc.pid, *proc.communicate(timeout=600), proc.returncode) for proc in procs]
    assert sorted(code for *_, code in results) == [0, 1], results
    winner = next(pid for pid, _, _, code in results if code == 0)
    refused = next(err for _, _, err, code in results if code == 1)
    lines = [line for line in refused.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"run {run_dir.name} is busy: pid {winner} (r1tui export, since" in lines[0]
    assert "r1tui cancel" in lines[0]

    started = [e.stage for e in read_events(run_dir / "events.jsonl") if e.type == "stage_started"]
    assert started == EXPORT_STAGES  # one export, not two
    records = read_json_object(run_dir / "stages.json")
    assert [records[name]["status"] for name in EXPORT_STAGES] == ["finished"] * 4


def test_missing_converter_is_one_clear_line_and_writes_nothing(fresh_run, tmp_path, monkeypatch, run_export):
    from r1tui.config import load_config

    run_dir = fresh_run()
    config = load_config(run_dir / "config.toml")
    monkeypatch.delenv("R1TUI_LLAMA_CPP_DIR", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "empty-venv"))
    with pytest.raises(R1Error) as error:
        run_export(run_dir, config=config)
    message = str(error.value)
    assert "install.sh" in message and "\n" not in message
    config.export.llama_cpp_dir = tmp_path / "not-a-checkout"
    with pytest.raises(R1Error, match="export.llama_cpp_dir .* no llama.cpp converter there"):
        run_export(run_dir, config=config)
    assert not (run_dir / "merged").exists() and not (run_dir / "gguf").exists()
    assert not (run_dir / "stages.json").exists()


def test_converter_from_environment_is_used(fresh_run, monkeypatch, converter_dir, tmp_path):
    from r1tui.export.gguf import find_converter

    monkeypatch.setenv("R1TUI_LLAMA_CPP_DIR", str(converter_dir))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "empty-venv"))
    assert find_converter() == converter_dir
    monkeypatch.setenv("R1TUI_LLAMA_CPP_DIR", str(tmp_path))
    with pytest.raises(R1Error, match="R1TUI_LLAMA_CPP_DIR"):
        find_converter()


def test_not_enough_disk_is_refused_up_front_with_simulated_free_space(fresh_run, monkeypatch, run_export):
    """Free space is faked (a full disk cannot be made here); the check itself is real."""
    from r1tui.runs import disk

    run_dir = fresh_run()
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10_000_000})())
    with pytest.raises(R1Error) as error:
        run_export(run_dir)
    message = str(error.value)
    assert "not enough disk space" in message and "needs 1" in message and "10.0 MB free" in message
    assert "merge 36.7 MB" in message and "quantize 12.5 MB" in message
    assert not (run_dir / "merged").exists()


def test_run_without_adapter_is_one_line(tmp_path, run_export):
    from r1tui.config import parse_config

    with pytest.raises(R1Error, match="no trained adapter"):
        run_export(tmp_path, config=parse_config({}))


def test_unknown_quant_type_is_refused(exported_run, run_export):
    run_dir, _, _ = exported_run
    with pytest.raises(R1Error, match="unknown quant type 'Q3_K'"):
        run_export(run_dir, quant_types=["Q3_K"])

"""A tiny run exported for real from the scripted model (tests/tiny_gguf.py, via tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scripted_run(tmp_path_factory, scripted_model_dir, tiny_config_path) -> Path:
    """A tiny run exported for real: base/ is the scripted model, adapter/ an untrained LoRA
    (peft starts B at zero, so merging keeps the script), then the step "export" (run by the
    orchestrator, as `r1tui export` does) wrote gguf/*-Q4_K_M.gguf. Lives at
    <workspace>/runs/tiny-run, next to <workspace>/config.toml."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1tui.config import dump_toml, load_config
    from r1tui.data.tokenizer import save_hf_tokenizer
    from r1tui.pipeline.orchestrator import run_named
    from r1tui.runs.events import EventWriter
    from r1tui.runs.layout import RunLayout

    workspace = tmp_path_factory.mktemp("workspace")
    run_dir = workspace / "runs" / "tiny-run"
    run_dir.mkdir(parents=True)
    (workspace / "config.toml").write_text('[runs]\ndir = "runs"\n', encoding="utf-8")
    config = load_config(tiny_config_path)
    config.runs.dir = workspace / "runs"
    (run_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    shutil.copytree(scripted_model_dir, run_dir / "base")
    base = AutoModelForCausalLM.from_pretrained(run_dir / "base")
    adapted = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=config.lora.target_modules,
                                              task_type="CAUSAL_LM"))
    adapted.peft_config["default"].base_model_name_or_path = str(run_dir / "base")
    adapted.save_pretrained(run_dir / "adapter")
    save_hf_tokenizer("v3", run_dir / "adapter")
    with EventWriter(run_dir / "events.jsonl") as events:
        layout = RunLayout(run_dir)
        run_named(layout.frozen_config(), layout, ["export"], events=events, what="r1tui export")
    return run_dir

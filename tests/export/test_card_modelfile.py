"""Model card metadata and text, the Ollama Modelfile, run resolution, import hygiene."""

from __future__ import annotations

import json

import pytest
import yaml


def front_matter(card: str) -> dict:
    _, front, _ = card.split("---\n", 2)
    return yaml.safe_load(front)


@pytest.mark.parametrize(("architecture", "name", "expected"), [
    ("mistral-small-2409", "mistralai/Mistral-Small-Instruct-2409",
     {"license": "other", "license_name": "mrl", "license_link": "https://mistral.ai/licenses/MRL-0.1.md"}),
    ("mistral-small-24b", "mistralai/Mistral-Small-24B-Instruct-2501", {"license": "apache-2.0"}),
    ("mistral-small-3.1", "mistralai/Mistral-Small-3.1-24B-Instruct-2503", {"license": "apache-2.0"}),
    ("mistral-small-3.2", "mistralai/Mistral-Small-3.2-24B-Instruct-2506", {"license": "apache-2.0"}),
    ("magistral-small", "mistralai/Magistral-Small-2506", {"license": "apache-2.0"}),
])
def test_card_carries_the_base_models_licence(exported_run, architecture, name, expected):
    from r1tui.config import parse_config
    from r1tui.export.card import render_card

    config = parse_config({"model": {"architecture": architecture, "name": name},
                           "data": {"source": "hf:open-r1/OpenR1-Math-220k"}})
    card = render_card(config, exported_run[0], "alice/r1")
    meta = front_matter(card)
    assert {k: meta[k] for k in expected} == expected
    assert meta["base_model"] == name and meta["datasets"] == ["open-r1/OpenR1-Math-220k"]
    assert "gguf" in meta["tags"] and "lora" in meta["tags"]
    if expected["license"] == "other":
        assert "Mistral Research License" in card


def test_tiny_card_has_stats_lora_size_parity_and_how_to_run(exported_run, tmp_path):
    import shutil

    from r1tui.calculator import PRESETS, count_lora
    from r1tui.config import load_config
    from r1tui.export.card import render_card

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir, ignore=shutil.ignore_patterns("base", "merged"))
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text(json.dumps(
        {"summary": (stats := {"count": 4, "questions": 2, "samples_per_question": 2, "accuracy": 0.5, "pass@1": 0.5,
                               "pass@1_se": 0.25, "pass@2": 0.75, "maj@2": 0.5, "truncated_rate": 0.25,
                               "no_answer_rate": 0.0, "avg_depth": 0.61, "avg_steps": 5.5, "compliance_rate": 1.0,
                               "think_tokens_median": 212.0}),
         "domains": {"math": stats},
         "generation": {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 1024},
         "model": "/home/someone/secret/path.gguf", "samples": [{"id": 1}]}))
    stats = json.loads((run_dir / "data" / "stats.json").read_text())
    stats.update(source="/home/alice/private/traces.jsonl", tokenizer="/home/alice/models/tok")
    (run_dir / "data" / "stats.json").write_text(json.dumps(stats))
    config = load_config(run_dir / "config.toml")
    card = render_card(config, run_dir, "alice/tiny-r1")
    assert "/home/alice" not in card and "| `source` | .../traces.jsonl |" in card
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0" and "base_model" not in meta  # a random init has no Hub base
    lora = count_lora(PRESETS["tiny"], 16, config.lora.target_modules).trainable
    assert f"**{lora:,}** trainable parameters" in card
    assert "| `masked_fraction` | 0.6003 |" in card
    assert "2 samples per question, temperature 0.6, top_p 0.95, at most 1024 new tokens." in card
    assert "| domain | questions | pass@1 ± SE | pass@2 | maj@2 | truncated | no answer |" in card
    assert "| math | 2 | 50.0% ± 25.0 | 75.0% | 50.0% | 25.0% | 0.0% | 100.0% | 0.6100 | 212 |" in card
    assert "| all | 2 | 50.0% ± 25.0 |" in card
    assert "/home/someone" not in card  # the eval's local paths stay out of a published card
    assert "identical ids: 10 sample conversations" in card
    assert "- `merged/` through transformers AutoTokenizer + apply_chat_template: 19/19 identical" in card
    assert "- `adapter/ (as pushed)` through transformers AutoTokenizer + apply_chat_template: 19/19 identical" in card
    assert "- `tiny-mistral-random-r1-Q4_K_M.gguf` through llama-cpp-python chat template" in card
    assert "- `Modelfile (FROM tiny-mistral-random-r1-Q4_K_M.gguf)` through Ollama" in card
    assert "MISMATCH" not in card
    assert 'hf_hub_download("alice/tiny-r1", "tiny-mistral-random-r1-Q4_K_M.gguf")' in card
    assert "ollama create" in card and "ollama run hf.co/alice/tiny-r1:Q4_K_M" in card
    assert "13.3 MB" in card and "F32 ×5, Q4_K ×13, Q6_K ×3" in card
    assert "```toml\n[model]" in card and str(run_dir) not in card  # no local paths leak into the card


def test_modelfile_matches_the_training_format(exported_run):
    from r1tui.export.modelfile import render_modelfile

    text = (exported_run[0] / "gguf" / "Modelfile").read_text()
    assert "FROM ./tiny-mistral-random-r1-Q4_K_M.gguf" in text
    assert (exported_run[0] / "gguf" / "tiny-mistral-random-r1-Q4_K_M.gguf").is_file()
    assert 'PARAMETER stop "</s>"' in text and 'PARAMETER stop "[INST]"' in text
    assert "PARAMETER num_ctx 512" in text
    # the pieces of the v3 format, as the training template writes them
    assert "[INST] {{ .Content }}[/INST]" in text and "[INST] {{ $.System }}\n\n{{ .Content }}[/INST]" in text
    assert '{{- else if eq .Role "assistant" }} {{ .Content }}</s>' in text
    with_system = render_modelfile("m.gguf", num_ctx=64, system="Think step by step.")
    assert 'SYSTEM """Think step by step."""' in with_system


@pytest.mark.parametrize("spec", ["v3", "tekken"])
def test_modelfile_template_writes_what_training_tokenizes(spec):
    """Each branch of the Ollama template, filled in, gives the text of the training ids
    (no space after [INST] and before the answer for Tekken, one for v3)."""
    import re

    from r1tui.data.render import load_renderer
    from r1tui.data.tokenizer import is_tekken
    from r1tui.export.card import prompt_format_line
    from r1tui.export.modelfile import ollama_template

    renderer = load_renderer(spec)

    def training_text(messages):
        return "".join(renderer.piece(i) for i in renderer.render(messages).input_ids)

    template = ollama_template(tekken=is_tekken(spec))
    with_system = re.search(r"\(le \(len \(slice \$\.Messages \$index\)\) 2\) \}\}(.*?)\n\{\{- else", template,
                            re.DOTALL).group(1)
    user = re.search(r"\{\{- else \}\}(.*?)\n", template).group(1)
    answer = re.search(r'eq \.Role "assistant" \}\}(.*?)\n', template).group(1)
    turn = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Yo"}]
    assert "<s>" + user.replace("{{ .Content }}", "Hi there") + answer.replace("{{ .Content }}", "Yo") == \
        training_text(turn)
    assert "<s>" + with_system.replace("{{ $.System }}", "Be brief.").replace("{{ .Content }}", "Hi there") + \
        answer.replace("{{ .Content }}", "Yo") == training_text([{"role": "system", "content": "Be brief."}, *turn])
    assert ("Tekken" in prompt_format_line(spec)) == (spec == "tekken")


def test_export_dry_run_plans_without_writing(exported_run, capsys, monkeypatch):
    from r1tui.cli import main

    run_dir = exported_run[0]
    size = (run_dir / "events.jsonl").stat().st_size
    monkeypatch.setenv("DRY_RUN", "1")
    assert main(["export", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "up to date" in out and "quantize Q4_K_M" in out
    assert (run_dir / "events.jsonl").stat().st_size == size


def test_export_command_reports_sizes_next_to_the_calculator(exported_run, tmp_path, capsys):
    import shutil

    from r1tui.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    assert main(["export", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["skipped"] == ["merge", "gguf", "quantize", "parity"]
    assert result["gguf"]["Q4_K_M"]["calculator_bytes"] == result["gguf"]["Q4_K_M"]["tensor_bytes"]


def test_v7_modelfile_template_and_card_line_speak_the_system_prompt_tokens():
    """Tekken v7 (Mistral Small 3.x): each branch of the Ollama template, filled in, gives the
    text of the training ids; the card names the [SYSTEM_PROMPT] format."""
    import re

    from r1tui.data.render import load_renderer
    from r1tui.export.card import prompt_format_line
    from r1tui.export.modelfile import ollama_template

    renderer = load_renderer("tekken-v7")
    template = ollama_template(tekken=True, system_in_place=True)
    branch = {role: re.search(rf'eq \.Role "{role}" \}}\}}(.*?)\n', template).group(1)
              for role in ("system", "user", "assistant")}
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                {"role": "assistant", "content": "Yo"}]
    text = "<s>" + "".join(branch[m["role"]].replace("{{ .Content }}", m["content"]) for m in messages)
    assert text == "".join(renderer.piece(i) for i in renderer.render(messages).input_ids)
    assert "[SYSTEM_PROMPT]" in prompt_format_line("tekken-v7")
    assert "[SYSTEM_PROMPT]" not in prompt_format_line("tekken")

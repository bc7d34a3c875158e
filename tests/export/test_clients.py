"""Parity per client: every published artefact through the client that loads it, for v3,
Tekken (a folder built from mistral-common's own Tekken file) and Tekken v7 (Mistral Small
3.x: system prompts in place), on prompts ending with a user turn and on whole conversations."""

from __future__ import annotations

import json
import shutil

import pytest

from r1tui.errors import R1Error


def adapter_like(folder, tmp_path):
    """The published tokenizer beside an adapter_config.json, without config.json."""
    adapter = shutil.copytree(folder, tmp_path / "adapter", ignore=shutil.ignore_patterns("config.json"))
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x/y"}))
    return adapter


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["v3", "tekken", "tekken-v7"])
def test_every_client_gives_the_training_ids(spec, published_folders, published_ggufs, tmp_path):
    from r1tui.data.render import renders_system_in_place
    from r1tui.export import clients
    from r1tui.export.modelfile import ollama_template
    from r1tui.export.parity import GgufVocab, check_client, client_cases, describe_client_failure

    folder = published_folders[spec]
    with GgufVocab(published_ggufs[spec]) as vocab:
        checked = [
            clients.gguf_tokenizer(vocab, spec),
            clients.gguf_chat_template(vocab),
            clients.transformers(folder, "merged/"),
            clients.transformers(adapter_like(folder, tmp_path), "adapter/"),
            clients.ollama(ollama_template(spec != "v3", renders_system_in_place(spec)), "", vocab),
        ]
        if spec != "v3":  # kept because it is exact; the v3 folder has none
            checked.append(clients.tokenizer_json(folder / "tokenizer.json", spec, "merged/"))
        reports = [check_client(client, spec) for client in checked]
    for report in reports:
        assert report["ok"], describe_client_failure(report)
        assert report["total"] >= 17 and report["matched"] == report["total"]
    names = {case["name"] for case in reports[0]["cases"]}
    assert {"indented code (prompt)", "indented code (whole)", "system prompt, multi-turn, emoji (prompt)",
            "leading and repeated spaces (prompt)", "accents and emoji (whole)", "inference prompt (prompt)"} <= names
    assert len(client_cases()) == reports[0]["total"]
    assert {r["loaded"] for r in reports if "loaded" in r} == {"MistralCommonBackend"}
    ollama_report = reports[4]
    assert [case["name"] for case in ollama_report["not_checked"]] == ["leading and repeated spaces (whole)"]


def test_a_mismatch_names_the_artefact_the_client_the_first_token_and_the_fix(v3_tokenizer_dir, published_folders,
                                                                              tmp_path):
    """The folder of the issue (transformers' fast tokenizer) through AutoTokenizer fails on indented code."""
    from r1tui.export import clients
    from r1tui.export.parity import check_client, describe_client_failure

    folder = shutil.copytree(v3_tokenizer_dir, tmp_path / "merged")
    shutil.copyfile(published_folders["v3"] / "config.json", folder / "config.json")
    report = check_client(clients.transformers(folder, "merged/"), "v3")
    assert not report["ok"] and report["loaded"] != "MistralCommonBackend"
    failed = {case["name"] for case in report["cases"] if not case["ok"]}
    assert "indented code (prompt)" in failed and "single turn (prompt)" not in failed
    line = describe_client_failure(report)
    assert line.startswith("merged/ through transformers AutoTokenizer + apply_chat_template: ")
    assert "fix: AutoTokenizer loaded" in line and "MistralCommonBackend" in line
    indented = next(case for case in report["cases"] if case["name"] == "indented code (prompt)")["first_difference"]
    assert [piece for _, piece in indented["expected"]][2:4] == ["   ", " if"]  # '▁▁▁' then '▁if', as mistral-common
    assert [piece for _, piece in indented["client"]][2:4] == ["▁▁▁▁", "if"]
    assert "\n" not in line


def test_go_template_renders_as_go_does():
    from r1tui.export.gotemplate import ollama_render, render

    data = {"L": [{"A": "a"}, {"A": "b"}, {"A": "c"}], "S": "sys", "E": ""}
    assert render("{{- range $i, $m := .L }}{{ $i }}={{ .A }}{{ if eq $i 1 }}!{{ else if gt $i 1 }}?"
                  "{{ else }}.{{ end }} {{- end }} x", data) == "0=a.1=b!2=c? x"
    # trim markers eat every space, tab and newline next to them
    assert render("{{ len (slice .L 1) }} {{ and .S .E }}|{{ or .E .S }} {{ not .E }}\n  {{- .S -}}  \n!", data) == \
        "2 |sys truesys!"
    assert render("{{ slice .S 1 2 }}{{ index .L 2 }}", {"S": "abc", "L": [0, 1, "z"]}) == "bz"
    assert render("{{ range .E }}x{{ else }}empty{{ end }}{{ $.S }}", data) == "emptysys"
    # Ollama merges consecutive messages of a role and collects the system messages
    template = "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}"
    assert ollama_render(template, [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                                    {"role": "user", "content": "b"}]) == "s|system:s;user:a\n\nb;"
    for bad in ("{{ with .S }}x{{ end }}", "{{ .S | printf }}", "{{ if .S }}", "{{ $x := 1 }}"):
        with pytest.raises(R1Error, match="Go template"):
            render(bad, data)


@pytest.mark.parametrize("spec", ["v3", "tekken", "tekken-v7"])
def test_modelfile_template_renders_the_training_text(spec):
    """Ollama's rendering of the Modelfile's template, with BOS in front, is the text of the
    training ids on every case Go can express (mistral-common drops an answer's trailing
    spaces; Go templates cannot)."""
    from r1tui.data.render import renders_system_in_place
    from r1tui.export.gotemplate import ollama_render
    from r1tui.export.modelfile import ollama_template
    from r1tui.export.parity import client_cases, training_encoding

    template = ollama_template(spec != "v3", renders_system_in_place(spec))
    differing = [name for name, messages in client_cases()
                 if "<s>" + ollama_render(template, messages) != training_encoding(messages, spec)[1]]
    assert differing == ["leading and repeated spaces (whole)"]


def test_export_fails_when_merged_does_not_load_exactly(exported_run, tmp_path, run_export):
    """merged/ written with the fast tokenizer (the issue's folder): the converter still makes
    a GGUF that tokenizes like training, but transformers users would not: export fails."""
    from r1tui.data.tokenizer import save_hf_tokenizer
    from r1tui.runs.events import EventWriter

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    merged = run_dir / "merged"
    for name in ("tokenizer.model.v3", "tokenizer_config.json", "chat_template.jinja"):
        (merged / name).unlink()
    save_hf_tokenizer("v3", merged)
    with EventWriter(run_dir / "events.jsonl") as events, pytest.raises(R1Error) as error:
        run_export(run_dir, events=events)
    message = str(error.value)
    assert message.startswith("tokenizer parity failed: merged/ through transformers AutoTokenizer")
    assert "code (" in message and "fix:" in message and "parity.json" in message and "\n" not in message
    parity = json.loads((run_dir / "gguf" / "parity.json").read_text())
    assert parity["ok"] is False and all(check["ok"] for check in parity["files"].values())
    by_artefact = {report["artefact"]: report for report in parity["clients"]}
    assert by_artefact["merged/"]["ok"] is False and by_artefact["adapter/ (as pushed)"]["ok"] is True


def test_a_modelfile_template_unlike_training_fails_the_export(exported_run, tmp_path, run_export, monkeypatch):
    import os

    from r1tui.export import stages

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir, ignore=shutil.ignore_patterns("base"))
    for gguf in (run_dir / "gguf").glob("*.gguf"):  # rewritten since: parity runs again
        os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 1_000_000_000))
    monkeypatch.setattr(stages, "ollama_template", lambda tekken=False, system_in_place=False:
                        "[INST] {{ range .Messages }}{{ .Content }}{{ end }}[/INST]")
    with pytest.raises(R1Error) as error:
        run_export(run_dir)
    assert "Modelfile (FROM tiny-mistral-random-r1-Q4_K_M.gguf) through Ollama" in str(error.value)
    assert "fix: fix r1tui.export.modelfile.ollama_template" in str(error.value)


@pytest.mark.slow
def test_a_mistral_small_3_2_v11_tekken_folder_gives_the_training_ids_through_every_client(tmp_path, converter_dir,
                                                                                         tekken_v11_folder):
    """Mistral Small 3.2 ships Tekken v11 (with its special tokens listed): a model folder with
    such a tekken.json, published and converted as export does, through every client."""
    from transformers import MistralConfig

    from r1tui.data.tokenizer import write_published_tokenizer
    from r1tui.export import clients
    from r1tui.export.gguf import convert_to_gguf
    from r1tui.export.merge import converter_input
    from r1tui.export.modelfile import ollama_template
    from r1tui.export.parity import GgufVocab, check_client, describe_client_failure

    spec = str(tekken_v11_folder)
    folder = tmp_path / "merged"  # what merge leaves, minus the weights
    config = MistralConfig(vocab_size=131072, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, bos_token_id=1, eos_token_id=2)
    config.architectures = ["MistralForCausalLM"]
    config.save_pretrained(folder)
    write_published_tokenizer(spec, folder)
    with converter_input(folder) as source:
        gguf = convert_to_gguf(source, tmp_path / "v11.gguf", converter_dir, model_name="v11", vocab_only=True)
    with GgufVocab(gguf) as vocab:
        checked = [clients.gguf_tokenizer(vocab, spec), clients.gguf_chat_template(vocab),
                   clients.transformers(folder, "merged/"), clients.ollama(ollama_template(True, True), "", vocab),
                   clients.tokenizer_json(folder / "tokenizer.json", spec, "merged/")]
        reports = [check_client(client, spec) for client in checked]
    for report in reports:
        assert report["ok"], describe_client_failure(report)
        assert report["matched"] == report["total"] >= 17

"""Mistral Small 3.x end to end on the CPU: a tiny random Mistral3ForConditionalGeneration
(language model + a Pixtral vision tower) and a tiny MistralForCausalLM (2501's shape
family), both with Tekken in the v7 format, through `r1tui run`: prepare, train (LoRA on the
language model only), merge, GGUF (+ the F16 mmproj of the vision part), Q4_K_M, parity
through every client, and eval. Real transformers, peft, llama.cpp and llama-cpp-python."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TEXT = {"model_type": "mistral", "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 131072,
        "tie_word_embeddings": False}
# Three vision layers: llama.cpp maps the projector's linear_1 / linear_2 through block ids,
# which must exist in the vision tower's block count.
ARCHITECTURES = {
    "mistral3": {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
                 "spatial_merge_size": 2, "multimodal_projector_bias": False, "text_config": TEXT,
                 "vision_config": {"model_type": "pixtral", "hidden_size": 64, "intermediate_size": 128,
                                   "num_hidden_layers": 3, "patch_size": 14, "num_channels": 3}},
    "mistral": {"architectures": ["MistralForCausalLM"], **TEXT},
}
VISION = ("vision_tower", "multi_modal_projector")


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def finished_run(request, tmp_path_factory, runs_helpers) -> Path:
    h = runs_helpers
    folder = tmp_path_factory.mktemp(request.param)
    (folder / "config.json").write_text(json.dumps(ARCHITECTURES[request.param]), encoding="utf-8")
    config = h.write_config(folder, folder / "runs",
                            model={"architecture": str(folder / "config.json"), "tokenizer": "tekken-v7"},
                            train={"max_steps": 4}, data={"num_examples": 40, "system_prompt": "Think first."},
                            eval={"num_samples": 2, "max_new_tokens": 16})
    proc = h.r1tui("run", "--config", str(config), "--foreground", timeout=600)
    assert "finished" in proc.stdout + proc.stderr
    (run_dir,) = [p for p in (folder / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run_dir


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(path))
    return tensors


def test_every_stage_finishes_with_parity_through_every_client(finished_run):
    from r1tui.runs.events import read_events

    events = read_events(finished_run / "events.jsonl")
    finished = {e.stage: e.data["status"] for e in events if e.type == "stage_finished"}
    assert finished == {"generate": "skipped", "prepare": "finished", "train": "finished", "merge": "finished",
                        "gguf": "finished", "quantize": "finished", "parity": "finished", "eval": "finished"}
    parity = json.loads((finished_run / "gguf" / "parity.json").read_text())
    assert parity["ok"] and parity["tokenizer"] == "tekken-v7"
    assert all(client["ok"] for client in parity["clients"])
    clients = {client["client"].split(" (")[0] for client in parity["clients"]}
    assert {"llama-cpp-python chat template", "Ollama", "transformers AutoTokenizer + apply_chat_template",
            "tokenizers"} <= clients
    modelfile = (finished_run / "gguf" / "Modelfile").read_text()
    assert "[SYSTEM_PROMPT]{{ .Content }}[/SYSTEM_PROMPT]" in modelfile and 'SYSTEM """Think first."""' in modelfile


def test_lora_adapts_the_language_model_only_and_leaves_vision_unchanged(finished_run):
    from r1tui.calculator import Architecture, count_lora
    from r1tui.config import LORA_TARGET_MODULES

    base_config = json.loads((finished_run / "base" / "config.json").read_text())
    adapter = _tensors(finished_run / "adapter")
    arch = Architecture.from_config_json(finished_run / "base" / "config.json")
    assert sum(t.numel() for t in adapter.values()) == count_lora(arch, 16, LORA_TARGET_MODULES).trainable
    assert not [name for name in adapter if any(part in name for part in VISION)]
    base, merged = _tensors(finished_run / "base"), _tensors(finished_run / "merged")
    assert base.keys() == merged.keys()
    vision = [name for name in base if any(part in name for part in VISION)]
    if base_config["architectures"] == ["Mistral3ForConditionalGeneration"]:
        assert len(vision) == 3 * 9 + 2 + 4  # 3 layers of 9 tensors, patch_conv + ln_pre, the projector's 4
        assert all(name.startswith("model.language_model.") for name in adapter_targets(adapter))
    else:
        assert not vision
    for name in vision:  # merged is saved in float16: the vision part is the base's, cast
        assert merged[name].equal(base[name].to(merged[name].dtype)), name
    q_proj = next(name for name in base if name.endswith("layers.0.self_attn.q_proj.weight"))
    assert not merged[q_proj].equal(base[q_proj].to(merged[q_proj].dtype))  # the LoRA was merged in


def adapter_targets(adapter: dict) -> set[str]:
    return {name.split("base_model.model.", 1)[-1].split(".lora_")[0] for name in adapter}


def test_vision_part_is_its_own_f16_mmproj_gguf_the_size_the_calculator_says(finished_run, converter_dir):
    from r1tui.calculator import Architecture, mmproj_size_bytes
    from r1tui.export.gguf import read_gguf

    arch = Architecture.from_config_json(finished_run / "base" / "config.json")
    mmproj = list((finished_run / "mmproj").glob("*.gguf")) if (finished_run / "mmproj").is_dir() else []
    if arch.vision is None:
        assert not mmproj
        return
    (path,) = mmproj
    report = read_gguf(path, converter_dir)
    assert report["tensor_bytes"] == mmproj_size_bytes(arch)
    assert not [p.name for p in (finished_run / "gguf").glob("*mmproj*.gguf")]  # never picked as the model
    # the language model's GGUFs hold exactly the calculator's text tensors: nothing of the vision part
    manifest = json.loads((finished_run / "gguf" / "export.json").read_text())
    for report in manifest["gguf"].values():
        assert report["tensor_bytes"] == report["calculator_bytes"] and report["types_match_calculator"]
    from r1tui.config import load_config
    from r1tui.export.push import plan_push

    plan = plan_push(load_config(finished_run / "config.toml"), finished_run)
    assert path.name in [f.path_in_repo for f in plan.files]  # published beside the GGUFs
    from r1tui.runs.layout import RunLayout

    card = RunLayout(finished_run).card.read_text()
    assert f"`{path.name}` (vision tower + projector" in card
    assert "[SYSTEM_PROMPT]" in card


def test_llama_cpp_reads_an_image_through_the_mmproj_with_the_q4_k_m(finished_run, tmp_path):
    """The command the model card gives (`llama-mtmd-cli -m MODEL.gguf --mmproj mmproj-….gguf`),
    with llama.cpp's own multimodal tool built by install.sh from the pinned sources: the
    projector loads beside the Q4_K_M, encodes an image into the language model's
    embeddings, and the model generates after it."""
    import subprocess
    import sys

    from PIL import Image

    mmproj = sorted((finished_run / "mmproj").glob("*.gguf")) if (finished_run / "mmproj").is_dir() else []
    if "Mistral3" not in (finished_run / "base" / "config.json").read_text():
        assert not mmproj  # a text-only 2501-shaped model has no projector to read images with
        return
    tool = Path(sys.prefix) / "share" / "r1tui" / "bin" / "llama-mtmd-cli"
    assert tool.is_file(), "install.sh builds llama-mtmd-cli (R1TUI_LLAMA_TOOLS=0 skipped it)"
    (model,) = (finished_run / "gguf").glob("*-Q4_K_M.gguf")
    image = tmp_path / "stripes.png"
    Image.frombytes("RGB", (56, 56), bytes((x * 4) % 256 for _ in range(56) for x in range(56) for _ in range(3))
                    ).save(image)
    proc = subprocess.run([str(tool), "-m", str(model), "--mmproj", str(mmproj[0]), "--image", str(image),
                           "-p", "What is in the picture?", "-n", "8", "--temp", "0", "-t", "2", "-v"],
                          capture_output=True, text=True, errors="replace", timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert re.search(r"projector:\s+pixtral", log), log[-3000:]  # read as Pixtral's projector
    # the image became embeddings ([IMG_BREAK] rows included) decoded by the language model
    image_tokens = re.search(r"decoding image batch 1/1, n_tokens_batch = (\d+)", log)
    assert image_tokens and int(image_tokens.group(1)) > 0 and "image decoded" in log, log[-3000:]
    generated = re.search(r"\beval time =.*/\s+(\d+) runs", log)
    assert generated and int(generated.group(1)) >= 1, log[-3000:]  # tokens generated after it

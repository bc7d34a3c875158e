"""The calculator against peft's own count, the published GGUF sizes and the arithmetic
(and, on a CUDA GPU only, its VRAM estimate against a measured peak)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from r1tui import calculator
from r1tui.calculator import PRESETS, count_lora, count_parameters, gguf_size_bytes
from r1tui.config import LORA_TARGET_MODULES

ALL = list(LORA_TARGET_MODULES)


def _meta_model(arch):
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, head_dim=arch.head_dim,
        tie_word_embeddings=arch.tie_word_embeddings,
    )
    with torch.device("meta"):
        return MistralForCausalLM(config)


@pytest.mark.parametrize("preset", ["mistral-small-2409", "mistral-small-24b", "tiny"])
@pytest.mark.parametrize(("rank", "modules"), [(64, ALL), (16, ["q_proj", "v_proj"]), (8, ["down_proj"])])
def test_counts_equal_peft_on_a_meta_model(preset, rank, modules):
    from peft import LoraConfig, get_peft_model

    arch = PRESETS[preset]
    model = _meta_model(arch)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(arch).total
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=modules))
    trainable, all_params = peft_model.get_nb_trainable_parameters()
    lora = count_lora(arch, rank, modules)
    assert trainable == lora.trainable
    assert all_params == lora.base_total + lora.trainable
    assert lora.share_of_all == pytest.approx(trainable / all_params)


def test_mission_figures_corrected():
    lora = count_lora(PRESETS["mistral-small-2409"], 64, ALL)
    assert round(lora.trainable / 1e6, 1) == 381.7
    assert round(lora.share_of_base * 100, 2) == 1.72  # not the 0.83 % once claimed
    assert round(count_parameters(PRESETS["mistral-small-2409"]).total / 1e9, 2) == 22.25
    assert round(count_parameters(PRESETS["mistral-small-24b"]).total / 1e9, 2) == 23.57


PUBLISHED_GB = {
    "mistral-small-2409": {"Q4_K_M": 13.3, "Q5_K_M": 15.7, "Q6_K": 18.3, "Q8_0": 23.6},
    "mistral-small-24b": {"Q4_K_M": 14.3, "Q5_K_M": 16.8, "Q6_K": 19.3, "Q8_0": 25.1, "F16": 47.2},
}


@pytest.mark.parametrize(("preset", "quant", "published"),
                         [(p, q, gb) for p, sizes in PUBLISHED_GB.items() for q, gb in sizes.items()])
def test_gguf_sizes_within_two_percent_of_published(preset, quant, published):
    computed = gguf_size_bytes(PRESETS[preset], quant) / 1e9
    assert abs(computed - published) / published < 0.02


def test_q4_k_m_keeps_attn_v_and_ffn_down_at_q6_k_on_chosen_layers():
    types = {name: t for name, _, _, t in calculator.gguf_tensor_types(PRESETS["mistral-small-2409"], "Q4_K_M")}
    promoted = [i for i in range(56) if types[f"blk.{i}.attn_v.weight"] == "Q6_K"]
    assert promoted[:8] == [0, 1, 2, 3, 4, 5, 6, 9]  # first eighth, then every third
    assert len(promoted) == 28
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert types["blk.0.attn_q.weight"] == "Q4_K"
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_k_quants_fall_back_on_short_rows():
    arch = calculator.Architecture("odd", 320, 960, 1, 5, 1, 64, 1000)
    types = {name: t for name, _, _, t in calculator.gguf_tensor_types(arch, "Q4_K_M")}
    assert types["blk.0.attn_q.weight"] == "Q5_0"


def test_architecture_from_config_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 6144, "intermediate_size": 16384, "num_hidden_layers": 56,
                                "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128,
                                "vocab_size": 32768}))
    arch = calculator.resolve_architecture(str(path))
    assert count_parameters(arch).total == count_parameters(PRESETS["mistral-small-2409"]).total


def test_vram_estimate_parts_add_up_and_verdicts_are_consistent():
    arch = PRESETS["mistral-small-2409"]
    kwargs = dict(rank=64, target_modules=ALL, batch_size=1, gpu_memory_gb=24)
    estimate = calculator.estimate_training_vram(arch, seq_len=8192, **kwargs)
    assert estimate.total == sum(estimate.parts().values())
    # 4-bit base of a 22B model: ~12 GB, less than half of bf16
    assert 11e9 < estimate.weights < 13e9
    limit = calculator.max_fitting_seq_len(arch, **kwargs)
    assert calculator.estimate_training_vram(arch, seq_len=limit, **kwargs).fits
    assert not calculator.estimate_training_vram(arch, seq_len=limit + 256, **kwargs).fits
    # more sequence, more memory; the hf backend keeps checkpoints on the GPU
    assert calculator.estimate_training_vram(arch, seq_len=2048, **kwargs).total < estimate.total
    hf = calculator.estimate_training_vram(arch, seq_len=8192, backend="hf", **kwargs)
    assert hf.activations > estimate.activations


def test_vram_dtypes_follow_what_the_libraries_do():
    """QLoRA adapters are bf16 on both paths (TRL casts them), peft on a bf16 base keeps
    them in fp32; peft's prepare_model_for_kbit_training upcasts the embeddings and head
    to fp32 on the hf path; NF4 without double quant stores an fp32 absmax per 64 weights."""
    arch = PRESETS["mistral-small-24b"]
    kwargs = dict(rank=64, target_modules=ALL, seq_len=2048, batch_size=1, gpu_memory_gb=24)
    lora = calculator.count_lora(arch, 64, ALL).trainable
    params = count_parameters(arch)
    unsloth = calculator.estimate_training_vram(arch, backend="unsloth", **kwargs)
    hf = calculator.estimate_training_vram(arch, backend="hf", **kwargs)
    hf_bf16_base = calculator.estimate_training_vram(arch, backend="hf", load_in_4bit=False, **kwargs)
    assert unsloth.lora_weights == hf.lora_weights == 2 * lora and hf_bf16_base.lora_weights == 4 * lora
    unquantized = params.embedding + params.lm_head + params.norms
    assert hf.weights - unsloth.weights == 2 * unquantized  # fp32 instead of bf16
    single = calculator.estimate_training_vram(arch, backend="unsloth", double_quant=False, **kwargs)
    assert single.weights - unsloth.weights == pytest.approx(params.decoder_linear * (4.5 - 4.127) / 8, rel=1e-3)


def test_inference_memory_is_weights_plus_kv_cache():
    arch = PRESETS["mistral-small-2409"]
    memory = calculator.estimate_inference_memory(arch, "Q4_K_M", n_ctx=4096)
    # 2 (K,V) x 56 layers x 4096 tokens x 8 heads x 128 dims x 2 bytes
    assert memory.kv_cache == 2 * 56 * 4096 * 8 * 128 * 2
    assert memory.total == memory.kv_cache + gguf_size_bytes(arch, "Q4_K_M")


def test_vram_estimate_within_ten_percent_of_the_h100_measurements(repo_root):
    """bench/gpu_vram.py on an H100 (2409-sized layers, seq 8192): the estimate must track it."""
    measured = json.loads((repo_root / "bench" / "results" / "gpu_vram_h100.json").read_text())
    assert measured["results"], "no measurements recorded"
    for row in measured["results"]:
        arch = calculator.Architecture("2409-shape", 6144, 16384, row["layers"], 48, 8, 128, 32768)
        estimate = calculator.estimate_training_vram(arch, rank=64, target_modules=ALL, seq_len=row["seq"],
                                                     batch_size=1, gpu_memory_gb=80, backend=row["backend"])
        assert abs(estimate.allocated - row["peak_allocated"]) / row["peak_allocated"] < 0.10, row
        assert abs(estimate.allocated * (1 + calculator.ALLOCATOR_SLACK) - row["peak_reserved"]) / row["peak_reserved"] < 0.10, row


def test_fitted_vram_constants_are_the_fit_of_the_recorded_measurements(repo_root):
    """The calculator's two fitted constants per backend, derived again from the H100 peaks
    (bench/vram_fit.py prints the same); rounded to 0.01 where they were written down."""
    measured = json.loads((repo_root / "bench" / "results" / "gpu_vram_h100.json").read_text())["results"]
    for backend, (checkpoint, logits) in calculator.fit_vram_constants(measured, ALL).items():
        assert calculator.CHECKPOINT_BYTES_PER_HIDDEN[backend] == pytest.approx(checkpoint, abs=0.005), backend
        assert calculator.LOGIT_BYTES[backend] == pytest.approx(logits, abs=0.005), backend


def test_22b_at_8192_fits_24_gb_with_unsloth_but_not_hf():
    arch = PRESETS["mistral-small-2409"]
    kwargs = dict(rank=64, target_modules=ALL, seq_len=8192, batch_size=1, gpu_memory_gb=24)
    assert calculator.estimate_training_vram(arch, backend="unsloth", **kwargs).fits
    assert not calculator.estimate_training_vram(arch, backend="hf", **kwargs).fits


# ---------------------------------------------------------------- on a real GPU
# On a CUDA GPU only: runs bench/gpu_vram.py (the real runner, both backends, 2409-sized
# layers, seq 8192) and requires the estimate within 10 % of the peak the run's own events
# recorded. Skipped automatically without CUDA (tests/conftest.py); the H100 measurements
# it was calibrated on are checked on every machine above.


@pytest.mark.gpu
@pytest.mark.slow
def test_estimate_tracks_measured_peak_vram_on_this_gpu(tmp_path, repo_root):
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(repo_root / "bench" / "gpu_vram.py"), "--out", str(out), "--work",
                    str(tmp_path / "work"), "--layers", "2", "--seqs", "8192", "--steps", "3"],
                   check=True, timeout=1800, cwd=repo_root)
    results = json.loads((out / "gpu_vram.json").read_text())["results"]
    assert {r["backend"] for r in results} == {"unsloth", "hf"}
    for row in results:
        assert row["status"] == "finished", row
        measured = row["peak_allocated"]
        estimate = row["estimate_total"] - row["estimate_parts"]["overhead"]  # allocated part
        assert abs(estimate - measured) / measured < 0.10, row


# ---------------------------------------------------------------- Mistral Small 3.x (issue 23)

MISTRAL3_CONFIG = {  # huggingface.co/mistralai/Mistral-Small-3.1-24B-Instruct-2503/blob/main/config.json
    "architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3", "spatial_merge_size": 2,
    "multimodal_projector_bias": False, "projector_hidden_act": "gelu", "image_token_index": 10,
    "text_config": {"model_type": "mistral", "head_dim": 128, "hidden_size": 5120, "intermediate_size": 32768,
                    "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8,
                    "vocab_size": 131072, "max_position_embeddings": 131072},
    "vision_config": {"model_type": "pixtral", "head_dim": 64, "hidden_act": "silu", "hidden_size": 1024,
                      "image_size": 1540, "intermediate_size": 4096, "num_attention_heads": 16,
                      "num_channels": 3, "num_hidden_layers": 24, "patch_size": 14},
}


def test_mistral3_config_json_reads_as_the_presets(tmp_path):
    from r1tui.calculator import Architecture

    path = tmp_path / "config.json"
    path.write_text(json.dumps(MISTRAL3_CONFIG))
    arch = Architecture.from_config_json(path)
    for preset in ("mistral-small-3.1", "mistral-small-3.2"):
        assert (arch.hidden_size, arch.num_hidden_layers, arch.vocab_size, arch.vision) == (
            PRESETS[preset].hidden_size, PRESETS[preset].num_hidden_layers, PRESETS[preset].vocab_size,
            PRESETS[preset].vision)
        assert PRESETS[preset].licence == "apache-2.0" and PRESETS[preset].tokenizer == "tekken-v7"
    assert PRESETS["magistral-small"].vision is None and PRESETS["magistral-small"].licence == "apache-2.0"


@pytest.mark.slow  # about 25 s: peft wraps a 24 B model (on the meta device)
def test_mistral3_counts_equal_transformers_and_peft_on_a_meta_model(tmp_path):
    """The whole checkpoint, its vision part and the LoRA on the language model alone, against
    transformers' own Mistral3ForConditionalGeneration built from the published config."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    from r1tui.calculator import count_checkpoint_parameters, count_vision_parameters
    from r1tui.train.base import lora_targets

    arch = PRESETS["mistral-small-3.1"]
    raw = {k: v for k, v in MISTRAL3_CONFIG.items() if k not in ("architectures", "model_type")}
    config = Mistral3Config(**raw, tie_word_embeddings=False)
    config.text_config.tie_word_embeddings = False
    with torch.device("meta"):
        model = Mistral3ForConditionalGeneration(config)
    named = dict(model.named_parameters())
    assert sum(p.numel() for p in named.values()) == count_checkpoint_parameters(arch) == 24_011_361_280
    vision = sum(p.numel() for n, p in named.items() if "vision_tower" in n or "multi_modal_projector" in n)
    assert vision == count_vision_parameters(arch) == 438_958_080
    assert count_parameters(arch).total == 23_572_403_200  # the language model: 2501's 23.57 B
    peft_model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, target_modules=lora_targets(ALL, True)))
    trainable, all_params = peft_model.get_nb_trainable_parameters()
    lora = count_lora(arch, 64, ALL)
    assert trainable == lora.trainable and all_params == lora.base_total + lora.trainable
    adapted = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert adapted and not [n for n in adapted if "vision_tower" in n or "multi_modal_projector" in n]


# Published GGUF sizes of Mistral-Small-3.2-24B-Instruct-2506 (the text model; 3.1 has the same
# shapes): 14.33 / 16.76 / 19.35 / 25.05 GB (bartowski's and unsloth's files as
# smeltcore.com/models/mistral-small-3-2-24b lists them).
PUBLISHED_SMALL_3_GB = {"Q4_K_M": 14.33, "Q5_K_M": 16.76, "Q6_K": 19.35, "Q8_0": 25.05}


@pytest.mark.parametrize(("quant", "published"), list(PUBLISHED_SMALL_3_GB.items()))
def test_mistral_small_3_text_gguf_sizes_within_two_percent_of_published(quant, published):
    for preset in ("mistral-small-3.1", "mistral-small-3.2", "magistral-small"):
        computed = gguf_size_bytes(PRESETS[preset], quant) / 1e9
        assert abs(computed - published) / published < 0.02


def test_mmproj_size_against_the_published_f16_file():
    """The F16 mmproj: exact against llama.cpp's converter on the tiny Mistral3
    (tests/export/test_mistral_small_3.py); against the published 24B file (gratex's
    mistral-small-3.2-24B-Instruct-2506-GGUF lists mmproj-F16.gguf as "~847 MB", a figure
    that reads as MiB: 0.878 GB of tensors is 837 MiB), within 2 % either way of reading."""
    from r1tui.calculator import mmproj_size_bytes

    for preset in ("mistral-small-3.1", "mistral-small-3.2"):
        size = mmproj_size_bytes(PRESETS[preset])
        # F16 everywhere, but 50 norms in F32, and the language model's [IMG_BREAK] row (5120) in F32
        assert size == 2 * 438_958_080 + 2 * (2 * 24 + 2) * 1024 + 4 * 5120
        assert abs(size / 2**20 - 847) / 847 < 0.02
    assert mmproj_size_bytes(PRESETS["magistral-small"]) == mmproj_size_bytes(PRESETS["mistral-small-24b"]) == 0


def test_training_vram_counts_the_frozen_vision_part():
    from r1tui.calculator import count_vision_parameters, estimate_training_vram

    text, vision = PRESETS["mistral-small-24b"], PRESETS["mistral-small-3.1"]
    kwargs = dict(rank=64, target_modules=ALL, seq_len=4096, batch_size=1, gpu_memory_gb=24)
    for backend, bytes_per in (("unsloth", 2), ("hf", 4)):  # bf16; fp32 after peft's k-bit upcast on hf
        difference = (estimate_training_vram(vision, backend=backend, **kwargs).weights
                      - estimate_training_vram(text, backend=backend, **kwargs).weights)
        assert difference == count_vision_parameters(vision) * bytes_per


# ---------------------------------------------------------------- several GPUs (DDP vs FSDP)

TINY_KW = dict(rank=16, target_modules=ALL, seq_len=128, batch_size=4, gpu_memory_gb=24, load_in_4bit=False,
               optimizer="adamw_torch", backend="hf", gradient_checkpointing=False)


def test_fsdp_shards_weights_lora_and_optimizer_by_hand():
    """The tiny shape worked by hand (hidden 256, intermediate 768, 2 layers, 4 heads, 2 KV
    heads, head_dim 64, vocab 32768; bf16 base, LoRA r=16 on all seven projections, fp32
    adapter, AdamW 8 B per parameter):
    - decoder linears per layer 65,536 + 2 x 32,768 + 65,536 + 3 x 196,608 = 786,432; x 2 layers
      x 2 B = 3,145,728 B. Root unit: embeddings + lm_head 2 x 8,388,608 + norms 1,280 =
      16,778,496 parameters x 2 B = 33,556,992 B. Weights 36,702,720 B.
    - LoRA per layer 16 x (512 + 384 + 384 + 512 + 3 x 1,024) = 77,824; 155,648 in all:
      weights and gradients 622,592 B each, AdamW 1,245,184 B.
    FSDP over 2: each of those halves (18,351,360; 311,296; 311,296; 622,592) and each GPU also
    holds the root unit plus two whole decoder layers with their LoRA:
    33,556,992 + 2 x (1,572,864 + 311,296) = 37,325,312 B."""
    arch = PRESETS["tiny"]
    single = calculator.estimate_training_vram(arch, **TINY_KW)
    assert (single.weights, single.lora_weights, single.lora_gradients, single.optimizer_states) == \
        (36_702_720, 622_592, 622_592, 1_245_184)
    fsdp = calculator.estimate_training_vram(arch, world_size=2, strategy="fsdp", **TINY_KW)
    assert (fsdp.weights, fsdp.lora_weights, fsdp.lora_gradients, fsdp.optimizer_states) == \
        (18_351_360, 311_296, 311_296, 622_592)
    assert fsdp.gathered == 37_325_312
    assert (fsdp.activations, fsdp.logits) == (single.activations, single.logits)  # each rank's own batch
    assert fsdp.allocated == single.allocated - 18_351_360 - 311_296 - 311_296 - 622_592 + 37_325_312
    assert list(fsdp.parts())[-2:] == ["fsdp_gathered", "overhead"] and "fsdp_gathered" not in single.parts()

    offload = calculator.estimate_training_vram(arch, world_size=2, strategy="fsdp", offload=True, **TINY_KW)
    assert (offload.weights, offload.lora_weights, offload.lora_gradients, offload.optimizer_states) == (0, 0, 0, 0)
    assert offload.cpu_offloaded == 18_351_360 + 311_296 + 311_296 + 622_592
    assert offload.gathered == fsdp.gathered

    ddp = calculator.estimate_training_vram(arch, world_size=2, strategy="ddp", **TINY_KW)
    assert ddp.parts() == single.parts() and (ddp.world_size, ddp.strategy) == (2, "ddp")


def test_per_gpu_verdicts_for_2409_on_4090s_and_a100s():
    """Mistral-Small-2409 QLoRA r=64 at 8192 on the hf path (the only one with several ranks)."""
    arch = PRESETS["mistral-small-2409"]
    base = dict(rank=64, target_modules=ALL, batch_size=1, backend="hf")

    def per_gpu(gpus, gb, strategy, offload=False):
        kwargs = dict(base, gpu_memory_gb=gb, world_size=gpus, strategy=strategy, offload=offload)
        return calculator.estimate_training_vram(arch, seq_len=8192, **kwargs), \
            calculator.max_fitting_seq_len(arch, **kwargs)

    one, one_seq = per_gpu(1, 24, "ddp")
    for gpus in (2, 4):  # DDP: every card holds everything, more cards do not help
        ddp, ddp_seq = per_gpu(gpus, 24, "ddp")
        assert (ddp.total, ddp.fits, ddp_seq) == (one.total, False, one_seq)
    two, two_seq = per_gpu(2, 24, "fsdp")
    four, four_seq = per_gpu(4, 24, "fsdp")
    assert one.total > two.total > four.total and not two.fits and four.fits
    assert one_seq < two_seq < four_seq and four_seq >= 8192
    # each extra rank removes exactly its share of the sharded parts
    sharded = one.weights + one.lora_weights + one.lora_gradients + one.optimizer_states
    assert two.allocated - four.allocated == pytest.approx(sharded / 2 - sharded / 4, abs=8)
    offload, offload_seq = per_gpu(2, 24, "fsdp", offload=True)
    assert offload.fits and offload_seq > two_seq and offload.cpu_offloaded == pytest.approx(sharded / 2, abs=8)
    for strategy in ("ddp", "fsdp"):
        a100, a100_seq = per_gpu(8, 80, strategy)
        assert a100.fits and a100_seq > 8192


def test_config_settings_carry_the_strategy(tmp_path):
    from r1tui.config import parse_config

    config = parse_config({"train": {"distributed": "fsdp", "fsdp_offload": True, "backend": "auto"}})
    one = calculator.training_vram_settings(config)
    assert "world_size" not in one and one["backend"] == "unsloth"
    four = calculator.training_vram_settings(config, world_size=4)
    assert (four["world_size"], four["strategy"], four["offload"], four["backend"]) == (4, "fsdp", True, "hf")
    assert calculator.largest_fitting_seq_len(config, world_size=4) > calculator.largest_fitting_seq_len(config, backend="hf")

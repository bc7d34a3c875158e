"""Model calculator: parameters, LoRA share, GGUF sizes, training VRAM, inference memory.

Pure Python (no torch). Exact figures: parameter counts and LoRA counts (a Mistral
decoder's shapes are fully determined by its config). GGUF sizes follow llama.cpp's
per-tensor type choices and block sizes, so they are exact up to the file's metadata
(tokenizer vocabulary, a few MB). VRAM figures are estimates, built from named parts.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from r1tui.config import Config

GB = 1e9
GIB = 1024**3


@dataclass(frozen=True)
class VisionTower:
    """The Pixtral vision encoder and the multimodal projector of a Mistral3ForConditionalGeneration
    checkpoint (Mistral Small 3.1 / 3.2): frozen in training, kept as its own mmproj GGUF."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    patch_size: int
    num_channels: int = 3
    spatial_merge_size: int = 2
    projector_bias: bool = False

    def tensor_shapes(self, text_hidden: int) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every vision tower and projector weight, as transformers holds them."""
        h, i, p, c = self.hidden_size, self.intermediate_size, self.patch_size, self.num_channels
        merged = h * self.spatial_merge_size**2
        shapes: list[tuple[str, tuple[int, ...]]] = [("patch_conv", (h, c, p, p)), ("ln_pre", (h,))]
        for layer in range(self.num_hidden_layers):
            shapes += [(f"layers.{layer}.{name}", shape) for name, shape in (
                ("attention_norm", (h,)), ("ffn_norm", (h,)),
                *((f"attention.{m}", (h, h)) for m in ("q_proj", "k_proj", "v_proj", "o_proj")),
                ("feed_forward.gate_proj", (i, h)), ("feed_forward.up_proj", (i, h)), ("feed_forward.down_proj", (h, i)))]
        shapes += [("projector.norm", (h,)), ("projector.patch_merger", (h, merged)),
                   ("projector.linear_1", (text_hidden, h)), ("projector.linear_2", (text_hidden, text_hidden))]
        if self.projector_bias:
            shapes += [("projector.linear_1.bias", (text_hidden,)), ("projector.linear_2.bias", (text_hidden,))]
        return shapes


@dataclass(frozen=True)
class Architecture:
    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False
    licence: str = ""
    tokenizer: str = ""  # the preset's Mistral tokenizer: "v3", "tekken" or "tekken-v7"
    vision: VisionTower | None = None  # a Mistral3ForConditionalGeneration checkpoint's vision part

    @classmethod
    def from_config_json(cls, path: str | Path) -> Architecture:
        """Read a Hugging Face config.json (Mistral / Llama style)."""
        top = json.loads(Path(path).read_text(encoding="utf-8"))
        raw = top.get("text_config", top)  # Mistral3ForConditionalGeneration (3.1 / 3.2) nests the LM
        heads = raw["num_attention_heads"]
        vision_raw = top.get("vision_config")
        vision = None if vision_raw is None else VisionTower(
            hidden_size=vision_raw["hidden_size"], intermediate_size=vision_raw["intermediate_size"],
            num_hidden_layers=vision_raw["num_hidden_layers"], patch_size=vision_raw["patch_size"],
            num_channels=vision_raw.get("num_channels", 3), spatial_merge_size=top.get("spatial_merge_size", 2),
            projector_bias=top.get("multimodal_projector_bias", False))
        return cls(
            name=raw.get("_name_or_path") or Path(path).parent.name,
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=raw.get("num_key_value_heads", heads),
            head_dim=raw.get("head_dim") or raw["hidden_size"] // heads,
            vocab_size=raw["vocab_size"],
            tie_word_embeddings=raw.get("tie_word_embeddings", False),
            vision=vision,
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection in one decoder layer."""
        h, q, kv, i = (
            self.hidden_size,
            self.num_attention_heads * self.head_dim,
            self.num_key_value_heads * self.head_dim,
            self.intermediate_size,
        )
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }


PIXTRAL_MISTRAL_SMALL_3 = VisionTower(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, patch_size=14)

PRESETS: dict[str, Architecture] = {
    "mistral-small-2409": Architecture(
        "mistralai/Mistral-Small-Instruct-2409", 6144, 16384, 56, 48, 8, 128, 32768, licence="other (MRL)", tokenizer="v3"
    ),
    "mistral-small-24b": Architecture(
        "mistralai/Mistral-Small-24B-Instruct-2501", 5120, 32768, 40, 32, 8, 128, 131072, licence="apache-2.0",
        tokenizer="tekken-v7"
    ),
    # Mistral Small 3.x, from the published config.json files (huggingface.co/mistralai/<name>/
    # blob/main/config.json): 3.1 and 3.2 are Mistral3ForConditionalGeneration, text_config as
    # 2501 (hidden 5120, intermediate 32768, 40 layers, 32 heads, 8 KV heads, head_dim 128, vocab
    # 131072, untied) and a Pixtral vision_config (hidden 1024, intermediate 4096, 24 layers,
    # patch 14), spatial_merge_size 2, multimodal_projector_bias false. Magistral Small 2506 (the
    # reasoning model built on 3.1; 2506, not 2507, because 2507's tokenizer is v13 with [THINK]
    # control tokens r1tui does not render) ships the text model only: MistralForCausalLM, 23.57B.
    # All three are Apache-2.0. 3.1 ships Tekken v7 and 3.2 Tekken v11, whose only change is the
    # tool-call format: plain conversations encode alike (tests/data/test_render.py checks both
    # against mistral-common), so their built-in tokenizer is "tekken-v7"; a downloaded model
    # folder's own tekken.json (model.tokenizer = "auto" with model.path) is used as it is.
    "mistral-small-3.1": Architecture(
        "mistralai/Mistral-Small-3.1-24B-Instruct-2503", 5120, 32768, 40, 32, 8, 128, 131072, licence="apache-2.0",
        tokenizer="tekken-v7", vision=PIXTRAL_MISTRAL_SMALL_3),
    "mistral-small-3.2": Architecture(
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506", 5120, 32768, 40, 32, 8, 128, 131072, licence="apache-2.0",
        tokenizer="tekken-v7", vision=PIXTRAL_MISTRAL_SMALL_3),
    "magistral-small": Architecture(
        "mistralai/Magistral-Small-2506", 5120, 32768, 40, 32, 8, 128, 131072, licence="apache-2.0",
        tokenizer="tekken-v7"),
    "tiny": Architecture("r1tui/tiny-mistral-random", 256, 768, 2, 4, 2, 64, 32768, licence="apache-2.0",
                         tokenizer="v3"),
}


def resolve_architecture(name_or_path: str) -> Architecture:
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    return Architecture.from_config_json(name_or_path)


# ---------------------------------------------------------------- parameters (exact)


@dataclass(frozen=True)
class ParameterCount:
    embedding: int
    decoder_linear: int
    norms: int
    lm_head: int

    @property
    def total(self) -> int:
        return self.embedding + self.decoder_linear + self.norms + self.lm_head


def count_parameters(arch: Architecture) -> ParameterCount:
    per_layer = sum(i * o for i, o in arch.linear_shapes().values())
    return ParameterCount(
        embedding=arch.vocab_size * arch.hidden_size,
        decoder_linear=per_layer * arch.num_hidden_layers,
        # input + post-attention RMSNorm per layer, plus the final norm
        norms=(2 * arch.num_hidden_layers + 1) * arch.hidden_size,
        lm_head=0 if arch.tie_word_embeddings else arch.vocab_size * arch.hidden_size,
    )


@dataclass(frozen=True)
class LoraCount:
    trainable: int
    base_total: int

    @property
    def share_of_base(self) -> float:
        """Trainable / frozen base parameters."""
        return self.trainable / self.base_total

    @property
    def share_of_all(self) -> float:
        """Trainable / (base + adapter): what peft's print_trainable_parameters shows."""
        return self.trainable / (self.base_total + self.trainable)


def count_vision_parameters(arch: Architecture) -> int:
    """The vision tower and projector of a Mistral3 checkpoint (0 for a text model): frozen,
    never adapted, loaded beside the language model in training."""
    return sum(math.prod(shape) for shape in _vision_shapes(arch))


def _vision_shapes(arch: Architecture) -> list[tuple[int, ...]]:
    return [shape for _, shape in arch.vision.tensor_shapes(arch.hidden_size)] if arch.vision else []


def count_checkpoint_parameters(arch: Architecture) -> int:
    """Every parameter of the checkpoint: the language model plus any vision part."""
    return count_parameters(arch).total + count_vision_parameters(arch)


def count_lora(arch: Architecture, rank: int, target_modules: list[str] | tuple[str, ...]) -> LoraCount:
    """A LoRA pair on Linear(in, out) at rank r adds r*(in + out) parameters; only the language
    model's projections are adapted, and the base is the whole checkpoint (vision included)."""
    shapes = arch.linear_shapes()
    per_layer = sum(rank * (shapes[m][0] + shapes[m][1]) for m in target_modules)
    return LoraCount(per_layer * arch.num_hidden_layers, count_checkpoint_parameters(arch))


# ---------------------------------------------------------------- GGUF sizes (llama.cpp rules)

# bytes per block, weights per block: ggml's type traits
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (4, 1),
    "F16": (2, 1),
    "Q8_0": (34, 32),
    "Q5_0": (22, 32),
    "Q5_1": (24, 32),
    "Q4_K": (144, 256),
    "Q5_K": (176, 256),
    "Q6_K": (210, 256),
}
# A k-quant needs rows that are a multiple of 256; llama.cpp falls back otherwise.
K_QUANT_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
QUANT_BASE_TYPE = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K", "Q8_0": "Q8_0", "F16": "F16"}


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    # llama.cpp src/llama-quant.cpp use_more_bits()
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


# llama.cpp's per-tensor rules (llama_tensor_get_type), not name lists: the _M mixes give
# attn_v and ffn_down Q6_K on the layers use_more_bits picks; output.weight is Q6_K
# unless the whole file is already at least that wide.
_MORE_BITS_ON_ATTN_V_FFN_DOWN = frozenset({"Q4_K_M", "Q5_K_M"})
_OUTPUT_KEEPS_BASE_TYPE = frozenset({"Q8_0", "F16", "Q6_K"})


def gguf_tensor_types(arch: Architecture, quant: str) -> list[tuple[str, int, int, str]]:
    """(gguf tensor name, rows, row length, ggml type) for every tensor, as llama.cpp picks."""
    base = QUANT_BASE_TYPE[quant]
    n = arch.num_hidden_layers
    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    tensors: list[tuple[str, int, int, str]] = []

    def pick(kind: str, i_layer: int) -> str:
        if quant in _MORE_BITS_ON_ATTN_V_FFN_DOWN and kind in ("attn_v", "ffn_down") and _use_more_bits(i_layer, n):
            return "Q6_K"
        return base

    tensors.append(("token_embd.weight", arch.vocab_size, arch.hidden_size, base))
    for i in range(n):
        for module, (fan_in, fan_out) in arch.linear_shapes().items():
            kind = names[module]
            tensors.append((f"blk.{i}.{kind}.weight", fan_out, fan_in, pick(kind, i)))
        tensors.append((f"blk.{i}.attn_norm.weight", 1, arch.hidden_size, "F32"))
        tensors.append((f"blk.{i}.ffn_norm.weight", 1, arch.hidden_size, "F32"))
    tensors.append(("output_norm.weight", 1, arch.hidden_size, "F32"))
    if not arch.tie_word_embeddings:
        # the output matrix gets Q6_K unless the whole file is Q8_0 or F16
        out_type = base if quant in _OUTPUT_KEEPS_BASE_TYPE else "Q6_K"
        tensors.append(("output.weight", arch.vocab_size, arch.hidden_size, out_type))
    return [(name, rows, cols, _fallback(ggml, cols)) for name, rows, cols, ggml in tensors]


def _fallback(ggml_type: str, row_length: int) -> str:
    if ggml_type in K_QUANT_FALLBACK and row_length % 256:
        return K_QUANT_FALLBACK[ggml_type]
    return ggml_type


def tensor_bytes(rows: int, row_length: int, ggml_type: str) -> int:
    block_bytes, block_weights = GGML_BLOCKS[ggml_type]
    return rows * (row_length // block_weights) * block_bytes


def gguf_size_bytes(arch: Architecture, quant: str) -> int:
    """Tensor data bytes of a GGUF of this architecture's language model (metadata adds a few MB)."""
    return sum(tensor_bytes(r, c, t) for _, r, c, t in gguf_tensor_types(arch, quant))


def imatrix_size_bytes(arch: Architecture) -> int:
    """Tensor data bytes of llama-imatrix's matrix: a float32 per input column of every
    projection of every layer (the output head is left out unless asked for; the counts
    beside them are a float per tensor)."""
    per_layer = sum(in_features for in_features, _ in arch.linear_shapes().values())
    return 4 * arch.num_hidden_layers * per_layer


def mmproj_size_bytes(arch: Architecture) -> int:
    """Tensor data bytes of the F16 mmproj GGUF llama.cpp's converter writes for the vision
    part (``--mmproj``): matrices and the patch convolution in F16, norms and biases in F32,
    and the language model's ``[IMG_BREAK]`` embedding row (F32), which llama.cpp inserts
    between rows of image patches. 0 for a text model."""
    if arch.vision is None:
        return 0
    image_break = 4 * arch.hidden_size
    return image_break + sum(math.prod(shape) * (2 if len(shape) > 1 else 4) for shape in _vision_shapes(arch))


# ---------------------------------------------------------------- training VRAM (estimate)

NF4_BITS_PER_WEIGHT = 4 + 8 / 64 + 32 / (64 * 256)  # 4-bit codes, fp8 absmax per 64, fp32 per 256 absmax (double quant)
NF4_BITS_PER_WEIGHT_SINGLE_QUANT = 4 + 32 / 64  # without double quant: an fp32 absmax per 64 weights
OPTIMIZER_BYTES_PER_PARAM = {"adamw_8bit": 2, "paged_adamw_8bit": 2, "adamw_torch": 8, "sgd": 0}
CUDA_CONTEXT_BYTES = 0.5 * GIB  # CUDA context + cuBLAS workspaces, outside torch's allocator

# Dtypes, read from the libraries (not fitted):
# - LoRA weights + grads: bf16 (2 + 2 B) under Unsloth, and under TRL's SFTTrainer for a
#   quantized base (it casts a QLoRA adapter to bf16); fp32 (4 + 4 B) for peft on a bf16 base.
# - embeddings, lm_head, norms: bf16, except on the hf path with a 4-bit base, where
#   peft's prepare_model_for_kbit_training upcasts every non-4-bit parameter to fp32.
#
# Fitted on an H100 with bench/gpu_vram.py (2409-sized layers, 2 and 4 of them, seq 8192,
# vocab 32768, r=64 on all seven projections; bench/results/gpu_vram_h100.json): the
# per-layer slope fixes what each checkpointed layer keeps, the rest of the peak is put on
# the tokens x vocab term. Every run had the same seq and vocab, so that split between a
# token-proportional and a fixed part is an assumption the data cannot check (BENCHMARKS.md).
# ``fit_vram_constants`` (bench/vram_fit.py) derives the two constants below from the
# recorded peaks; a test keeps them equal to that fit.
# Checkpointed activations kept per layer, bytes per hidden element: Unsloth offloads
# them to CPU RAM; the hf path keeps them on the GPU.
CHECKPOINT_BYTES_PER_HIDDEN = {"unsloth": 0.0, "hf": 3.73}
# Loss-side memory per token x vocab entry. Neither path holds full fp32 logits (Unsloth's
# fused loss; TRL 1.15's chunked lm-head loss on CUDA), so this is the fitted remainder.
LOGIT_BYTES = {"unsloth": 5.3, "hf": 10.96}
# torch's caching allocator reserved 10-13 % more than it handed out at the peak.
ALLOCATOR_SLACK = 0.12


def lora_bytes(backend: str, load_in_4bit: bool) -> tuple[int, int]:
    """(weight, gradient) bytes per LoRA parameter."""
    return (2, 2) if backend == "unsloth" or load_in_4bit else (4, 4)


@dataclass(frozen=True)
class VramEstimate:
    weights: int
    lora_weights: int
    lora_gradients: int
    optimizer_states: int
    activations: int
    logits: int
    overhead: int
    gpu_bytes: int
    # Several GPUs (``strategy`` "ddp" or "fsdp" over ``world_size`` ranks): every figure
    # above is per GPU. Under FSDP ``gathered`` is the unsharded copy of the units being
    # computed (the root module and two decoder layers), and ``cpu_offloaded`` what
    # train.fsdp_offload keeps in each rank's CPU RAM instead of on its GPU.
    gathered: int = 0
    cpu_offloaded: int = 0
    world_size: int = 1
    strategy: str = "single"

    @property
    def allocated(self) -> int:
        """What torch.cuda.max_memory_allocated would report at the peak (per GPU)."""
        return (self.weights + self.lora_weights + self.lora_gradients + self.optimizer_states
                + self.activations + self.logits + self.gathered)

    @property
    def total(self) -> int:
        """Allocated + allocator slack + CUDA context: what the card must hold."""
        return self.allocated + self.overhead

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu_bytes

    def parts(self) -> dict[str, int]:
        """The named parts of the per-GPU peak (``fsdp gathered`` only under FSDP)."""
        d = asdict(self)
        for key in ("gpu_bytes", "cpu_offloaded", "world_size", "strategy"):
            d.pop(key)
        gathered = d.pop("gathered")
        if self.strategy == "fsdp":  # shown before the overhead it adds to
            overhead = d.pop("overhead")
            d.update(fsdp_gathered=gathered, overhead=overhead)
        return d


def estimate_training_vram(
    arch: Architecture,
    *,
    rank: int,
    target_modules: list[str] | tuple[str, ...],
    seq_len: int,
    batch_size: int,
    gpu_memory_gb: float,
    load_in_4bit: bool = True,
    optimizer: str = "adamw_8bit",
    backend: str = "unsloth",
    gradient_checkpointing: bool = True,
    double_quant: bool = True,
    world_size: int = 1,
    strategy: str = "ddp",
    offload: bool = False,
) -> VramEstimate:
    """Peak training memory per GPU, by part. Assumes bf16 compute and flash/SDPA attention (no s^2).

    - weights: decoder linears in NF4 (4.127 bits with double quant, 4.5 without; or bf16),
      embeddings, lm_head and norms in bf16 (fp32 on the hf path with a 4-bit base).
    - LoRA weights and gradients: ``lora_bytes``.
    - optimizer: bytes per LoRA parameter (2 for 8-bit Adam, 8 for AdamW).
    - activations: with checkpointing, what each layer keeps (``CHECKPOINT_BYTES_PER_HIDDEN``)
      plus the recomputed layer's own live intermediates (q/k/v/o, MLP gate/up/act/product).
    - logits: ``LOGIT_BYTES`` per token and vocabulary entry.
    - overhead: allocator slack on top of the allocated peak, plus the CUDA context.
    The per-backend constants were measured (see above); everything else is arithmetic.

    Several GPUs (``world_size`` > 1): under ``strategy = "ddp"`` every GPU holds all of the
    above (the figures of one GPU). Under ``"fsdp"`` (``sharded_parts``) the base weights, the
    LoRA weights, their gradients and the optimizer state are split over the ranks, each GPU
    also holds the unsharded units it is computing, and activations and logits stay per GPU;
    with ``offload`` the sharded parameters, gradients and optimizer state live in CPU RAM.
    """
    backend = backend if backend in LOGIT_BYTES else "hf"
    params = count_parameters(arch)
    tokens = seq_len * batch_size
    bf16 = 2
    if load_in_4bit:
        bits = NF4_BITS_PER_WEIGHT if double_quant else NF4_BITS_PER_WEIGHT_SINGLE_QUANT
        weights = int(params.decoder_linear * bits / 8)
    else:
        weights = params.decoder_linear * bf16
    unquantized_bytes = 4 if backend == "hf" and load_in_4bit else bf16
    decoder_weights = weights
    # A Mistral3 checkpoint's vision tower and projector are loaded too, never quantized
    # (r1tui skips them in 4-bit loading), frozen like the embeddings.
    weights += (params.embedding + params.lm_head + params.norms + count_vision_parameters(arch)) * unquantized_bytes
    lora = count_lora(arch, rank, target_modules).trainable
    weight_bytes, grad_bytes = lora_bytes(backend, load_in_4bit)
    q_width = arch.num_attention_heads * arch.head_dim
    kv_width = arch.num_key_value_heads * arch.head_dim
    # one layer's live intermediates during (re)computation and backward
    layer_intermediates = tokens * bf16 * (
        3 * arch.hidden_size + q_width + 2 * kv_width + 4 * arch.intermediate_size
    )
    if gradient_checkpointing:
        kept = int(arch.num_hidden_layers * tokens * arch.hidden_size * CHECKPOINT_BYTES_PER_HIDDEN[backend])
        activations = kept + layer_intermediates
    else:
        activations = arch.num_hidden_layers * layer_intermediates
    parts = dict(
        weights=weights,
        lora_weights=lora * weight_bytes,
        lora_gradients=lora * grad_bytes,
        optimizer_states=lora * OPTIMIZER_BYTES_PER_PARAM[optimizer],
        activations=activations,
        logits=int(tokens * arch.vocab_size * LOGIT_BYTES[backend]),
    )
    extra: dict = {}
    if world_size > 1 and strategy == "fsdp":
        parts, extra = sharded_parts(arch, parts, world_size=world_size, offload=offload,
                                     decoder_weight_bytes=decoder_weights,
                                     root_weight_bytes=weights - decoder_weights,
                                     lora_layer_bytes=lora // arch.num_hidden_layers * weight_bytes)
    elif world_size > 1:
        extra = {"world_size": world_size, "strategy": "ddp"}
    allocated = sum(parts.values())
    return VramEstimate(**parts, overhead=int(allocated * ALLOCATOR_SLACK + CUDA_CONTEXT_BYTES),
                        gpu_bytes=int(gpu_memory_gb * GB), **extra)


# Decoder layers FSDP holds unsharded at once: the one computing and the one prefetched.
FSDP_GATHERED_LAYERS = 2
STRATEGIES = ("ddp", "fsdp")


def sharded_parts(arch: Architecture, parts: dict[str, int], *, world_size: int, offload: bool,
                  decoder_weight_bytes: int, root_weight_bytes: int, lora_layer_bytes: int) -> tuple[dict, dict]:
    """One GPU's parts under FSDP over ``world_size`` ranks (FULL_SHARD, one unit per decoder
    layer, the embeddings, final norm and lm_head in the root unit).

    - weights, LoRA weights, LoRA gradients, optimizer state: each rank keeps 1/N of them
      (rounded up: a shard is a ceil-split of every flat parameter).
    - gathered: while a unit computes, its parameters are all-gathered whole: the root unit
      (FSDP2 keeps the root unsharded through the step) plus ``FSDP_GATHERED_LAYERS`` decoder
      layers (the current one and the prefetched next), with their LoRA weights.
    - activations and logits are each rank's own batch: unchanged.
    - ``offload``: the sharded weights, LoRA weights, gradients and optimizer state are kept
      in CPU RAM (``cpu_offloaded``) and only the gathered units come to the GPU.
    """
    shard = {key: -(-parts[key] // world_size) for key in ("weights", "lora_weights", "lora_gradients",
                                                           "optimizer_states")}
    layer_bytes = -(-decoder_weight_bytes // arch.num_hidden_layers) + lora_layer_bytes
    gathered = root_weight_bytes + FSDP_GATHERED_LAYERS * layer_bytes
    cpu = 0
    if offload:
        cpu = sum(shard.values())
        shard = dict.fromkeys(shard, 0)
    new_parts = {**parts, **shard, "gathered": gathered}
    return new_parts, {"cpu_offloaded": cpu, "world_size": world_size, "strategy": "fsdp"}


def fit_vram_constants(measurements: list[dict], target_modules: list[str] | tuple[str, ...],
                       rank: int = 64) -> dict[str, tuple[float, float]]:
    """(CHECKPOINT_BYTES_PER_HIDDEN, LOGIT_BYTES) per backend from measured peaks, as
    bench/vram_fit.py prints them: rows of bench/gpu_vram.py (2409-sized layers), two layer
    counts at one sequence length per backend. The per-layer slope fixes the checkpoint
    bytes, the rest of the peak the loss-side bytes; every other part is the arithmetic above."""
    shape = PRESETS["mistral-small-2409"]
    fitted = {}
    for backend in sorted({row["backend"] for row in measurements}):
        rows = sorted((r for r in measurements if r["backend"] == backend), key=lambda r: r["layers"])
        first, last = rows[0], rows[-1]
        seq, per_layer = first["seq"], first["seq"] * shape.hidden_size
        rest_first, rest_last = (_unscaled_rest(shape, row, backend, rank, target_modules) for row in (first, last))
        checkpoint = (rest_last - rest_first) / ((last["layers"] - first["layers"]) * per_layer)
        logits = (rest_first - first["layers"] * per_layer * checkpoint) / (seq * shape.vocab_size)
        fitted[backend] = (checkpoint, logits)
    return fitted


def _unscaled_rest(shape: Architecture, row: dict, backend: str, rank: int,
                   target_modules: list[str] | tuple[str, ...]) -> float:
    """A measured peak less every part of the estimate the two fitted constants do not scale."""
    arch = replace(shape, num_hidden_layers=row["layers"])
    estimate = estimate_training_vram(arch, rank=rank, target_modules=target_modules, seq_len=row["seq"],
                                      batch_size=1, gpu_memory_gb=80, backend=backend)
    kept = row["layers"] * row["seq"] * arch.hidden_size * CHECKPOINT_BYTES_PER_HIDDEN[backend]
    return row["peak_allocated"] - (estimate.allocated - estimate.logits - kept)


def max_fitting_seq_len(arch: Architecture, upper: int = 131072, **kwargs) -> int:
    """Largest multiple of 256 (up to `upper`) whose estimate fits; 0 if none does."""
    best, low, high = 0, 1, upper // 256
    while low <= high:
        mid = (low + high) // 2
        if estimate_training_vram(arch, seq_len=mid * 256, **kwargs).fits:
            best, low = mid * 256, mid + 1
        else:
            high = mid - 1
    return best


def training_vram_settings(config: Config, *, backend: str | None = None,
                           gpu_memory_bytes: float | None = None, world_size: int = 1) -> dict:
    """``estimate_training_vram``'s keyword arguments (all but ``seq_len``) from a config.
    ``backend``: the one a run actually used (else the config's; ``auto`` is Unsloth, as on
    the GPU box); ``gpu_memory_bytes``: the card a run measured (else hardware.gpu_memory_gb);
    ``world_size``: the GPUs a run trains on (train.distributed and train.fsdp_offload say how)."""
    backend = backend or config.train.backend
    several = {} if world_size <= 1 else dict(world_size=world_size, strategy=config.train.distributed,
                                              offload=config.train.fsdp_offload)
    if world_size > 1 and backend in ("auto", "unsloth"):
        backend = "hf"  # several processes always train with hf (Unsloth trains on one GPU)
    return dict(
        **several,
        rank=config.lora.r,
        target_modules=config.lora.target_modules,
        batch_size=config.train.per_device_batch_size,
        gpu_memory_gb=gpu_memory_bytes / GB if gpu_memory_bytes else config.hardware.gpu_memory_gb,
        load_in_4bit=config.model.load_in_4bit,
        optimizer=config.train.optimizer,
        backend="unsloth" if backend == "auto" else backend,
        gradient_checkpointing=config.train.gradient_checkpointing,
        double_quant=config.model.bnb_4bit_use_double_quant,
    )


def largest_fitting_seq_len(config: Config, *, backend: str | None = None,
                            gpu_memory_bytes: float | None = None, world_size: int = 1) -> int:
    """The largest ``model.max_seq_length`` (a multiple of 256) whose training estimate fits
    each GPU, everything else as configured; 0 when none does (what a CUDA out-of-memory
    diagnosis suggests)."""
    arch = resolve_architecture(config.model.architecture)
    return max_fitting_seq_len(arch, **training_vram_settings(config, backend=backend, world_size=world_size,
                                                               gpu_memory_bytes=gpu_memory_bytes))


# ---------------------------------------------------------------- inference memory (estimate)


@dataclass(frozen=True)
class InferenceMemory:
    weights: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache


def estimate_inference_memory(arch: Architecture, quant: str, n_ctx: int, kv_bytes: int = 2) -> InferenceMemory:
    """GGUF weights + an f16 K and V cache of n_ctx tokens in every layer (llama.cpp default)."""
    kv = 2 * arch.num_hidden_layers * n_ctx * arch.num_key_value_heads * arch.head_dim * kv_bytes
    return InferenceMemory(gguf_size_bytes(arch, quant), kv)


# ---------------------------------------------------------------- training throughput (ESTIMATE)

# What bench/gpu_vram.py measured on one NVIDIA H100 80GB HBM3 (SXM5), 2026-11-27
# (BENCHMARKS.md, "GPU: the Unsloth path and the calculator's VRAM figures";
# bench/results/gpu_vram_h100.json): random-init layers of Mistral-Small-Instruct-2409's
# shape, NF4 base, LoRA r=64 on all seven projections, batch 1, sequence 8192, 8-bit
# AdamW, gradient checkpointing, 4 steps through `r1tui train --foreground`; tokens/s as
# the run's events report them. backend -> {decoder layers: tokens/s}.
H100_MEASURED_TOKENS_PER_S: dict[str, dict[int, float]] = {
    "unsloth": {2: 75_345.96, 4: 42_389.79},
    "hf": {2: 49_248.93, 4: 26_242.88},
}
MEASURED_ON = "H100 SXM"  # the GPU_SPECS entry the measurement ran on
MEASURED_SHAPE = "mistral-small-2409"  # the preset whose layers were measured


@dataclass(frozen=True)
class GpuSpec:
    """A GPU's dense BF16 tensor throughput as its vendor's spec sheet states it."""

    name: str
    bf16_dense_tflops: float
    match: tuple[str, ...]  # every one of these words is in the GPU's name …
    unless: tuple[str, ...] = ()  # … and none of these (a variant with other figures)
    source: str = ""


# Dense (no sparsity) BF16 tensor TFLOPS from the vendors' spec sheets. Where a sheet
# prints only the 2:4-sparsity figure (marked *), the dense one is half of it. GeForce and
# workstation Ada/Ampere cards run BF16 at half rate with FP32 accumulation, which is what
# PyTorch uses, so that figure is the one listed for them.
GPU_SPECS: tuple[GpuSpec, ...] = (
    GpuSpec("H100 NVL", 835.5, ("h100", "nvl"), source="NVIDIA H100 datasheet: BF16 1,671* TFLOPS"),
    GpuSpec("H100 PCIe", 756.5, ("h100", "pcie"), source="NVIDIA H100 datasheet: BF16 1,513* TFLOPS"),
    GpuSpec("H100 SXM", 989.5, ("h100",), source="NVIDIA H100 datasheet: BF16 1,979* TFLOPS (SXM5, '80GB HBM3')"),
    GpuSpec("H200 NVL", 835.5, ("h200", "nvl"), source="NVIDIA H200 datasheet: BF16 1,671* TFLOPS"),
    GpuSpec("H200", 989.5, ("h200",), source="NVIDIA H200 datasheet: BF16 1,979* TFLOPS (SXM)"),
    GpuSpec("A100", 312.0, ("a100",), source="NVIDIA A100 datasheet: BF16 312 TFLOPS (624*), 40 and 80 GB alike"),
    GpuSpec("L40S", 362.05, ("l40s",), source="NVIDIA L40S datasheet: BF16 362.05 TFLOPS (733*)"),
    GpuSpec("L40", 181.05, ("l40",), source="NVIDIA L40 datasheet: BF16 181.05 TFLOPS (362.1*)"),
    GpuSpec("L4", 121.0, ("l4",), source="NVIDIA L4 datasheet: BF16 242* TFLOPS"),
    GpuSpec("A10", 125.0, ("a10",), source="NVIDIA A10 datasheet: BF16 125 TFLOPS (250*)"),
    GpuSpec("RTX 4090", 165.2, ("4090",), ("d", "laptop", "mobile"),
            source="NVIDIA Ada GPU architecture whitepaper: BF16 with FP32 accumulate 165.2 TFLOPS (330.4*)"),
    GpuSpec("RTX 3090", 71.0, ("3090",), ("ti", "laptop", "mobile"),
            source="NVIDIA Ampere GA102 GPU architecture whitepaper: BF16 with FP32 accumulate 71 TFLOPS (142*)"),
)


@dataclass(frozen=True)
class ThroughputEstimate:
    """Training tokens per second on one GPU: always an ESTIMATE until measured on that GPU.

    ``tokens_per_s`` is None when there is no figure for the GPU; ``basis`` says, in one
    line, where the number comes from (or why there is none)."""

    tokens_per_s: float | None
    basis: str
    gpu: str | None = None  # the GPU_SPECS entry used

    def hours_for(self, tokens: int | float) -> float | None:
        return None if not self.tokens_per_s else tokens / self.tokens_per_s / 3600

    def tokens_in(self, hours: float) -> int | None:
        return None if not self.tokens_per_s else int(hours * 3600 * self.tokens_per_s)


def gpu_spec(gpu_name: str) -> GpuSpec | None:
    """The GPU_SPECS entry for a GPU name as config or NVML spell it ("RTX 4090",
    "NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"), else None."""
    words = set("".join(ch if ch.isalnum() else " " for ch in gpu_name.lower()).split())
    for spec in GPU_SPECS:
        if all(word in words for word in spec.match) and not any(word in words for word in spec.unless):
            return spec
    return None


def _layer_linear_params(arch: Architecture) -> int:
    return sum(i * o for i, o in arch.linear_shapes().values())


def training_tokens_per_second(gpu_name: str, backend: str, arch: Architecture | str) -> ThroughputEstimate:
    """Training throughput of a QLoRA run like the measured one (NF4, LoRA r=64 on all seven
    projections, batch 1, gradient checkpointing) on ``gpu_name``: an ESTIMATE.

    1. The H100 measurement (``H100_MEASURED_TOKENS_PER_S``: 2 and 4 layers of 2409's shape)
       gives a time per token per decoder layer (the slope) and a time per token outside the
       layers (embedding, lm_head, loss: the intercept); a full model is intercept + layers ×
       slope. 2409 with Unsloth: 2.95 µs + 56 × 5.16 µs = 291.9 µs, about 3,430 tokens/s.
    2. Another architecture scales the slope by its layer's linear parameters (the matmul
       FLOPs per token) and the intercept by vocab × hidden, both against 2409's.
    3. Another GPU scales by dense BF16 tensor TFLOPS (``GPU_SPECS``, from the vendors'
       spec sheets) against the H100 SXM's 989.5: at sequence 8192 a step is matmul-bound.
       RTX 4090: 165.2 / 989.5 = 0.167, so 2409 with Unsloth is about 570 tokens/s.
    A GPU not in ``GPU_SPECS`` gets no figure (``tokens_per_s`` None) rather than a guess:
    nothing here knows its compute, and scaling by memory bandwidth alone would mislead for a
    matmul-bound step. The measurement ran 4 steps at one sequence length; shorter sequences,
    packing, other ranks and other kernels all move the real figure.
    """
    backend = "unsloth" if backend == "auto" else backend
    if backend not in H100_MEASURED_TOKENS_PER_S:
        backend = "hf"
    shape = resolve_architecture(arch) if isinstance(arch, str) else arch
    spec = gpu_spec(gpu_name)
    if spec is None:
        known = ", ".join(s.name for s in GPU_SPECS)
        return ThroughputEstimate(None, f"no throughput figure for GPU {gpu_name!r} (known: {known}); set "
                                        "hardware.gpu_name to one of them, or measure it (bench/gpu_vram.py)")
    (few, t_few), (many, t_many) = sorted((layers, 1 / tps) for layers, tps in H100_MEASURED_TOKENS_PER_S[backend].items())
    slope = (t_many - t_few) / (many - few)
    intercept = t_few - few * slope
    measured = PRESETS[MEASURED_SHAPE]
    layer_scale = _layer_linear_params(shape) / _layer_linear_params(measured)
    head_scale = (shape.vocab_size * shape.hidden_size) / (measured.vocab_size * measured.hidden_size)
    seconds_per_token = intercept * head_scale + shape.num_hidden_layers * slope * layer_scale
    reference = next(s for s in GPU_SPECS if s.name == MEASURED_ON)
    gpu_scale = spec.bf16_dense_tflops / reference.bf16_dense_tflops
    tokens_per_s = gpu_scale / seconds_per_token
    scaled = "" if spec is reference else (f", scaled to {spec.name} by dense BF16 TFLOPS "
                                           f"{spec.bf16_dense_tflops:g} / {reference.bf16_dense_tflops:g}")
    basis = (f"ESTIMATE: {backend} tokens/s measured on an H100 SXM with {few} and {many} layers of "
             f"{MEASURED_SHAPE}'s shape (bench/gpu_vram.py, BENCHMARKS.md), extrapolated to "
             f"{shape.num_hidden_layers} layers of {shape.name}{scaled}; not measured for this model on {spec.name}")
    return ThroughputEstimate(tokens_per_s, basis, spec.name)

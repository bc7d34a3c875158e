"""The `hf` backend: transformers + peft + TRL's SFTTrainer; bitsandbytes NF4 where it runs.

Runs anywhere torch runs: the CPU (tests, the tiny model), one GPU, or several under
``accelerate launch`` / torchrun (DDP, or FSDP2 with ``train.distributed = "fsdp"``).
4-bit loading needs bitsandbytes; without it the base is loaded in ``train.dtype`` and
a warning says so. Under FSDP the NF4 weights are stored in ``train.dtype``
(``bnb_4bit_quant_storage``) so FSDP can shard them; that needs CUDA, and on a CPU an
FSDP run loads the base in ``train.dtype`` instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.data.tokenizer import tokenizer_spec

log = logging.getLogger(__name__)


def load_tokenizer(config: Config, base: str) -> Any:
    """The base folder's tokenizer, else one built offline from ``model.tokenizer``."""
    from transformers import AutoTokenizer

    if (Path(base) / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(base)
    if tokenizer_spec(config) in ("v3",) or Path(tokenizer_spec(config)).is_dir():
        import tempfile

        from r1tui.data.tokenizer import save_hf_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            save_hf_tokenizer(tokenizer_spec(config), tmp)
            return AutoTokenizer.from_pretrained(tmp)
    return AutoTokenizer.from_pretrained(base)


def bitsandbytes_usable() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is the same as none here
        return False
    return True


def lora_config(config: Config, vision: bool = False) -> Any:
    from peft import LoraConfig

    from r1tui.train.base import lora_targets

    return LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=lora_targets(config.lora.target_modules, vision), bias="none",
                      task_type="CAUSAL_LM")


def load_model(config: Config, base: str) -> tuple[Any, Any]:
    import torch
    from peft import get_peft_model

    from r1tui.train.base import MISTRAL3, VISION_MODULES, model_class

    on_cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {"dtype": getattr(torch, config.train.dtype)}
    sharded = fsdp_enabled(config)
    quantized = config.model.load_in_4bit and bitsandbytes_usable() and (on_cuda or not sharded)
    if config.model.load_in_4bit and sharded and not on_cuda:
        log.warning("train.distributed = fsdp with a 4-bit base needs CUDA (bitsandbytes shards NF4 weights "
                    "on the GPU); without one the base is loaded in %s", config.train.dtype)
    elif config.model.load_in_4bit and not quantized:
        log.warning("model.load_in_4bit is set but bitsandbytes cannot be imported; loading in %s", config.train.dtype)
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=config.model.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=config.model.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=getattr(torch, config.model.bnb_4bit_compute_dtype),
            # a Mistral3 checkpoint's vision tower and projector stay unquantized (and frozen);
            # transformers matches these from the start of the module name, which is
            # model.vision_tower… in transformers 5 and vision_tower… in 4.x checkpoints
            llm_int8_skip_modules=[*VISION_MODULES, *(f"model.{name}" for name in VISION_MODULES), "lm_head"],
            # FSDP shards floating-point tensors only: the packed NF4 bytes are stored in
            # train.dtype (bitsandbytes reads them as bytes whatever the storage dtype), the
            # same dtype as the rest of the base, so FSDP can split them over the ranks.
            **({"bnb_4bit_quant_storage": getattr(torch, config.train.dtype)} if sharded else {}),
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))} if on_cuda else {"": "cpu"}
    cls = model_class(base)
    vision = cls.__name__ == MISTRAL3
    model = cls.from_pretrained(base, **kwargs)
    if quantized and not sharded:
        # (under FSDP it is skipped: it upcasts every other parameter to fp32, which FSDP
        # would then gather and shard in fp32, and FSDP does the activation checkpointing)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, lora_config(config, vision))
    return model, load_tokenizer(config, base)


def fsdp_enabled(config: Config) -> bool:
    """This process is one rank of an FSDP run (train.distributed = fsdp, several processes)."""
    return config.train.distributed == "fsdp" and int(os.environ.get("WORLD_SIZE", "1")) > 1


def fused_loss_usable(device_type: str) -> bool:
    """TRL 1.15 computes the SFT loss with a Triton kernel: CUDA/XPU with Triton only."""
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    return getattr(trl_utils, "_ChunkedLogProbFunction", None) is not None and device_type in ("cuda", "xpu")


def trainer_class() -> type:
    from transformers import Trainer
    from trl import SFTTrainer

    class R1SFTTrainer(SFTTrainer):
        """SFTTrainer whose loss falls back to the model's own cross-entropy where TRL's
        Triton kernel cannot run (the CPU; a torch without Triton). Same labels, same
        mean over label tokens; only TRL's entropy/accuracy side metrics are not logged."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None, **kwargs):
            if fused_loss_usable(self.args.device.type):
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch, **kwargs)
            inputs = {**inputs, "use_cache": False}
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            _fsdp_on_the_cpu(self)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            """Resuming reloads the adapter through peft, which casts it to fp32; SFTTrainer
            trains a quantized model's adapter in bf16 (as QLoRA does). Cast it back, as
            SFTTrainer's __init__ does, so a resumed run computes what an uninterrupted one does."""
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            import torch

            target = model if model is not None else self.model
            if getattr(target, "is_loaded_in_4bit", False) or getattr(target, "is_loaded_in_8bit", False):
                for name, param in target.named_parameters():
                    if param.requires_grad and "lora_magnitude_vector" not in name:
                        param.data = param.data.to(torch.bfloat16)

    return R1SFTTrainer


def _fsdp_on_the_cpu(trainer: Any) -> None:
    """accelerate 1.15 switches a run to FSDP only for accelerator process groups (CUDA, XPU,
    NPU, ...): on the CPU (gloo) it builds the FSDP plugin the Trainer asked for and then
    trains plain DDP. torch's FSDP2 itself runs on the CPU over gloo, so here the plugin is
    put in place as accelerate does on a GPU (distributed type FSDP, the same plugin); the
    model is then sharded by accelerate's own ``fsdp2_prepare_model``. Nothing changes
    where accelerate already chose FSDP."""
    if trainer.args.fsdp_plugin_args is None or trainer.is_fsdp_enabled:
        return
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
    state.distributed_type = DistributedType.FSDP
    trainer.is_fsdp_enabled = True
    log.info("FSDP%d on the CPU over gloo (%d ranks)", state.fsdp_plugin.fsdp_version, state.num_processes)


def adjust_arguments(config: Config, kwargs: dict[str, Any]) -> None:
    return None

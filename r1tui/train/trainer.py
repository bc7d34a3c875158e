"""What both backends share: arguments, dataset, collator, callback, resume, saving.

A backend module (``hf_backend``, ``unsloth_backend``) supplies only
``load_model(config, base) -> (peft_model, tokenizer)``, ``trainer_class()`` and
``adjust_arguments(config, kwargs)``; everything else happens here, once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from r1tui.config import Config, unsloth_quantization_problem
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error
from r1tui.present import format_bytes
from r1tui.runs import cancel
from r1tui.runs.disk import DISK_SLACK_BYTES, free_bytes
from r1tui.runs.events import NullWriter, StageCancelled, read_events, stage
from r1tui.runs.files import folder_bytes, remove_stale_temps, replace_dir
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

SAVE_TOTAL_LIMIT = 3  # checkpoints kept; a 22B r=64 checkpoint with optimizer state is ~2.5 GB
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


# ---------------------------------------------------------------- checkpoints


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (a half-written one is ignored)."""
    folder = RunLayout(Path(run_dir)).checkpoints
    found = []
    if folder.is_dir():
        for child in folder.iterdir():
            match = _CHECKPOINT_RE.match(child.name)
            if match and (child / "trainer_state.json").is_file():
                found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def with_atomic_checkpoints(trainer_cls: type) -> type:
    """``trainer_cls`` saving each checkpoint under a temporary name, renamed once complete.

    The Trainer writes ``checkpoint-N/`` file by file (weights, optimizer, RNG, state);
    a full disk or a kill in between would leave a half-written folder under the name
    people copy. Here the Trainer writes into ``.checkpoint-N.tmp-saving/`` (the same
    name on every rank, so sharded optimizer states land together), and the main process
    moves the finished folder into place, then keeps the newest ``save_total_limit``.
    """
    from transformers.trainer_utils import rotate_checkpoints

    class AtomicCheckpoints(trainer_cls):
        def _save_checkpoint(self, model, trial):
            root = Path(self.args.output_dir)
            name = f"checkpoint-{self.state.global_step}"
            staging = root / f".{name}.tmp-saving"
            self.args.output_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)
            except Exception as exc:
                full = _disk_full(exc, root, name)
                if full is None:
                    raise
                raise full from None  # tokenizers says only "Exception: No space left on device"
            finally:
                self.args.output_dir = str(root)
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                replace_dir(staging / name, root / name)
                shutil.rmtree(staging, ignore_errors=True)
                rotate_checkpoints(output_dir=str(root), save_total_limit=self.args.save_total_limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
            self.accelerator.wait_for_everyone()

    AtomicCheckpoints.__name__ = AtomicCheckpoints.__qualname__ = f"Atomic{trainer_cls.__name__}"
    return AtomicCheckpoints


def _disk_full(exc: Exception, root: Path, name: str) -> R1Error | None:
    """The one line for a checkpoint that met a full disk (None: it failed for another reason)."""
    free = free_bytes(root)
    said = getattr(exc, "errno", None) == errno.ENOSPC or re.search(
        r"No space left|os error 28|file write failed", str(exc), re.IGNORECASE)
    if not said and free >= DISK_SLACK_BYTES:
        return None
    done = checkpoints(root.parent)
    size = f"; a checkpoint of this run takes {format_bytes(folder_bytes(done[-1]))}" if done else ""
    return R1Error(f"saving {name} failed: the disk holding {root} is full ({format_bytes(free)} free{size}); "
                   f"free some space or move runs.dir to a larger disk, then `r1tui run --resume {root.parent.name}` "
                   "continues from the last complete checkpoint")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def checkpoint_step(path: str | Path) -> int:
    match = _CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else 0


def last_logged_step(events_path: str | Path | None, stage_name: str = "train") -> int:
    """The highest training step already written as a metric event (0 when none)."""
    if events_path is None or not Path(events_path).is_file():
        return 0
    steps = [e.data.get("step") or 0 for e in read_events(events_path) if e.type == "metric" and e.stage == stage_name]
    return max(steps, default=0)


# ---------------------------------------------------------------- processes


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return world()[0] == 0


# ---------------------------------------------------------------- arguments


def _optimizer(config: Config, on_cuda: bool) -> str:
    name = config.train.optimizer
    if name.startswith("paged_") and not on_cuda:
        log.info("%s pages optimizer state through CUDA; using adamw_8bit on the CPU", name)
        return "adamw_8bit"
    return name


def _precision(config: Config, on_cuda: bool) -> dict[str, bool]:
    dtype = config.train.dtype
    if dtype == "float16" and not on_cuda:
        log.warning("train.dtype = float16 needs a GPU; training in float32 on the CPU")
        return {"bf16": False, "fp16": False}
    return {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}


def training_arguments(config: Config, output_dir: Path, backend_module: Any) -> Any:
    import torch
    from trl import SFTConfig

    on_cuda = torch.cuda.is_available()
    train = config.train
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=train.max_steps,
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        # transformers 5: a float below 1 is a ratio of the total steps
        warmup_steps=train.warmup_ratio if train.warmup_ratio > 0 else 0,
        weight_decay=train.weight_decay,
        optim=_optimizer(config, on_cuda),
        logging_steps=train.logging_steps,
        # the loss on the held-out rows (data.eval_rows) every train.eval_steps; loss only:
        # keeping a 22B model's logits for the whole eval set would cost gigabytes
        eval_strategy="steps" if train.eval_steps else "no",
        eval_steps=train.eval_steps or None,
        per_device_eval_batch_size=train.per_device_batch_size,
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=SAVE_TOTAL_LIMIT,
        seed=train.seed,
        data_seed=train.seed,
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        max_length=config.model.max_seq_length,
        # The data stage already rendered, masked and length-checked every row.
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,  # the event log is the progress display
        use_cpu=not on_cuda,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        **_precision(config, on_cuda),
    )
    if world()[1] > 1 and train.distributed == "fsdp":
        kwargs.update(fsdp_arguments(config))
    backend_module.adjust_arguments(config, kwargs)
    return SFTConfig(**kwargs)


def sharded_by(checkpoint: Path) -> int:
    """How many FSDP ranks saved ``checkpoint`` (each wrote one optimizer shard); 0: not sharded."""
    folder = Path(checkpoint) / "optimizer_0"
    return len(list(folder.glob("__*_0.distcp"))) if folder.is_dir() else 0


def checkpoint_layout_problem(checkpoint: Path, config: Config, world_size: int) -> str | None:
    """A sharded checkpoint loads only into FSDP over the same number of ranks."""
    ranks = sharded_by(checkpoint)
    fsdp_now = world_size > 1 and config.train.distributed == "fsdp"
    if ranks and (not fsdp_now or ranks != world_size):
        return (f"{Path(checkpoint).name} was saved sharded by {ranks} FSDP ranks and this resume has "
                f"{world_size} process{'es' if world_size > 1 else ''}; resume with --processes {ranks} "
                f"(or --nodes/--gpus-per-node giving {ranks} ranks)")
    return None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def fsdp_problem(config: Config, on_cuda: bool) -> str | None:
    """What keeps this FSDP config from running on this machine (None: nothing)."""
    if config.train.distributed == "fsdp" and config.train.fsdp_offload and not on_cuda:
        # torch's CPUOffloadPolicy moves shards between an accelerator and CPU RAM
        return ("train.fsdp_offload = true moves the shards from the GPUs to CPU RAM and needs CUDA; "
                "on CPU processes the shards are in RAM already: set it to false")
    return None


def fsdp_arguments(config: Config) -> dict[str, Any]:
    """The Trainer's FSDP settings for ``train.distributed = "fsdp"``: FSDP2 through
    accelerate's FullyShardedDataParallelPlugin, one unit per decoder layer (the model's
    ``_no_split_modules``), every rank saving its own shard of the model and optimizer
    (``SHARDED_STATE_DICT``, what resume loads back), activation checkpointing done by
    FSDP (the Trainer's own would wrap the layers twice), ``train.fsdp_offload`` as
    FSDP2's CPU offload policy. Set here, from the frozen config, so every launcher
    (accelerate launch, torchrun on each node, Slurm) gives every rank the same FSDP."""
    return dict(
        fsdp=True,
        fsdp_config={
            "version": 2,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "state_dict_type": "SHARDED_STATE_DICT",
            "activation_checkpointing": config.train.gradient_checkpointing,
            "cpu_offload": config.train.fsdp_offload,
            "reshard_after_forward": True,
            "cpu_ram_efficient_loading": False,
        },
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
    )


# ---------------------------------------------------------------- dataset


def load_training_dataset(dataset_dir: Path) -> Any:
    import datasets

    if not dataset_dir.is_dir():
        raise R1Error(f"{dataset_dir}: no prepared dataset there; run `r1tui prepare` or the prepare stage first")
    try:
        dataset = datasets.load_from_disk(str(dataset_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise R1Error(f"{dataset_dir}: not a prepared dataset ({exc}); run `r1tui prepare` again") from None
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset["train"]
    missing = {"input_ids", "labels"} - set(dataset.column_names)
    if missing:
        raise R1Error(f"{dataset_dir}: the dataset lacks {', '.join(sorted(missing))}; prepare it with `r1tui prepare`")
    if len(dataset) == 0:
        raise R1Error(f"{dataset_dir}: the prepared dataset is empty; check data.source and data.num_examples")
    extra = [c for c in dataset.column_names if c not in ("input_ids", "labels")]
    return dataset.remove_columns(extra) if extra else dataset


def load_eval_dataset(config: Config, dataset_dir: Path) -> Any | None:
    """The held-out rows the prepare stage wrote beside the training rows, when the config
    evaluates (``train.eval_steps``); None when it does not."""
    from r1tui.data.prepare import EVAL_DIR

    if not config.train.eval_steps:
        return None
    folder = dataset_dir / EVAL_DIR
    if not folder.is_dir():
        raise R1Error(f"{dataset_dir}: train.eval_steps = {config.train.eval_steps} but the dataset holds no "
                      "held-out rows; set data.eval_rows and prepare it again")
    return load_training_dataset(folder)


def check_dataset_fits(dataset: Any, config: Config, dataset_dir: Path) -> None:
    """A dataset prepared for another tokenizer or a longer context must not train silently."""
    import json

    import pyarrow.compute as pc

    from r1tui.calculator import resolve_architecture

    stats_file = dataset_dir / "stats.json"
    if stats_file.is_file():
        prepared_with = json.loads(stats_file.read_text(encoding="utf-8")).get("tokenizer")
        if prepared_with and prepared_with != tokenizer_spec(config):
            raise R1Error(f"{dataset_dir}: prepared with tokenizer {prepared_with!r} but model.tokenizer is "
                          f"{tokenizer_spec(config)!r}; prepare it again with this config")
    table = getattr(dataset.data, "table", dataset.data)
    ids = table.column("input_ids")
    longest = pc.max(pc.list_value_length(ids)).as_py() or 0
    if longest > config.model.max_seq_length:
        raise R1Error(f"{dataset_dir}: rows up to {longest} tokens but model.max_seq_length is "
                      f"{config.model.max_seq_length}; prepare it again with this config (or raise the limit)")
    vocab = resolve_architecture(config.model.architecture).vocab_size
    top = pc.max(pc.list_flatten(ids)).as_py() or 0
    if top >= vocab:
        raise R1Error(f"{dataset_dir}: token id {top} is outside the model's vocabulary of {vocab}; "
                      "the dataset was prepared with another tokenizer")


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


# ---------------------------------------------------------------- the stage


def train_adapter(config: Config, dataset_dir: str | Path, run_dir: str | Path, events: Any = None,
                  resume: bool = False) -> Path:
    from r1tui.train import resolve_backend

    run_dir, dataset_dir = Path(run_dir), Path(dataset_dir)
    rank, world_size = world()
    if rank != 0:
        events = NullWriter()  # under DDP only the main process writes the log
    events = events or NullWriter()
    backend = resolve_backend(config, world_size)
    if backend == "unsloth" and world_size > 1:
        raise R1Error("train.backend = unsloth runs on one GPU; use backend = hf for multi-process (accelerate) training")
    if world_size > 1 and (problem := fsdp_problem(config, _cuda_available())):
        raise R1Error(problem)
    if backend == "unsloth" and (problem := unsloth_quantization_problem(config)):
        raise R1Error(problem)  # train.backend = auto chose Unsloth on this GPU
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None and (problem := checkpoint_layout_problem(checkpoint, config, world_size)):
        raise R1Error(problem)
    adapter_dir = RunLayout(run_dir).adapter
    with stage(events, "train", backend=backend, dataset=str(dataset_dir),
               resume_from=str(checkpoint) if checkpoint else None, world_size=world_size) as outputs:
        # The dataset first: a wrong or overlong one must fail in seconds, not after loading 22B.
        dataset = load_training_dataset(dataset_dir)
        check_dataset_fits(dataset, config, Path(dataset_dir))
        eval_dataset = load_eval_dataset(config, dataset_dir)
        if eval_dataset is not None:
            check_dataset_fits(eval_dataset, config, dataset_dir)
        backend_module = _backend_module(backend)
        base = _ensure_base(config, run_dir)
        started = time.monotonic()
        from transformers import set_seed

        set_seed(config.train.seed)  # the LoRA init draws from the RNG: seed it, or no two runs match
        model, tokenizer = backend_module.load_model(config, base)
        events.emit("log", stage="train", level="info", message=_trainable_summary(model, backend, base))
        cancel.raise_if_requested()
        skip_through = last_logged_step(getattr(events, "path", None)) if resume else 0
        if checkpoint is not None or skip_through:
            first = checkpoint_step(checkpoint) + 1 if checkpoint else 1
            message = f"resuming from {checkpoint.name}" if checkpoint else "no checkpoint yet: starting over"
            if skip_through >= first:
                message += f"; steps {first}–{skip_through} are recomputed and not logged again"
            events.emit("log", stage="train", level="info", message=message)

        from r1tui.train.callback import MetricsCallback
        from r1tui.train.collator import PadCollator
        from r1tui.train.rank_times import RankClock

        # several ranks: each one's own compute and batching time, so a slow rank stands out
        clock = None
        if world_size > 1:
            import torch

            clock = RankClock(rank, cuda=torch.cuda if _cuda_available() else None)
        collator = PadCollator(pad_token_id=_pad_id(tokenizer))
        callback = MetricsCallback(events, gpu_sample_seconds=config.train.gpu_sample_seconds,
                                   skip_through_step=skip_through, clock=clock,
                                   strategy=config.train.distributed if world_size > 1 else None)
        if rank == 0:
            remove_stale_temps(RunLayout(run_dir).checkpoints)  # a checkpoint a kill cut short
        trainer = with_atomic_checkpoints(backend_module.trainer_class())(
            model=model,
            args=training_arguments(config, RunLayout(run_dir).checkpoints, backend_module),
            train_dataset=dataset,
            eval_dataset=eval_dataset,
            data_collator=clock.collate(collator) if clock is not None else collator,
            processing_class=tokenizer,
            callbacks=[callback],
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # metrics go to the event log, not stdout
        with cancel.deferred():
            cancel.raise_if_requested()
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        outputs.update(steps=trainer.state.global_step, max_steps=trainer.state.max_steps,
                       train_loss=getattr(result, "training_loss", None),
                       duration_s=round(time.monotonic() - started, 3),
                       checkpoint=str(latest_checkpoint(run_dir)) if latest_checkpoint(run_dir) else None)
        if callback.cancelled:
            raise StageCancelled(f"cancelled at step {trainer.state.global_step}; checkpoint saved")
        # Under FSDP every rank holds a shard of the adapter: all of them gather it, rank 0 saves.
        gathered = gathered_adapter_state(trainer.model) if getattr(trainer, "is_fsdp_enabled", False) else None
        if is_main_process():
            save_adapter(trainer.model, config, base, adapter_dir, state_dict=gathered)
            events.emit("artifact", stage="train", kind="adapter", path=str(adapter_dir), bytes=folder_bytes(adapter_dir))
        outputs["adapter"] = str(adapter_dir)
    return adapter_dir


def _backend_module(backend: str) -> Any:
    if backend == "unsloth":
        from r1tui.train import unsloth_backend

        return unsloth_backend
    from r1tui.train import hf_backend

    return hf_backend


def _ensure_base(config: Config, run_dir: Path) -> str:
    from r1tui.train.base import ensure_base_model

    _, world_size = world()
    if world_size == 1:
        return ensure_base_model(config, run_dir)
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():  # rank 0 builds the random base, the others then find it
        return ensure_base_model(config, run_dir)


def _trainable_summary(model: Any, backend: str, base: str) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return (f"backend {backend}: LoRA on {base}: {trainable:,} trainable of {total:,} parameters "
            f"({trainable / max(total, 1):.2%})")


def gathered_adapter_state(model: Any) -> dict[str, Any]:
    """The whole trainable (LoRA) state of an FSDP-sharded model, on the CPU, under the model's
    own parameter names (peft matches them against its module tree, where FSDP's activation
    checkpointing has inserted ``_checkpoint_wrapped_module``; ``save_adapter`` takes that out
    of the saved file). Collective: every rank must call it (each all-gathers its shards); the
    frozen base is never gathered."""
    state = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            full = param.full_tensor() if hasattr(param, "full_tensor") else param
            # FSDP's activation checkpointing wraps each layer and adds this to the names
            state[name] = full.detach().cpu()
    return state


def save_adapter(model: Any, config: Config, base: str, adapter_dir: Path,
                 state_dict: dict[str, Any] | None = None) -> Path:
    """Save the adapter and tokenizer files atomically; point the adapter at its base.
    ``state_dict``: the gathered adapter of an FSDP run (``gathered_adapter_state``)."""
    tmp = adapter_dir.with_name(f".{adapter_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if state_dict is not None:
        model.save_pretrained(str(tmp), state_dict=state_dict)
        _unwrap_saved_names(tmp / "adapter_model.safetensors")
    else:
        model.save_pretrained(str(tmp))
    config_path = tmp / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = base
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True), encoding="utf-8")
    _save_tokenizer(config, base, tmp)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(tmp, adapter_dir)
    return adapter_dir


_WRAPPER_NAME = "_checkpoint_wrapped_module."  # torch's checkpoint_wrapper, as FSDP applies it


def _unwrap_saved_names(weights: Path) -> None:
    """Rewrite an adapter file whose names hold the activation-checkpointing wrapper, so it
    loads onto a plain model (merge, export) like a one-process run's adapter."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), framework="pt") as handle:
        if not any(_WRAPPER_NAME in key for key in handle.keys()):  # noqa: SIM118 - safe_open has no __iter__
            return
        metadata = handle.metadata()
        tensors = {key.replace(_WRAPPER_NAME, ""): handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(weights), metadata=metadata)


def _save_tokenizer(config: Config, base: str, folder: Path) -> None:
    from r1tui.data.tokenizer import is_tekken, save_hf_tokenizer

    if not is_tekken(tokenizer_spec(config)):
        save_hf_tokenizer(tokenizer_spec(config), folder)
        return
    base_dir = Path(base)
    if base_dir.is_dir():  # a Tekken model ships its own tokenizer files: keep them beside the adapter
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tekken.json",
                     "chat_template.jinja"):
            if (base_dir / name).is_file():
                shutil.copyfile(base_dir / name, folder / name)

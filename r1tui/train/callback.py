"""The one TrainerCallback both backends share: metrics, GPU samples, checkpoints, cancel.

At every logging step it writes a ``metric`` event: step, epoch, loss, learning
rate, grad norm, tokens/s, samples/s, elapsed and ETA, and on CUDA the allocated,
reserved and peak memory. After each evaluation (``train.eval_steps``) it writes one
more, ``{"step", "max_steps", "eval_loss"}``. A sampler thread writes a ``gpu`` event every
``gpu_sample_seconds`` from NVML (one "no GPU" event where there is none). When the
run is asked to stop it makes the trainer save a checkpoint after the current step
and end training. Only the main process writes (under DDP every rank runs this).
With several ranks each logging step also writes a ``ranks`` event: every rank's own
compute and batching time per step and its tokens (``r1tui.train.rank_times``), so a
slow rank stands out though the collectives make every rank's wall time the same.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from r1tui import gpu
from r1tui.runs import cancel
from r1tui.train import rank_times

log = logging.getLogger(__name__)

# Extra numbers TRL logs that are worth keeping beside the standard ones.
_EXTRA_LOG_KEYS = ("mean_token_accuracy", "entropy")


class GpuSampler(threading.Thread):
    """Writes GPU samples every ``interval`` seconds until stopped; one event without a GPU."""

    def __init__(self, events: Any, interval: float, stage: str | None = "train"):
        super().__init__(name="r1tui-gpu-sampler", daemon=True)
        self.events = events
        self.interval = interval
        self.stage = stage
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            try:
                samples = gpu.sample_all()
                for sample in samples:
                    self.events.emit("gpu", stage=self.stage, **sample)
                if not samples[0].get("available") and "index" not in samples[0]:
                    return  # no driver or no device: nothing will appear later; one "no GPU" event says so
            except Exception:  # noqa: BLE001 - sampling must never take training down
                log.debug("GPU sample failed", exc_info=True)
            if self._halt.wait(self.interval):
                return

    def stop(self) -> None:
        self._halt.set()


class MetricsCallback(TrainerCallback):
    """Turns the trainer's logs into ``metric`` events and honours cancel requests."""

    def __init__(self, events: Any, *, stage: str = "train", gpu_sample_seconds: float | None = 5.0,
                 skip_through_step: int = 0, clock: rank_times.RankClock | None = None,
                 strategy: str | None = None):
        self.events = events
        self.stage = stage
        self.gpu_sample_seconds = gpu_sample_seconds
        # After a resume, steps up to here are already in the log: never write them twice.
        self.skip_through_step = skip_through_step
        self.cancelled = False
        self._sampler: GpuSampler | None = None
        self._cuda = None
        self.clock = clock  # several ranks: times each rank's own work (None: one process)
        self.strategy = strategy  # "ddp" / "fsdp" under several ranks

    # -- lifecycle
    def on_train_begin(self, args, state, control, **kwargs):
        now = time.monotonic()
        self._started = now
        self._last_time = now
        self._first_step = state.global_step
        self._last_step = state.global_step
        self._last_tokens = state.num_input_tokens_seen or 0
        self._cuda = _cuda_module()
        if state.is_world_process_zero and self.gpu_sample_seconds:
            self._sampler = GpuSampler(self.events, self.gpu_sample_seconds, self.stage)
            self._sampler.start()
        if self.clock is not None and kwargs.get("model") is not None:
            self.clock.attach(kwargs["model"])
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self.clock is not None:
            self.clock.detach()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        requested = cancel.requested()
        if args.world_size > 1:
            # Every rank must stop at the same step or DDP waits forever on the others.
            requested = _any_rank(requested, args.device)
        if self.clock is not None:
            self.clock.step_ended()  # after the collective above: this step's CUDA work is done
            # (the default flow callback ran first: it decided whether an evaluation follows)
            self.clock.evaluating = bool(control.should_evaluate)
        if requested and not self.cancelled:
            self.cancelled = True
            # Save where we are, log this step, then leave the training loop.
            control.should_save = True
            control.should_log = True
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.events.emit("log", stage=self.stage, level="warning",
                                 message=f"cancel requested: saving a checkpoint at step {state.global_step} and stopping")
        return control

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.events.emit("artifact", stage=self.stage, kind="checkpoint", path=str(path), step=state.global_step)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return control  # the end-of-training summary has no "loss"; the stage event covers it
        # every rank logs the same steps (the loss is gathered from all of them): each hands
        # its own times to rank 0 here
        ranks = rank_times.gather(self.clock.take()) if self.clock is not None else None
        step = state.global_step
        if not state.is_world_process_zero or step <= self.skip_through_step:
            return control
        wall = (time.monotonic() - self._last_time) / max(step - self._last_step, 1)
        self.events.emit("metric", stage=self.stage, **self.metrics(args, state, logs))
        if ranks:
            self.events.emit("ranks", stage=self.stage, step=step, step_s=round(wall, 6),
                             strategy=self.strategy, ranks=ranks)
        self.events.emit("stage_progress", stage=self.stage, completed=step, total=state.max_steps, unit="step")
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """The loss on the held-out rows (``train.eval_steps``), as a metric event of its own
        at the step it was measured: ``{"step", "max_steps", "eval_loss"}`` (transformers
        prefixes its evaluation metrics with ``eval_``)."""
        if self.clock is not None:
            self.clock.evaluating = False
        if not state.is_world_process_zero or not metrics or metrics.get("eval_loss") is None:
            return control
        if state.global_step <= self.skip_through_step:
            return control
        self.events.emit("metric", stage=self.stage, step=state.global_step, max_steps=state.max_steps,
                         eval_loss=metrics["eval_loss"])
        return control

    # -- the numbers
    def metrics(self, args, state, logs: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        step = state.global_step
        window_s = max(now - self._last_time, 1e-9)
        steps = step - self._last_step
        tokens = state.num_input_tokens_seen or 0
        samples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
        elapsed = now - self._started
        done_here = step - self._first_step
        eta = (state.max_steps - step) * elapsed / done_here if done_here > 0 and state.max_steps > 0 else None
        data: dict[str, Any] = {
            "step": step,
            "max_steps": state.max_steps,
            "epoch": logs.get("epoch", state.epoch),
            "loss": logs.get("loss"),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_s": (tokens - self._last_tokens) / window_s if tokens else None,
            "samples_per_s": samples / window_s,
            "elapsed_s": round(elapsed, 3),
            "eta_s": round(eta, 1) if eta is not None else None,
            "tokens_seen": tokens or None,
            "world_size": args.world_size,
        }
        for key in _EXTRA_LOG_KEYS:
            if key in logs:
                data[key] = logs[key]
        if self._cuda is not None:
            data.update(cuda_allocated=self._cuda.memory_allocated(), cuda_reserved=self._cuda.memory_reserved(),
                        cuda_peak=self._cuda.max_memory_allocated(),
                        cuda_peak_reserved=self._cuda.max_memory_reserved())
        self._last_time, self._last_step, self._last_tokens = now, step, tokens
        return data


def _any_rank(flag: bool, device: Any) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    tensor = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def _cuda_module():
    import torch

    return torch.cuda if torch.cuda.is_available() else None

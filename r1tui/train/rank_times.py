"""Each rank's own time per step, so that a slow rank stands out under DDP and FSDP.

Every rank's step ends in the same collectives, so the wall time of a step is the same on
every rank: a straggler makes all of them slow, and wall clocks cannot say which one it
is. What differs is the time each rank spends on its own work before it waits for the
others. ``RankClock`` measures, per rank and per optimizer step:

- ``compute_s``: from the start of the model's forward on this rank to the moment its
  backward produced its last gradient (the gradient of the input embeddings' output, or
  the last trainable parameter's gradient to be accumulated), summed over the step's
  micro-batches. Under DDP the gradients are all-reduced after that point (the wait is
  in DDP's end-of-backward), so this is the rank's own compute. On CUDA it is timed with
  CUDA events on the stream the work ran on, not with the host's clock, which runs
  ahead of the GPU. Under FSDP each layer's forward and backward wait for that layer's
  all-gather, so the ranks are kept in step layer by layer and their compute times even
  out; there a slow GPU shows in its utilisation and clocks, and a slow host in
  ``data_s``.
- ``data_s``: the time spent batching this rank's rows (the collator, which runs in the
  training process: ``dataloader_num_workers = 0``).
- ``tokens``: the real (unpadded) tokens of the batches this rank's forward passes took
  in (counted at the forward, not at the collator: the dataloader batches one step ahead
  at an epoch's start); uneven sequence lengths are the commonest reason for uneven
  compute.

At each logging step every rank hands its window to rank 0 (``gather``: one
``all_gather_object``), which writes them as one ``ranks`` event.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any


class _Interval:
    """One micro-batch's compute: a start mark, and an end mark moved on by every gradient."""

    def __init__(self, cuda: Any | None):
        self.cuda = cuda
        self.start = self._mark()
        self.end: Any = None

    def _mark(self) -> Any:
        if self.cuda is None:
            return time.perf_counter()
        event = self.cuda.Event(enable_timing=True)
        event.record()  # on the current stream: the one the work is queued on
        return event

    def finish(self) -> None:
        if self.cuda is None:
            self.end = time.perf_counter()
        else:
            if self.end is None:
                self.end = self.cuda.Event(enable_timing=True)
            self.end.record()  # recorded again by each later gradient: the last one counts

    def seconds(self) -> float | None:
        if self.end is None:
            return None  # a forward without a backward (cannot happen in training; never guessed)
        if self.cuda is None:
            return self.end - self.start
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1000.0


class RankClock:
    """Hooks on one rank's model and collator; ``take`` returns the window since the last call."""

    def __init__(self, rank: int, cuda: Any | None = None, host: str | None = None):
        self.rank = rank
        self.host = host or socket.gethostname()
        self.cuda = cuda
        self._model: Any = None
        self._handles: list[Any] = []
        self._open: list[_Interval] = []  # this step's micro-batches
        self.evaluating = False  # set by the callback around an evaluation: its batches are not training's
        self._reset()

    def _reset(self) -> None:
        self.steps = 0
        self.compute_s = 0.0
        self.data_s = 0.0
        self._tokens: list[Any] = []  # per forward: a count, or a device tensor read at ``take``

    # -- the hooks
    def attach(self, model: Any) -> None:
        """Time ``model``'s training forward passes and the backward each one leads to."""
        self.detach()
        self._model = model
        self._handles.append(model.register_forward_pre_hook(self._forward_starts, with_kwargs=True))
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if embeddings is not None:
            self._handles.append(embeddings.register_forward_hook(self._watch_embeddings))
        for parameter in model.parameters():
            if parameter.requires_grad:
                self._handles.append(parameter.register_post_accumulate_grad_hook(self._gradient_done))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _training(self) -> bool:
        import torch

        return self._model is not None and self._model.training and torch.is_grad_enabled()

    def _forward_starts(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if not self._training():
            return
        self._open.append(_Interval(self.cuda))
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
        if mask is not None:
            self._tokens.append(mask.sum())  # stays on the device: no sync per forward
        elif ids is not None:
            self._tokens.append(ids.numel())

    def _watch_embeddings(self, module: Any, args: Any, output: Any) -> None:
        if self._training() and getattr(output, "requires_grad", False):
            output.register_hook(self._embedding_gradient)

    def _embedding_gradient(self, grad: Any) -> None:
        self._gradient_done()

    def _gradient_done(self, *_: Any) -> None:
        if self._open:
            self._open[-1].finish()

    def collate(self, collator: Callable[[Sequence[dict[str, Any]]], dict[str, Any]]
                ) -> Callable[[Sequence[dict[str, Any]]], dict[str, Any]]:
        """``collator``, timed while it batches training rows (not evaluation's); the time
        counts in the step during which the batching ran."""

        def timed(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
            started = time.perf_counter()
            batch = collator(rows)
            if not self.evaluating:
                self.data_s += time.perf_counter() - started
            return batch

        return timed

    # -- the windows
    def step_ended(self) -> None:
        """Close this step's micro-batches (after the step's last collective: the CUDA events are done)."""
        for interval in self._open:
            seconds = interval.seconds()
            if seconds is not None:
                self.compute_s += seconds
        self._open.clear()
        self.steps += 1

    def take(self) -> dict[str, Any]:
        """This rank's means per step since the last ``take``, then a new window."""
        steps = max(self.steps, 1)
        tokens = sum(int(count) for count in self._tokens)  # a logging step: one sync is nothing here
        window = {"rank": self.rank, "host": self.host, "steps": self.steps,
                  "compute_s": round(self.compute_s / steps, 6), "data_s": round(self.data_s / steps, 6),
                  "tokens": round(tokens / steps, 1)}
        self._reset()
        return window


def gather(window: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's window, on every rank, in rank order (every rank must call this)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [window]
    windows: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(windows, window)
    return sorted((w for w in windows if isinstance(w, dict)), key=lambda w: w["rank"])

"""Why a run crashed or failed: its exit, the last lines of its log, and a hint.

``diagnose(layout, state, config)`` reads three things a run leaves behind:

- ``exit.json`` (``RunLayout.exit_record``), written by the pipeline process as it exits
  with its exit code (0 finished, 1 failed, 130 cancelled). A process killed by a signal
  writes nothing: SIGKILL from a person or a script, or the kernel's OOM killer. With no
  ``run_finished`` and no exit record for the latest attempt, that is the inference
  ("the process is gone without a finish event"), from the run folder alone (no dmesg).
- ``pipeline.log``, the pipeline's stdout and stderr: its last lines are shown, and the
  whole tail is searched for the common causes.
- the folded event log (``RunState``): status, error, the latest loss.

Hints, most specific first: CUDA out of memory (with the calculator's largest
``model.max_seq_length`` that fits the run's GPU, ``r1tui.calculator``), a disk full
(with what is free now and the space the failed step needed), a NaN or inf loss, a crash
in native code, a killed process. Plain Python: the CLI prints it, the dashboard shows it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.present import format_bytes, format_duration
from r1tui.runs.disk import free_bytes
from r1tui.runs.layout import RunLayout
from r1tui.runs.reducer import RunState

if TYPE_CHECKING:
    from r1tui.config import Config

TAIL_LINES = 12  # log lines a diagnosis shows
TAIL_BYTES = 256 * 1024  # how much of the log's end is searched for a cause
KILLED = "the process is gone without a finish event (killed? e.g. SIGKILL or the OOM killer)"

_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED",
                  re.IGNORECASE)
_DISK = re.compile(r"No space left on device|ENOSPC|\[Errno 28\]|not enough disk space|disk holding .* is full",
                   re.IGNORECASE)
_NEEDS = re.compile(r"\b(?:needs|needs about|takes)\s+(?:about\s+)?(\d+(?:\.\d+)?\s?[kMGT]?B)\b")
_NATIVE = re.compile(r"Fatal Python error: (Segmentation fault|Aborted|Bus error|Floating point exception)")
# the tracebacks' last line names the exception: shown as the headline's detail
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*")


@dataclass(frozen=True)
class Diagnosis:
    status: str  # "crashed" | "failed"
    headline: str  # "exit code 1", "killed by SIGKILL", or the inference when nothing was recorded
    cause: str  # "cuda_oom" | "disk_full" | "nan_loss" | "native_crash" | "killed" | "stuck" | "error"
    hint: str  # what to do about it ("" when the cause is not one of the common ones)
    error: str | None = None  # the run's own error line, when it recorded one
    log_tail: list[str] = field(default_factory=list)  # the last lines of pipeline.log
    exit_code: int | None = None  # from exit.json, when the process wrote it

    def lines(self, with_tail: bool = True) -> list[str]:
        """Plain lines for a terminal: the headline, the error, the hint, the log's end."""
        out = [f"{self.status}: {self.headline}"]
        if self.error:
            out.append(f"error: {self.error}")
        if self.hint:
            out.append(f"hint: {self.hint}")
        if with_tail and self.log_tail:
            out.append("last lines of pipeline.log:")
            out.extend(f"  {line}" for line in self.log_tail)
        return out


def read_exit(layout: RunLayout, state: RunState) -> dict[str, Any] | None:
    """The exit record of the latest attempt: one written by that attempt's process (its pid
    is the run_started pid) no earlier than it started; else None (a record from an
    earlier attempt says nothing about this one)."""
    try:
        record = json.loads(layout.exit_record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("code"), int):
        return None
    if state.pid is not None and record.get("pid") != state.pid:
        return None
    ts = record.get("ts")
    if state.attempt_started_ts is not None and isinstance(ts, (int, float)) and ts < state.attempt_started_ts:
        return None
    return record


def log_tail(path: Path, lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The last ``lines`` non-empty lines of a log (reading at most its last ``max_bytes``)."""
    text = _tail_text(path, max_bytes)
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return kept[-lines:] if lines else kept


def _tail_text(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def diagnose(layout: RunLayout, state: RunState, config: Config | None = None, *,
             now: float | None = None, tail_lines: int = TAIL_LINES) -> Diagnosis | None:
    """Why the run crashed or failed; None when it did neither (running, finished, cancelled)."""
    status = state.status
    if status not in ("crashed", "failed"):
        return None
    text = _tail_text(layout.pipeline_log, TAIL_BYTES)
    tail = [line.rstrip() for line in text.splitlines() if line.strip()][-tail_lines:]
    error = state.finished_error or state.attempt_error
    record = read_exit(layout, state)
    exit_code = record["code"] if record else None
    if exit_code is not None:
        headline = f"exit code {exit_code}"
    elif status == "failed":
        headline = "failed (no exit code recorded)"
    elif state.stuck:
        silent = state.silence_s(now) if now is not None else None
        headline = ("the process is alive but its log went silent" +
                    (f" {format_duration(silent)} ago" if silent is not None else "") + " (stuck)")
    else:
        headline = KILLED
    searched = "\n".join(filter(None, [error or "", text]))
    cause, hint = _cause(layout, state, config, searched, record, status)
    if not error and cause not in ("killed", "stuck"):
        error = _last_exception(tail)
    return Diagnosis(status, headline, cause, hint, error, tail, exit_code)


def _last_exception(tail: list[str]) -> str | None:
    for line in reversed(tail):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


def _cause(layout: RunLayout, state: RunState, config: Config | None, text: str,
           record: dict[str, Any] | None, status: str) -> tuple[str, str]:
    run = layout.run_id
    resume = f"then `r1tui run --resume {run}`"
    if _OOM.search(text):
        return "cuda_oom", _oom_hint(state, config, resume)
    if _DISK.search(text):
        return "disk_full", _disk_hint(layout, text, resume)
    if state.nonfinite_loss is not None:
        step, kind = state.nonfinite_loss
        at = f" at step {int(step)}" if step is not None else ""
        return "nan_loss", (f"the loss became {kind}{at}: training diverged; lower train.learning_rate (or raise "
                            f"train.warmup_ratio), {resume} continues from the last checkpoint "
                            "before it")
    native = _NATIVE.search(text)
    if native:
        return "native_crash", (f"the process crashed in native code ({native.group(1)}); the traceback above "
                                f"says where; {resume} continues from the last checkpoint")
    if status == "crashed" and state.stuck:
        return "stuck", f"stop it with `r1tui cancel {run}`, {resume}"
    if status == "crashed" and record is None:
        return "killed", ("nothing was written as it ended: a signal killed it (kill -9 from a person or a "
                          "script, or the kernel's OOM killer when host RAM and swap ran out; Unsloth offloads "
                          f"activations to host RAM, so watch free memory); {resume} continues from the last "
                          "checkpoint")
    return "error", (f"fix what the error says, {resume}" if status == "failed" else f"{resume} continues")


def _oom_hint(state: RunState, config: Config | None, resume: str) -> str:
    base = "CUDA ran out of memory"
    if config is None:
        return f"{base}: lower model.max_seq_length or train.per_device_batch_size, {resume}"
    from r1tui import calculator

    measured = state.gpu.memory_total if state.gpus else None
    try:
        fits = calculator.largest_fitting_seq_len(config, backend=state.backend, gpu_memory_bytes=measured)
    except Exception:  # noqa: BLE001 - an unusable architecture: the plain hint still helps
        return f"{base}: lower model.max_seq_length or train.per_device_batch_size, {resume}"
    card = format_bytes(measured) if measured else f"{config.hardware.gpu_memory_gb:g} GB"
    now = config.model.max_seq_length
    batch = config.train.per_device_batch_size
    if fits <= 0:
        return (f"{base}: by the calculator no sequence length fits {card} at batch {batch}, rank "
                f"{config.lora.r}; lower train.per_device_batch_size or lora.r, or load in 4 bit, {resume}")
    advice = (f"set model.max_seq_length to {fits} or less" if fits < now else
              "the estimate says it fits: lower train.per_device_batch_size, or close what else uses the GPU")
    return (f"{base}: the calculator's largest max_seq_length that fits {card} at batch {batch}, rank "
            f"{config.lora.r} is {fits} (now {now}); {advice}, {resume}")


def _disk_hint(layout: RunLayout, text: str, resume: str) -> str:
    free = format_bytes(free_bytes(layout.root))
    needs = _NEEDS.findall(text)
    need = f"; the step needed {needs[-1]}" if needs else ""
    return (f"the disk holding {layout.root.parent} is full ({free} free now{need}): free that much or move "
            f"runs.dir to a larger disk, {resume}")

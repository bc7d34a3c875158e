"""Events as readable one-line text (for `r1tui logs`); plain strings, no terminal code.
Numbers are shown as everywhere else (r1tui.present)."""

from __future__ import annotations

import time
from typing import Any

from r1tui.present import format_bytes, format_duration
from r1tui.runs.events import Event


def _num(value: Any, fmt: str = "{:.4g}") -> str:
    if value is None:
        return "N/A"
    if isinstance(value, float):
        return fmt.format(value)
    return str(value)


def describe(event: Event) -> str:
    """What happened, without the time and stage prefix."""
    d = event.data
    kind = event.type
    if kind == "run_started":
        extra = " (resumed)" if d.get("resumed") else ""
        return f"run {d.get('run_id')} started{extra}: stages {', '.join(d.get('stages') or [])}, pid {d.get('pid')}"
    if kind == "run_finished":
        text = f"run {d.get('status')}"
        if d.get("error"):
            text += f": {d['error']}"
        return text
    if kind == "stage_started":
        inputs = {k: v for k, v in (d.get("inputs") or {}).items() if v not in (None, "", [], {})}
        shown = ", ".join(f"{k}={v}" for k, v in list(inputs.items())[:4])
        return "started" + (f" ({shown})" if shown else "")
    if kind == "stage_finished":
        outputs = d.get("outputs") or {}
        text = f"{d.get('status')} in {format_duration(d.get('duration_s'))}"
        if outputs.get("reason"):
            text += f": {outputs['reason']}"
        return text
    if kind == "stage_progress":
        total = d.get("total")
        done = f"{d.get('completed')}/{total}" if total else f"{d.get('completed')}"
        return f"{done} {d.get('unit', '')}".rstrip() + (f" {d['message']}" if d.get("message") else "")
    if kind == "metric":
        parts = [f"step {d.get('step')}/{d.get('max_steps') or '?'}", f"loss {_num(d.get('loss'), '{:.4f}')}",
                 f"lr {_num(d.get('learning_rate'), '{:.3g}')}", f"grad {_num(d.get('grad_norm'), '{:.3f}')}",
                 f"{_num(d.get('tokens_per_s'), '{:.0f}')} tok/s", f"eta {format_duration(d.get('eta_s'))}"]
        if d.get("cuda_peak") is not None:
            parts.append(f"vram peak {format_bytes(d.get('cuda_peak'))}")
        return "  ".join(parts)
    if kind == "gpu":
        from r1tui.gpu import format_sample

        return format_sample(d)
    if kind == "artifact":
        size = f" ({format_bytes(d['bytes'])})" if d.get("bytes") is not None else ""
        return f"{d.get('kind')}: {d.get('path')}{size}"
    if kind == "error":
        return f"error: {d.get('message')}"
    if kind == "log":
        level = d.get("level", "info")
        return f"{level}: {d.get('message')}" if level not in ("info",) else str(d.get("message"))
    if kind == "heartbeat":
        return "heartbeat"
    return str(d)


def format_event(event: Event) -> str:
    """``HH:MM:SS stage   text`` for one event."""
    when = time.strftime("%H:%M:%S", time.localtime(event.ts)) if event.ts else "--:--:--"
    return f"{when} {(event.stage or 'run'):<8} {describe(event)}"

"""GPU: VRAM used/total as a gauge and a history, utilisation, temperature.

Two sources: the run's own ``gpu`` events (what the training process saw), and this
machine's NVML sampled by the dashboard while the panel is visible. Either can say
clearly that there is no GPU.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from r1tui.dashboard.format import bar
from r1tui.dashboard.widgets.base import Panel
from r1tui.present import format_bytes
from r1tui.runs.reducer import GpuState

SAMPLE_SECONDS = 2.0


def gpu_text(gpu: GpuState, title: str, empty: str) -> Text:
    text = Text()
    text.append(f"{title}\n", style="bold")
    if gpu.available is None:
        text.append(empty, style="dim")
        return text
    if not gpu.available:
        text.append("no GPU", style="bold yellow")
        if gpu.reason:
            text.append(f" — {gpu.reason}", style="dim")
        return text
    text.append(f"{gpu.name or 'GPU'}\n")
    used, total = gpu.memory_used, gpu.memory_total
    fraction = used / total if used is not None and total else None
    text.append("VRAM ")
    text.append_text(bar(fraction, 24, "red" if fraction and fraction > 0.9 else "green"))
    text.append(f" {format_bytes(used)} / {format_bytes(total)}" + (f" ({fraction:.0%})" if fraction is not None else "") + "\n")
    util = gpu.utilization
    text.append("util ")
    text.append_text(bar(util / 100 if util is not None else None, 24, "cyan"))
    text.append(f" {util:.0f}%" if util is not None else " N/A")
    text.append(f" · {gpu.temperature:.0f} °C" if gpu.temperature is not None else " · temp N/A")
    return text


class GpuPanel(Panel):
    PANEL_ID = "gpu"
    TITLE = "GPU"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.local = GpuState()
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical(id="gpu-run"):
            yield Static(id="gpu-run-text")
            yield Sparkline([], id="gpu-run-history")
        with Vertical(id="gpu-local"):
            yield Static(id="gpu-local-text")
            yield Sparkline([], id="gpu-local-history")

    def on_show(self) -> None:
        super().on_show()
        if self.dashboard.sample_local_gpu:
            self._stop.clear()
            self.sample_local()

    def on_hide(self) -> None:
        self._stop.set()

    def on_unmount(self) -> None:
        self._stop.set()

    @work(thread=True, exclusive=True, group="nvml", exit_on_error=False)
    def sample_local(self) -> None:
        from r1tui.gpu import sample as nvml_sample

        while not self._stop.is_set():
            sample = nvml_sample()
            self.app.call_from_thread(self._local_sample, sample)
            if not sample.get("available"):
                return  # no GPU will appear while we watch
            self._stop.wait(SAMPLE_SECONDS)

    def _local_sample(self, sample: dict[str, Any]) -> None:
        import time

        self.local.apply_sample(sample, time.time())
        self.refresh_view()

    def refresh_view(self) -> None:
        state = self.dashboard.state
        empty = "no gpu samples in this run's log" if self.dashboard.run_ref else "no run yet"
        run_text = gpu_text(state.gpu, "from the run's log", empty)
        for index, other in sorted(state.gpus.items())[1:]:
            run_text.append(f"\nGPU {index} {other.name}: {format_bytes(other.memory_used)} / {format_bytes(other.memory_total)}"
                            + (f" · {other.utilization:.0f}%" if other.utilization is not None else ""))
        self.query_one("#gpu-run-text", Static).update(run_text)
        self._history("#gpu-run-history", state.gpu)
        local_empty = "sampling NVML…" if self.dashboard.sample_local_gpu else "local sampling off"
        self.query_one("#gpu-local-text", Static).update(gpu_text(self.local, "this machine now (NVML)", local_empty))
        self._history("#gpu-local-history", self.local)

    def _history(self, selector: str, gpu: GpuState) -> None:
        sparkline = self.query_one(selector, Sparkline)
        history = list(gpu.memory_history)[-200:]
        sparkline.display = bool(gpu.available and history)
        sparkline.data = history

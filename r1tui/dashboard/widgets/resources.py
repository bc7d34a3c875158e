"""Resources: each GPU as nvitop shows it (utilisation, memory, temperature, power, clocks,
with history), the processes holding GPU memory with the run's own marked, and the CPU and
memory of the run's process tree; the run's own GPU samples from its log beside them; and
under several ranks each rank's own time per step from the log's ``ranks`` events, the
ranks the others wait for marked.

Two sources: the run's ``gpu`` events (what the training process saw, wherever it ran),
and this machine sampled by the dashboard (``r1tui.dashboard.monitor``) while this panel
or the Overview is visible. Without a GPU the host side is still shown, and the panel
says plainly that no GPU was found and why.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual.worker import get_current_worker

from r1tui.dashboard.format import bar
from r1tui.dashboard.monitor import (
    SAMPLE_SECONDS,
    GpuHistory,
    ResourceMonitor,
    ResourceSample,
    Target,
    remaining_stages,
)
from r1tui.dashboard.widgets.base import Panel
from r1tui.pipeline import registry
from r1tui.present import MISSING, format_bytes
from r1tui.runs.reducer import SLOW_RANK_RATIO, GpuState, RankTimes

SPARKS = "▁▂▃▄▅▆▇█"
NOT_SAMPLED = "this machine is not sampled (--no-gpu-sampling)"


def spark(values: Sequence[float], width: int, top: float | None = None, relative: bool = False) -> Text:
    """The last ``width`` values as a one-line sparkline, from 0 to ``top`` (else their max);
    ``relative``: from their min to their max (a loss, whose shape matters, not its zero)."""
    values = list(values)[-max(1, width):]
    if not values:
        return Text("")
    floor = min(values) if relative else 0.0
    span = ((top if top else max(values)) - floor) or 1.0
    return Text("".join(SPARKS[max(0, min(7, int((v - floor) / span * 7.999)))] for v in values), style="cyan")


def _show(value: Any, fmt: str) -> str:
    return MISSING if value is None else fmt.format(value)


def gpu_lines(sample: dict[str, Any], history: GpuHistory | None, width: int) -> Text:
    """One GPU from this machine's NVML: a header line, then memory, utilisation, and
    temperature, power and clocks, each with its history when there is room."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"GPU {sample.get('index', 0)} ", style="bold")
    text.append(f"{sample.get('name') or MISSING}\n")
    gauge = max(8, min(30, width // 4))
    spark_width = max(0, width - gauge - 32)
    used, total = sample.get("memory_used"), sample.get("memory_total")
    fraction = used / total if used is not None and total else None
    text.append("MEM  ")
    text.append_text(bar(fraction, gauge, "red" if fraction and fraction > 0.95 else "green"))
    text.append(f" {format_bytes(used)}/{format_bytes(total)}".ljust(22))
    if history is not None and spark_width:
        text.append_text(spark(history.memory_used, spark_width, total))
    util = sample.get("utilization")
    text.append("\nUTIL ")
    text.append_text(bar(util / 100 if util is not None else None, gauge, "cyan"))
    text.append(f" {_show(util, '{}%')}".ljust(22))
    if history is not None and spark_width:
        text.append_text(spark(history.utilization, spark_width, 100))
    power, limit = sample.get("power_w"), sample.get("power_limit_w")
    text.append(f"\nTEMP {_show(sample.get('temperature'), '{} °C')} · POWER {_show(power, '{:.0f}')}"
                f"/{_show(limit, '{:.0f} W')} · SM {_show(sample.get('clock_sm_mhz'), '{}')}"
                f"/{_show(sample.get('clock_sm_max_mhz'), '{} MHz')} · MEM {_show(sample.get('clock_mem_mhz'), '{}')}"
                f"/{_show(sample.get('clock_mem_max_mhz'), '{} MHz')}")
    if history is not None and history.power_w and width >= 100:
        text.append("  ")
        text.append_text(spark(history.power_w, max(8, width - 100), limit))
    return text


def process_table(gpus: Sequence[dict[str, Any]], run_pids: frozenset[int], names: dict[int, str]) -> Table | Text:
    """Every process holding GPU memory, the run's own marked ◀ run."""
    rows = [(g.get("index", 0), p) for g in gpus if g.get("available") for p in (g.get("processes") or [])]
    listed = any(g.get("processes") is not None for g in gpus if g.get("available"))
    if not rows:
        return Text("no process holds GPU memory" if listed else "NVML does not list the GPU's processes here",
                    style="dim")
    table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
    for column, justify in (("gpu", "right"), ("pid", "right"), ("GPU memory", "right"), ("process", "left"),
                            ("", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    for index, process in rows:
        pid = process["pid"]
        mine = pid in run_pids
        table.add_row(str(index), str(pid), format_bytes(process.get("memory_used")), names.get(pid, "?"),
                      Text("◀ run", style="bold green") if mine else Text(""), style="bold" if mine else "")
    return table


def host_lines(sample: ResourceSample | None, monitor: ResourceMonitor, run_open: bool, width: int) -> Text:
    """The run's process tree (CPU, RSS, swap, with history) and this machine's memory."""
    text = Text(no_wrap=True, overflow="ellipsis")
    tree = sample.tree if sample is not None else None
    text.append("run's processes ", style="bold")
    if tree is None or not tree.alive:
        text.append("none running" if run_open else "no run open", style="dim")
    else:
        cpu = tree.cpu_percent
        text.append(f"{len(tree.processes)} (pid {tree.root}) · CPU {_show(cpu, '{:.0f}%')} · RSS "
                    f"{format_bytes(tree.rss)} · swap {format_bytes(tree.swap)}")
        if monitor.tree_rss and width >= 100:
            text.append("  ")
            text.append_text(spark(monitor.tree_rss, max(8, width - 90)))
    host = sample.host if sample is not None else None
    text.append("\nthis machine    ", style="bold")
    if host is None:
        text.append(MISSING)
    else:
        text.append(f"RAM {format_bytes(host.used)}/{format_bytes(host.total)} · swap "
                    f"{format_bytes(host.swap_used)}/{format_bytes(host.swap_total)} · {host.cpu_count} CPUs")
    return text


def log_gpu_text(gpu: GpuState, extra: dict[int, GpuState], empty: str, width: int) -> Text:
    """The GPU as the run's own samples saw it (its ``gpu`` events)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("from the run's log ", style="bold")
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
    gauge = max(8, min(30, width // 4))
    text.append("MEM  ")
    text.append_text(bar(fraction, gauge, "red" if fraction and fraction > 0.95 else "green"))
    text.append(f" {format_bytes(used)} / {format_bytes(total)}" + (f" ({fraction:.0%})" if fraction is not None else ""))
    text.append("\nUTIL ")
    util = gpu.utilization
    text.append_text(bar(util / 100 if util is not None else None, gauge, "cyan"))
    text.append(f" {util:.0f}%" if util is not None else f" {MISSING}")
    text.append(f" · {gpu.temperature:.0f} °C" if gpu.temperature is not None else f" · {MISSING} °C")
    if gpu.memory_history:
        text.append("\nVRAM history ")
        text.append_text(spark(gpu.memory_history, max(8, width - 20), total))
    for index, other in sorted(extra.items()):
        text.append(f"\nGPU {index} {other.name}: {format_bytes(other.memory_used)} / {format_bytes(other.memory_total)}"
                    + (f" · {other.utilization:.0f}%" if other.utilization is not None else ""))
    return text


def rank_text(times: RankTimes, width: int) -> Text | Table:
    """Every rank's own time per step at the latest logging step (several ranks only): its
    compute, its batching, its tokens, how it compares with the fastest rank, and a
    sparkline of its history; the ranks the others wait for in bold red."""
    if not times.ranks:
        return Text("")
    ratios, slow = times.ratios(), set(times.slow_ranks())
    wall = f" · a step takes {times.step_s:.3g} s on every rank" if times.step_s else ""
    table = Table(title=f"ranks at step {times.step}{wall}", title_justify="left", box=None,
                  show_edge=False, pad_edge=False, padding=(0, 1), expand=False)
    for name, justify in (("rank", "right"), ("host", "left"), ("compute s", "right"), ("batching s", "right"),
                          ("tokens", "right"), ("× fastest", "right"), ("history", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    spark_width = max(4, min(24, width - 72))
    for rank in times.ranks:
        style = "bold red" if rank.rank in slow else ""
        table.add_row(str(rank.rank), rank.host, f"{rank.compute_s:.3g}", f"{rank.data_s:.2g}",
                      f"{rank.tokens:,.0f}", f"{ratios[rank.rank]:.2f}" + (" slow" if rank.rank in slow else ""),
                      spark(times.history.get(rank.rank, ()), spark_width), style=style)
    if slow:
        names = ", ".join(f"rank {r} ({ratios[r]:.1f}×)" for r in sorted(slow))
        note = Text(f"{names}: the other ranks wait for it at every step", style="bold red")
    else:
        note = Text(f"no rank stands out (within {SLOW_RANK_RATIO:.2f}× of the fastest)", style="dim")
    if times.strategy == "fsdp":
        note.append("\nunder FSDP every layer waits for its all-gather, so compute evens out across ranks: "
                    "a slow GPU shows in its utilisation and clocks above", style="dim")
    grid = Table.grid()
    grid.add_row(table)
    grid.add_row(note)
    return grid


class SamplesResources(Panel):
    """A panel that needs this machine sampled while it is visible (Overview, Resources).

    The app's one ``ResourceMonitor`` is shared: the first panel shown starts the thread
    worker, and it stops once no such panel is visible.
    """

    @property
    def monitor(self) -> ResourceMonitor:
        return self.dashboard.monitor

    def on_show(self) -> None:
        super().on_show()
        if self.dashboard.sample_local_gpu:
            self.monitor.watchers.add(self.PANEL_ID)
            _start_sampling(self.dashboard)

    def on_hide(self) -> None:
        self.monitor.watchers.discard(self.PANEL_ID)

    def on_unmount(self) -> None:
        self.monitor.watchers.discard(self.PANEL_ID)
        self.monitor.stop.set()  # the app is closing: the sampler must not sleep on

    def reset_for_run(self) -> None:
        self.monitor.reset()

    def refresh_samples(self) -> None:
        """A new sample of this machine arrived: redraw what shows it."""
        self.refresh_view()


_lock = threading.Lock()


def _start_sampling(app: Any) -> None:
    """Start the sampler worker unless one runs (it samples at once, then every SAMPLE_SECONDS)."""
    monitor: ResourceMonitor = app.monitor
    with _lock:
        if monitor.worker is not None and not monitor.worker.is_finished:
            return
        stop = monitor.stop = threading.Event()

        def loop() -> None:
            worker = get_current_worker()
            while monitor.watchers and not stop.is_set() and not worker.is_cancelled:
                try:
                    target = app.call_from_thread(_target, app)
                    sample = monitor.sample(target)
                    app.call_from_thread(_sampled, app, sample)
                except Exception:  # noqa: BLE001 - the app is closing; nothing to draw on
                    return
                stop.wait(SAMPLE_SECONDS)

        monitor.worker = app.run_worker(loop, thread=True, group="resources", exit_on_error=False,
                                        name="resources")


def _target(app: Any) -> Target:
    layout = app.run_ref.layout if app.run_ref is not None else None
    remaining = remaining_stages(app.state, registry.stage_names()) if layout is not None else ()
    return Target(layout, app.runs_dir, app.config, remaining, gpu=app.sample_local_gpu)


def _sampled(app: Any, sample: ResourceSample) -> None:
    app.monitor.apply(sample)
    main = app.main
    panel = main.active_panel() if main is not None else None
    if isinstance(panel, SamplesResources):
        panel.refresh_samples()


class ResourcesPanel(SamplesResources):
    PANEL_ID = "resources"
    TITLE = "Resources"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="resources-scroll"):
            yield Static(id="resources-gpus")
            yield Static(id="resources-processes")
            yield Static(id="resources-ranks")
            yield Static(id="resources-host")
            yield Static(id="resources-log")

    def refresh_view(self) -> None:
        app = self.dashboard
        width = max(40, (self.size.width or 80) - 2)
        sample = self.monitor.latest
        gpus = self.query_one("#resources-gpus", Static)
        processes = self.query_one("#resources-processes", Static)
        names: dict[int, str] = {}
        run_pids: frozenset[int] = frozenset()
        if sample is not None:
            names = {p["pid"]: p.get("name") or "?" for g in sample.gpus for p in g.get("processes") or []}
            if sample.tree is not None:
                run_pids = sample.tree.pids
        if not app.sample_local_gpu:
            gpus.update(Text(NOT_SAMPLED, style="dim"))
            processes.display = False
        elif sample is None:
            gpus.update(Text("sampling this machine…", style="dim"))
            processes.display = False
        elif not any(g.get("available") for g in sample.gpus):
            reason = next((g.get("reason") for g in sample.gpus if g.get("reason")), None) or "NVML found no GPU"
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append("no GPU found", style="bold yellow")
            text.append(f" on this machine — {reason}", style="dim")
            gpus.update(text)
            processes.display = False
        else:
            text = Text(no_wrap=True, overflow="ellipsis")
            for i, gpu in enumerate(g for g in sample.gpus if g.get("available")):
                if i:
                    text.append("\n")
                text.append_text(gpu_lines(gpu, self.monitor.gpus.get(int(gpu.get("index", 0))), width))
            gpus.update(text)
            processes.display = True
            processes.update(process_table(sample.gpus, run_pids, names))
        ranks = self.query_one("#resources-ranks", Static)
        ranks.display = bool(app.state.rank_times.ranks)
        if ranks.display:
            ranks.update(rank_text(app.state.rank_times, width))
        host = self.query_one("#resources-host", Static)
        host.display = app.sample_local_gpu
        if app.sample_local_gpu:
            host.update(host_lines(sample, self.monitor, app.run_ref is not None, width))
        state = app.state
        empty = "no gpu samples in this run's log" if app.run_ref else "no run yet"
        others = dict(sorted(state.gpus.items())[1:])
        self.query_one("#resources-log", Static).update(log_gpu_text(state.gpu, others, empty, width))


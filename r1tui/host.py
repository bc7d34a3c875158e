"""This machine's side of a run: the CPU and memory of a process tree, host memory, free disk.

Plain Python over psutil (no Textual, no torch): the dashboard's Overview and Resources
panels read it from a sampler thread, tests read it on this machine's real processes.
Like ``r1tui.gpu``, nothing here raises for a process that vanished or a field the
kernel will not show: the figure is ``None`` (shown as N/A).

CPU percentages are measured between two samples (psutil's ``cpu_percent(None)``), so a
``ProcessTreeSampler`` keeps the ``psutil.Process`` objects it saw: the first sample of
a process says ``None``, later ones the share of one core since the sample before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from r1tui.runs.disk import free_bytes


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    name: str
    cpu_percent: float | None  # share of one core since the previous sample (None on the first)
    rss: int | None  # resident memory, bytes
    swap: int | None  # swapped-out memory, bytes (None where the kernel does not say)


@dataclass(frozen=True)
class TreeSample:
    """A process and all its descendants, summed (``alive`` False: the root is gone)."""

    root: int
    alive: bool
    processes: tuple[ProcessSample, ...] = ()

    @property
    def pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.processes)

    @property
    def rss(self) -> int | None:
        values = [p.rss for p in self.processes if p.rss is not None]
        return sum(values) if values else None

    @property
    def swap(self) -> int | None:
        values = [p.swap for p in self.processes if p.swap is not None]
        return sum(values) if values else None

    @property
    def cpu_percent(self) -> float | None:
        values = [p.cpu_percent for p in self.processes if p.cpu_percent is not None]
        return sum(values) if values else None


@dataclass(frozen=True)
class HostMemory:
    total: int
    available: int
    used: int
    swap_total: int
    swap_used: int
    cpu_count: int


@dataclass
class ProcessTreeSampler:
    """Samples a process tree again and again, keeping each process between samples so
    that its CPU share is measured over the interval."""

    _known: dict[int, psutil.Process] = field(default_factory=dict)

    def sample(self, root: int | None) -> TreeSample | None:
        """The tree under ``root`` now; None when there is no pid to look at."""
        if root is None or root <= 0:
            return None
        before = {pid for pid, process in self._known.items() if process.is_running()}
        try:
            top = self._process(root)
            members = [top, *top.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return TreeSample(root=root, alive=False)
        except psutil.AccessDenied:
            members = [self._known[root]] if root in self._known else []
        seen: list[ProcessSample] = []
        for member in members:
            first = member.pid not in before
            process = self._process(member.pid, member)
            sample = _process_sample(process, first)
            if sample is not None:
                seen.append(sample)
        alive_pids = {p.pid for p in seen}
        for pid in list(self._known):
            if pid not in alive_pids and pid != root:
                del self._known[pid]
        return TreeSample(root=root, alive=root in alive_pids, processes=tuple(seen))

    def _process(self, pid: int, given: psutil.Process | None = None) -> psutil.Process:
        known = self._known.get(pid)
        if known is not None and known.is_running():
            return known
        process = given or psutil.Process(pid)
        process.cpu_percent(None)  # starts its CPU clock: the next sample says how busy it was
        self._known[pid] = process
        return process


def _process_sample(process: psutil.Process, first: bool) -> ProcessSample | None:
    try:
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            name = process.name()
            rss = process.memory_info().rss
            cpu = process.cpu_percent(None)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return ProcessSample(process.pid, "?", None, None, None)
    # psutil says 0.0 the first time it sees a process: nothing to measure from yet
    return ProcessSample(process.pid, name, None if first else cpu, rss, _swap(process.pid))


def _swap(pid: int) -> int | None:
    """VmSwap from /proc (cheap; psutil's memory_full_info reads every mapping)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmSwap:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_memory() -> HostMemory:
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    return HostMemory(total=memory.total, available=memory.available, used=memory.total - memory.available,
                      swap_total=swap.total, swap_used=swap.used, cpu_count=os.cpu_count() or 1)


def disk_free(folder: Path) -> int | None:
    """Free bytes on the file system holding ``folder``; None when it cannot be read."""
    try:
        return free_bytes(folder)
    except OSError:
        return None


def process_name(pid: int) -> str:
    """A process's name; "?" when it is gone or hidden (another user's, another container's)."""
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return "?"

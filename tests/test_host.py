"""r1tui.host on this machine's real processes: a spawned process tree is found whole,
its memory and CPU are measured, and a process that ends is said to be gone, never raised."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from r1tui.host import ProcessTreeSampler, disk_free, host_memory, process_name
from r1tui.runs.disk import free_bytes

# A parent that holds 50 MB and busy-loops, and a child that sleeps: a run's writer and a
# worker it started. The parent prints the child's pid, then runs until killed.
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
ballast = bytearray(50_000_000)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print(child.pid, flush=True)
end = time.time() + 120
while time.time() < end:
    pass
"""


@pytest.fixture
def tree():
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    yield parent, child
    for process in (*_alive(parent.pid), *_alive(child)):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    parent.wait(timeout=10)


def _alive(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return []


def test_a_process_tree_is_found_whole_with_its_memory_and_cpu(tree):
    parent, child = tree
    sampler = ProcessTreeSampler()
    first = sampler.sample(parent.pid)
    assert first.alive and first.root == parent.pid
    assert {parent.pid, child} <= first.pids
    assert first.rss is not None and first.rss > 0
    by_pid = {p.pid: p for p in first.processes}
    assert by_pid[parent.pid].rss > 50_000_000  # the ballast is resident
    assert by_pid[parent.pid].name.startswith("python")
    assert first.cpu_percent is None  # nothing to measure from on the first sample
    assert first.swap is not None and first.swap >= 0  # VmSwap from /proc (0 on a machine without swap)
    time.sleep(0.5)
    second = sampler.sample(parent.pid)
    assert second.cpu_percent is not None and second.cpu_percent > 20  # the parent spins
    assert {p.pid: p.cpu_percent for p in second.processes}[child] < 20  # the child sleeps


def test_a_tree_whose_root_ended_is_gone_not_an_error(tree):
    parent, child = tree
    sampler = ProcessTreeSampler()
    assert sampler.sample(parent.pid).alive
    parent.kill()
    parent.wait(timeout=10)
    gone = sampler.sample(parent.pid)
    assert gone is not None and not gone.alive and gone.rss is None and gone.cpu_percent is None
    assert sampler.sample(None) is None and sampler.sample(0) is None


def test_host_memory_and_disk_on_this_machine(tmp_path: Path):
    memory = host_memory()
    assert 0 < memory.used <= memory.total and memory.available <= memory.total
    assert memory.swap_used <= memory.swap_total or memory.swap_total == 0
    assert memory.cpu_count >= 1
    free = disk_free(tmp_path / "not" / "made" / "yet")  # the nearest existing parent's disk
    assert free is not None and abs(free - free_bytes(tmp_path)) < 100_000_000
    assert process_name(psutil.Process().pid).startswith("python") and process_name(2**22 + 7) == "?"

"""NVML sampling: "no GPU" on this machine, N/A per failed query, never an exception.

A machine with a GPU cannot exist here, so the GPU path is exercised through
FakeNvml (tests/fake_nvml.py), a stand-in for the ``pynvml`` module at the NVML boundary.
"""

from __future__ import annotations

import sys
import types

import pytest

from r1tui import gpu
from r1tui.present import format_bytes
from r1tui.runs.events import EventWriter, read_events
from r1tui.train.callback import GpuSampler
from tests.fake_nvml import NVML_CLOCK_MEM, NVML_CLOCK_SM, FakeNvmlError, Process, fake_nvml


@pytest.fixture(autouse=True)
def _fresh_nvml():
    gpu.reset()
    yield
    gpu.reset()


def test_no_gpu_here_is_a_sample_not_an_error():
    samples = gpu.sample_all()
    assert samples == [{"available": False, "reason": gpu.unavailable_reason()}]
    assert gpu.available() is False and gpu.device_count() == 0 and gpu.driver_version() is None
    assert gpu.sample(0)["available"] is False
    assert gpu.format_sample(samples[0]).startswith("no GPU (")


def two_h100s(**changes) -> types.ModuleType:
    """FakeNvml as these tests know it: two H100s of 80 GiB, their name naming the handle,
    with the power limit, clocks and processes the Resources panel shows (the same pid
    twice, compute and graphics, is one process; None: NVML cannot tell its memory)."""
    return fake_nvml(**{"count": 2, "name": lambda handle: f"NVIDIA H100 ({handle})",
                        "memory_total": 80 * 2**30, "memory_used": 20 * 2**30,
                        "clocks": {NVML_CLOCK_SM: 1755, NVML_CLOCK_MEM: 2619},
                        "max_clocks": {NVML_CLOCK_SM: 1980, NVML_CLOCK_MEM: 2619},
                        "compute": [Process(4242, 3 * 2**30), Process(77, None), Process(99, 5 * 2**30)],
                        "graphics": [Process(4242, 2**30)], **changes})


def test_samples_from_a_fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", two_h100s())
    samples = gpu.sample_all()
    assert [s["index"] for s in samples] == [0, 1]
    first = samples[0]
    assert first == {"available": True, "index": 0, "name": "NVIDIA H100 (gpu0)", "memory_used": 20 * 2**30,
                     "memory_total": 80 * 2**30, "utilization": 97, "memory_utilization": 40, "temperature": 71,
                     "power_w": 350.5}
    assert gpu.driver_version() == "580.65"
    assert gpu.format_sample(first) == \
        f"GPU 0 NVIDIA H100 (gpu0): {format_bytes(20 * 2**30)}/{format_bytes(80 * 2**30)}, util 97%, 71°C, 350.5 W"


def test_a_failing_query_of_a_fake_nvml_is_na_not_an_exception(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", two_h100s(fail={"temperature", "power", "rates", "name"}))
    sample = gpu.sample(1)
    assert sample["available"] is True and sample["memory_used"] == 20 * 2**30
    assert sample["temperature"] is None and sample["power_w"] is None and sample["utilization"] is None
    assert gpu.format_sample(sample) == \
        f"GPU 1 N/A: {format_bytes(20 * 2**30)}/{format_bytes(80 * 2**30)}, util N/A, N/A, N/A"


def test_init_failure_of_a_fake_nvml_is_remembered_once(monkeypatch):
    module = two_h100s(init_error=FakeNvmlError("Driver Not Loaded"))
    calls = []
    original = module.nvmlInit
    module.nvmlInit = lambda: (calls.append(1), original())
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert gpu.sample_all() == [{"available": False, "reason": "Driver Not Loaded"}]
    gpu.sample_all()
    assert len(calls) == 1  # lazily initialised, once


def test_sampler_writes_one_no_gpu_event_then_stops(tmp_path):
    with EventWriter(tmp_path / "events.jsonl") as events:
        sampler = GpuSampler(events, interval=0.01)
        sampler.start()
        sampler.join(timeout=10)
        assert not sampler.is_alive()
    written = read_events(tmp_path / "events.jsonl")
    assert [(e.type, e.stage, e.data["available"]) for e in written] == [("gpu", "train", False)]


def test_sampler_keeps_sampling_a_fake_nvml_gpu(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", two_h100s())
    with EventWriter(tmp_path / "events.jsonl") as events:
        sampler = GpuSampler(events, interval=0.01)
        sampler.start()
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(read_events(tmp_path / "events.jsonl")) < 6:
            time.sleep(0.01)
        sampler.stop()
        sampler.join(timeout=10)
    written = read_events(tmp_path / "events.jsonl")
    assert len(written) >= 6 and all(e.type == "gpu" and e.data["available"] for e in written)
    assert {e.data["index"] for e in written} == {0, 1}


def test_sampler_outlives_a_fake_nvml_gpu_that_does_not_answer_once(tmp_path, monkeypatch):
    """FakeNvml at the driver boundary: GPU handles fail for the first poll only; sampling
    must go on (a transient driver hiccup must not end GPU events for the whole run)."""
    module = two_h100s()
    answers = module.nvmlDeviceGetHandleByIndex
    polls = []

    def flaky_handle(index):
        polls.append(index)
        if len(polls) <= 2:  # both GPUs of the first poll
            raise FakeNvmlError("GPU is lost")
        return answers(index)

    module.nvmlDeviceGetHandleByIndex = flaky_handle
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with EventWriter(tmp_path / "events.jsonl") as events:
        sampler = GpuSampler(events, interval=0.01)
        sampler.start()
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(e.data["available"] for e in read_events(tmp_path / "events.jsonl")) < 2:
            time.sleep(0.01)
        sampler.stop()
        sampler.join(timeout=10)
    written = [e.data["available"] for e in read_events(tmp_path / "events.jsonl")]
    assert written[:2] == [False, False] and written.count(True) >= 2


def test_details_with_a_fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", two_h100s())
    assert gpu.details(0) == {
        "power_limit_w": 700.0, "clock_sm_mhz": 1755, "clock_sm_max_mhz": 1980, "clock_mem_mhz": 2619,
        "clock_mem_max_mhz": 2619,
        "processes": [{"pid": 99, "memory_used": 5 * 2**30}, {"pid": 4242, "memory_used": 4 * 2**30},
                      {"pid": 77, "memory_used": None}]}


def test_detailed_samples_add_details_and_events_keep_their_schema_with_a_fake_nvml(monkeypatch):
    from r1tui.runs.events import EVENT_SCHEMA

    monkeypatch.setitem(sys.modules, "pynvml", two_h100s())
    short, detailed = gpu.sample_all(), gpu.sample_all(detailed=True)
    assert all(set(s) <= EVENT_SCHEMA["gpu"] for s in short)  # what the training callback emits
    assert [{k: v for k, v in d.items() if k in s} for d, s in zip(detailed, short, strict=True)] == short
    assert detailed[1]["power_limit_w"] == 700.0 and len(detailed[1]["processes"]) == 3


def test_details_are_na_where_the_driver_or_binding_says_nothing_with_a_fake_nvml(monkeypatch):
    module = two_h100s(fail={"limit", "clock", "compute", "graphics"})
    del module.nvmlDeviceGetMaxClockInfo  # an older binding without the query
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert gpu.details(0) == {"power_limit_w": None, "clock_sm_mhz": None, "clock_sm_max_mhz": None,
                              "clock_mem_mhz": None, "clock_mem_max_mhz": None, "processes": None}


def test_no_details_without_a_gpu():
    assert gpu.details(0) == {}
    assert gpu.sample_all(detailed=True) == gpu.sample_all()

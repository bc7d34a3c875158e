"""FakeNvml: the one stand-in for the ``pynvml`` module, at the NVML boundary.

No GPU can exist on the machines these tests run on (NVML itself is absent), so the GPU
paths of ``r1tui.gpu`` and of the dashboard's Resources and Overview panels are driven by
this module object put in ``sys.modules["pynvml"]``. Everything above it is real. Tests
that use it say "fake" in their names.

    from tests.fake_nvml import fake_nvml  # pytest imports test modules as tests.<path>

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(name="NVIDIA H100"))
    gpu.reset()  # r1tui.gpu initialises NVML once: forget the last one
"""

from __future__ import annotations

import os
import types
from collections import namedtuple
from collections.abc import Callable
from typing import Any

Memory = namedtuple("Memory", "total free used")
Rates = namedtuple("Rates", "gpu memory")
Process = namedtuple("Process", "pid usedGpuMemory")

# NVML's constants, as the real binding numbers them
NVML_TEMPERATURE_GPU, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2


class FakeNvmlError(Exception):
    """What a failing query of the fake raises (the real binding's NVMLError)."""


def fake_nvml(*, count: int = 1, name: str | Callable[[Any], str] = "NVIDIA H100 80GB HBM3",
              memory_total: float = 80e9, memory_used: float = 20e9, utilization: int = 97,
              memory_utilization: int = 40, temperature: int = 71, power_mw: int = 350_500,
              power_limit_mw: int = 700_000, clocks: dict[int, int] | None = None,
              max_clocks: dict[int, int] | None = None, compute: list[Process] | None = None,
              graphics: list[Process] | None = None, driver: bytes = b"580.65",
              fail: set[str] | frozenset[str] = frozenset(), init_error: Exception | None = None) -> types.ModuleType:
    """A ``pynvml`` with ``count`` identical GPUs (handles "gpu0", "gpu1", …).

    ``name`` may be a function of the handle. Clocks are ``{NVML_CLOCK_SM: MHz,
    NVML_CLOCK_MEM: MHz}``; ``compute`` defaults to this process holding 3 GB and pid 1
    holding 1 GB. A query named in ``fail`` raises FakeNvmlError as a flaky driver would
    (names: count, driver, handle, name, memory, rates, temperature, power, limit, clock,
    max_clock, compute, graphics); ``init_error`` is raised by nvmlInit (no driver).
    ``module.shutdowns`` counts nvmlShutdown calls."""
    module = types.ModuleType("pynvml")
    module.NVML_TEMPERATURE_GPU, module.NVML_CLOCK_SM, module.NVML_CLOCK_MEM = (
        NVML_TEMPERATURE_GPU, NVML_CLOCK_SM, NVML_CLOCK_MEM)
    module.shutdowns = 0
    clocks = clocks or {NVML_CLOCK_SM: 1980, NVML_CLOCK_MEM: 2619}
    max_clocks = max_clocks or clocks
    if compute is None:
        compute = [Process(os.getpid(), 3_000_000_000), Process(1, 1_000_000_000)]

    def query(key: str, value: Any) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            if key in fail:
                raise FakeNvmlError(f"{key} not supported")
            return value(*args) if callable(value) else value
        return call

    def init() -> None:
        if init_error is not None:
            raise init_error

    module.nvmlInit = init
    module.nvmlShutdown = lambda: setattr(module, "shutdowns", module.shutdowns + 1)
    module.nvmlDeviceGetCount = query("count", count)
    module.nvmlSystemGetDriverVersion = query("driver", driver)
    module.nvmlDeviceGetHandleByIndex = query("handle", lambda index: f"gpu{index}")
    module.nvmlDeviceGetName = query("name", name if callable(name) else lambda handle: name)
    module.nvmlDeviceGetMemoryInfo = query("memory", Memory(total=memory_total, free=memory_total - memory_used,
                                                            used=memory_used))
    module.nvmlDeviceGetUtilizationRates = query("rates", Rates(gpu=utilization, memory=memory_utilization))
    module.nvmlDeviceGetTemperature = query("temperature", temperature)
    module.nvmlDeviceGetPowerUsage = query("power", power_mw)
    module.nvmlDeviceGetEnforcedPowerLimit = query("limit", power_limit_mw)
    module.nvmlDeviceGetClockInfo = query("clock", lambda handle, clock: clocks[clock])
    module.nvmlDeviceGetMaxClockInfo = query("max_clock", lambda handle, clock: max_clocks[clock])
    module.nvmlDeviceGetComputeRunningProcesses = query("compute", list(compute))
    module.nvmlDeviceGetGraphicsRunningProcesses = query("graphics", list(graphics or []))
    return module


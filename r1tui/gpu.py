"""GPU samples from NVML (the official ``nvidia-ml-py`` binding), never a crash.

NVML is initialised lazily on the first query and only once; a machine without a GPU
(or without the driver library) is remembered as such. Every query returns ``None``
instead of raising, the way nvitop does it, so a flaky driver, a GPU that vanished or
an unsupported field shows as "N/A" and never stops a run or the dashboard.

Sampling is decoupled from drawing: callers ask for a sample when they want one
(the training callback's sampler thread, the dashboard's worker).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

NA = "N/A"
T = TypeVar("T")

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ok": False, "error": None, "nvml": None}


def _nvml():
    """The pynvml module once NVML is initialised, else None (the reason in ``unavailable_reason``)."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                import pynvml

                pynvml.nvmlInit()
                _state.update(ok=True, nvml=pynvml)
            except Exception as exc:  # noqa: BLE001 - any failure here just means "no GPU"
                _state["error"] = _describe(exc)
                log.debug("NVML unavailable: %s", _state["error"])
        return _state["nvml"] if _state["ok"] else None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, ImportError):
        return "nvidia-ml-py is not installed"
    return text or type(exc).__name__


def reset() -> None:
    """Forget the cached NVML state (tests, or after a driver reload)."""
    with _lock:
        nvml = _state["nvml"]
        if nvml is not None:
            _safe(nvml.nvmlShutdown)
        _state.update(tried=False, ok=False, error=None, nvml=None)


def _safe(query: Callable[..., T], *args: Any) -> T | None:
    try:
        return query(*args)
    except Exception:  # noqa: BLE001 - every NVML query may fail on its own; show N/A
        return None


def _call(nvml: Any, name: str, *args: Any) -> Any:
    """``nvml.<name>(*args)``, or None when it fails or this binding has no such query."""
    query = getattr(nvml, name, None)
    return _safe(query, *args) if query is not None else None


def available() -> bool:
    return _nvml() is not None


def unavailable_reason() -> str | None:
    """Why there is no GPU to sample (None when NVML works)."""
    if _nvml() is not None:
        return None
    return _state["error"] or "NVML did not initialise"


def device_count() -> int:
    nvml = _nvml()
    if nvml is None:
        return 0
    return _safe(nvml.nvmlDeviceGetCount) or 0


def driver_version() -> str | None:
    nvml = _nvml()
    if nvml is None:
        return None
    return _text(_safe(nvml.nvmlSystemGetDriverVersion))


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def sample(index: int = 0) -> dict[str, Any]:
    """One GPU's memory, utilisation, temperature and power; None for whatever failed.

    Keys: available, index, name, memory_used, memory_total (bytes), utilization (%),
    memory_utilization (%), temperature (°C), power_w. Without a GPU:
    ``{"available": False, "reason": "..."}``.
    """
    nvml = _nvml()
    if nvml is None:
        return {"available": False, "reason": unavailable_reason()}
    handle = _safe(nvml.nvmlDeviceGetHandleByIndex, index)
    if handle is None:
        return {"available": False, "index": index, "reason": f"GPU {index} did not answer"}
    memory = _safe(nvml.nvmlDeviceGetMemoryInfo, handle)
    rates = _safe(nvml.nvmlDeviceGetUtilizationRates, handle)
    temperature = _safe(nvml.nvmlDeviceGetTemperature, handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    power_mw = _safe(nvml.nvmlDeviceGetPowerUsage, handle)
    return {
        "available": True,
        "index": index,
        "name": _text(_safe(nvml.nvmlDeviceGetName, handle)),
        "memory_used": getattr(memory, "used", None),
        "memory_total": getattr(memory, "total", None),
        "utilization": getattr(rates, "gpu", None),
        "memory_utilization": getattr(rates, "memory", None),
        "temperature": temperature,
        "power_w": round(power_mw / 1000, 1) if isinstance(power_mw, (int, float)) else None,
    }


def sample_all(detailed: bool = False) -> list[dict[str, Any]]:
    """A sample per GPU, or one ``available: False`` entry when there is none; ``detailed``
    adds what ``details`` reads (the dashboard's Resources panel; events keep the short form)."""
    count = device_count()
    if count == 0:
        reason = unavailable_reason() or "NVML found no GPU"
        return [{"available": False, "reason": reason}]
    samples = [sample(i) for i in range(count)]
    return [{**s, **details(i)} if detailed and s.get("available") else s for i, s in enumerate(samples)]


def details(index: int = 0) -> dict[str, Any]:
    """What nvitop shows beside a sample: power limit, SM and memory clocks (now and max),
    and the processes holding memory on the GPU. None for whatever failed.

    Keys: power_limit_w, clock_sm_mhz, clock_sm_max_mhz, clock_mem_mhz, clock_mem_max_mhz,
    processes (a list of ``{"pid", "memory_used"}``, compute and graphics together, or
    None when NVML would not list them).
    """
    nvml = _nvml()
    handle = _safe(nvml.nvmlDeviceGetHandleByIndex, index) if nvml is not None else None
    if handle is None:
        return {}
    limit_mw = _call(nvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
    sm, mem = getattr(nvml, "NVML_CLOCK_SM", 1), getattr(nvml, "NVML_CLOCK_MEM", 2)
    return {
        "power_limit_w": round(limit_mw / 1000, 1) if isinstance(limit_mw, (int, float)) else None,
        "clock_sm_mhz": _call(nvml, "nvmlDeviceGetClockInfo", handle, sm),
        "clock_sm_max_mhz": _call(nvml, "nvmlDeviceGetMaxClockInfo", handle, sm),
        "clock_mem_mhz": _call(nvml, "nvmlDeviceGetClockInfo", handle, mem),
        "clock_mem_max_mhz": _call(nvml, "nvmlDeviceGetMaxClockInfo", handle, mem),
        "processes": _processes(nvml, handle),
    }


def _processes(nvml: Any, handle: Any) -> list[dict[str, Any]] | None:
    compute = _call(nvml, "nvmlDeviceGetComputeRunningProcesses", handle)
    graphics = _call(nvml, "nvmlDeviceGetGraphicsRunningProcesses", handle)
    if compute is None and graphics is None:
        return None
    found: dict[int, dict[str, Any]] = {}
    for process in [*(compute or []), *(graphics or [])]:
        pid = getattr(process, "pid", None)
        if not isinstance(pid, int):
            continue
        used = getattr(process, "usedGpuMemory", None)  # None: not available (a container, Windows' WDDM)
        entry = found.setdefault(pid, {"pid": pid, "memory_used": None})
        if isinstance(used, int):
            entry["memory_used"] = (entry["memory_used"] or 0) + used
    return sorted(found.values(), key=lambda p: -(p["memory_used"] or 0))


def format_sample(gpu: dict[str, Any]) -> str:
    """One line for a sample, with N/A for every field that could not be read (the log's
    own line for a ``gpu`` event: ``r1tui.runs.logs`` owns it)."""
    from r1tui.runs.logs import format_gpu_sample

    return format_gpu_sample(gpu)


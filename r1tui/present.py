"""How numbers are shown, the same in every command and in the dashboard.

One convention: sizes in decimal SI units (B, kB, MB, GB, TB: 1 GB = 10^9 bytes), as the
Hugging Face Hub, llama.cpp and the calculator give them, so a Q4_K_M of Mistral Small
2409 reads 13.3 GB everywhere; durations as ``12.3s`` under a minute, else ``M:SS`` or
``H:MM:SS``; a missing or non-finite value as ``—``. Plain strings, no terminal codes.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def finite(value: Any) -> float | None:
    """``value`` as a finite float, else None (NaN, infinities, strings, bools)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def format_bytes(count: Any, digits: int = 1) -> str:
    """``13.3 GB`` (``13.34 GB`` with digits=2); ``812 B``; ``—`` when unknown."""
    value = finite(count)
    if value is None:
        return MISSING
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.{digits}f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_duration(seconds: Any) -> str:
    """``12.3s``, ``4:05``, ``2:04:05``; ``—`` when unknown."""
    value = finite(seconds)
    if value is None:
        return MISSING
    value = max(0.0, value)
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_number(value: Any, digits: int = 4) -> str:
    """``digits`` significant digits; scientific notation for very small or large values."""
    number = finite(value)
    if number is None:
        return MISSING
    if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e5):
        return f"{number:.2e}"
    return f"{number:.{digits}g}"

"""Free disk space, checked before a stage writes rather than discovered half-way."""

from __future__ import annotations

import shutil
from pathlib import Path

from r1tui.errors import R1Error
from r1tui.present import format_bytes

# Room kept free beyond the computed size of what a stage writes (tokenizer, metadata).
DISK_SLACK_BYTES = 64 * 1024**2


def free_bytes(folder: Path) -> int:
    """Free space on the file system holding ``folder`` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse up front, in one line, when ``needed`` bytes will not fit."""
    available = free_bytes(folder)
    if needed + DISK_SLACK_BYTES > available:
        raise R1Error(
            f"not enough disk space for {what} in {folder}: needs {format_bytes(needed + DISK_SLACK_BYTES)}, "
            f"{format_bytes(available)} free; free some space or move runs.dir to a larger disk"
        )

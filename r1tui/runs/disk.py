"""Free disk space, checked before a stage writes rather than discovered half-way, and
shown beside what the stages still to run will write (``DiskOutlook``, the Overview panel)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DiskOutlook:
    """Free space under a folder against what the stages still to run will write there."""

    folder: Path
    free: int
    needs: dict[str, int | None]  # stage -> bytes it writes (None: not knowable yet)

    @property
    def needed(self) -> int:
        """The known part, with the slack the pre-stage check keeps (0 with nothing to write)."""
        known = sum(n for n in self.needs.values() if n is not None)
        return known + DISK_SLACK_BYTES if known else 0

    @property
    def unknown(self) -> list[str]:
        return [name for name, n in self.needs.items() if n is None]

    @property
    def fits(self) -> bool:
        return self.needed <= self.free


def disk_outlook(folder: Path, free: int, needs: dict[str, int | None]) -> DiskOutlook:
    """``free`` bytes under ``folder`` (``free_bytes``) against ``needs`` (what each
    remaining stage declares it writes: the registry's ``output_bytes``)."""
    return DiskOutlook(Path(folder), free, dict(needs))

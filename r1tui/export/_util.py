"""Small helpers shared by the export stages: disk space, atomic writes, fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error

# Room kept free beyond the computed size of what a stage writes (tokenizer, metadata).
DISK_SLACK_BYTES = 64 * 1024**2


def format_bytes(count: int | float) -> str:
    """Decimal units, as the calculator and the Hub show sizes (13.3 GB)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def free_bytes(folder: Path) -> int:
    """Free space on the file system holding `folder` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse up front, in one line, when `needed` bytes will not fit."""
    available = free_bytes(folder)
    if needed + DISK_SLACK_BYTES > available:
        raise R1Error(
            f"not enough disk space for {what} in {folder}: needs {format_bytes(needed + DISK_SLACK_BYTES)}, "
            f"{format_bytes(available)} free; free some space or move runs.dir to a larger disk"
        )


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A temporary name in the same folder as `path` (so os.replace is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; the old one (if any) goes only after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files a killed process left behind (names start with '.' and hold '.tmp-')."""
    if not folder.is_dir():
        return
    for leftover in folder.glob(".*.tmp-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def fingerprint(*paths: Path, extra: Any = None) -> str:
    """A cheap identity for inputs: name, size and mtime of every file (like make), plus `extra`.

    Hashing a 44 GB base model on every export would cost minutes; size + mtime
    catches every rewrite the pipeline itself makes.
    """
    digest = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        digest.update(root.name.encode())  # not the full path: a moved run folder stays up to date
        for file in files:
            relative = file.relative_to(root) if file != root else Path(file.name)
            if any(part.startswith(".") for part in relative.parts):
                continue  # temp files and our own stamps
            stat = file.stat()
            digest.update(f"{relative.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def read_json(path: Path) -> Any | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_stamp(stamp: Path) -> dict[str, Any]:
    """A JSON object file (stamps, parity.json), or {} when missing or not an object."""
    data = read_json(stamp)
    return data if isinstance(data, dict) else {}

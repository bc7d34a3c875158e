"""Writing files so that nothing is ever half-written, and reading them back leniently.

Every file the pipeline writes goes to a temporary sibling first and is renamed into
place (``os.replace`` is atomic on one file system), so a kill, a full disk or a crash
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from stat import S_ISDIR
from typing import Any


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A temporary name in the same folder as ``path`` (so os.replace is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> Path:
    """One JSON object per line, streamed to a temporary sibling and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; the old one (if any) goes only after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files a killed process left behind (names start with '.' and hold '.tmp-')."""
    if not Path(folder).is_dir():
        return
    for leftover in Path(folder).glob(".*.tmp-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def folder_size(path: str | Path) -> tuple[int, int]:
    """(bytes, files) under ``path``: the sum of every file's own size, and their count.

    Links are not followed: a link counts as one file of its own (small) size, so a folder
    of links to a 44 GB base model is not 44 GB, and a link to a folder is not walked. A
    file or folder removed while the walk runs (a live run deleting a checkpoint) is left
    out rather than raising. ``path`` itself may be a file or a link (its own size, 1 file);
    a missing path is (0, 0). The one folder-size function: the runs table, the delete
    dialog and the stages' ``bytes`` in artifact events all count alike.
    """
    path = os.fspath(path)
    try:
        top = os.lstat(path)
    except OSError:
        return 0, 0
    if not S_ISDIR(top.st_mode):
        return top.st_size, 1
    total = files = 0
    for root, dirs, names in os.walk(path):  # followlinks=False; unreadable folders are skipped
        for name in names + dirs:
            try:
                entry = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # removed while we walked
            if not S_ISDIR(entry.st_mode):  # a file, or a link (os.walk lists a link to a folder as a folder)
                total += entry.st_size
                files += 1
    return total, files


def folder_bytes(path: str | Path) -> int:
    """The bytes of :func:`folder_size` alone (what an artifact event records)."""
    return folder_size(path)[0]


def read_json(path: str | Path) -> Any | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON object file (stage records, parity.json), or {} when missing or not an object."""
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def fingerprint(*paths: Path, extra: Any = None) -> str:
    """A cheap identity for inputs: name, size and mtime of every file (like make), plus ``extra``.

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
                continue  # temp files
            stat = file.stat()
            digest.update(f"{relative.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def digest(value: Any) -> str:
    """A short stable hash of a JSON-able value (config sections a stage depends on)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_private(root: str | Path) -> None:
    """Only the owner may read ``root`` and everything under it (folders 0700, files lose
    their group and other bits); new files follow once the process umask is 0o077."""
    root = Path(root)
    os.chmod(root, 0o700)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o700)


def current_umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022

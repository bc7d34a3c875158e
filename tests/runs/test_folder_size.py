"""r1tui.runs.files.folder_size: the one folder-size function (runs table, delete dialog,
artifact events). Real files, real links, a real entry that vanishes between the listing
and its stat."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from r1tui.runs.files import folder_bytes, folder_size


def write(path: Path, size: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return size


def test_bytes_and_files_of_a_nested_folder(tmp_path):
    run = tmp_path / "run"
    sizes = [write(run / "events.jsonl", 1234), write(run / "adapter" / "adapter_model.safetensors", 70_001),
             write(run / "adapter" / "adapter_config.json", 517), write(run / "gguf" / "deep" / "x.gguf", 9),
             write(run / ".config.toml.tmp-42", 3)]  # temp files are on the disk too: counted
    (run / "empty").mkdir()
    write(run / "empty-file", 0)
    assert folder_size(run) == (sum(sizes), len(sizes) + 1)
    assert folder_bytes(run) == sum(sizes)
    assert folder_size(run / "adapter") == (70_001 + 517, 2)
    assert folder_size(run / "empty") == (0, 0)


def test_links_count_as_themselves_and_are_not_walked(tmp_path):
    base = tmp_path / "base"  # a large base model the run only points at
    big = write(base / "model.safetensors", 200_000)
    run = tmp_path / "run"
    own = write(run / "events.jsonl", 100)
    (run / "model.safetensors").symlink_to(base / "model.safetensors")
    (run / "base").symlink_to(base, target_is_directory=True)
    links = [os.lstat(run / name).st_size for name in ("model.safetensors", "base")]
    assert folder_size(run) == (own + sum(links), 3)
    assert folder_size(run)[0] < big
    # a link given as the path is the link too, not the folder it names
    assert folder_size(run / "base") == (links[1], 1)


def test_a_file_is_its_own_size_and_a_missing_path_is_nothing(tmp_path):
    assert folder_size(tmp_path / "model.gguf") == (0, 0)
    size = write(tmp_path / "model.gguf", 4321)
    assert folder_size(tmp_path / "model.gguf") == (size, 1)
    assert folder_size(str(tmp_path)) == (size, 1)  # str paths too


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_an_entry_gone_between_the_listing_and_its_stat_is_left_out():
    """/proc/self/fd lists the descriptor the listing itself reads through; it is closed
    (gone) by the time each entry is stat'ed: the same race as a live run deleting a
    checkpoint while the runs table sums its folder. Left out, never raised."""
    listed = os.listdir("/proc/self/fd")  # the same listing: it includes its own descriptor
    present = [f"/proc/self/fd/{fd}" for fd in listed if os.path.lexists(f"/proc/self/fd/{fd}")]
    assert len(present) == len(listed) - 1  # the listing's own descriptor is gone
    assert folder_size("/proc/self/fd") == (sum(os.lstat(path).st_size for path in present), len(present))

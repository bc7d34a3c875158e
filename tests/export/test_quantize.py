"""Quantizing through llama-cpp-python: progress per tensor, atomic files, read-back."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1tui.errors import R1Error
from r1tui.runs.events import StageCancelled

STEM = "tiny-mistral-random-r1"


@pytest.fixture(scope="module")
def f16(exported_run) -> Path:
    return exported_run[0] / "gguf" / f"{STEM}-F16.gguf"


@pytest.mark.parametrize("quant", ["Q8_0", "Q5_K_M", "Q6_K"])
def test_each_quant_type_reads_back_as_the_calculator_says(f16, tmp_path, quant, converter_dir):
    from r1tui.calculator import PRESETS
    from r1tui.export.gguf import compare_with_calculator, quantize_gguf, read_gguf

    calls = []
    target = quantize_gguf(f16, tmp_path / f"model-{quant}.gguf", quant,
                           on_progress=lambda done, total, message: calls.append((done, total, message)))
    assert [c[0] for c in calls] == list(range(1, 22)) and {c[1] for c in calls} == {21}
    report = compare_with_calculator(read_gguf(target, converter_dir), PRESETS["tiny"], quant)
    assert report["types_match_calculator"], report["type_differences"]
    assert report["tensor_bytes"] == report["calculator_bytes"]
    assert report["file_bytes"] == target.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_failed_quantization_leaves_no_file(f16, tmp_path):
    from r1tui.export.gguf import quantize_gguf

    broken = tmp_path / "broken-F16.gguf"
    broken.write_bytes(f16.read_bytes()[:2_000_000])  # a truncated file: a header and half a tensor
    with pytest.raises(R1Error, match="quantizing broken-F16.gguf to Q4_K_M failed"):
        quantize_gguf(broken, tmp_path / "out-Q4_K_M.gguf", "Q4_K_M")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-F16.gguf"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, StageCancelled])
def test_a_cancel_mid_quantization_leaves_no_partial_file(f16, tmp_path, interrupt):
    from r1tui.export.gguf import quantize_gguf

    def cancel_at_third_tensor(done, total, message):
        if done == 3:
            raise interrupt()

    with pytest.raises(interrupt):
        quantize_gguf(f16, tmp_path / "out-Q4_K_M.gguf", "Q4_K_M", on_progress=cancel_at_third_tensor)
    assert list(tmp_path.iterdir()) == []


def test_missing_input_and_bad_quant_are_one_line(tmp_path):
    from r1tui.export.gguf import quantize_gguf

    with pytest.raises(R1Error, match="GGUF not found"):
        quantize_gguf(tmp_path / "none.gguf", tmp_path / "out.gguf", "Q4_K_M")
    with pytest.raises(R1Error, match="cannot quantize to 'F16'"):
        quantize_gguf(tmp_path / "none.gguf", tmp_path / "out.gguf", "F16")


def test_llama_log_lines_are_joined_from_fragments():
    from r1tui.export._llama_log import LineBuffer

    lines = []
    buffer = LineBuffer(lambda level, line: lines.append((level, line)))
    buffer.feed(2, "[   1/  21] output.weight - [256, 32768], type = f16, ")
    buffer.feed(5, "converting to q6_K .. ")
    buffer.feed(5, "size = 16.00 MiB ->  6.56 MiB\n[   2/  21] output_norm")
    buffer.feed(4, " failed\nsecond error\n")
    buffer.feed(3, "no newline yet")
    buffer.flush()
    assert lines == [
        ("info", "[   1/  21] output.weight - [256, 32768], type = f16, converting to q6_K .. size = 16.00 MiB ->  6.56 MiB"),
        ("info", "[   2/  21] output_norm failed"),
        ("error", "second error"),
        ("warn", "no newline yet"),
    ]


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs: a real full disk (mounting one needs root)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs to fill a disk needs root; this test runs as uid {os.geteuid()}")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed here ({done.stderr.strip()}); a full disk cannot be made")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_during_quantization_says_so(f16, small_disk):
    from r1tui.export.gguf import quantize_gguf

    with pytest.raises(R1Error) as failure:
        quantize_gguf(f16, small_disk / "out-Q4_K_M.gguf", "Q4_K_M")  # about 12 MB into 4 MB
    message = str(failure.value)
    assert f"the disk holding {small_disk} is full" in message and "iostream" not in message
    from r1tui.present import format_bytes

    assert f"needs less than its F16 source, {format_bytes(f16.stat().st_size)}" in message and "\n" not in message
    assert list(small_disk.iterdir()) == []  # nothing half-written left behind


def test_parity_checks_every_quant_written_including_one_added_later(exported_run, tmp_path, run_export):
    """Each GGUF the export writes is checked for tokenizer parity: the F16 and every quant, and a
    quant added by a later `--quant` (only it is quantized; parity runs again over all of them)."""
    import json
    import shutil

    source = exported_run[0]
    run_dir = tmp_path / source.name
    shutil.copytree(source, run_dir)  # mtimes kept: the earlier stages stay up to date
    first = json.loads((source / "gguf" / "parity.json").read_text())
    assert sorted(first["files"]) == sorted(f"{STEM}-{quant}.gguf" for quant in ("F16", "Q4_K_M"))

    result = run_export(run_dir, quant_types=["Q4_K_M", "Q5_K_M"])
    assert result.skipped == ["merge", "gguf"]
    parity = json.loads((run_dir / "gguf" / "parity.json").read_text())
    written = sorted(p.name for p in (run_dir / "gguf").glob("*.gguf"))
    assert written == sorted(f"{STEM}-{quant}.gguf" for quant in ("F16", "Q4_K_M", "Q5_K_M"))
    assert sorted(parity["files"]) == written and parity["ok"]
    assert all(check["ok"] and check["tokens_compared"] > 0 for check in parity["files"].values())
    assert {report["artefact"] for report in parity["clients"]} >= set(written)  # each through its chat template

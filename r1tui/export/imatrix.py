"""Importance matrix from the run's own traces, computed by llama.cpp's ``llama-imatrix``.

An importance matrix says, per weight column of each matrix multiplication, how large the
activations that meet it are (the mean of their squares over a calibration text); k-quants
spend their precision where it is large. llama.cpp computes it with ``llama-imatrix``
(``tools/imatrix``), a program: install.sh builds exactly that target from the llama.cpp
sources of the pinned llama-cpp-python (no download, never at export time) and keeps it in
``.venv/share/r1tui/bin/``.

The calibration text is the run's own training data: whole rows of the prepared dataset in
a seeded order, up to ``export.imatrix_tokens`` tokens, never a row the quality report
measures on (``r1tui.export.quality``), spelled as the exact text of their training ids
(``ids_to_text``: control tokens as their literals) and tokenized back by llama.cpp with
special tokens parsed — checked here to give the same ids before the program runs.

``load_imatrix`` reads the matrix back for quantizing (``_quantize_worker``), normalized as
llama.cpp's own ``llama-quantize`` does (sums of squares divided by their counts).
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.runs.files import digest, temp_sibling

log = logging.getLogger(__name__)

TOOL = "llama-imatrix"
INSTALLED_TOOLS = Path("share") / "r1tui" / "bin"
IMATRIX_DIR = "imatrix"
DATASET_NAME = "r1tui-training-traces"  # what the matrix (and the quants' metadata) name as their dataset

ProgressFn = Callable[[int, int, str], None]  # (completed chunks, total chunks, message)


def imatrix_path(run_dir: Path, stem: str) -> Path:
    """``imatrix/<stem>-imatrix.gguf``: beside ``gguf/``, so nothing that picks a model picks it."""
    return Path(run_dir) / IMATRIX_DIR / f"{stem}-imatrix.gguf"


def find_tool() -> Path:
    """``llama-imatrix``: in ``$R1TUI_LLAMA_TOOLS_DIR`` when set (a llama.cpp build's ``bin/``),
    else the one install.sh built."""
    env = os.environ.get("R1TUI_LLAMA_TOOLS_DIR")
    if env:
        tool = Path(env) / TOOL
        if not os.access(tool, os.X_OK):
            raise R1Error(f"R1TUI_LLAMA_TOOLS_DIR = {env}: no executable {TOOL} there; point it at a llama.cpp "
                          "build's bin/ folder, or unset it to use the one ./install.sh builds")
        return tool
    tool = Path(sys.prefix) / INSTALLED_TOOLS / TOOL
    if os.access(tool, os.X_OK):
        return tool
    raise R1Error(f"export.imatrix needs llama.cpp's {TOOL}, which is not built (looked in {tool.parent}); "
                  "run ./install.sh (it builds it unless R1TUI_LLAMA_TOOLS=0), or set R1TUI_LLAMA_TOOLS_DIR "
                  "to a llama.cpp build's bin/, or set export.imatrix = false")


# ---------------------------------------------------------------- the calibration text


@dataclass(frozen=True)
class Calibration:
    """Whole training rows, in a seeded order, as the text llama-imatrix reads."""

    ids: list[int]  # the rows' training ids, concatenated
    rows: int
    rows_available: int
    description: str

    @property
    def tokens(self) -> int:
        return len(self.ids)

    @property
    def identity(self) -> str:
        return digest(self.ids)


def select_calibration(data_dir: Path, budget: int, seed: int, exclude: frozenset[int] = frozenset()) -> Calibration:
    """Training rows (never the held-out ones, nor ``exclude``: the rows the quality report
    measures on) in a seeded order, whole, while they fit ``budget`` tokens."""
    import datasets
    import pyarrow.compute as pc

    data_dir = Path(data_dir)
    if not ((data_dir / "dataset_info.json").is_file() and (data_dir / "state.json").is_file()):
        raise R1Error(f"export.imatrix: no prepared dataset in {data_dir.name}/ to calibrate on; run the prepare "
                      "stage (`r1tui prepare` or `r1tui run`), or set export.imatrix = false")
    rows = datasets.load_from_disk(str(data_dir))
    lengths = pc.list_value_length(rows.with_format("arrow")["input_ids"]).to_pylist()
    order = [i for i in range(len(rows)) if i not in exclude]
    random.Random(f"r1tui-imatrix-{seed}").shuffle(order)
    ids: list[int] = []
    taken = 0
    for index in order:
        if len(ids) + lengths[index] > budget:
            continue
        ids.extend(int(t) for t in rows[index]["input_ids"])
        taken += 1
        if budget - len(ids) < min(lengths or [1]):
            break
    kept_out = f", leaving out the {len(exclude)} the quality report measures on" if exclude else ""
    return Calibration(ids=ids, rows=taken, rows_available=len(rows),
                       description=f"{taken} of {len(rows)} training rows ({data_dir.name}/, seeded{kept_out})")


def calibration_text(calibration: Calibration, spec: str, f16: Path) -> str:
    """The text llama-imatrix tokenizes: the exact text of the training ids, less the first
    BOS (the program puts one in front itself). Raises when the GGUF's own tokenizer does not
    read it back as the same ids (it then would not calibrate on what was trained)."""
    from r1tui.data.tokenizer import ids_to_text
    from r1tui.export.parity import GgufVocab, first_difference

    text = ids_to_text(calibration.ids, spec)
    with GgufVocab(f16) as vocab:
        got = vocab.tokenize(text)
        bos, bos_text = vocab.bos, vocab.text(vocab.bos)
    index = first_difference(calibration.ids, got)
    if index is not None:
        raise R1Error(f"export.imatrix: {f16.name} tokenizes the calibration text differently from training "
                      f"at token {index} (run `r1tui parity` on the run to see why)")
    return text.removeprefix(bos_text) if calibration.ids and calibration.ids[0] == bos else text


# ---------------------------------------------------------------- running llama-imatrix


_CHUNK = re.compile(r"\[(\d+)\](-?[\d.]+|nan|inf)")
_TOTAL = re.compile(r"computing over (\d+) chunks")
_DISK_FULL = re.compile(r"No space left|failed to (open|write)", re.IGNORECASE)


def compute_imatrix(f16: Path, out: Path, text: str, *, chunk_tokens: int, threads: int = 0,
                    on_progress: ProgressFn | None = None, log_path: Path | None = None) -> dict[str, Any]:
    """Run llama-imatrix on ``f16`` over ``text`` in chunks of ``chunk_tokens``; the matrix
    appears at ``out`` only when it finished. Returns what it measured: chunks, seconds and
    the calibration perplexity llama-imatrix prints. A cancel or failure stops the program
    and leaves no file."""
    tool = find_tool()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out, ".gguf")
    text_file = temp_sibling(out, ".txt")
    text_file.write_text(text, encoding="utf-8")
    # Relative names: llama-imatrix writes the text file's name into the matrix as its dataset.
    named = out.parent / DATASET_NAME
    command = [str(tool), "-m", str(Path(f16).resolve()), "-f", DATASET_NAME, "-o", tmp.name, "--parse-special", "--output-format", "gguf",
               "-c", str(chunk_tokens), "-b", str(chunk_tokens), "--output-frequency", "1000000"]
    if threads > 0:
        command += ["-t", str(threads)]
    started = time.perf_counter()
    output: list[str] = []
    total = 0
    done = 0
    ppl: float | None = None
    try:
        os.replace(text_file, named)
        process = subprocess.Popen(command, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert process.stdout is not None
            pending = ""
            while chunk := process.stdout.read1(4096):  # the chunk figures come on one line, without newlines
                piece = chunk.decode("utf-8", errors="replace")
                output.append(piece)
                pending += piece
                if (match := _TOTAL.search(pending)) and not total:
                    total = int(match.group(1))
                for match in _CHUNK.finditer(pending):
                    done = int(match.group(1))
                    ppl = float(match.group(2))
                    if on_progress is not None and total:
                        on_progress(done, total, f"chunk {done}/{total}, calibration perplexity {ppl:.4g}")
                pending = pending[max(pending.rfind(","), pending.rfind("\n")) + 1:] if pending else pending
            rc = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        named.unlink(missing_ok=True)
        text_file.unlink(missing_ok=True)
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text("".join(output), encoding="utf-8")
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        lines = [line.strip() for line in "".join(output).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if re.search(r"error|failed|need", line, re.IGNORECASE)),
                      lines[-1] if lines else "no output")
        where = f"; full output in {log_path}" if log_path else ""
        if _DISK_FULL.search(reason):
            raise R1Error(f"{TOOL} failed: the disk holding {out.parent} is full ({reason}){where}")
        raise R1Error(f"{TOOL} failed on {Path(f16).name} (exit {rc}): {reason}{where}")
    os.replace(tmp, out)
    return {"chunks": done or total, "chunk_tokens": chunk_tokens, "tokens": (done or total) * chunk_tokens,
            "calibration_ppl": ppl, "seconds": round(time.perf_counter() - started, 3), "tool": TOOL}


# ---------------------------------------------------------------- reading it back


@dataclass(frozen=True)
class Matrix:
    """Per weight name, the importance of each input column (llama-quantize's normalization)."""

    entries: dict[str, Any]  # name -> float32 numpy array
    dataset: str
    chunks: int


def load_imatrix(path: Path, converter_dir: Path | None = None) -> Matrix:
    """The matrix in ``path`` (llama-imatrix's GGUF format): ``<name>.in_sum2`` divided by
    ``<name>.counts`` per expert, 1 where nothing was counted, as ``tools/quantize`` does."""
    import numpy as np

    from r1tui.export.gguf import _field, _gguf_reader

    reader = _gguf_reader(converter_dir)(str(path))
    tensors = {t.name: t for t in reader.tensors}
    entries: dict[str, Any] = {}
    for name, tensor in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        counts_tensor = tensors.get(base + ".counts")
        if counts_tensor is None:
            raise R1Error(f"{path}: {base} has sums but no counts; not an imatrix GGUF written by {TOOL}")
        sums = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
        counts = np.asarray(counts_tensor.data, dtype=np.float32).reshape(-1)
        per_expert = sums.reshape(len(counts), -1)
        values = np.where(counts[:, None] > 0, per_expert / np.where(counts > 0, counts, 1)[:, None], 1.0)
        entries[base] = np.ascontiguousarray(values.reshape(-1), dtype=np.float32)
    if not entries:
        raise R1Error(f"{path}: no importance matrix entries; not an imatrix GGUF written by {TOOL}")
    datasets = _field(reader, "imatrix.datasets") or []
    return Matrix(entries=entries, dataset=str(datasets[0]) if datasets else "",
                  chunks=int(_field(reader, "imatrix.chunk_count") or 0))


"""GGUF: convert with llama.cpp's own converter, quantize through llama-cpp-python, read back.

- The converter (``convert_hf_to_gguf.py`` + ``conversion/`` + ``gguf-py/``) comes from
  the llama-cpp-python source that install.sh kept, a llama.cpp checkout named by
  ``export.llama_cpp_dir`` or ``$R1TUI_LLAMA_CPP_DIR``. It is never downloaded or built
  here. It runs as a subprocess with its own ``gguf-py`` first on ``PYTHONPATH`` (PyPI's
  ``gguf`` does not match it).
- Quantization calls ``llama_cpp.llama_model_quantize`` in a child process whose
  llama.cpp log lines (one per tensor) become progress. Output goes to a temporary name
  and is renamed only when complete: a failure or a cancel never leaves a partial file
  under the final name.
- ``read_gguf`` reads a file back with gguf-py's ``GGUFReader``: per-tensor types,
  tensor bytes, tokenizer metadata; ``compare_with_calculator`` puts it next to
  ``r1tui.calculator``'s figures for the same architecture and quant.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.errors import R1Error
from r1tui.present import format_bytes
from r1tui.runs.disk import DISK_SLACK_BYTES, free_bytes
from r1tui.runs.files import temp_sibling

log = logging.getLogger(__name__)

CONVERTER_SCRIPT = "convert_hf_to_gguf.py"
CONVERTER_PARTS = (CONVERTER_SCRIPT, "conversion", "gguf-py")
INSTALLED_CONVERTER = Path("share") / "r1tui" / "llama.cpp"

# llama_ftype values (llama.h); F16 is the converter's own output.
QUANT_FTYPES = {"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "Q8_0": 7, "F16": 1}

ProgressFn = Callable[[int, int, str], None]  # (completed, total, message)


def mmproj_path(run_dir: Path, config: Config) -> Path:
    """The F16 vision projector of a Mistral3 run: ``mmproj/mmproj-<stem>-F16.gguf``, beside
    (not in) ``gguf/``, so nothing that picks a GGUF to generate with can pick it."""
    return Path(run_dir) / "mmproj" / f"mmproj-{gguf_stem(config)}-F16.gguf"


def gguf_stem(config: Config) -> str:
    """File stem of a run's GGUFs: the base model's name and "-r1" (Mistral-Small-Instruct-2409-r1);
    ``RunLayout.gguf(stem, quant)`` names the file."""
    name = config.model.name.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) + "-r1"


# ---------------------------------------------------------------- the converter


def converter_candidates(llama_cpp_dir: Path | None = None) -> list[tuple[str, Path]]:
    """Where the converter is looked for, in order: config, environment, install.sh's copy."""
    candidates: list[tuple[str, Path]] = []
    if llama_cpp_dir is not None:
        candidates.append(("export.llama_cpp_dir", Path(llama_cpp_dir)))
    env = os.environ.get("R1TUI_LLAMA_CPP_DIR")
    if env:
        candidates.append(("R1TUI_LLAMA_CPP_DIR", Path(env)))
    candidates.append(("install.sh's copy", Path(sys.prefix) / INSTALLED_CONVERTER))
    return candidates


def find_converter(llama_cpp_dir: Path | None = None) -> Path:
    """The first folder holding convert_hf_to_gguf.py, conversion/ and gguf-py/.

    A folder named by config or environment must be complete: silently falling back
    from a checkout the user chose to another copy would hide their mistake.
    """
    for origin, folder in converter_candidates(llama_cpp_dir):
        missing = [part for part in CONVERTER_PARTS if not (folder / part).exists()]
        if not missing:
            return folder
        if origin != "install.sh's copy":
            raise R1Error(
                f"{origin} = {folder}: no llama.cpp converter there (missing {', '.join(missing)}); "
                "point it at a llama.cpp checkout, or unset it to use the copy ./install.sh keeps"
            )
    installed = Path(sys.prefix) / INSTALLED_CONVERTER
    raise R1Error(
        f"llama.cpp's GGUF converter is not installed (looked in {installed}); run ./install.sh, "
        "or set export.llama_cpp_dir / R1TUI_LLAMA_CPP_DIR to a llama.cpp checkout"
    )


def safetensors_tensor_count(model_dir: Path) -> int:
    """Tensors in a model folder, from the safetensors headers alone (no torch)."""
    total = 0
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        with open(shard, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        total += sum(1 for key in header if key != "__metadata__")
    return total


_CONVERT_TENSOR_LINE = re.compile(r"hf-to-gguf:(\S+?),\s+torch\.\w+ --> (\w+)")


def convert_to_gguf(model_dir: Path, out_path: Path, converter_dir: Path, *, model_name: str | None = None,
                    on_progress: ProgressFn | None = None, log_path: Path | None = None,
                    vocab_only: bool = False, mmproj: bool = False) -> Path:
    """Convert a Hugging Face model folder to an F16 GGUF at `out_path` (atomically).

    `vocab_only` writes only the tokenizer (what parity needs; no weights required);
    `mmproj` writes the vision tower and projector of a Mistral3 checkpoint instead of its
    language model (llama.cpp's ``--mmproj``: the file llama.cpp's multimodal tools read).
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out_path)
    total = safetensors_tensor_count(model_dir)
    command = [sys.executable, str(converter_dir / CONVERTER_SCRIPT), str(model_dir),
               "--outtype", "f16", "--outfile", str(tmp)]
    if model_name:
        command += ["--model-name", model_name]
    if vocab_only:
        command.append("--vocab-only")
    if mmproj:
        command.append("--mmproj")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(converter_dir / "gguf-py"), env.get("PYTHONPATH")]))
    env.pop("NO_LOCAL_GGUF", None)
    env["HF_HUB_OFFLINE"] = "1"  # the converter must never fetch anything
    lines: list[str] = []
    done = 0
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               text=True, encoding="utf-8", errors="replace", bufsize=1)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            log.debug("convert: %s", line)
            match = _CONVERT_TENSOR_LINE.search(line)
            if match and on_progress is not None:
                done = min(done + 1, total or done + 1)
                on_progress(done, total, f"{match.group(1)} -> {match.group(2)}")
        rc = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if rc != 0 or not tmp.is_file():
        free_at_failure = free_bytes(out_path.parent)
        tmp.unlink(missing_ok=True)
        reason = _last_error_line(lines)
        where = f"; full output in {log_path}" if log_path else ""
        if _DISK_FULL.search(reason) or free_at_failure < DISK_SLACK_BYTES:
            needed = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
            raise R1Error(f"converting {model_dir.name}/ to GGUF failed: the disk holding {out_path.parent} is full "
                          f"({format_bytes(free_bytes(out_path.parent))} free); the F16 GGUF needs about "
                          f"{format_bytes(needed)}: free that much or move runs.dir to a larger disk{where}")
        raise R1Error(f"llama.cpp's converter failed on {model_dir} (exit {rc}): {reason}{where}")
    os.replace(tmp, out_path)
    return out_path


def _last_error_line(lines: list[str]) -> str:
    for line in reversed(lines):
        if re.search(r"error|exception|not supported", line, re.IGNORECASE) and line.strip():
            return line.strip()
    return next((line.strip() for line in reversed(lines) if line.strip()), "no output")


# ---------------------------------------------------------------- quantize


_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_DISK_FULL = re.compile(r"iostream error|No space left|ENOSPC|failed to write|Not enough free space", re.IGNORECASE)
_TARGET_TYPE = re.compile(r"converting to (\w+)")


def quantize_gguf(source: Path, target: Path, quant: str, *, on_progress: ProgressFn | None = None,
                  nthread: int = 0, imatrix: Path | None = None, converter: Path | None = None) -> Path:
    """Quantize `source` (an F16 GGUF) to `target` with llama.cpp's rules for `quant`, steered
    by the importance matrix in `imatrix` when given (read with `converter`'s gguf-py).

    Progress is one call per tensor. The file appears under `target` only when llama.cpp
    reported success (the quantize stage then reads it back with `read_gguf`); on any
    failure, KeyboardInterrupt or StageCancelled the temporary file is removed and the
    child process stopped.
    """
    if quant not in QUANT_FTYPES or quant == "F16":
        raise R1Error(f"cannot quantize to {quant!r}; allowed: {', '.join(q for q in QUANT_FTYPES if q != 'F16')}")
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise R1Error(f"{source}: GGUF not found; run `r1tui export RUN` to convert the merged model first")
    tmp = temp_sibling(target)
    command = [sys.executable, "-m", "r1tui.export._quantize_worker", str(source), str(tmp),
               str(QUANT_FTYPES[quant]), str(nthread)]
    if imatrix is not None:
        command += [str(imatrix), str(converter or find_converter())]
    errors: list[str] = []
    rc = None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               encoding="utf-8", errors="replace", bufsize=1)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            if raw.startswith("QLOG "):
                entry = json.loads(raw[5:])
                line, level = entry["line"], entry["level"]
                log.debug("quantize %s: %s", quant, line)
                if level in ("error", "warn") or "failed" in line:
                    errors.append(line.strip())
                match = _TENSOR_LINE.match(line)
                if match and on_progress is not None:
                    kind = _TARGET_TYPE.search(line)
                    message = f"{match.group(3)} -> {kind.group(1) if kind else 'copied'}"
                    on_progress(int(match.group(1)), int(match.group(2)), message)
            elif raw.startswith("QEND "):
                rc = json.loads(raw[5:])["rc"]
            elif raw.strip():
                log.debug("quantize %s (stdout): %s", quant, raw.rstrip())
        exit_code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        tmp.unlink(missing_ok=True)
        raise
    if rc != 0 or exit_code != 0 or not tmp.is_file():
        free_at_failure = free_bytes(target.parent)
        tmp.unlink(missing_ok=True)
        reason = errors[-1] if errors else f"worker exited with {exit_code}"
        free = free_bytes(target.parent)
        if _DISK_FULL.search(reason) or free_at_failure < DISK_SLACK_BYTES:
            # llama.cpp says "basic_ios::clear: iostream error" when a write fails on a full disk
            raise R1Error(f"quantizing {source.name} to {quant} failed: the disk holding {target.parent} is full "
                          f"({format_bytes(free)} free); the {quant} file needs less than its F16 source, "
                          f"{format_bytes(source.stat().st_size)}: free that much or move runs.dir to a larger disk")
        raise R1Error(f"quantizing {source.name} to {quant} failed: {reason}")
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------- read back


def _gguf_reader(converter_dir: Path | None):
    """gguf-py's GGUFReader, from the converter's own copy when there is one."""
    if converter_dir is not None:
        path = str(Path(converter_dir) / "gguf-py")
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        from gguf import GGUFReader
    except ImportError:
        raise R1Error("gguf-py is not importable; run ./install.sh (it keeps llama.cpp's gguf-py)") from None
    return GGUFReader


def _field(reader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    value = field.contents()
    return value


def read_gguf(path: Path, converter_dir: Path | None = None) -> dict[str, Any]:
    """What the file holds: per-tensor types and their counts, tensor bytes, key metadata."""
    path = Path(path)
    GGUFReader = _gguf_reader(converter_dir)
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a valid GGUF"
        raise R1Error(f"{path}: not a readable GGUF ({type(exc).__name__}: {exc})") from None
    tensor_types = {t.name: t.tensor_type.name for t in reader.tensors}
    scores = reader.fields.get("tokenizer.ggml.scores")
    scores_all_default = False
    if scores is not None and scores.data:
        values = [float(scores.parts[i][0]) for i in scores.data[:2048]]
        scores_all_default = all(v == -1000.0 for v in values)
    template = _field(reader, "tokenizer.chat_template")
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "tensor_bytes": int(sum(int(t.n_bytes) for t in reader.tensors)),
        "tensor_count": len(reader.tensors),
        "type_counts": dict(sorted(Counter(tensor_types.values()).items())),
        "tensor_types": tensor_types,
        "metadata": {
            "architecture": _field(reader, "general.architecture"),
            "name": _field(reader, "general.name"),
            "file_type": _field(reader, "general.file_type"),
            "tokenizer_model": _field(reader, "tokenizer.ggml.model"),
            "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in reader.fields else None,
            "add_space_prefix": _field(reader, "tokenizer.ggml.add_space_prefix"),
            "add_bos_token": _field(reader, "tokenizer.ggml.add_bos_token"),
            "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
            "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
            "has_chat_template": bool(template),
            "scores_all_default": scores_all_default,
        },
        "chat_template": template,
    }


def compare_with_calculator(info: dict[str, Any], arch, quant: str) -> dict[str, Any]:
    """The file next to the calculator: bytes, per-tensor types, and where they differ."""
    from r1tui.calculator import gguf_size_bytes, gguf_tensor_types

    expected = {name: ggml for name, _, _, ggml in gguf_tensor_types(arch, quant)}
    got = info["tensor_types"]
    differences = [
        {"tensor": name, "calculator": expected.get(name), "file": got.get(name)}
        for name in sorted(set(expected) | set(got)) if expected.get(name) != got.get(name)
    ]
    estimate = gguf_size_bytes(arch, quant)
    return {
        "quant": quant,
        "file_bytes": info["bytes"],
        "tensor_bytes": info["tensor_bytes"],
        "metadata_bytes": info["bytes"] - info["tensor_bytes"],
        "calculator_bytes": estimate,
        "tensor_bytes_vs_calculator_pct": round(100.0 * (info["tensor_bytes"] - estimate) / estimate, 3) if estimate else None,
        "file_vs_calculator_pct": round(100.0 * (info["bytes"] - estimate) / estimate, 3) if estimate else None,
        "type_counts": info["type_counts"],
        "types_match_calculator": not differences,
        "type_differences": differences,
    }

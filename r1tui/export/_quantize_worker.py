"""Child process that runs one llama_model_quantize call and reports llama.cpp's log.

Run as ``python -m r1tui.export._quantize_worker IN OUT FTYPE NTHREAD [IMATRIX CONVERTER_DIR]``.
Every complete log line is written to stdout as one JSON object prefixed with ``QLOG``, and
the result as ``QEND {"rc": N}``. The quantize call is C code that cannot be interrupted
from Python; running it in its own process lets a cancel stop it at once (and a crash in
llama.cpp cannot take the pipeline down).

With an importance matrix (``r1tui.export.imatrix``) the call gets it as llama.h's
``llama_model_imatrix_data`` array, and the file gets the metadata ``llama-quantize`` writes
(``quantize.imatrix.file``, ``.dataset``, ``.entries_count``, ``.chunks_count``).
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path


def _imatrix_params(llama_cpp, params, imatrix: Path, converter_dir: Path) -> list:
    """Point ``params`` at the matrix in ``imatrix``; returns what must stay alive meanwhile."""
    from r1tui.export.imatrix import load_imatrix

    matrix = load_imatrix(imatrix, converter_dir)
    names = [name.encode() for name in matrix.entries]
    data = (llama_cpp.llama_model_imatrix_data * (len(names) + 1))()
    for slot, (name, values) in enumerate(zip(names, matrix.entries.values(), strict=True)):
        data[slot].name = name
        data[slot].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        data[slot].size = values.size
    data[len(names)].name = None  # the array ends with a null name
    params.imatrix = data

    overrides = (llama_cpp.llama_model_kv_override * 5)()
    values = [("quantize.imatrix.file", imatrix.name), ("quantize.imatrix.dataset", matrix.dataset),
              ("quantize.imatrix.entries_count", len(names)), ("quantize.imatrix.chunks_count", matrix.chunks)]
    for slot, (key, value) in enumerate(values):
        overrides[slot].key = key.encode()
        if isinstance(value, int):
            overrides[slot].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
            overrides[slot].value.val_i64 = value
        else:
            overrides[slot].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
            overrides[slot].value.val_str = value.encode()[:127]
    overrides[len(values)].key = b""  # ends with an empty key
    params.kv_overrides = overrides
    return [matrix, names, data, overrides]


def main(argv: list[str]) -> int:
    source, target, ftype, nthread = argv[0], argv[1], int(argv[2]), int(argv[3])
    import llama_cpp

    from r1tui.export._llama_log import capture_llama_log

    def on_line(level: str, line: str) -> None:
        sys.stdout.write("QLOG " + json.dumps({"level": level, "line": line}) + "\n")
        sys.stdout.flush()

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    alive = _imatrix_params(llama_cpp, params, Path(argv[4]), Path(argv[5])) if len(argv) > 4 else []
    with capture_llama_log(on_line):
        rc = llama_cpp.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params))
    del alive
    sys.stdout.write("QEND " + json.dumps({"rc": int(rc)}) + "\n")
    sys.stdout.flush()
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

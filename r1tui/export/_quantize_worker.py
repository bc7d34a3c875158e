"""Child process that runs one llama_model_quantize call and reports llama.cpp's log.

Run as ``python -m r1tui.export._quantize_worker IN OUT FTYPE NTHREAD``. Every complete
log line is written to stdout as one JSON object prefixed with ``QLOG``, and the result
as ``QEND {"rc": N}``. The quantize call is C code that cannot be interrupted from
Python; running it in its own process lets a cancel stop it at once (and a crash in
llama.cpp cannot take the pipeline down).
"""

from __future__ import annotations

import ctypes
import json
import sys


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
    with capture_llama_log(on_line):
        rc = llama_cpp.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params))
    sys.stdout.write("QEND " + json.dumps({"rc": int(rc)}) + "\n")
    sys.stdout.flush()
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

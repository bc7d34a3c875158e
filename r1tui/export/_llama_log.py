"""Route llama.cpp's log into Python, one whole line at a time.

llama.cpp calls the log callback with fragments (a tensor's quantize line comes in
three pieces), so text is buffered until a newline. ggml's levels are NONE 0,
DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (CONT continues the previous line);
llama-cpp-python's own table in `_logger.py` predates that order. The ctypes
callback object must stay referenced while llama.cpp holds it, and the previous
callback is put back on exit. A cancel (SIGTERM, Ctrl-C) that lands while llama.cpp runs
the callback would be raised inside it and swallowed by ctypes ("Exception ignored on
calling ctypes callback function"), so the run would go on: inside, a signal only records
the request, raised as ``StageCancelled`` once llama.cpp has returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Callable, Iterator

from r1tui.runs import cancel

GGML_LEVELS = {0: "none", 1: "debug", 2: "info", 3: "warn", 4: "error", 5: "cont"}
# llama.cpp's own warnings and errors go to INFO: every failure they announce is also
# raised as one R1Error line, so the terminal shows it once; pipeline.log (INFO) and
# --debug keep the llama.cpp lines.
_LOGGING_LEVELS = {"none": logging.DEBUG, "debug": logging.DEBUG, "info": logging.DEBUG,
                   "warn": logging.INFO, "error": logging.INFO}


class LineBuffer:
    """Joins fragments into lines; a CONT fragment keeps the level of the line it continues."""

    def __init__(self, on_line: Callable[[str, str], None]):
        self.on_line = on_line
        self._parts: list[str] = []
        self._level = "info"

    def feed(self, level_number: int, text: str) -> None:
        level = GGML_LEVELS.get(level_number, "info")
        if level != "cont" and not self._parts:
            self._level = level
        *complete, rest = text.split("\n")
        for piece in complete:
            self._parts.append(piece)
            line, self._parts = "".join(self._parts), []
            self.on_line(self._level, line)
            if level != "cont":
                self._level = level  # what follows in this fragment is at its own level
        if rest:
            self._parts.append(rest)

    def flush(self) -> None:
        if self._parts:
            line, self._parts = "".join(self._parts), []
            self.on_line(self._level, line)


@contextlib.contextmanager
def capture_llama_log(on_line: Callable[[str, str], None] | None = None,
                      logger: logging.Logger | None = None) -> Iterator[LineBuffer]:
    """While inside, llama.cpp's log lines go to `on_line(level, line)` (and `logger`)."""
    import llama_cpp

    log = logger or logging.getLogger(__name__)

    def deliver(level: str, line: str) -> None:
        log.log(_LOGGING_LEVELS.get(level, logging.DEBUG), "llama.cpp: %s", line)
        if on_line is not None:
            on_line(level, line)

    buffer = LineBuffer(deliver)

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        try:
            buffer.feed(level, text.decode("utf-8", errors="replace"))
        except Exception:  # noqa: BLE001 - an exception must never cross into C
            log.exception("llama.cpp log callback failed")

    previous = llama_cpp.llama_log_callback()
    previous_data = ctypes.c_void_p()
    llama_cpp.llama_log_get(ctypes.byref(previous), ctypes.byref(previous_data))
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        with cancel.deferred():  # see the module's docstring
            yield buffer
    finally:
        buffer.flush()
        llama_cpp.llama_log_set(previous, previous_data)
        # keep `callback` alive until llama.cpp no longer points at it
        del callback
    cancel.raise_if_requested()

"""Real tiny GGUFs for these tests, from tests/infer/tiny_gguf.py (shared with the other folder)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "r1tui_test_tiny_gguf"


def _load_tiny_gguf():
    if _NAME not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "infer" / "tiny_gguf.py"
        spec = importlib.util.spec_from_file_location(_NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


tiny_gguf = _load_tiny_gguf()
SCRIPT = tiny_gguf.SCRIPT
scripted_gguf = tiny_gguf.scripted_gguf
random_gguf = tiny_gguf.random_gguf
scripted_model_dir = tiny_gguf.scripted_model_dir
scripted_reply = tiny_gguf.scripted_reply

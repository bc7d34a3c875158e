"""Eval, inference and their commands import nothing heavy until they run."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "llama_cpp", "math_verify", "sympy", "textual", "unsloth")
MODULES = ("r1tui.eval", "r1tui.eval.report", "r1tui.infer", "r1tui.infer.llama", "r1tui.infer.hf",
           "r1tui.cli.evaluate", "r1tui.cli.chat")


def test_modules_import_without_heavy_libraries():
    code = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_building_both_commands_is_light():
    code = (
        "import argparse, json, sys\n"
        "from r1tui.cli import chat, evaluate\n"
        "for module in (evaluate, chat):\n"
        "    module.add_arguments(argparse.ArgumentParser())\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []

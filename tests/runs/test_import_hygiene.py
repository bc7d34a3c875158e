"""The runs area at start-up imports neither torch, transformers nor unsloth (nor textual)."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["r1tui.runs.runner", "r1tui.runs.pipeline", "r1tui.runs.display", "r1tui.runs.cancel", "r1tui.gpu",
           "r1tui.train", "r1tui.train.base", "r1tui.train.collator", "r1tui.cli.run", "r1tui.cli.train",
           "r1tui.cli.runs", "r1tui.cli.logs", "r1tui.cli.cancel"]


def test_no_heavy_imports_at_module_scope():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in MODULES) +
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'unsloth', 'datasets', 'textual', 'pynvml')"
            " if m in sys.modules]\nprint(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_listing_runs_imports_no_torch(tmp_path):
    code = ("import sys\nfrom r1tui.cli import main\nmain(['runs', '--runs-dir', sys.argv[1]])\n"
            "print('torch' in sys.modules, 'unsloth' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"

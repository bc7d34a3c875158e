"""What importing a module actually loads, each checked in a fresh interpreter (as harlequin does).

- The pipeline never imports Textual; the dashboard, started and driven through every
  panel, never imports torch, unsloth or transformers (nor trl, peft, datasets, openai).
- Eval, inference and their commands import nothing heavy until they run.
- The runs area, the orchestrator and the training package import nothing heavy at module
  scope, and listing runs loads no torch.

tests/test_layers.py reads the same rules from the source (every import, any scope);
these tests prove them on what Python really loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_LOG = REPO / "tests" / "dashboard" / "fixtures" / "tiny_run_events.jsonl"


def run_python(code: str, *args: str, cwd: Path = REPO) -> dict | list:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def loaded_after(imports: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of ``heavy`` are in sys.modules after running ``imports`` in a fresh interpreter."""
    return run_python(f"import json, sys\n{imports}\n"
                      f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))\n")


# ---------------------------------------------------------------- the pipeline and the dashboard

# … nor the teacher's HTTP client: the dashboard shows a generation from its events only
DASHBOARD_HEAVY = ("torch", "unsloth", "unsloth_zoo", "transformers", "trl", "peft", "datasets", "openai")


def test_no_pipeline_module_imports_textual():
    """Import every module outside r1tui.dashboard, one by one, and name the first that
    brings Textual in (a module that pulls it in through another is caught at that one).
    The ``__main__`` modules are left out: importing one runs its command."""
    report = run_python("""
        import importlib, json, pkgutil, sys
        import r1tui
        names = sorted(m.name for m in pkgutil.walk_packages(r1tui.__path__, "r1tui.")
                       if not m.name.startswith("r1tui.dashboard") and not m.name.endswith(".__main__"))
        culprits, failures = [], {}
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
            if any(m == "textual" or m.startswith("textual.") for m in sys.modules):
                culprits.append(name)
                break
        print(json.dumps({"names": names, "culprits": culprits, "failures": failures}))
    """)
    assert len(report["names"]) > 20  # the walk found the pipeline
    assert {"r1tui.config", "r1tui.runs.events", "r1tui.cli.attach"} <= set(report["names"])
    assert report["failures"] == {}
    assert report["culprits"] == [], f"{report['culprits'][0]} imports textual"


def test_dashboard_start_up_and_every_panel_import_no_torch(tmp_path):
    """Start the dashboard headless on the recorded run, visit every panel, quit; then
    neither torch nor unsloth nor transformers (nor trl, peft, datasets) is loaded."""
    run_dir = tmp_path / "runs" / "20261128-000000-tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_bytes(FIXTURE_LOG.read_bytes())
    (run_dir / "config.toml").write_text((REPO / "configs" / "tiny.toml").read_text().replace(
        'dir = "../runs"', f'dir = "{tmp_path / "runs"}"'))
    report = run_python(f"""
        import asyncio, json, sys
        import r1tui.cli, r1tui.cli.attach, r1tui.dashboard.app
        at_import = sorted(m for m in {DASHBOARD_HEAVY!r} if m in sys.modules)
        from pathlib import Path
        from r1tui.dashboard.app import DashboardApp
        from r1tui.dashboard.source import open_run

        async def main():
            runs = Path({str(tmp_path / "runs")!r})
            app = DashboardApp(run=open_run(runs), runs_dir=runs, sample_local_gpu=False)
            async with app.run_test(size=(80, 24)) as pilot:
                from r1tui.dashboard.screens.main import PANEL_KEYS

                keys = [k for panel, k in PANEL_KEYS.items() if panel != "repl"] + [PANEL_KEYS["repl"]]
                for key in keys:  # every panel, the REPL last: its input takes the keys
                    await pilot.press(key)
                    await pilot.pause(0.3)
                await pilot.pause(0.5)
                seen = app.state.events_seen
            return seen

        seen = asyncio.run(main())
        print(json.dumps({{"at_import": at_import, "seen": seen,
                          "after_use": sorted(m for m in {DASHBOARD_HEAVY!r} if m in sys.modules)}}))
    """)
    assert report["seen"] == len(FIXTURE_LOG.read_text().splitlines())
    assert report["at_import"] == []
    assert report["after_use"] == []


# ---------------------------------------------------------------- eval, inference and their commands

EVAL_HEAVY = ("torch", "transformers", "peft", "llama_cpp", "math_verify", "sympy", "textual", "unsloth")
EVAL_MODULES = ("r1tui.eval", "r1tui.eval.report", "r1tui.infer", "r1tui.infer.llama", "r1tui.infer.hf",
                "r1tui.cli.evaluate", "r1tui.cli.chat")


def test_eval_and_infer_import_without_heavy_libraries():
    imports = f"import importlib\nfor name in {EVAL_MODULES!r}: importlib.import_module(name)"
    assert loaded_after(imports, EVAL_HEAVY) == []


def test_building_the_eval_and_chat_commands_is_light():
    imports = ("import argparse\nfrom r1tui.cli import chat, evaluate\n"
               "for module in (evaluate, chat): module.add_arguments(argparse.ArgumentParser())")
    assert loaded_after(imports, EVAL_HEAVY) == []


# ---------------------------------------------------------------- the runs area, the orchestrator, training

RUNS_HEAVY = ("torch", "transformers", "trl", "peft", "unsloth", "datasets", "textual", "pynvml")
RUNS_MODULES = ("r1tui.runs.events", "r1tui.runs.layout", "r1tui.runs.lock", "r1tui.runs.reducer",
                "r1tui.runs.status", "r1tui.runs.files", "r1tui.runs.disk", "r1tui.runs.context",
                "r1tui.runs.cancel", "r1tui.cli._display", "r1tui.pipeline", "r1tui.pipeline.launch",
                "r1tui.pipeline.process", "r1tui.gpu", "r1tui.train", "r1tui.train.base", "r1tui.train.collator",
                "r1tui.cli.run", "r1tui.cli.train", "r1tui.cli.runs", "r1tui.cli.logs", "r1tui.cli.cancel")


def test_runs_area_has_no_heavy_imports_at_module_scope():
    assert loaded_after("".join(f"import {m}\n" for m in RUNS_MODULES), RUNS_HEAVY) == []


def test_listing_runs_imports_no_torch(tmp_path):
    report = run_python("""
        import json, sys
        from r1tui.cli import main
        main(["runs", "--runs-dir", sys.argv[1]])
        print(json.dumps({"torch": "torch" in sys.modules, "unsloth": "unsloth" in sys.modules}))
    """, str(tmp_path))
    assert report == {"torch": False, "unsloth": False}


def test_export_modules_import_nothing_heavy():
    """Export's modules (and its commands) load no heavy library and nothing above them."""
    code = (
        "import sys\n"
        "import r1tui.export, r1tui.export.stages, r1tui.export.push, r1tui.export.parity, r1tui.export.gguf\n"
        "import r1tui.export.merge, r1tui.export.card, r1tui.export.modelfile\n"
        "above = sorted(m for m in sys.modules if m.startswith(('r1tui.pipeline', 'r1tui.cli', 'r1tui.dashboard')))\n"
        "import r1tui.cli.export, r1tui.cli.parity, r1tui.cli.push\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'llama_cpp', 'huggingface_hub', 'textual', 'unsloth')"
        " if m in sys.modules]\n"
        "print(above, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"


# ---------------------------------------------------------------- generate


GENERATE_HEAVY = ("torch", "transformers", "llama_cpp", "unsloth", "textual", "openai")


def test_building_the_cli_and_the_generate_command_does_not_load_the_http_client():
    """`r1tui --help` builds every command's parser, the generate command's too: no openai
    until a generation runs (and nothing heavy even then, but the client)."""
    imports = ("import argparse\nfrom r1tui.cli import build_parser\nbuild_parser()\n"
               "import r1tui.generate, r1tui.generate.run, r1tui.generate.normalize\n"
               "from r1tui.cli import generate\ngenerate.add_arguments(argparse.ArgumentParser())")
    assert loaded_after(imports, GENERATE_HEAVY) == []
    assert loaded_after("import r1tui.generate.teacher", GENERATE_HEAVY) == ["openai"]

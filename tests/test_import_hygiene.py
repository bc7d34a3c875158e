"""The pipeline never imports Textual; the dashboard never imports torch, unsloth or
transformers (each checked in a fresh interpreter, as harlequin does)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_LOG = REPO / "tests" / "dashboard" / "fixtures" / "tiny_run_events.jsonl"
HEAVY = ("torch", "unsloth", "unsloth_zoo", "transformers", "trl", "peft", "datasets")


def run_python(code: str, cwd: Path = REPO) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_pipeline_module_imports_textual():
    """Import every module outside r1tui.dashboard, one by one, and name the first that
    brings Textual in (a module that pulls it in through another is caught at that one)."""
    report = run_python("""
        import importlib, json, pkgutil, sys
        import r1tui
        names = sorted(m.name for m in pkgutil.walk_packages(r1tui.__path__, "r1tui.")
                       if not m.name.startswith("r1tui.dashboard") and m.name != "r1tui.__main__")
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
        at_import = sorted(m for m in {HEAVY!r} if m in sys.modules)
        from pathlib import Path
        from r1tui.dashboard.app import DashboardApp
        from r1tui.dashboard.source import resolve_run

        async def main():
            runs = Path({str(tmp_path / "runs")!r})
            app = DashboardApp(run=resolve_run(None, runs), runs_dir=runs, sample_local_gpu=False)
            async with app.run_test(size=(80, 24)) as pilot:
                for key in "12345679" + "8":  # the REPL last: its input takes the keys
                    await pilot.press(key)
                    await pilot.pause(0.3)
                await pilot.pause(0.5)
                seen = app.state.events_seen
            return seen

        seen = asyncio.run(main())
        print(json.dumps({{"at_import": at_import, "seen": seen,
                          "after_use": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
    """)
    assert report["seen"] == len(FIXTURE_LOG.read_text().splitlines())
    assert report["at_import"] == []
    assert report["after_use"] == []

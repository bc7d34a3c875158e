"""The stage registry: a stage registered at run time is planned, run, resumed and listed
without editing another file; the docs' stage table is the registry's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from r1tui.pipeline import registry
from r1tui.pipeline.registry import Stage
from r1tui.runs.context import StageContext
from r1tui.runs.events import read_events, stage
from r1tui.runs.files import digest, write_text_atomic

REPO = Path(__file__).resolve().parents[2]


def _report_path(ctx: StageContext) -> Path:
    return ctx.layout.root / "report.txt"


def _run_report(ctx: StageContext) -> dict:
    with stage(ctx.events, "report", note=ctx.config.eval.source) as outputs:
        write_text_atomic(_report_path(ctx), f"report of {ctx.layout.run_id}\n")
        outputs["path"] = str(_report_path(ctx))
    return {"path": str(_report_path(ctx))}


@pytest.fixture
def report_stage():
    registered = registry.register(Stage(
        name="report", step="report", does="write a one-line report", writes="report.txt",
        fingerprint=lambda ctx: digest(ctx.config.eval.source), done=lambda ctx: _report_path(ctx).is_file(),
        run=_run_report))
    yield registered
    registry.unregister("report")


def test_a_registered_stage_runs_resumes_and_is_listed(tmp_path, tiny_config_path, report_stage, capsys,
                                                      monkeypatch):
    from r1tui.cli import main

    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    assert "report" in registry.steps() and registry.expand(["report"]) == ["report"]

    assert main(["run", "--config", str(tiny_config_path), "--runs-dir", str(runs), "--stages", "report",
                 "--foreground", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["status"] == "finished", started
    run_dir = Path(started["run_dir"])
    assert (run_dir / "report.txt").read_text() == f"report of {run_dir.name}\n"
    record = json.loads((run_dir / "stages.json").read_text())["report"]
    assert record["status"] == "finished" and record["outputs"] == {"path": str(run_dir / "report.txt")}

    # the one resume rule: up to date, so skipped
    assert main(["run", "--resume", run_dir.name, "--runs-dir", str(runs), "--foreground", "--json"]) == 0
    capsys.readouterr()
    finished = [e.data for e in read_events(run_dir / "events.jsonl") if e.type == "stage_finished"]
    assert [f["status"] for f in finished] == ["finished", "skipped"]
    assert [e.data["stages"] for e in read_events(run_dir / "events.jsonl") if e.type == "run_started"] == \
        [["report"], ["report"]]  # the resume kept the stages the run was started with

    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["stage"] == "report" and listed[0]["stage_status"] == {"report": "skipped"}

    # DRY_RUN plans it like any other stage
    monkeypatch.setenv("DRY_RUN", "1")
    assert main(["run", "--config", str(tiny_config_path), "--runs-dir", str(runs), "--stages", "prepare,report"]) == 0
    plan = capsys.readouterr().out
    assert "│ report" in plan and "write a one-line report" in plan


def test_an_unknown_stage_is_one_line_naming_the_registered_ones(tmp_path, capsys):
    from r1tui.cli import main

    assert main(["run", "--stages", "prepare,distil", "--runs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --stages: unknown stage 'distil'; use a comma-separated subset of "
                          f"{','.join(registry.steps())}") and "\n" not in err


def test_the_docs_stage_table_is_the_registry():
    text = (REPO / "docs" / "runs.md").read_text(encoding="utf-8")
    table = text.split("| stage | step | runs | inputs fingerprinted |", 1)[1].split("\n\n", 1)[0]
    rows = [re.match(r"\| (\w+) \| (\w+) \|", line) for line in table.splitlines() if line.startswith("| ")]
    documented = [(m.group(1), m.group(2)) for m in rows if m and m.group(1) != "---"]
    assert documented == [(s.name, s.step) for s in registry.stages()]


def test_a_failing_pre_check_is_the_failing_stages_not_the_one_before(tmp_path):
    """The export's preflight (no adapter) fails while its disk need is planned, before merge
    starts: the run shows merge failed, not the training that finished before it."""
    from r1tui.config import dump_toml, load_config
    from r1tui.errors import R1Error
    from r1tui.pipeline.orchestrator import run_named
    from r1tui.runs.events import EventWriter, read_events
    from r1tui.runs.layout import RunLayout
    from r1tui.runs.status import run_status

    layout = RunLayout(tmp_path / "20261201-000000-pre0")
    layout.root.mkdir()
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny.toml")
    layout.config.write_text(dump_toml(config), encoding="utf-8")
    with EventWriter(layout.events) as events:
        events.emit("run_started", run_id=layout.run_id, stages=["train", "export"], pid=1)
        events.emit("stage_started", stage="train")
        events.emit("stage_finished", stage="train", status="finished")
        with pytest.raises(R1Error, match="no trained adapter"):
            run_named(config, layout, ["export"], events)
        events.emit("run_finished", status="failed", error="no trained adapter")
    failed = [(e.stage, e.data["status"]) for e in read_events(layout.events) if e.type == "stage_finished"]
    assert failed == [("train", "finished"), ("merge", "failed")]
    assert run_status(layout).stage == "merge"

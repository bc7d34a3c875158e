"""The command line on crashed and failed runs, and the small CLI defects of issue 13:
`logs -f` ends non-zero with the reason, `runs`/`logs` print the diagnosis, bare
`r1tui --runs-dir DIR` opens the dashboard there, `eval`/`chat` default to the newest run,
and `r1tui run`'s hints find the run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from r1tui.runs.diagnosis import KILLED
from r1tui.runs.events import EventWriter
from r1tui.runs.layout import RunLayout

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "r1tui", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env={**os.environ, "COLUMNS": "200", **(env or {})})


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_run(runs_dir: Path, run_id: str, *events: tuple[str, dict], pid: int | None = None,
             log: str = "") -> RunLayout:
    layout = RunLayout(runs_dir / run_id)
    layout.root.mkdir(parents=True)
    layout.config.write_text("", encoding="utf-8")
    pid = pid if pid is not None else dead_pid()
    layout.pid.write_text(f"{pid}\n", encoding="utf-8")
    with EventWriter(layout.events) as writer:
        writer.emit("run_started", run_id=run_id, pid=pid, stages=["train"], heartbeat_s=1.0)
        for type_, data in events:
            data = dict(data)
            writer.emit(type_, stage=data.pop("_stage", None), **data)
    layout.pipeline_log.write_text(log, encoding="utf-8")
    return layout


def test_logs_follow_on_a_crashed_run_exits_1_with_the_reason(tmp_path):
    make_run(tmp_path, "20261201-010000-dead", ("stage_started", {"_stage": "train"}),
             log="step 3/30\nstep 4/30\n")
    result = cli("logs", "20261201-010000-dead", "--runs-dir", str(tmp_path), "-f")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    at = lines.index(f"run 20261201-010000-dead crashed: {KILLED}")
    assert lines[at + 1].startswith("hint: nothing was written as it ended: a signal killed it")
    assert lines[at + 2:] == ["last lines of pipeline.log:", "  step 3/30", "  step 4/30"]


def test_logs_follow_on_a_failed_run_exits_1_with_its_exit_code(tmp_path):
    layout = make_run(tmp_path, "20261201-010000-fail", ("run_finished", {"status": "failed", "error": "boom"}),
                      pid=4242, log="error: boom\n")
    layout.exit_record.write_text(json.dumps({"code": 1, "pid": 4242, "ts": time.time() + 5}), encoding="utf-8")
    result = cli("logs", "--runs-dir", str(tmp_path), "-f", "--json")  # latest
    assert result.returncode == 1
    assert all(json.loads(line) for line in result.stdout.splitlines())  # stdout stays JSON lines
    assert result.stderr.splitlines()[:2] == ["run 20261201-010000-fail failed: exit code 1", "error: boom"]


def test_logs_follow_exits_0_when_finished_and_130_when_cancelled(tmp_path):
    make_run(tmp_path / "a", "20261201-010000-done", ("run_finished", {"status": "finished"}))
    make_run(tmp_path / "b", "20261201-010000-stop", ("run_finished", {"status": "cancelled", "reason": "SIGTERM"}))
    done = cli("logs", "--runs-dir", str(tmp_path / "a"), "-f")
    assert done.returncode == 0 and "hint" not in done.stdout
    assert cli("logs", "--runs-dir", str(tmp_path / "b"), "-f").returncode == 130


def test_logs_without_follow_prints_the_diagnosis_and_exits_0(tmp_path):
    make_run(tmp_path, "20261201-010000-nan", ("metric", {"_stage": "train", "step": 7, "loss": float("nan")}),
             ("run_finished", {"status": "failed", "error": "ValueError: loss is nan"}))
    result = cli("logs", "--runs-dir", str(tmp_path))
    assert result.returncode == 0
    assert "hint: the loss became NaN or inf at step 7: training diverged" in result.stdout


def test_runs_prints_the_diagnosis_of_crashed_and_failed_runs(tmp_path):
    make_run(tmp_path, "20261201-010000-dead", ("stage_started", {"_stage": "train"}), log="step 3/30\n")
    make_run(tmp_path, "20261201-020000-disk", ("run_finished", {"status": "failed", "error":
             "saving checkpoint-20 failed: the disk holding /r is full (1.0 MB free; a checkpoint of this run takes "
             "2.5 GB)"}))
    make_run(tmp_path, "20261201-030000-done", ("run_finished", {"status": "finished"}))
    result = cli("runs", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"20261201-010000-dead: crashed — {KILLED}" in out
    assert "20261201-020000-disk: failed — failed (no exit code recorded)" in out
    assert "the step needed 2.5 GB" in out
    assert "r1tui logs 20261201-010000-dead" in out
    assert "20261201-030000-done:" not in out


def test_bare_r1tui_with_runs_dir_opens_the_dashboard_there(tmp_path):
    """`r1tui --runs-dir DIR` parses to the dashboard (attach) on DIR, --config too; the
    options before a command apply to it; a command without such an option says so."""
    from r1tui.cli import parse_command

    module, args = parse_command(["--runs-dir", str(tmp_path), "--config", "c.toml"])
    assert module.__name__ == "r1tui.cli.attach"
    assert (args.runs_dir, args.config, args.run) == (str(tmp_path), "c.toml", None)
    module, args = parse_command(["--runs-dir", str(tmp_path), "runs"])
    assert module.__name__ == "r1tui.cli.runs" and args.runs_dir == str(tmp_path)
    module, args = parse_command(["--runs-dir", "a", "logs", "--runs-dir", "b"])
    assert args.runs_dir == "b"
    result = cli("--runs-dir", str(tmp_path), "dry-run")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: r1tui: --runs-dir does not apply to `dry-run`; see r1tui --help"


def make_exported(runs_dir: Path, run_id: str) -> Path:
    layout = make_run(runs_dir, run_id, ("run_finished", {"status": "finished"}))
    layout.gguf_dir.mkdir()
    gguf = layout.gguf("model", "Q4_K_M")
    gguf.write_bytes(b"GGUF")  # a dry run names it and never opens it
    return gguf


def test_eval_and_chat_without_a_run_take_the_newest(tmp_path):
    make_exported(tmp_path / "runs", "20261201-010000-old")
    newest = make_exported(tmp_path / "runs", "20261201-020000-new")
    for command in ("eval", "chat"):
        result = cli(command, "--runs-dir", str(tmp_path / "runs"), env={"DRY_RUN": "1"}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert str(newest) in result.stdout.replace("\n", "")
    empty = cli("chat", "--runs-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert empty.returncode == 1 and empty.stderr.startswith(f"error: no runs in {tmp_path / 'none'}")


def test_run_hints_carry_the_runs_dir_when_the_default_lookup_would_miss_it(tmp_path, monkeypatch):
    from r1tui.cli.run import follow_hints

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("R1TUI_CONFIG", raising=False)
    elsewhere = RunLayout(tmp_path / "elsewhere" / "20261201-010000-abcd")
    hints = follow_hints(elsewhere, "started", ["train"], 123)
    assert "Follow: r1tui logs 20261201-010000-abcd --runs-dir elsewhere -f" in hints
    assert "stop: r1tui cancel 20261201-010000-abcd --runs-dir elsewhere" in hints
    default = RunLayout(tmp_path / "runs" / "20261201-010000-abcd")  # ./runs: the built-in runs.dir
    assert "Follow: r1tui logs 20261201-010000-abcd -f · dashboard: r1tui attach 20261201-010000-abcd ·" in \
        follow_hints(default, "started", ["train"], 123)

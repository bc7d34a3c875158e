"""Run status from the event log + the writer's liveness; run ids; resolving runs; readable events.

These runs have no lock file (made by hand, like runs from before the lock existed), so a
writer's liveness comes from the pid file; tests/runs/test_lock.py covers locked runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1tui.cli._display import format_event
from r1tui.errors import R1Error
from r1tui.pipeline.launch import cancel_run, start_run
from r1tui.runs.events import Event, EventWriter
from r1tui.runs.files import write_text_atomic as write_atomic
from r1tui.runs.layout import RunLayout, new_run_id, resolve_run
from r1tui.runs.reducer import stale_after
from r1tui.runs.status import (
    is_stuck_pipeline,
    list_runs,
    pid_alive,
    process_start_time,
    run_status,
)


def make_run(runs_dir: Path, run_id: str, pid: int | None, *events: tuple[str, dict], stage: str | None = None) -> Path:
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text("", encoding="utf-8")
    if pid is not None:
        write_atomic(run_dir / "pid", f"{pid}\n")
    with EventWriter(run_dir / "events.jsonl") as writer:
        for type_, data in events:
            writer.emit(type_, stage=data.pop("_stage", None), **data)
    return run_dir


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


STARTED = ("run_started", {"run_id": "x", "stages": ["prepare", "train"], "pid": 1, "heartbeat_s": 1.0})


@pytest.mark.parametrize("final", ["finished", "failed", "cancelled"])
def test_status_comes_from_the_last_run_finished(tmp_path, final):
    run_dir = make_run(tmp_path, "20260101-000000-aaaa", dead_pid(), STARTED,
                       ("run_finished", {"status": final, **({"error": "boom"} if final == "failed" else {})}))
    status = run_status(run_dir)
    assert status.status == final
    assert status.alive is False
    assert (status.error == "boom") == (final == "failed")


def test_a_dead_process_without_run_finished_is_crashed(tmp_path):
    pid = dead_pid()
    run_dir = make_run(tmp_path, "r", pid, STARTED,
                       ("stage_started", {"_stage": "train"}),
                       ("metric", {"_stage": "train", "step": 7, "max_steps": 30, "loss": 9.5}))
    status = run_status(run_dir)
    assert status.status == "crashed"
    assert str(pid) in status.reason
    assert (status.stage, status.step, status.max_steps, status.loss) == ("train", 7, 30, 9.5)
    assert status.stage_status == {"train": "crashed"}  # its writer is gone: as the dashboard shows it


def test_a_live_process_is_running_until_its_heartbeat_goes_stale(tmp_path):
    run_dir = make_run(tmp_path, "r", os.getpid(), STARTED, ("heartbeat", {}))
    status = run_status(run_dir)
    assert status.status == "running" and status.alive
    later = status.last_event_at + stale_after(1.0) + 1
    stuck = run_status(run_dir, now=later)
    assert stuck.status == "crashed" and "heartbeat" in stuck.reason


def test_a_resume_starts_a_new_attempt(tmp_path):
    run_dir = make_run(tmp_path, "r", os.getpid(), STARTED, ("run_finished", {"status": "cancelled"}),
                       STARTED, ("heartbeat", {}))
    assert run_status(run_dir).status == "running"


def test_zombie_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.05)
    assert pid_alive(proc.pid) is False  # exited but not yet reaped
    proc.wait()
    assert pid_alive(proc.pid) is False
    assert pid_alive(os.getpid()) is True


def test_run_ids_sort_by_time_and_resolve(tmp_path):
    early, late = new_run_id(1_700_000_000), new_run_id(1_700_000_001)
    assert early < late and early[:15] == "20231114-221320"
    for run_id in ("20260101-000000-aaaa", "20260102-000000-bbbb", "20260102-000000-bbcc"):
        make_run(tmp_path, run_id, None, STARTED, ("run_finished", {"status": "finished"}))
    assert [r.run_id for r in list_runs(tmp_path)] == ["20260102-000000-bbcc", "20260102-000000-bbbb",
                                                       "20260101-000000-aaaa"]
    assert resolve_run(tmp_path, "latest").run_id == "20260102-000000-bbcc"
    assert resolve_run(tmp_path, "20260101").run_id == "20260101-000000-aaaa"
    assert resolve_run(tmp_path, str(tmp_path / "20260101-000000-aaaa")).run_id == "20260101-000000-aaaa"
    with pytest.raises(R1Error, match="matches 2 runs"):
        resolve_run(tmp_path, "20260102")
    with pytest.raises(R1Error, match=r"no run 'nope' in .* \(newest: 20260102-000000-bbcc, 20260102-000000-bbbb, "):
        resolve_run(tmp_path, "nope")
    with pytest.raises(R1Error, match="no runs in"):
        resolve_run(tmp_path / "empty", None)


def test_every_command_finds_a_run_the_same_way(tmp_path):
    """One resolver serves run/logs/cancel/export/push/eval/chat and the dashboard."""
    import argparse

    from r1tui.cli._common import resolve_cli_run, run_and_config
    from r1tui.dashboard.source import open_run

    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    for run_id in ("20260101-000000-aaaa", "20260102-000000-bbbb"):
        make_run(runs, run_id, None, STARTED, ("run_finished", {"status": "finished"}))
    moved = make_run(elsewhere, "20250101-000000-cccc", None, STARTED, ("run_finished", {"status": "finished"}))
    (tmp_path / "plain").mkdir()
    (runs / "not-a-run").mkdir()
    for ref, expected in ((None, "20260102-000000-bbbb"), ("last", "20260102-000000-bbbb"),
                          ("20260101", "20260101-000000-aaaa"), (str(moved), moved.name)):
        assert resolve_run(runs, ref).root == (runs if ref != str(moved) else elsewhere).resolve() / expected
        assert open_run(runs, ref).layout == resolve_run(runs, ref)
        args = argparse.Namespace(run=ref, runs_dir=str(runs), config=None)
        assert resolve_cli_run(args) == resolve_run(runs, ref)
        args.run = ref or "latest"  # export, push, eval and chat: RUN given
        assert run_and_config(args, "export it")[0] == resolve_run(runs, ref)
    with pytest.raises(R1Error, match="plain is a folder but not a run"):
        resolve_run(runs, str(tmp_path / "plain"))
    with pytest.raises(R1Error, match="no run 'not-a-run'"):
        resolve_run(runs, "not-a-run")
    assert open_run(tmp_path / "missing") is None


def test_cancel_refuses_a_run_that_is_not_running(tmp_path):
    run_dir = make_run(tmp_path, "r", dead_pid(), STARTED, ("run_finished", {"status": "finished"}))
    with pytest.raises(R1Error, match="not running \\(status: finished\\)"):
        cancel_run(RunLayout(run_dir))


def test_events_read_as_one_line_each():
    metric = Event("metric", {"step": 3, "max_steps": 30, "loss": 9.87654, "learning_rate": 1e-3, "grad_norm": 1.5,
                              "tokens_per_s": 812.6, "eta_s": 75.0, "cuda_peak": 3 * 2**30}, stage="train", ts=1.0)
    text = format_event(metric)
    assert "step 3/30" in text and "loss 9.8765" in text and "813 tok/s" in text and "eta 1:15" in text
    assert "vram peak 3.2 GB" in text  # decimal units, as everywhere (r1tui.present)
    assert "no GPU (NVML Shared Library Not Found)" in format_event(
        Event("gpu", {"available": False, "reason": "NVML Shared Library Not Found"}, stage="train"))
    finished = Event("stage_finished", {"status": "skipped", "duration_s": 0.0, "outputs": {"reason": "up to date"}},
                     stage="prepare")
    assert format_event(finished).endswith("skipped in 0.0s: up to date")
    assert "run failed: boom" in format_event(Event("run_finished", {"status": "failed", "error": "boom"}))
    evaluated = format_event(Event("metric", {"step": 20, "max_steps": 30, "eval_loss": 7.25}, stage="train"))
    assert "step 20/30" in evaluated and "eval loss 7.2500" in evaluated and "loss -" not in evaluated


@pytest.mark.parametrize("command", ["export", "push", "eval", "parity"])
def test_commands_that_write_into_a_run_refuse_a_running_one(tmp_path, command):
    """A live pipeline (this test process's pid, a fresh heartbeat) owns its folder."""
    run_dir = make_run(tmp_path, "20261127-000000-live", os.getpid(), STARTED, ("heartbeat", {}))
    result = subprocess.run([sys.executable, "-m", "r1tui", command, str(run_dir)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "is still running" in result.stderr and "r1tui cancel" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1


def test_resume_keeps_the_stages_the_run_was_started_with(tmp_path, tiny_config_path):
    """`run --resume` of a `train` run (prepare, train) must not grow export and eval."""
    run_dir = make_run(tmp_path, "20261127-000000-abcd", None,
                       ("run_started", {"run_id": "x", "stages": ["prepare", "train"], "pid": 1}),
                       ("run_finished", {"status": "cancelled"}))
    (run_dir / "config.toml").write_text(tiny_config_path.read_text(), encoding="utf-8")
    env = {**os.environ, "DRY_RUN": "1"}
    result = subprocess.run([sys.executable, "-m", "r1tui", "run", "--resume", run_dir.name, "--runs-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    plan = result.stdout.split("Model and LoRA")[0]
    assert "│ prepare" in plan and "│ train" in plan
    assert "│ export" not in plan and "│ eval" not in plan


def _age_events(run_dir: Path, seconds: float) -> None:
    """Move every event of the log `seconds` into the past."""
    import json

    path = run_dir / "events.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**e, "ts": e["ts"] - seconds}) + "\n" for e in lines))


def test_a_stuck_pipeline_can_be_cancelled_but_not_resumed(tmp_path, monkeypatch):
    """Alive but silent: `runs` calls it crashed; cancel must still reach it (and --wait
    waits for it), and a resume must not start a second pipeline beside it.

    A log goes stale only after 60 s, so the log is moved 10 minutes into the past, and the
    process's start time (read from /proc) is faked to fall before it."""
    from r1tui.runs import status as status_module

    run_dir = tmp_path / "20261127-000000-stuk"
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        make_run(tmp_path, run_dir.name, stuck.pid, STARTED, ("heartbeat", {}))
        _age_events(run_dir, 600)
        monkeypatch.setattr(status_module, "process_start_time", lambda pid: time.time() - 700)
        status = run_status(run_dir)
        assert status.status == "crashed" and status.alive and "alive but stuck" in status.reason
        assert is_stuck_pipeline(status)
        with pytest.raises(R1Error, match="alive but stuck.*stop it first with `r1tui cancel"):
            start_run(None, resume_run=RunLayout(run_dir))
        after = cancel_run(RunLayout(run_dir), wait=30)
        assert stuck.poll() == -15 and not after.alive  # SIGTERM reached it and --wait saw it go
    finally:
        stuck.kill()


def test_a_process_that_took_over_a_dead_runs_pid_is_never_signalled(tmp_path):
    """A process named like ours, started after the run (its pid reused), is not the run's."""
    impostor = subprocess.Popen(["bash", "-c", "exec -a r1tui sleep 60"])
    try:
        assert abs(process_start_time(impostor.pid) - time.time()) < 5  # read from /proc, really
        run_dir = make_run(tmp_path, "20261127-000000-reus", impostor.pid, STARTED, ("heartbeat", {}))
        _age_events(run_dir, 600)
        status = run_status(run_dir)
        assert status.alive and status.status == "crashed" and not is_stuck_pipeline(status)
        with pytest.raises(R1Error, match="is not running"):
            cancel_run(RunLayout(run_dir))
        assert impostor.poll() is None
    finally:
        impostor.kill()


def test_a_run_whose_config_cannot_be_loaded_ends_failed_with_the_error(tmp_path, tiny_config_path):
    run_dir = tmp_path / "20261127-000000-badc"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(tiny_config_path.read_text().replace("\nr = 16", "\nr = 0"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "r1tui.pipeline", str(run_dir), "--stages", "prepare"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    status = run_status(run_dir)
    assert status.status == "failed" and "lora.r = 0" in status.error, status


def test_bad_arguments_of_logs_and_cancel_are_one_line(tmp_path, capsys):
    from r1tui.cli import main

    make_run(tmp_path, "20261127-000000-done", None, STARTED, ("run_finished", {"status": "finished"}))
    assert main(["logs", "--runs-dir", str(tmp_path), "--type", "metric,bogus"]) == 1
    assert capsys.readouterr().err.strip().startswith("error: --type bogus: no such event type; use some of ")
    assert main(["cancel", "--runs-dir", str(tmp_path), "--wait", "-1"]) == 1
    assert capsys.readouterr().err.strip() == "error: --wait -1: must be 0 (do not wait) or more seconds"


@pytest.mark.parametrize("command", ["export", "push", "eval", "parity", "chat", "logs", "cancel"])
def test_every_command_that_takes_a_run_takes_runs_dir(tmp_path, command, capsys):
    """--runs-dir points every RUN-taking command at another runs folder."""
    from r1tui.cli import main

    make_run(tmp_path / "elsewhere", "20261127-000000-away", None, STARTED, ("run_finished", {"status": "finished"}))
    code = main([command, "20261127-000000-away", "--runs-dir", str(tmp_path / "missing")])
    assert code == 1 and "no runs in" in capsys.readouterr().err
    main([command, "20261127-000000-away", "--runs-dir", str(tmp_path / "elsewhere")])
    assert "no runs in" not in capsys.readouterr().err  # found; what follows is that command's business


def test_runs_table_keeps_its_numbers_whole_at_80_columns(tmp_path):
    make_run(tmp_path, "20261127-000000-wide", None, STARTED,
             ("metric", {"_stage": "train", "step": 30, "max_steps": 30, "loss": 8.90312}),
             ("run_finished", {"status": "finished"}))
    result = subprocess.run([sys.executable, "-m", "r1tui", "runs", "--runs-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "20261127-000000-wide" in line)
    assert "30/30" in row and "8.903" in row and "finished" in row and len(row) <= 80


def test_an_abbreviated_option_is_not_taken_for_another(tmp_path):
    """argparse would read `--run x` as `--runs-dir x`; a typo must be an error instead."""
    result = subprocess.run([sys.executable, "-m", "r1tui", "logs", "--run", "x"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --run" in result.stderr


@pytest.mark.parametrize("argv", [
    ["export", "--quant", "Q3_K"], ["eval", "--slots", "many"], ["eval", "--samples-per-question", "0"],
    ["eval", "--temperature", "hot"], ["nosuch"], ["logs", "--run", "x"], ["runs", "--json", "extra"],
    ["eval", "--slots", "1000"], ["eval", "--vs", "base", "--gguf", "missing.gguf"], ["cancel"],
])
def test_a_bad_command_line_value_is_one_line(tmp_path, argv):
    (tmp_path / "config.toml").write_text('[runs]\ndir = "runs"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "r1tui", *argv], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, "COLUMNS": "400"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr


@pytest.mark.parametrize("command", ["runs", "logs", "cancel"])
def test_runs_dir_commands_read_no_config(tmp_path, command):
    """With --runs-dir, listing, reading and cancelling runs need no config: a broken
    ./config.toml nearby must not stop them."""
    make_run(tmp_path / "runs", "20261127-000000-done", None, STARTED, ("run_finished", {"status": "finished"}))
    (tmp_path / "config.toml").write_text('[model]\ntokenizer = "/nonexistent/tok"\n')
    result = subprocess.run([sys.executable, "-m", "r1tui", command, "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "config.toml" not in result.stderr, result.stderr
    assert result.returncode == (1 if command == "cancel" else 0)  # cancel: the run is not running


def test_run_folders_are_the_owners_alone_unless_the_config_says_otherwise(tmp_path, runs_helpers):
    from r1tui.config import load_config
    from r1tui.pipeline.launch import create_run

    config = load_config(runs_helpers.write_config(tmp_path, tmp_path / "runs"))
    private = create_run(config)
    assert private.root.stat().st_mode & 0o777 == 0o700
    config.runs.private = False
    shared = create_run(config)
    umask = os.umask(0)
    os.umask(umask)
    assert shared.root.stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_failing_command_leaves_only_its_error_on_a_real_terminal(tmp_path):
    """In tmux (a real terminal): the progress bar is wiped and no library warning is shown."""
    import shlex
    import shutil
    import uuid

    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal test (apt-get install tmux)", pytrace=False)
    run = tmp_path / "runs" / "20261201-000000-term"
    run.mkdir(parents=True)
    (run / "config.toml").write_text((Path(__file__).resolve().parents[2] / "configs" / "tiny.toml").read_text())
    (tmp_path / "config.toml").write_text('[runs]\ndir = "runs"\n', encoding="utf-8")
    socket = f"r1tui-err-{uuid.uuid4().hex[:8]}"
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "What is 2 + 2?", "answer": "4"}\n', encoding="utf-8")
    # the export fails at once; the eval only after its progress bar has been drawn for a while
    command = (shlex.join([sys.executable, "-m", "r1tui", "export", run.name]) + "; " +
               shlex.join([sys.executable, "-m", "r1tui", "eval", "--base-url", "http://127.0.0.1:9/v1",
                           "--source", str(rows), "--out", str(tmp_path / "out")]))

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30).stdout

    tmux("-f", os.devnull, "new-session", "-d", "-s", "err", "-x", "400", "-y", "20", "-c", str(tmp_path),
         f"clear; {command}; echo EXIT=$?; sleep 30")
    try:
        deadline = time.monotonic() + 90
        while "EXIT=" not in (screen := tmux("capture-pane", "-p", "-t", "err")) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        tmux("kill-server")
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines[-1] == "EXIT=1" and len(lines) == 3, screen
    assert lines[0].startswith("error: ") and "no trained adapter" in lines[0]
    assert lines[1].startswith("error: eval.base_url http://127.0.0.1:9/v1: APIConnectionError")

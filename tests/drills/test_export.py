"""Export drills: `r1tui export` cancelled (`r1tui cancel`) and killed with -9 inside each of
its stages (merge, gguf, quantize, parity), then run again; and a disk that fills up while
llama.cpp converts and while it quantizes.

After each stop: the run's status says what happened (cancelled, or crashed for a writer
killed mid-stage), every stage finished before it is still recorded and its files are
byte-identical to the uninterrupted export's, no partial file is left under a final name,
and no temporary file outlives the next writer. The export that finishes writes GGUFs
byte-identical to the uninterrupted export of the same adapter (the reference run's).

The export is run two ways: the pipeline's export step (`r1tui run --resume RUN --stages
export`, whose run then ends cancelled or crashed) and `r1tui export RUN` (a command writing
into a run whose pipeline ended: the stage reads cancelled or crashed, the run keeps its
status). Each is a real process forked from tests/drills/forkserver.py, stopped while the
stage is at work (frozen with SIGSTOP at the stage's first progress event, then signalled).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from r1tui.runs.events import EventReader
from r1tui.runs.files import read_json_object
from r1tui.runs.layout import RunLayout
from r1tui.runs.status import run_status

pytestmark = pytest.mark.slow

STAGES = ["merge", "gguf", "quantize", "parity"]
EXPORT_RECORDS = ("merge", "gguf", "quantize", "parity")


def export_ready_copy(reference, folder: Path) -> RunLayout:
    """The reference run as training left it: no merged/, gguf/, card/, and no export records."""
    run = RunLayout(folder / "runs" / reference.layout.run_id)
    shutil.copytree(reference.layout.root, run.root,
                    ignore=shutil.ignore_patterns("merged", "gguf", "card", "eval", "checkpoints", "lock"))
    records = read_json_object(run.stages_record)
    for name in (*EXPORT_RECORDS, "eval"):
        records.pop(name, None)
    run.stages_record.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return run


def temps(run: RunLayout) -> list[str]:
    """Temporary files and folders (names start with '.' and hold '.tmp-')."""
    return sorted(str(p.relative_to(run.root)) for p in run.root.rglob(".*.tmp-*"))


def finished_stages(run: RunLayout) -> list[str]:
    records = read_json_object(run.stages_record)
    return [name for name in EXPORT_RECORDS if records.get(name, {}).get("status") == "finished"]


def same_bytes(run: RunLayout, reference, names) -> None:
    for name in names:
        assert (run.gguf_dir / name).read_bytes() == (reference.layout.gguf_dir / name).read_bytes(), name


def signal_pending(pid: int, signum: int) -> bool:
    """Is ``signum`` waiting to be delivered to the (stopped) process?"""
    status = Path(f"/proc/{pid}/status").read_text()
    pending = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines()
               if line.startswith(("SigPnd", "ShdPnd"))}
    return any(mask & (1 << (signum - 1)) for mask in pending.values())


def freeze_in_stage(drills, child, run: RunLayout, reader: EventReader, stage: str) -> None:
    """Wait for ``stage``'s first progress event, then stop the export (and the helpers it
    started, its process group) where it is; fails when the stage ended first."""
    seen = []

    def at_work():
        seen.extend(reader.read_new())
        return any(e.type == "stage_progress" and e.stage == stage for e in seen)

    drills.wait_for(at_work, timeout=300, poll=0.005, what=f"{stage} at work")
    os.killpg(child.pid, signal.SIGSTOP)
    seen.extend(reader.read_new())
    ended = [e for e in seen if e.type == "stage_finished" and e.stage == stage]
    assert not ended, f"{stage} finished before it could be stopped"


PIPELINE, COMMAND = "r1tui run --resume RUN --stages export", "r1tui export RUN"


def export_command(run: RunLayout, path: str) -> tuple[str, ...]:
    if path == PIPELINE:  # the pipeline in this process (--foreground): it writes run_started/run_finished
        return ("run", "--resume", str(run.root), "--stages", "export", "--foreground", "--json")
    return ("export", str(run.root), "--json")  # a command writing into a run whose pipeline ended


@pytest.mark.parametrize("how", ["cancel", "kill -9"])
def test_export_stopped_in_each_stage_resumes_to_the_same_ggufs(tmp_path, reference, forkserver, drills, how):
    """Stopped in merge, gguf, quantize and parity in turn, each time by the pipeline's export
    step or by `r1tui export` (alternating, the other way round for the other signal), then
    finished by the other one."""
    run = export_ready_copy(reference, tmp_path)
    runs = str(run.root.parent)
    ggufs = sorted(p.name for p in reference.layout.gguf_files())
    f16, q4 = (next(n for n in ggufs if n.endswith(f"-{quant}.gguf")) for quant in ("F16", "Q4_K_M"))
    paths = [COMMAND, PIPELINE] if how == "cancel" else [PIPELINE, COMMAND]
    for index, stage in enumerate(STAGES):
        path = paths[index % 2]
        reader = EventReader(run.events, offset=run.events.stat().st_size)
        status_before = run_status(run).status
        child = forkserver.spawn(*export_command(run, path), cwd=tmp_path)
        freeze_in_stage(drills, child, run, reader, stage)
        context = (how, stage, path)
        if how == "cancel":
            canceller = forkserver.spawn("cancel", run.run_id, "--runs-dir", runs, "--wait", "60", cwd=tmp_path)
            drills.wait_for(lambda pid=child.pid: signal_pending(pid, signal.SIGTERM), timeout=60,
                            what="the cancel's SIGTERM")
            os.killpg(child.pid, signal.SIGCONT)
            cancelled = forkserver.wait(canceller)
            stopped = forkserver.wait(child)
            assert cancelled.returncode == 0, (context, cancelled.stderr)
            assert stopped.returncode == 130, (context, stopped.stderr[-2000:])
            status = run_status(run)
            assert status.stage_status[stage] == "cancelled", (context, status)
            if path == PIPELINE:
                assert json.loads(stopped.stdout)["status"] == "cancelled" and status.status == "cancelled", context
                assert cancelled.stdout.startswith(f"run {run.run_id}: cancelled"), (context, cancelled.stdout)
            else:
                assert stopped.stderr.strip().splitlines()[-1] == "error: cancelled", (context, stopped.stderr)
                said = " ".join(cancelled.stdout.split())
                if status.status == "cancelled":  # by an earlier stop of the pipeline
                    assert said.startswith(f"run {run.run_id}: cancelled"), (context, said)
                else:
                    assert said == f"run {run.run_id}: {stage} cancelled (the run itself: {status.status})", context
            assert not temps(run), (context, temps(run))  # a cancel cleans up after itself
        else:
            os.kill(child.pid, signal.SIGKILL)  # the export alone, as `kill -9 PID` does
            os.killpg(child.pid, signal.SIGCONT)  # its helpers, orphaned, go on until they notice
            assert forkserver.wait(child).returncode == -signal.SIGKILL
            status = run_status(run)
            assert status.stage_status[stage] == "crashed", (context, status)
            assert status.status == ("crashed" if path == PIPELINE else status_before), (context, status)
        # what finished before the stop is kept, recorded and unchanged; nothing half-made is left
        assert finished_stages(run) == STAGES[:index], (context, finished_stages(run))
        if index > 0:
            assert (run.merged / "config.json").is_file()
        whole = {0: [], 1: [], 2: [f16], 3: [f16, q4]}[index]  # no partial file under a final name
        assert sorted(p.name for p in run.gguf_files()) == whole, (context, run.gguf_files())
        same_bytes(run, reference, whole)
    last = paths[len(STAGES) % 2]
    final = forkserver.run(*export_command(run, last), cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    events = EventReader(run.events).read_new()
    last_attempt = events[max(i for i, e in enumerate(events) if e.type == "stage_started" and e.stage == "merge"):]
    skipped = [e.stage for e in last_attempt if e.type == "stage_finished" and e.data["status"] == "skipped"]
    assert skipped == ["merge", "gguf", "quantize"]  # only parity was left to do
    assert finished_stages(run) == STAGES
    status = run_status(run)
    assert [status.stage_status[name] for name in STAGES] == ["skipped"] * 3 + ["finished"], status
    if last == PIPELINE:
        assert status.status == "finished", status  # (after `r1tui export`, the run keeps its pipeline's status)
    same_bytes(run, reference, ggufs)
    assert not temps(run), temps(run)
    print(f"\nDRILL export, {how}: stopped in {', '.join(STAGES)}; finished artefacts kept, no partial file; "
          f"{len(ggufs)} GGUFs byte-identical after the resume")


def test_a_full_disk_while_converting_and_quantizing_is_one_line_and_the_export_resumes(tmp_path, reference,
                                                                                     forkserver, drills, tmpfs):
    """gguf/ on a small file system of its own (the run's disk has room, so the export's
    up-front disk check passes): the converter, then the quantizer, meet a full disk."""
    run = export_ready_copy(reference, tmp_path)
    f16, q4 = (next(p for p in reference.layout.gguf_files() if p.name.endswith(f"-{quant}.gguf"))
               for quant in ("F16", "Q4_K_M"))
    tmpfs.mount(run.gguf_dir, "4m")

    failed = forkserver.run("export", str(run.root), cwd=tmp_path)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), failed.stderr
    assert f"the disk holding {run.gguf_dir} is full" in lines[0] and "the F16 GGUF needs about" in lines[0], lines[0]
    assert finished_stages(run) == ["merge"] and run_status(run).stage_status["gguf"] == "failed"
    assert sorted(p.name for p in run.gguf_dir.iterdir()) == ["convert.log"], "a partial GGUF was left"

    tmpfs.resize(run.gguf_dir, f"{(f16.stat().st_size >> 20) + 3}m")  # room for the F16, not the Q4_K_M
    failed = forkserver.run("export", str(run.root), cwd=tmp_path)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), failed.stderr
    assert f"the disk holding {run.gguf_dir} is full" in lines[0], lines[0]
    assert finished_stages(run) == ["merge", "gguf"] and run_status(run).stage_status["quantize"] == "failed"
    same_bytes(run, reference, [f16.name])
    assert sorted(p.name for p in run.gguf_dir.iterdir()) == ["convert.log", f16.name]

    tmpfs.resize(run.gguf_dir, "100m")
    done = forkserver.run("export", str(run.root), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    same_bytes(run, reference, [f16.name, q4.name])
    assert not temps(run) and run_status(run).status == "finished"
    print("\nDRILL full disk: convert and quantize each failed in one line; GGUFs byte-identical after the resume")

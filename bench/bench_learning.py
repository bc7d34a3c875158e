"""The learning sweep behind configs/learn.toml: one whole `r1tui run` per point, its format compliance.

    python bench/bench_learning.py --list                # the points and the figures BENCHMARKS.md records
    python bench/bench_learning.py --only seed-4         # one point (about 4 min on 2 idle cores)
    python bench/bench_learning.py --only seed-3407 --vs-base   # and the untrained base on the same prompts
    python bench/bench_learning.py                       # all 19 points, one after the other (hours)

BENCHMARKS.md, "A tiny model that visibly learns", has two tables; every row is a point here:

- the sweep (``r128a128-3e-3-500x4-2000`` …): ``configs/tiny.toml`` with the keys in which
  ``configs/learn.toml`` differs from it (the eval's budget and greedy decoding, cosine with
  warmup 0.1, …; computed from the two files, not listed here), then the row's own LoRA
  rank / alpha, learning rate, steps × batch, rows (``data.num_examples``), max_seq_length
  and prompt count (``eval.num_samples``, 48 unless the row says 64);
- the seeds (``seed-3407``, ``seed-1``, ``seed-2``, ``seed-4``): ``configs/learn.toml``
  itself (3407, the shipped one) or with ``train.seed`` changed (4); seeds 1 and 2 ran
  ``tiny.toml`` with learn.toml's keys set, as recorded (that differs only in
  ``save_steps`` and the export's quality-report length, which do not touch the weights or
  the replies).

Each point writes its config (``runs.dir`` under a work folder), runs ``r1tui run --config
… --foreground --json`` (prepare → train → export → eval, as a user would) and reads the
run's ``eval/results.json`` (compliance, answers right) and ``events.jsonl`` (the loss, the
train stage's time); ``--vs-base`` then runs ``r1tui eval RUN --vs base``. Each row prints
the measured figure beside the recorded one. Training is seeded and the eval greedy, so a
point on the same machine lands on its recorded compliance; times vary with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.toml"
LEARN = REPO / "configs" / "learn.toml"
# learn.toml's keys that are not what a point is about (they change no weight and no reply)
NOT_CARRIED = {"train.save_steps", "export.quality_tokens", "runs.dir"}


@dataclass(frozen=True)
class Point:
    name: str
    base: Path
    overrides: dict[str, Any]
    recorded: str  # the compliance BENCHMARKS.md records for it
    note: str = ""
    with_learn_keys: bool = True  # tiny.toml + learn.toml's keys (the sweep, seeds 1 and 2)


def sweep(r: int, alpha: int, lr: float, steps: int, batch: int, rows: int, recorded: str, *,
          seq: int = 384, prompts: int = 48, note: str = "") -> Point:
    name = f"r{r}a{alpha}-{lr:.0e}-{steps}x{batch}-{rows}".replace("e-0", "e-") + (f"-seq{seq}" if seq != 384 else "")
    return Point(name, TINY, {"lora.r": r, "lora.alpha": alpha, "train.learning_rate": lr,
                              "train.max_steps": steps, "train.per_device_batch_size": batch,
                              "data.num_examples": rows, "model.max_seq_length": seq,
                              "eval.num_samples": prompts}, recorded, note)


# BENCHMARKS.md's sweep table, in its order (lowest compliance first), then its seeds table.
POINTS = [
    sweep(64, 128, 5e-3, 300, 4, 1200, "0 %"),
    sweep(16, 32, 7e-3, 300, 4, 1200, "0 %"),
    sweep(16, 32, 5e-3, 600, 2, 1200, "2 %"),
    sweep(16, 32, 4e-3, 300, 4, 1200, "12 %", seq=256),
    sweep(64, 64, 4e-3, 600, 2, 1200, "15 %", seq=256),
    sweep(128, 128, 3e-3, 600, 2, 1200, "58 %"),
    sweep(64, 64, 4e-3, 300, 4, 1200, "60 %"),
    sweep(256, 256, 2e-3, 300, 4, 1200, "60 %"),
    sweep(128, 128, 4e-3, 350, 4, 1400, "62 %"),
    sweep(256, 256, 3e-3, 300, 4, 1200, "69 %"),
    sweep(128, 256, 3e-3, 350, 4, 1400, "71 %"),
    sweep(128, 128, 3e-3, 400, 4, 1600, "75 %", prompts=64),
    sweep(128, 128, 3e-3, 300, 4, 1200, "79 %"),
    sweep(128, 128, 3e-3, 500, 4, 500, "84 %", prompts=64, note="4 epochs"),
    sweep(128, 128, 3e-3, 500, 4, 2000, "92 %", note="→ learn.toml"),
    Point("seed-3407", LEARN, {}, "90.6 %", "the shipped config; base 0 %", with_learn_keys=False),
    Point("seed-1", TINY, {"train.seed": 1}, "90.6 %"),
    Point("seed-2", TINY, {"train.seed": 2}, "89.1 %"),
    Point("seed-4", LEARN, {"train.seed": 4}, "89.1 %", with_learn_keys=False),
]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def learn_keys() -> dict[str, Any]:
    """The keys in which learn.toml differs from tiny.toml (as parsed, defaults filled in),
    less those that change no weight and no reply."""
    from r1tui.config import parse_config

    def parsed(path: Path) -> dict[str, Any]:
        config = parse_config(tomllib.loads(path.read_text(encoding="utf-8")), origin=str(path), base_dir=path.parent)
        return flatten(config.model_dump(mode="json"))

    tiny, learn = parsed(TINY), parsed(LEARN)
    return {key: value for key, value in learn.items() if tiny.get(key) != value and key not in NOT_CARRIED}


def write_config(point: Point, folder: Path) -> Path:
    """The point's config, its runs under ``folder``; every override checked by the loader."""
    from r1tui.config import dump_toml, parse_config

    data = tomllib.loads(point.base.read_text(encoding="utf-8"))
    overrides = {**(learn_keys() if point.with_learn_keys else {}), **point.overrides}
    for dotted, value in overrides.items():
        section, key = dotted.rsplit(".", 1)
        target = data
        for part in section.split("."):
            target = target.setdefault(part, {})
        target[key] = value
    data["runs"] = {"dir": str(folder / "runs")}
    path = folder / f"{point.name}.toml"
    path.write_text(dump_toml(parse_config(data, origin=str(point.base), base_dir=point.base.parent)),
                    encoding="utf-8")
    return path


def r1tui(*args: str, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run([sys.executable, "-m", "r1tui", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"r1tui {' '.join(args)} -> exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def run_point(point: Point, folder: Path, vs_base: bool) -> dict[str, Any]:
    from r1tui.runs.events import read_events

    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(point, folder)
    env = dict(os.environ, HOME=str(folder / "home"), PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    run = json.loads(r1tui("run", "--config", str(config), "--foreground", "--json", env=env, timeout=4 * 3600))
    wall = time.perf_counter() - started
    if run["status"] != "finished":
        raise SystemExit(f"{point.name}: run {run['run_dir']} {run['status']}: {run.get('error')}")
    run_dir = Path(run["run_dir"])
    results = json.loads((run_dir / "eval" / "results.json").read_text(encoding="utf-8"))
    events = read_events(run_dir / "events.jsonl")
    losses = [e.data["loss"] for e in events if e.type == "metric" and "loss" in e.data]
    train_s = next(e.data["duration_s"] for e in events if e.type == "stage_finished" and e.stage == "train")
    samples = results["samples"]
    row = {"point": point.name, "recorded": point.recorded, "run_dir": str(run_dir),
           "prompts": len(samples), "compliant": sum(1 for s in samples if s["compliant"]),
           "correct": sum(1 for s in samples if s.get("correct")),
           "compliance_rate": results["summary"]["compliance_rate"],
           "loss_first": losses[0], "loss_last5": statistics.fmean(losses[-5:]),
           "train_s": round(train_s, 1), "wall_s": round(wall, 1)}
    if vs_base:
        out = folder / "vs-base"
        r1tui("eval", str(run_dir), "--vs", "base", "--out", str(out), "--json", env=env, timeout=3600)
        base = json.loads(next(out.glob("vs-*base*.json")).read_text(encoding="utf-8"))
        row["base_compliance_rate"] = base["summary"]["compliance_rate"]
    return row


def percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run this point (repeatable); see --list")
    parser.add_argument("--list", action="store_true", help="print the points, their overrides and recorded figures")
    parser.add_argument("--vs-base", action="store_true", help="also evaluate the untrained base (r1tui eval --vs base)")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    by_name = {point.name: point for point in POINTS}
    if args.list:
        common = learn_keys()
        print("tiny.toml points also set learn.toml's keys: " + ", ".join(f"{k}={v}" for k, v in common.items()))
        for point in POINTS:
            where = point.base.relative_to(REPO)
            print(f"{point.name:<30} {point.recorded:>7}  {where} "
                  + " ".join(f"{k}={v}" for k, v in point.overrides.items()) + (f"  ({point.note})" if point.note else ""))
        return 0
    unknown = [name for name in args.only or [] if name not in by_name]
    if unknown:
        print(f"bench_learning: no point named {', '.join(unknown)}; --list names them", file=sys.stderr)
        return 2
    chosen = [by_name[name] for name in args.only] if args.only else POINTS

    print(f"# {date.today()} · {platform.machine()}, {os.cpu_count()} CPUs · load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| point | compliance | recorded | answers right | loss first → last 5 | train stage | whole run |"
          + (" base |" if args.vs_base else ""))
    print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if args.vs_base else ""))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as scratch:
        work = args.work or Path(scratch)
        for point in chosen:
            row = run_point(point, work / point.name, args.vs_base)
            rows.append(row)
            print(f"| {point.name} | **{percent(row['compliant'], row['prompts'])}** ({row['compliant']}/{row['prompts']})"
                  f" | {point.recorded} | {percent(row['correct'], row['prompts'])}"
                  f" | {row['loss_first']:.2f} → {row['loss_last5']:.2f} | {row['train_s']:.0f} s | {row['wall_s']:.0f} s |"
                  + (f" {100 * row['base_compliance_rate']:.1f} % |" if args.vs_base else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

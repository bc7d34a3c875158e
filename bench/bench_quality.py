"""What the quantization quality report adds to an export, and the figures it reports.

    python bench/bench_quality.py                              # configs/tiny.toml, 3 rounds
    python bench/bench_quality.py --config configs/learn.toml  # a tiny model that learned the format first

Trains one run through the pipeline's own prepare and train stages (``data.eval_rows``
held out, so the report reads held-out rows), then exports copies of it through the
export step (merge → gguf → quantize → parity, in this process, as ``r1tui export``
does) with ``export.quality_tokens = 0`` (off) and with the budget under test,
alternating off / on so machine load hits both alike. Prints the median export wall
time of each, the difference, the report's own time from quality.json, and the last
report's figures as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def trained_run(config_path: Path, work: Path, eval_rows: int):
    from r1tui.config import load_config
    from r1tui.pipeline.launch import create_run
    from r1tui.pipeline.orchestrator import run_named

    config = load_config(config_path)
    config.runs.dir = work / "runs"
    config.data.eval_rows = eval_rows
    layout = create_run(config, config.runs.dir)
    started = time.perf_counter()
    run_named(config, layout, ["prepare", "train"], what="bench_quality")
    return config, layout, time.perf_counter() - started


def export_copy(config, trained, folder: Path, budget: int, quants: list[str]) -> tuple[float, dict]:
    """Export a fresh copy of the trained run; (wall seconds, quality.json or {})."""
    from r1tui.export.quality import read_quality
    from r1tui.pipeline.orchestrator import run_named
    from r1tui.runs.layout import RunLayout

    layout = RunLayout(folder / trained.root.name)
    shutil.copytree(trained.root, layout.root, ignore=shutil.ignore_patterns("lock", "checkpoints"))
    config = config.model_copy(deep=True)
    config.runs.dir = folder
    config.export.quality_tokens = budget
    config.export.quant_types = quants
    started = time.perf_counter()
    run_named(config, layout, ["export"], what="bench_quality")
    return time.perf_counter() - started, read_quality(layout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "tiny.toml")
    parser.add_argument("--tokens", type=int, default=None, help="export.quality_tokens under test (default: the config's)")
    parser.add_argument("--quant", nargs="+", default=["Q4_K_M", "Q8_0"])
    parser.add_argument("--eval-rows", type=int, default=40, help="data.eval_rows for the trained run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from r1tui.config import load_config
    from r1tui.export.quality import TABLE_HEADER, summary_line, table_rows

    budget = args.tokens if args.tokens is not None else load_config(args.config).export.quality_tokens
    with tempfile.TemporaryDirectory(prefix="r1tui-bench-quality-") as tmp:
        work = Path(tmp)
        config, trained, train_s = trained_run(args.config, work, args.eval_rows)
        times: dict[str, list[float]] = {"off": [], "on": []}
        own: list[float] = []
        report: dict = {}
        for round_number in range(args.rounds):
            for mode in ("off", "on"):
                folder = work / f"{mode}-{round_number}"
                folder.mkdir()
                elapsed, report_now = export_copy(config, trained, folder, budget if mode == "on" else 0, args.quant)
                times[mode].append(elapsed)
                if mode == "on":
                    report = report_now
                    own.append(report["seconds"])
                shutil.rmtree(folder)
        print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, {date.today().isoformat()}; "
              f"command: python {' '.join(sys.argv)}")
        print(f"trained run: {args.config.name} (prepare + train {train_s:.1f} s), quants {' '.join(args.quant)}, "
              f"export.quality_tokens = {budget}")
        print()
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(f"| export, median of {args.rounds} | quality off | quality on | added | the report's own time "
              "(quality.json, median) |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| wall | {off:.2f} s | {on:.2f} s | {on - off:+.2f} s ({(on - off) / off * 100:+.0f} %) | "
              f"{statistics.median(own):.2f} s (F16 pass {report['reference_seconds']:.2f} s) |")
        print(f"<!-- off {[round(t, 2) for t in times['off']]} on {[round(t, 2) for t in times['on']]} "
              f"own {own} -->")
        print()
        print(summary_line(report) + ".")
        print()
        print("| " + " | ".join(TABLE_HEADER) + " |")
        print("|" + " --- |" * len(TABLE_HEADER))
        for row in table_rows(report):
            print("| " + " | ".join(row) + " |")
        print()
        print("per quant seconds:", json.dumps({q: e["seconds"] for q, e in report["quants"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

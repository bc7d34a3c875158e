"""export_run: merge -> gguf -> quantize -> parity -> Modelfile + card, each step resumable.

Each step records a fingerprint of its inputs beside its output (a hidden stamp file);
a step whose output exists with the same input fingerprint is skipped (stage status
"skipped"), so running the export again after a failure resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from r1tui.errors import R1Error
from r1tui.export._util import (
    check_free_space,
    fingerprint,
    format_bytes,
    free_bytes,
    read_stamp,
    remove_stale_temps,
    write_json_atomic,
)

log = logging.getLogger(__name__)

STAMP = ".r1tui-stamp.json"


def gguf_stem(config) -> str:
    """File stem of the GGUFs: the base model's name and "-r1" (Mistral-Small-Instruct-2409-r1)."""
    name = config.model.name.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) + "-r1"


def gguf_path(run_dir: Path, config, quant: str) -> Path:
    return Path(run_dir) / "gguf" / f"{gguf_stem(config)}-{quant}.gguf"


def _stamp_for(path: Path) -> Path:
    return path / STAMP if path.suffix != ".gguf" else path.with_name(f".{path.name}.stamp.json")


def _is_fresh(output: Path, inputs: str) -> bool:
    return output.exists() and read_stamp(_stamp_for(output)).get("inputs") == inputs


def _progress(events, stage_name: str, unit: str, offset: int = 0, grand_total: int | None = None):
    def report(completed: int, total: int, message: str) -> None:
        events.emit("stage_progress", stage=stage_name, completed=offset + completed,
                    total=grand_total or total, unit=unit, message=message)
    return report


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def plan_export(config, run_dir: str | Path, quant_types: list[str] | None = None) -> dict[str, Any]:
    """What an export of this run would do, without doing it (no torch, nothing written).

    Raises R1Error for what would stop it: an unknown quant type, no adapter, no converter.
    """
    from r1tui.calculator import gguf_size_bytes
    from r1tui.config import QUANT_TYPES
    from r1tui.export.gguf import find_converter
    from r1tui.export.merge import base_architecture, merged_bytes, resolve_base

    run_dir = Path(run_dir).resolve()
    quant_types = list(dict.fromkeys(quant_types or config.export.quant_types))
    unknown = [q for q in quant_types if q not in QUANT_TYPES]
    if unknown:
        raise R1Error(f"unknown quant type {unknown[0]!r}; allowed: {', '.join(QUANT_TYPES)}")
    adapter_dir = run_dir / "adapter"
    if not (adapter_dir / "adapter_config.json").is_file():
        raise R1Error(f"{run_dir}: no trained adapter in adapter/; train first (`r1tui train`) or pick another run")
    converter = find_converter(config.export.llama_cpp_dir)  # before any work: fail fast
    base = resolve_base(config, run_dir, adapter_dir)
    arch = base_architecture(base, config)
    dtype = config.export.merge_dtype
    spec = config.model.tokenizer
    merged_dir = run_dir / "merged"
    f16 = gguf_path(run_dir, config, "F16")
    quantized = {q: gguf_path(run_dir, config, q) for q in quant_types if q != "F16"}
    base_inputs = [adapter_dir] + ([Path(base)] if Path(base).is_dir() else [])
    base_name = os.path.relpath(base, run_dir) if Path(base).is_dir() and Path(base).resolve().is_relative_to(run_dir) else base
    merge_inputs = fingerprint(*base_inputs, extra={"base": base_name, "dtype": dtype, "tokenizer": spec})

    # Predict which steps will run: a step runs when its output is missing or stale,
    # and everything after a step that runs runs too.
    steps: list[dict[str, Any]] = []
    redo = not _is_fresh(merged_dir, merge_inputs)
    steps.append({"step": "merge", "output": str(merged_dir), "run": redo, "bytes": merged_bytes(arch, dtype)})
    if not redo:
        redo = not _is_fresh(f16, fingerprint(merged_dir))
    steps.append({"step": "gguf", "output": str(f16), "run": redo, "bytes": gguf_size_bytes(arch, "F16")})
    f16_inputs = fingerprint(f16) if f16.exists() else ""
    for quant, path in quantized.items():
        stale = redo or not _is_fresh(path, f"{f16_inputs}:{quant}")
        steps.append({"step": f"quantize {quant}", "output": str(path), "run": stale,
                      "bytes": gguf_size_bytes(arch, quant)})
    needed = sum(step["bytes"] for step in steps if step["run"])
    return {
        "run_dir": run_dir, "adapter_dir": adapter_dir, "converter": converter, "base": base, "arch": arch,
        "dtype": dtype, "tokenizer": spec, "merged_dir": merged_dir, "gguf_dir": run_dir / "gguf",
        "f16": f16, "quantized": quantized, "quant_types": quant_types, "merge_inputs": merge_inputs,
        "steps": steps, "needed_bytes": needed, "free_bytes": free_bytes(run_dir),
    }


def export_run(config, run_dir: str | Path, events=None, quant_types: list[str] | None = None) -> dict[str, Any]:
    """Merge the run's adapter, convert, quantize, check tokenizer parity, write Modelfile and card.

    Returns {"merged", "gguf": {quant: report}, "parity", "modelfile", "card", "skipped"}.
    Raises R1Error on a user-facing failure (missing adapter or converter, no disk space,
    a parity mismatch, a failed conversion).
    """
    from r1tui.data.tokenizer import is_tekken
    from r1tui.export.card import published_ggufs, write_card
    from r1tui.export.gguf import compare_with_calculator, convert_to_gguf, quantize_gguf, read_gguf
    from r1tui.export.merge import merge_adapter
    from r1tui.export.modelfile import write_modelfile
    from r1tui.export.parity import check_parity, describe_failure, template_differences
    from r1tui.runs.events import NullWriter, stage

    events = events or NullWriter()
    plan = plan_export(config, run_dir, quant_types)
    run_dir, adapter_dir, converter = plan["run_dir"], plan["adapter_dir"], plan["converter"]
    base, arch, dtype, spec = plan["base"], plan["arch"], plan["dtype"], plan["tokenizer"]
    merged_dir, gguf_dir, f16, quantized = plan["merged_dir"], plan["gguf_dir"], plan["f16"], plan["quantized"]
    merge_inputs = plan["merge_inputs"]
    remove_stale_temps(run_dir)
    remove_stale_temps(gguf_dir)

    # Disk: everything this export will write, refused up front in one line.
    todo = [step for step in plan["steps"] if step["run"]]
    if todo:
        what = "the export (" + " + ".join(f"{s['step']} {format_bytes(s['bytes'])}" for s in todo) + ")"
        check_free_space(run_dir, plan["needed_bytes"], what)

    skipped: list[str] = []
    result: dict[str, Any] = {"run_dir": str(run_dir), "gguf": {}}

    # ---- merge
    with stage(events, "merge", adapter=str(adapter_dir), base=base, dtype=dtype) as out:
        if _is_fresh(merged_dir, merge_inputs):
            out["_status"] = "skipped"
            skipped.append("merge")
        else:
            merge_adapter(adapter_dir, merged_dir, base=base, dtype=dtype, tokenizer_spec=spec,
                          on_step=_progress(events, "merge", "step"))
            write_json_atomic(merged_dir / STAMP, {"inputs": merge_inputs})
        out.update(path=str(merged_dir), bytes=_dir_bytes(merged_dir))
        events.emit("artifact", stage="merge", kind="merged", path=str(merged_dir), bytes=out["bytes"])
    result["merged"] = str(merged_dir)

    # ---- gguf (F16)
    gguf_inputs = fingerprint(merged_dir)
    with stage(events, "gguf", model=str(merged_dir), converter=str(converter)) as out:
        if _is_fresh(f16, gguf_inputs):
            out["_status"] = "skipped"
            skipped.append("gguf")
            report = read_stamp(_stamp_for(f16))["report"]
        else:
            gguf_dir.mkdir(parents=True, exist_ok=True)
            convert_to_gguf(merged_dir, f16, converter, model_name=f"{config.model.name.split('/')[-1]} r1",
                            on_progress=_progress(events, "gguf", "tensor"), log_path=gguf_dir / "convert.log")
            info = read_gguf(f16, converter)
            if not info["metadata"]["has_chat_template"]:
                f16.unlink()
                raise R1Error(f"{f16.name}: the converter wrote no chat template; "
                              "the merged folder's tokenizer_config.json / chat_template.jinja is missing it")
            report = {"path": str(f16), **compare_with_calculator(info, arch, "F16"), "metadata": info["metadata"]}
            write_json_atomic(_stamp_for(f16), {"inputs": gguf_inputs, "report": report})
        out.update(path=str(f16), bytes=report["file_bytes"], calculator_bytes=report["calculator_bytes"])
        events.emit("artifact", stage="gguf", kind="gguf", path=str(f16), bytes=report["file_bytes"], quant="F16")
    result["gguf"]["F16"] = report

    # ---- quantize
    with stage(events, "quantize", source=str(f16), quant_types=list(quantized)) as out:
        f16_inputs = fingerprint(f16)
        todo = [q for q, p in quantized.items() if not _is_fresh(p, f"{f16_inputs}:{q}")]
        tensors = sum(report["type_counts"].values())
        for quant, path in quantized.items():
            if quant in todo:
                offset = todo.index(quant) * tensors
                quantize_gguf(f16, path, quant, on_progress=_progress(
                    events, "quantize", "tensor", offset=offset, grand_total=tensors * len(todo)))
                info = read_gguf(path, converter)
                quant_report = {"path": str(path), **compare_with_calculator(info, arch, quant),
                                "metadata": info["metadata"]}
                write_json_atomic(_stamp_for(path), {"inputs": f"{f16_inputs}:{quant}", "report": quant_report})
            else:
                quant_report = read_stamp(_stamp_for(path))["report"]
            result["gguf"][quant] = quant_report
            if not quant_report["types_match_calculator"]:
                log.warning("%s: tensor types differ from the calculator: %s", path.name,
                            quant_report["type_differences"][:3])
            events.emit("artifact", stage="quantize", kind="gguf", path=str(path), bytes=quant_report["file_bytes"],
                        quant=quant, calculator_bytes=quant_report["calculator_bytes"],
                        type_counts=quant_report["type_counts"])
        if not todo:
            out["_status"] = "skipped"
            skipped.append("quantize")
        out.update(files={q: result["gguf"][q]["file_bytes"] for q in quantized})

    # ---- parity
    checked = [f16, *quantized.values()]
    parity_path = gguf_dir / "parity.json"
    parity_inputs = fingerprint(*checked, extra={"tokenizer": spec})
    with stage(events, "parity", tokenizer=spec, files=[p.name for p in checked]) as out:
        previous = read_stamp(parity_path)
        if previous.get("inputs") == parity_inputs and previous.get("ok"):
            out["_status"] = "skipped"
            skipped.append("parity")
            parity = previous
        else:
            reports = []
            for index, path in enumerate(checked, start=1):
                quant = path.stem.rsplit("-", 1)[-1]
                report = check_parity(path, spec, gguf_info=result["gguf"].get(quant))
                report["gguf"] = path.name  # parity.json is published: no local paths in it
                reports.append(report)
                events.emit("stage_progress", stage="parity", completed=index, total=len(checked),
                            unit="file", message=f"{path.name}: {'ok' if reports[-1]['ok'] else 'MISMATCH'}")
            parity = {
                "ok": all(r["ok"] for r in reports),
                "tokenizer": spec,
                "files": {r["gguf"]: r for r in reports},
                "cases": reports[0]["cases"],
                "tokens_compared": reports[0]["tokens_compared"],
                "template_differences": template_differences(spec),
                "inputs": parity_inputs,
            }
            write_json_atomic(parity_path, parity)
            if not parity["ok"]:
                failed = next(r for r in reports if not r["ok"])
                raise R1Error(f"{failed['gguf']}: {describe_failure(failed)}; details in {parity_path}")
        out.update(ok=parity["ok"], path=str(parity_path), tokens_compared=parity["tokens_compared"])
        events.emit("artifact", stage="parity", kind="parity", path=str(parity_path))
    result["parity"] = {"ok": parity["ok"], "path": str(parity_path), "tokens_compared": parity["tokens_compared"],
                        "samples": len(parity["cases"])}

    # ---- manifest, Modelfile, card (cheap: always rewritten)
    manifest = {"stem": gguf_stem(config), "architecture": arch.name, "gguf": result["gguf"],
                "parity_ok": parity["ok"], "free_bytes_after": free_bytes(run_dir)}
    write_json_atomic(gguf_dir / "export.json", manifest)
    names = [p.name for p in published_ggufs(run_dir, config)]
    modelfile = write_modelfile(gguf_dir, names, num_ctx=config.model.max_seq_length,
                                system=config.data.system_prompt, tekken=is_tekken(spec))
    events.emit("artifact", kind="modelfile", path=str(modelfile))
    card = write_card(config, run_dir, config.hub_repo_id)
    events.emit("artifact", kind="card", path=str(card))
    result.update(modelfile=str(modelfile), card=str(card), skipped=skipped)
    return result

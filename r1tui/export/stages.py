"""Export as four stages of the pipeline: merge → gguf → quantize → parity.

``STAGES`` declares them, one dict each with what ``r1tui.pipeline.registry.Stage``
takes (name, does, writes, fingerprint, done, run, output_bytes); ``r1tui.pipeline.builtin``
registers them under the step ``export``. The orchestrator applies its one resume rule
to them: a stage whose inputs fingerprint equals the one ``stages.json`` records for its
last finished run, and whose outputs exist (``done``), is skipped. Each ``run`` reports
through ``ctx.events`` (its own stage_started / stage_progress / artifact /
stage_finished) and returns its outputs, which the orchestrator records; later stages
read them back with ``ctx.record(name)["outputs"]`` (the F16's report, the per-quant
reports), and ``export_result`` turns the records into an ``ExportResult``.

What each stage's fingerprint covers:

- merge     the adapter and the base folder when it is local (name, size and mtime of
            every file), the base's name, ``export.merge_dtype``, the tokenizer
- gguf      the merged folder
- quantize  the F16 file and the quant types; inside, a quant is redone only when its
            file is missing or the F16 changed since it was made (per-quant fingerprints
            in the stage's outputs, compared with its previous record). Then the quality
            report (``r1tui.export.quality``, gguf/quality.json): so also
            ``export.quality_tokens`` and the prepared dataset it reads; a quant's figures
            are measured again only when its file, the F16 or the token sample changed
- parity    every checked GGUF and the tokenizer: the fingerprint parity.json publishes
            as ``inputs`` (``card.parity_is_current`` takes it again)

What would stop the export fails before any work, in one line (``preflight``): an
unknown quant type, a run without adapter, no converter. Merge's fingerprint and
output_bytes run it: planning the step (and checking its disk) asks one of them first.

Quant types come from ``ctx.options["quant_types"]`` (``r1tui export --quant``), else
``export.quant_types``. This module takes a ``StageContext`` and imports no orchestrator.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from r1tui.calculator import gguf_size_bytes, imatrix_size_bytes
from r1tui.data.render import renders_system_in_place
from r1tui.data.tokenizer import PUBLISHED_TOKENIZER_CONFIG, is_tekken, tokenizer_spec
from r1tui.errors import R1Error
from r1tui.export.card import parity_is_current, published_ggufs, read_parity, write_card
from r1tui.export.gguf import (
    compare_with_calculator,
    convert_to_gguf,
    find_converter,
    gguf_stem,
    mmproj_path,
    quantize_gguf,
    read_gguf,
)
from r1tui.export.imatrix import (
    DATASET_NAME,
    calibration_text,
    compute_imatrix,
    find_tool,
    imatrix_path,
    select_calibration,
)
from r1tui.export.merge import (
    base_architecture,
    converter_input,
    merge_adapter,
    merged_bytes,
    resolve_base,
)
from r1tui.export.modelfile import modelfile_gguf, ollama_template, write_modelfile
from r1tui.export.parity import (
    GgufVocab,
    check_client,
    check_parity,
    describe_client_failure,
    describe_failure,
    template_differences,
)
from r1tui.export.quality import (
    quality_path,
    read_quality,
    scratch_bytes,
    select_sample,
    update_report,
)
from r1tui.quants import IMATRIX_PREFIX, IMATRIX_QUANTS, QUANT_TYPES, label_of, quant_of
from r1tui.runs.context import StageContext
from r1tui.runs.disk import free_bytes
from r1tui.runs.events import EventSink, stage
from r1tui.runs.files import (
    fingerprint,
    folder_bytes,
    read_json_object,
    remove_stale_temps,
    write_json_atomic,
)
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

__all__ = ["STAGES", "ExportResult", "GgufReport", "ParitySummary", "export_result", "gguf_stem", "preflight",
           "requested_quants"]


# ---------------------------------------------------------------- types at the seam


class GgufReport(TypedDict, total=False):
    """One GGUF read back next to the calculator (``gguf.compare_with_calculator`` plus path
    and metadata): what the gguf and quantize stages record, and export.json lists."""

    path: str
    quant: str
    file_bytes: int
    tensor_bytes: int
    metadata_bytes: int
    calculator_bytes: int
    tensor_bytes_vs_calculator_pct: float | None
    file_vs_calculator_pct: float | None
    type_counts: dict[str, int]
    types_match_calculator: bool
    type_differences: list[dict[str, Any]]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ParitySummary:
    ok: bool
    path: Path  # parity.json
    tokens_compared: int
    samples: int  # sample conversations compared per file


@dataclass(frozen=True)
class ExportResult:
    """What the run's export holds now, read from its stage records."""

    run_dir: Path
    merged: Path
    gguf: dict[str, GgufReport]  # quant type -> report, F16 first
    parity: ParitySummary
    modelfile: Path
    card: Path
    skipped: list[str]  # stages skipped as up to date by the export that just ran
    quality: dict[str, Any] = field(default_factory=dict)  # gguf/quality.json ({} when off)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (``r1tui export --json``)."""
        return {
            "run_dir": str(self.run_dir), "merged": str(self.merged), "gguf": dict(self.gguf),
            "parity": {"ok": self.parity.ok, "path": str(self.parity.path),
                       "tokens_compared": self.parity.tokens_compared, "samples": self.parity.samples},
            "modelfile": str(self.modelfile), "card": str(self.card), "skipped": list(self.skipped),
            "quality": dict(self.quality),
        }


def export_result(layout: RunLayout, skipped: Sequence[str] = ()) -> ExportResult:
    """The run's export as its stage records (stages.json) describe it; one line when a stage
    has not finished."""
    records = read_json_object(layout.stages_record)

    def outputs(name: str) -> dict[str, Any]:
        entry = records.get(name)
        if not isinstance(entry, dict) or entry.get("status") != "finished":
            raise R1Error(f"run {layout.run_id}: the export's {name} stage has not finished; "
                          f"run `r1tui export {layout.run_id}`")
        return entry.get("outputs") or {}

    reports: dict[str, GgufReport] = {"F16": outputs("gguf")["report"]}
    reports.update({quant: entry["report"] for quant, entry in (outputs("quantize").get("quants") or {}).items()})
    parity = outputs("parity")
    return ExportResult(
        run_dir=layout.root, merged=layout.merged, gguf=reports,
        parity=ParitySummary(ok=bool(parity.get("ok")), path=layout.parity,
                             tokens_compared=int(parity.get("tokens_compared") or 0),
                             samples=int(parity.get("samples") or 0)),
        modelfile=layout.modelfile, card=layout.card, skipped=list(skipped), quality=read_quality(layout),
    )


# ---------------------------------------------------------------- what every stage reads


def requested_quants(ctx: StageContext) -> list[str]:
    """The quant types to write: ``--quant`` (ctx.options) or export.quant_types, validated."""
    quants = list(dict.fromkeys(ctx.options.get("quant_types") or ctx.config.export.quant_types))
    unknown = [q for q in quants if q not in QUANT_TYPES]
    if unknown:
        raise R1Error(f"unknown quant type {unknown[0]!r}; allowed: {', '.join(QUANT_TYPES)}")
    return quants


def preflight(ctx: StageContext) -> Path:
    """Raise, in one line and before any work, what would stop the export: an unknown quant
    type, no trained adapter, no converter. Returns the converter's folder."""
    requested_quants(ctx)
    if imatrix_on(ctx):
        find_tool()  # export.imatrix without llama-imatrix built: say so before merging anything
    if not (ctx.layout.adapter / "adapter_config.json").is_file():
        raise R1Error(f"{ctx.layout.root}: no trained adapter in {ctx.layout.adapter.name}/; train first "
                      "(`r1tui train`) or pick another run")
    return find_converter(ctx.config.export.llama_cpp_dir)


def base_model(ctx: StageContext) -> str:
    """The base weights the adapter is merged into (a folder, or a Hub id in the local cache)."""
    return resolve_base(ctx.config, ctx.layout.root, ctx.layout.adapter)


def _arch(ctx: StageContext):
    """The model's architecture (what the calculator compares the files with)."""
    try:
        base = base_model(ctx)
    except R1Error:
        base = str(ctx.layout.merged)  # the adapter is gone: the merged model has the same shapes
    return base_architecture(base, ctx.config)


def _f16(ctx: StageContext) -> Path:
    return ctx.layout.gguf(gguf_stem(ctx.config), "F16")


def imatrix_on(ctx: StageContext) -> bool:
    """``r1tui export --imatrix`` (ctx.options) or export.imatrix."""
    return bool(ctx.options.get("imatrix") or ctx.config.export.imatrix)


def _quantized(ctx: StageContext) -> dict[str, Path]:
    """label -> the file quantize writes (F16 is gguf's own output): each quant type, and with
    an importance matrix its ``imatrix-`` twin first (``quants.label_of`` reads a label back)."""
    stem = gguf_stem(ctx.config)
    files: dict[str, Path] = {}
    for quant in requested_quants(ctx):
        if quant == "F16":
            continue
        if imatrix_on(ctx) and quant in IMATRIX_QUANTS:
            files[IMATRIX_PREFIX + quant] = ctx.layout.gguf(stem, IMATRIX_PREFIX + quant)
        files[quant] = ctx.layout.gguf(stem, quant)
    return files


def _checked(ctx: StageContext) -> list[Path]:
    """The GGUFs this export makes, all checked by parity."""
    return [_f16(ctx), *_quantized(ctx).values()]


def _outputs(ctx: StageContext, name: str) -> dict[str, Any]:
    return ctx.record(name).get("outputs") or {}


def _reports(ctx: StageContext) -> dict[str, GgufReport]:
    """Every GGUF report the gguf and quantize stages recorded, by quant type."""
    reports: dict[str, GgufReport] = {}
    if _outputs(ctx, "gguf").get("report"):
        reports["F16"] = _outputs(ctx, "gguf")["report"]
    for quant, entry in (_outputs(ctx, "quantize").get("quants") or {}).items():
        reports[quant] = entry["report"]
    return reports


def _progress(events: EventSink, stage_name: str, unit: str, offset: int = 0,
              grand_total: int | None = None) -> Callable[[int, int, str], None]:
    def report(completed: int, total: int, message: str) -> None:
        events.emit("stage_progress", stage=stage_name, completed=offset + completed,
                    total=grand_total or total, unit=unit, message=message)
    return report


def _read_back(path: Path, converter: Path, arch, quant: str) -> GgufReport:
    info = read_gguf(path, converter)
    return {"path": str(path), **compare_with_calculator(info, arch, quant), "metadata": info["metadata"]}


# ---------------------------------------------------------------- merge


def _merge_inputs(ctx: StageContext) -> str:
    preflight(ctx)  # fail here, before any work (see the module's docstring)
    root = ctx.layout.root.resolve()
    base = base_model(ctx)
    local = Path(base).is_dir()
    # A base inside the run is named relative to it: a moved run folder stays up to date.
    name = os.path.relpath(base, root) if local and Path(base).resolve().is_relative_to(root) else base
    return fingerprint(ctx.layout.adapter, *([Path(base)] if local else []),
                       extra={"base": name, "dtype": ctx.config.export.merge_dtype,
                              "tokenizer": tokenizer_spec(ctx.config),
                              # the published tokenizer's layout: a merged/ written with another is redone
                              "tokenizer_config": PUBLISHED_TOKENIZER_CONFIG})


def _merge_bytes(ctx: StageContext) -> int:
    preflight(ctx)
    return merged_bytes(_arch(ctx), ctx.config.export.merge_dtype)


def _merge(ctx: StageContext) -> dict[str, Any]:
    preflight(ctx)
    layout, dtype = ctx.layout, ctx.config.export.merge_dtype
    base = base_model(ctx)
    remove_stale_temps(layout.root)
    with stage(ctx.events, "merge", adapter=str(layout.adapter), base=base, dtype=dtype) as out:
        merge_adapter(layout.adapter, layout.merged, base=base, dtype=dtype, tokenizer_spec=tokenizer_spec(ctx.config),
                      on_step=_progress(ctx.events, "merge", "step"))
        out.update(path=str(layout.merged), bytes=folder_bytes(layout.merged))
        ctx.events.emit("artifact", stage="merge", kind="merged", path=str(layout.merged), bytes=out["bytes"])
    return {"path": str(layout.merged), "bytes": out["bytes"], "base": base, "dtype": dtype}


# ---------------------------------------------------------------- gguf (F16)


def _gguf(ctx: StageContext) -> dict[str, Any]:
    layout, config = ctx.layout, ctx.config
    converter = find_converter(config.export.llama_cpp_dir)
    f16 = _f16(ctx)
    remove_stale_temps(layout.gguf_dir)
    with stage(ctx.events, "gguf", model=str(layout.merged), converter=str(converter)) as out:
        layout.gguf_dir.mkdir(parents=True, exist_ok=True)
        with converter_input(layout.merged) as source:
            convert_to_gguf(source, f16, converter, model_name=f"{config.model.name.split('/')[-1]} r1",
                            on_progress=_progress(ctx.events, "gguf", "tensor"), log_path=layout.convert_log)
        report = _read_back(f16, converter, _arch(ctx), "F16")
        if not report["metadata"]["has_chat_template"]:
            f16.unlink()
            raise R1Error(f"{f16.name}: the converter wrote no chat template; "
                          "the merged folder's tokenizer_config.json / chat_template.jinja is missing it")
        out.update(path=str(f16), bytes=report["file_bytes"], calculator_bytes=report["calculator_bytes"])
        ctx.events.emit("artifact", stage="gguf", kind="gguf", path=str(f16), bytes=report["file_bytes"], quant="F16")
        mmproj = _mmproj(ctx, converter)
        if mmproj is not None:
            out.update(mmproj=str(mmproj))
    return {"path": str(f16), "report": report, "mmproj": str(mmproj) if mmproj else None}


def _mmproj(ctx: StageContext, converter: Path) -> Path | None:
    """A Mistral3 checkpoint's vision tower and projector, converted to their own F16 mmproj
    GGUF (the language model GGUF holds none of it), so the model still reads images in llama.cpp."""
    from r1tui.calculator import mmproj_size_bytes
    from r1tui.train.base import is_vision_checkpoint

    layout, config = ctx.layout, ctx.config
    if not is_vision_checkpoint(layout.merged):
        return None
    path = mmproj_path(layout.root, config)
    with converter_input(layout.merged, mmproj=True) as source:
        convert_to_gguf(source, path, converter, model_name=f"{config.model.name.split('/')[-1]} r1", mmproj=True,
                        log_path=layout.convert_log.with_name("convert-mmproj.log"))
    ctx.events.emit("artifact", stage="gguf", kind="mmproj", path=str(path), bytes=path.stat().st_size,
                    calculator_bytes=mmproj_size_bytes(_arch(ctx)), quant="F16")
    return path


# ---------------------------------------------------------------- quantize


def _quantize_inputs(ctx: StageContext) -> str:
    budget = ctx.config.export.quality_tokens
    quality = {"tokens": budget, "data": fingerprint(ctx.data_dir), "seed": ctx.config.data.seed} if budget else None
    return fingerprint(_f16(ctx), extra={"quant_types": list(_quantized(ctx)), "quality": quality,
                                         "imatrix": _imatrix_settings(ctx)})


def _imatrix_settings(ctx: StageContext) -> dict[str, Any] | None:
    """What the importance matrix depends on besides the F16 (None when it is off)."""
    if not imatrix_on(ctx):
        return None
    export = ctx.config.export
    return {"tokens": export.imatrix_tokens, "chunk": export.imatrix_chunk, "seed": ctx.config.data.seed,
            "data": fingerprint(ctx.data_dir), "quality_tokens": export.quality_tokens}


def _importance_matrix(ctx: StageContext, f16: Path) -> tuple[Path, dict[str, Any]]:
    """The run's importance matrix (imatrix/<stem>-imatrix.gguf) computed on the F16 from its
    own training rows, or the one an earlier export computed from the same inputs."""
    layout, config = ctx.layout, ctx.config
    path = imatrix_path(layout.root, gguf_stem(config))
    inputs = _matrix_inputs(ctx)
    earlier = (ctx.previous.get("outputs") or {}).get("imatrix") or {}
    if earlier.get("inputs") == inputs and path.is_file():
        return path, earlier
    remove_stale_temps(path.parent)
    exclude: frozenset[int] = frozenset()
    if config.export.quality_tokens:  # never calibrate on the rows the quality report measures
        sample = select_sample(ctx.data_dir, config.export.quality_tokens, config.data.seed)
        if not isinstance(sample, str) and sample.source == "training":
            exclude = frozenset(sample.indices)
    calibration = select_calibration(ctx.data_dir, config.export.imatrix_tokens, config.data.seed, exclude)
    chunk = config.export.imatrix_chunk
    if calibration.tokens < 2 * chunk:
        raise R1Error(f"export.imatrix: {calibration.tokens} calibration tokens ({calibration.description}) are "
                      f"fewer than two chunks of export.imatrix_chunk = {chunk}; lower imatrix_chunk or raise "
                      "export.imatrix_tokens (or prepare more rows)")
    text = calibration_text(calibration, tokenizer_spec(config), f16)
    ctx.events.emit("log", stage="quantize", level="info",
                    message=f"importance matrix: {calibration.tokens} tokens of {calibration.description}, "
                            f"chunks of {chunk}")
    measured = compute_imatrix(f16, path, text, chunk_tokens=chunk,
                               on_progress=_progress(ctx.events, "quantize", "chunk"),
                               log_path=layout.root / "logs" / "imatrix.log")
    record = {"inputs": inputs, "path": str(path), "bytes": path.stat().st_size, "dataset": DATASET_NAME,
              "calibration": {"rows": calibration.rows, "rows_available": calibration.rows_available,
                              "tokens": calibration.tokens, "description": calibration.description,
                              "identity": calibration.identity, "excluded_quality_rows": len(exclude)},
              **measured}
    ctx.events.emit("artifact", stage="quantize", kind="imatrix", path=str(path), bytes=record["bytes"],
                    chunks=measured["chunks"], seconds=measured["seconds"])
    return path, record


def _quality(ctx: StageContext, f16: Path, quantized: dict[str, Path]) -> bool:
    """The quality report of the quants against the F16 (r1tui.export.quality); True when
    something was measured. Off (export.quality_tokens = 0): an earlier report is removed,
    since it would describe other files."""
    layout, config = ctx.layout, ctx.config
    path = quality_path(layout)
    if not config.export.quality_tokens:
        path.unlink(missing_ok=True)
        return False
    remove_stale_temps(layout.root)  # a scratch file a killed report left
    report, measured = update_report(path, f16, quantized, ctx.data_dir, config.export.quality_tokens,
                                     config.data.seed, layout.root,
                                     on_progress=_progress(ctx.events, "quantize", "token"))
    if report.get("skipped"):
        ctx.events.emit("log", stage="quantize", level="warning",
                        message=f"quality report: {report['skipped']}")
    else:
        ctx.events.emit("artifact", stage="quantize", kind="quality", path=str(path), bytes=path.stat().st_size,
                        tokens=report["data"]["tokens"])
    if measured and layout.card.is_file():
        write_card(config, layout, config.hub_repo_id)  # parity, which writes the card, may be up to date
    return measured


def _made_from(ctx: StageContext, f16_inputs: str, label: str) -> str:
    """A quant's own fingerprint: the F16 it was made from, its label, and for an imatrix twin
    what the matrix was computed from."""
    matrix = _matrix_inputs(ctx) if label.startswith(IMATRIX_PREFIX) else None
    return f"{f16_inputs}:{label}" + (f":{matrix}" if matrix else "")


def _matrix_inputs(ctx: StageContext) -> str:
    return fingerprint(_f16(ctx), extra=_imatrix_settings(ctx))


def _fresh_quants(ctx: StageContext, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The quants an earlier quantize recorded whose file is still there and was made from the
    F16 on disk now: {quant: {"inputs", "report"}}."""
    outputs = record.get("outputs") or {}
    known = {**(outputs.get("earlier") or {}), **(outputs.get("quants") or {})}
    f16_inputs = fingerprint(_f16(ctx))
    stem = gguf_stem(ctx.config)
    return {quant: entry for quant, entry in known.items()
            if isinstance(entry, dict) and entry.get("inputs") == _made_from(ctx, f16_inputs, quant)
            and ctx.layout.gguf(stem, quant).is_file()}


def _tensor_count(ctx: StageContext, f16: Path, converter: Path) -> int:
    counts = (_outputs(ctx, "gguf").get("report") or {}).get("type_counts")
    return sum(counts.values()) if counts else read_gguf(f16, converter)["tensor_count"]


def _quantize(ctx: StageContext) -> dict[str, Any]:
    layout = ctx.layout
    converter = find_converter(ctx.config.export.llama_cpp_dir)
    f16, quantized, arch = _f16(ctx), _quantized(ctx), _arch(ctx)
    remove_stale_temps(layout.gguf_dir)
    fresh = _fresh_quants(ctx, ctx.previous)
    f16_inputs = fingerprint(f16)
    entries: dict[str, dict[str, Any]] = {}
    matrix: tuple[Path, dict[str, Any]] | None = None
    with stage(ctx.events, "quantize", source=str(f16), quant_types=list(quantized)) as out:
        todo = [quant for quant in quantized if quant not in fresh]
        if any(label.startswith(IMATRIX_PREFIX) for label in quantized):
            matrix = _importance_matrix(ctx, f16)  # the earlier one while its inputs are unchanged
        tensors = _tensor_count(ctx, f16, converter) if todo else 0
        for quant, path in quantized.items():
            if quant in todo:
                offset = todo.index(quant) * tensors
                with_matrix = matrix[0] if quant.startswith(IMATRIX_PREFIX) and matrix else None
                quantize_gguf(f16, path, quant_of(path) or quant, imatrix=with_matrix, converter=converter,
                              on_progress=_progress(ctx.events, "quantize", "tensor", offset=offset,
                                                    grand_total=tensors * len(todo)))
                entries[quant] = {"inputs": _made_from(ctx, f16_inputs, quant),
                                  "report": _read_back(path, converter, arch, quant_of(path) or quant)}
            else:
                entries[quant] = fresh[quant]
            report = entries[quant]["report"]
            if not report["types_match_calculator"]:
                log.warning("%s: tensor types differ from the calculator: %s", path.name,
                            report["type_differences"][:3])
            ctx.events.emit("artifact", stage="quantize", kind="gguf", path=str(path), bytes=report["file_bytes"],
                            quant=quant, calculator_bytes=report["calculator_bytes"],
                            type_counts=report["type_counts"])
        measured = _quality(ctx, f16, quantized)
        if not todo and not measured:
            out["_status"] = "skipped"
        out.update(files={quant: entry["report"]["file_bytes"] for quant, entry in entries.items()})
    # Quants of other runs of export (another --quant) stay known while their file and F16 do.
    earlier = {quant: entry for quant, entry in fresh.items() if quant not in entries}
    outputs = {"source": str(f16), "quant_types": list(quantized), "quants": entries, "earlier": earlier}
    if matrix is not None:
        outputs["imatrix"] = matrix[1]
    return outputs


def _quantize_bytes(ctx: StageContext) -> int:
    """What quantize will write: the quants not already made from the F16 that stays (an
    estimate for the disk check; when merge or gguf remake the F16, every quant)."""
    arch, quantized = _arch(ctx), _quantized(ctx)
    f16_stays = (_f16(ctx).is_file() and ctx.record("gguf").get("inputs") == fingerprint(ctx.layout.merged)
                 and ctx.record("merge").get("inputs") == _merge_inputs(ctx))
    fresh = _fresh_quants(ctx, ctx.record("quantize")) if f16_stays else {}
    # the quality report's scratch file (the F16's log-probabilities), removed when it is done
    scratch = scratch_bytes(ctx.config.export.quality_tokens, arch.vocab_size, ctx.data_dir) if quantized else 0
    matrix = imatrix_size_bytes(arch) if imatrix_on(ctx) else 0
    return matrix + scratch + sum(gguf_size_bytes(arch, quant_of(path) or quant)
                                  for quant, path in quantized.items() if quant not in fresh)


# ---------------------------------------------------------------- parity, then export.json, Modelfile, card


def _parity_inputs(ctx: StageContext) -> str:
    return fingerprint(*_checked(ctx), extra={"tokenizer": tokenizer_spec(ctx.config)})


def _parity_done(ctx: StageContext) -> bool:
    layout = ctx.layout
    parity = read_parity(layout)
    return (parity.get("ok") is True and parity_is_current(layout, parity)
            and all(p.is_file() for p in (layout.export_manifest, layout.modelfile, layout.card)))


def _parity(ctx: StageContext) -> dict[str, Any]:
    layout, config = ctx.layout, ctx.config
    spec = tokenizer_spec(config)
    checked = _checked(ctx)
    inputs = _parity_inputs(ctx)
    reports = _reports(ctx)
    with stage(ctx.events, "parity", tokenizer=spec, files=[p.name for p in checked]) as out:
        checks = []
        for index, path in enumerate(checked, start=1):
            check = check_parity(path, spec, gguf_info=reports.get(label_of(path) or ""))
            check["gguf"] = path.name  # parity.json is published: no local paths in it
            checks.append(check)
            ctx.events.emit("stage_progress", stage="parity", completed=index, total=len(checked),
                            unit="file", message=f"{path.name}: {'ok' if check['ok'] else 'MISMATCH'}")
        clients, skipped = _client_checks(ctx, spec, checked)
        parity = {
            "ok": all(c["ok"] for c in checks) and all(c["ok"] for c in clients),
            "tokenizer": spec,
            "files": {c["gguf"]: c for c in checks},
            "cases": checks[0]["cases"],
            "tokens_compared": checks[0]["tokens_compared"],
            "clients": clients,  # every artefact through the client that loads it
            "clients_skipped": skipped,
            "template_differences": template_differences(spec),
            "inputs": inputs,  # card.parity_is_current compares it with the files on disk
        }
        write_json_atomic(layout.parity, parity)
        if not parity["ok"]:
            failed = next((c for c in checks if not c["ok"]), None)
            if failed is not None:
                raise R1Error(f"{failed['gguf']}: {describe_failure(failed)}; details in {layout.parity}")
            failed = next(c for c in clients if not c["ok"])
            raise R1Error(f"tokenizer parity failed: {describe_client_failure(failed)}; details in {layout.parity}")
        out.update(ok=parity["ok"], path=str(layout.parity), tokens_compared=parity["tokens_compared"])
        ctx.events.emit("artifact", stage="parity", kind="parity", path=str(layout.parity))

    # The manifest, the Modelfile and the card describe the checked files (cheap: rewritten with them).
    checked_reports = {quant: reports[quant] for quant in ("F16", *_quantized(ctx)) if quant in reports}
    manifest = {"stem": gguf_stem(config), "architecture": _arch(ctx).name, "gguf": checked_reports,
                "parity_ok": parity["ok"], "free_bytes_after": free_bytes(layout.root)}
    write_json_atomic(layout.export_manifest, manifest)
    names = [p.name for p in published_ggufs(layout, config)]
    modelfile = write_modelfile(layout.modelfile, names, num_ctx=config.model.max_seq_length,
                                system=config.data.system_prompt, tekken=is_tekken(spec),
                                system_in_place=renders_system_in_place(spec))
    ctx.events.emit("artifact", kind="modelfile", path=str(modelfile))
    card = write_card(config, layout, config.hub_repo_id)
    ctx.events.emit("artifact", kind="card", path=str(card))
    return {"ok": parity["ok"], "path": str(layout.parity), "tokens_compared": parity["tokens_compared"],
            "samples": len(parity["cases"]), "files": [p.name for p in checked],
            "manifest": str(layout.export_manifest), "modelfile": str(modelfile), "card": str(card)}


def _client_checks(ctx: StageContext, spec: str, checked: list[Path]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every published artefact through the client that loads it (``r1tui.export.clients``):
    each GGUF's embedded chat template, the Modelfile's template on the GGUF it names,
    merged/ and the adapter as push publishes it through AutoTokenizer, a tokenizer.json
    through the tokenizers library. Returns (reports, skipped: what is not in the run)."""
    import tempfile
    from contextlib import ExitStack

    from r1tui.export import clients
    from r1tui.export.push import write_adapter

    layout, config = ctx.layout, ctx.config
    published = published_ggufs(layout, config, {"files": {path.name: {} for path in checked}})
    modelfile_from = modelfile_gguf([path.name for path in published])
    reports: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        folders = []
        adapter = layout.adapter
        candidates = [(layout.merged, f"{layout.merged.name}/")]
        if adapter.is_dir():
            candidates.append((write_adapter(config, layout, Path(tmp) / adapter.name), f"{adapter.name}/ (as pushed)"))
        else:
            skipped.append({"artefact": f"{adapter.name}/", "reason": "no adapter in the run folder"})
        for folder, artefact in candidates:
            if (folder / "tokenizer_config.json").is_file():
                folders.append((folder, artefact))
            else:
                skipped.append({"artefact": artefact, "reason": "not in the run folder (deleted after the export?)"})
        total = len(checked) + 1 + sum(1 + (folder / "tokenizer.json").is_file() for folder, _ in folders)

        def check(client: clients.Client) -> None:
            report = check_client(client, spec)
            reports.append(report)
            ctx.events.emit("stage_progress", stage="parity", completed=len(reports), total=total, unit="check",
                            message=f"{report['artefact']} through {report['client']}: "
                                    f"{report['matched']}/{report['total']}")

        for path in checked:
            vocab = stack.enter_context(GgufVocab(path))
            check(clients.gguf_chat_template(vocab))
            if path.name == modelfile_from:
                check(clients.ollama(ollama_template(is_tekken(spec), renders_system_in_place(spec)),
                                     config.data.system_prompt, vocab,
                                     artefact=f"{layout.modelfile.name} (FROM {path.name})"))
        for folder, artefact in folders:
            check(clients.transformers(folder, artefact))
            if (folder / "tokenizer.json").is_file():
                check(clients.tokenizer_json(folder / "tokenizer.json", spec, artefact))
    return reports, skipped


# ---------------------------------------------------------------- the declarations


STAGES: list[dict[str, Any]] = [
    {
        "name": "merge",
        "does": "fold the LoRA adapter into the base weights (export.merge_dtype)",
        "writes": "merged/ (safetensors and the tokenizer folder)",
        "fingerprint": _merge_inputs,
        "done": lambda ctx: (ctx.layout.merged / "config.json").is_file(),
        "run": _merge,
        "output_bytes": _merge_bytes,
    },
    {
        "name": "gguf",
        "does": "convert the merged model to an F16 GGUF with llama.cpp's converter, chat template embedded",
        "writes": "gguf/<stem>-F16.gguf",
        "fingerprint": lambda ctx: fingerprint(ctx.layout.merged),
        "done": lambda ctx: _f16(ctx).is_file(),
        "run": _gguf,
        "output_bytes": lambda ctx: gguf_size_bytes(_arch(ctx), "F16"),
    },
    {
        "name": "quantize",
        "does": "quantize the F16 GGUF to each quant type (only those missing or made from another F16), then "
                "measure each against the F16 on rendered traces (export.quality_tokens)",
        "writes": "gguf/<stem>-<QUANT>.gguf, gguf/quality.json",
        "fingerprint": _quantize_inputs,
        "done": lambda ctx: (all(path.is_file() for path in _quantized(ctx).values())
                             and (not ctx.config.export.quality_tokens or quality_path(ctx.layout).is_file())),
        "run": _quantize,
        "output_bytes": _quantize_bytes,
    },
    {
        "name": "parity",
        "does": "check that every GGUF, its chat template, the Modelfile, merged/ and the adapter tokenize like "
                "training, each through the client that loads it; then write export.json, the Modelfile and the card",
        "writes": "gguf/parity.json, gguf/export.json, gguf/Modelfile, card/README.md",
        "fingerprint": _parity_inputs,
        "done": _parity_done,
        "run": _parity,
        "output_bytes": None,
    },
]

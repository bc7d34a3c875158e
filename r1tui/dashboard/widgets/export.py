"""Export: per-quant progress, GGUF sizes predicted (calculator) vs actual (on disk), the
importance matrix when export.imatrix made one, what each quant costs against the F16
(gguf/quality.json), and the tokenizer parity verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from r1tui.dashboard.actions import export_stages
from r1tui.dashboard.format import bar, status_text
from r1tui.dashboard.widgets.base import Panel
from r1tui.dryrun import DryRunReport
from r1tui.present import finite, format_bytes, format_duration
from r1tui.quants import IMATRIX_PREFIX, IMATRIX_QUANTS, label_of, quant_of
from r1tui.runs.files import read_json_object
from r1tui.runs.layout import RunLayout
from r1tui.runs.reducer import RunState


def gguf_files(run: RunLayout | None) -> dict[str, Path]:
    """label (``Q4_K_M``, ``imatrix-Q4_K_M``) -> the run's GGUF of it (the first in choice order)."""
    files: dict[str, Path] = {}
    for path in run.gguf_files() if run is not None else []:
        label = label_of(path)
        if label:
            files.setdefault(label, path)
    return files


def _artifact_bytes(state: RunState, label: str) -> int | None:
    for artifact in reversed(state.artifacts):
        if artifact.get("kind") not in (None, "gguf"):
            continue
        if artifact.get("quant") == label or label_of(str(artifact.get("path", ""))) == label:
            n = artifact.get("bytes")
            n = finite(n)
            return int(n) if n is not None else None
    return None


def size_table(state: RunState, report: DryRunReport | None, quant_types: list[str], run: RunLayout | None,
               imatrix: bool = False) -> Table:
    predicted = {row.quant: row.bytes for row in (report.gguf if report is not None else [])}
    files = gguf_files(run)
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold", title="GGUF files",
                  title_justify="left", title_style="bold")
    table.add_column("quant", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("predicted", justify="right", no_wrap=True)
    table.add_column("actual", justify="right", no_wrap=True)
    table.add_column("Δ", justify="right", no_wrap=True)
    quantize = state.stages.get("quantize")
    gguf_stage = state.stages.get("gguf")  # converts to F16: the row every export has
    rows = ["F16"]
    for quant in quant_types:
        if quant == "F16":
            continue
        if quant in IMATRIX_QUANTS and (imatrix or IMATRIX_PREFIX + quant in files):
            rows.append(IMATRIX_PREFIX + quant)
        rows.append(quant)
    quantized = rows[1:]
    for quant in rows:
        actual: int | None = None
        if quant in files:
            try:
                actual = files[quant].stat().st_size
            except OSError:
                actual = None
        if actual is None:
            actual = _artifact_bytes(state, quant)
        if quant == "F16":
            done = gguf_stage.status == "finished" if gguf_stage else False
            fraction = 1.0 if done or actual else (gguf_stage.progress.fraction if gguf_stage and gguf_stage.progress else None)
        else:
            progress = state.quant_progress.get(quant)
            fraction = 1.0 if actual else (progress.fraction if progress else None)
            if fraction is None and quantize is not None and quantize.status == "running" and quantize.progress:
                fraction = quantize.progress.fraction if len(quantized) == 1 else None
        expected = predicted.get(quant_of(quant) or quant)
        delta = Text("—", style="dim")
        if actual and expected:
            pct = 100.0 * (actual - expected) / expected
            delta = Text(f"{pct:+.1f}%", style="green" if abs(pct) < 5 else "yellow")
        progress_text = bar(fraction, 12, "green" if fraction == 1.0 else "yellow")
        progress_text.append(f" {fraction:>4.0%}" if fraction is not None else "    —")
        table.add_row(quant, progress_text, format_bytes(expected), format_bytes(actual), delta)
    return table


def imatrix_text(run: RunLayout | None) -> Text | None:
    """What the run's importance matrix was computed from, and how long it took (None: there is none)."""
    record = read_json_object(run.stages_record) if run is not None else {}
    matrix = ((record.get("quantize") or {}).get("outputs") or {}).get("imatrix")
    if not isinstance(matrix, dict) or not matrix.get("chunks"):
        return None
    calibration = matrix.get("calibration") or {}
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("importance matrix ", style="bold")
    text.append(f"{matrix['chunks']} chunks × {matrix.get('chunk_tokens')} tokens of {calibration.get('rows')} "
                f"training rows · {format_duration(finite(matrix.get('seconds')) or 0)}")
    ppl = finite(matrix.get("calibration_ppl"))
    if ppl is not None:
        text.append(f" · calibration perplexity {ppl:.4g}", style="dim")
    return text


def _figure(value: Any, digits: int = 3) -> str:
    number = finite(value)
    return "—" if number is None else f"{number:.{digits}g}"


def quality_table(run: RunLayout | None) -> Table | Text | None:
    """gguf/quality.json, one row per quant: what it costs against the F16 (None when off)."""
    from r1tui.export.quality import read_quality

    report = read_quality(run) if run is not None else {}
    if not report:
        return None
    if report.get("skipped"):
        return Text(f"quantization quality: not measured ({report['skipped']})", style="yellow")
    data = report.get("data") or {}
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold", title_justify="left",
                  title_style="bold", title=f"quality against F16 · {data.get('tokens')} tokens, {data.get('source')}")
    for column in ("quant", "KLD", "KLD answer", "top-1", "ppl ×"):
        table.add_column(column, justify="left" if column == "quant" else "right", no_wrap=True)
    for label, entry in (report.get("quants") or {}).items():
        everything, answer = entry.get("all") or {}, entry.get("answer") or {}
        agreement = finite(everything.get("top1_agreement"))
        table.add_row(label, _figure(everything.get("kld_mean")), _figure(answer.get("kld_mean")),
                      "—" if agreement is None else f"{agreement:.1%}", _figure(everything.get("ppl_ratio"), 5))
    return table


def parity_text(run: RunLayout | None, state: RunState) -> Text:
    text = Text()
    text.append("tokenizer parity ", style="bold")
    result = read_json_object(run.parity) if run is not None else {}
    stage = state.stages.get("parity")
    if not result and stage is not None and stage.outputs:
        result = stage.outputs
    if not result:
        status = state.stage_status("parity") if stage is not None else "pending"
        text.append_text(status_text(status) if status != "pending" else Text("not checked yet", style="dim"))
        return text
    ok = result.get("ok", result.get("passed", result.get("match")))
    if ok is True:
        text.append("✓ GGUF tokenizes exactly like training", style="bold green")
    elif ok is False:
        text.append("✗ GGUF tokenizes differently from training", style="bold red")
    else:
        text.append("result written", style="dim")
    cases = result.get("cases")
    count = len(cases) if isinstance(cases, list) else cases if isinstance(cases, int) else None
    if count is not None:
        text.append(f" · {count} cases", style="dim")
    mismatches = result.get("mismatches") or result.get("failures")
    if isinstance(mismatches, list) and mismatches:
        text.append(f" · {len(mismatches)} mismatched", style="red")
    return text


class ExportPanel(Panel):
    PANEL_ID = "export"
    TITLE = "Export"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="export-body")

    def refresh_view(self) -> None:
        app = self.dashboard
        state = app.state
        run = app.run_ref.layout if app.run_ref else None
        quant_types = list(app.config.export.quant_types) if app.config is not None else []
        imatrix = bool(app.config is not None and app.config.export.imatrix)
        stages = export_stages()
        head = Text(no_wrap=True, overflow="ellipsis")
        for name in stages:
            stage = state.stage(name)
            head.append(f"{name} ", style="bold")
            head.append_text(status_text(state.stage_status(name)))
            if stage.duration_s is not None:
                head.append(f" {format_duration(stage.duration_s)}", style="dim")
            head.append("  ")
        parts: list[Any] = [head, size_table(state, app.report, quant_types, run, imatrix)]
        parts += [part for part in (imatrix_text(run), quality_table(run)) if part is not None]
        parts.append(parity_text(run, state))
        quantize = state.stage("quantize")
        if quantize.status == "running" and quantize.progress and quantize.progress.message:
            parts.append(Text(quantize.progress.message, style="dim", no_wrap=True, overflow="ellipsis"))
        if run is None:
            parts.append(Text("no run yet: sizes are the calculator's predictions", style="dim"))
        else:
            parts.append(Text(f"e exports ({' → '.join(stages)}) in a detached process", style="dim"))
        self.query_one("#export-body", Static).update(Group(*parts))

"""Rich-only helpers shared by the panels (no Textual): status badges, bars, short paths.

Sizes, durations and numbers are ``r1tui.present``'s, the same in every command.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from r1tui.present import finite

STATUS_STYLE = {
    "none": ("·", "dim"),
    "pending": ("·", "dim"),
    "running": ("▶", "bold yellow"),
    "finished": ("✓", "bold green"),
    "skipped": ("↷", "dim"),
    "failed": ("✗", "bold red"),
    "cancelled": ("■", "magenta"),
    "crashed": ("✗", "bold red"),
}


def status_text(status: str) -> Text:
    icon, style = STATUS_STYLE.get(status, ("?", ""))
    return Text(f"{icon} {status}", style=style)


def bar(fraction: float | None, width: int, style: str = "green") -> Text:
    """A text progress bar (deterministic, so snapshots do not depend on the clock)."""
    width = max(1, width)
    fraction = finite(fraction)
    if fraction is None:
        return Text("─" * width, style="dim")
    fraction = max(0.0, min(1.0, fraction))
    full = int(fraction * width)
    text = Text("█" * full, style=style)
    if full < width:
        partial = " ▏▎▍▌▋▊▉"[int((fraction * width - full) * 8)]
        text.append(partial if partial != " " else "░", style=style if partial != " " else "dim")
        text.append("░" * (width - full - 1), style="dim")
    return text


def short_path(path: str, keep: int = 2) -> str:
    parts = str(path).replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-keep:]) if len(parts) > keep else str(path)


def in_run(path: str, run_id: str | None) -> str:
    """A path inside a run folder, shown from the run folder on (``adapter``, ``gguf/x.gguf``)."""
    text = str(path).replace("\\", "/")
    if run_id:
        marker = f"/{run_id}/"
        if marker in text:
            return text.split(marker, 1)[1] or "."
        if text.rstrip("/").endswith(f"/{run_id}"):
            return "."
    return short_path(text)


def display_path(path: str | Path, runs_dir: Path | None = None) -> str:
    """Short and stable: ``runs/<id>/…`` under the runs folder, else relative to the cwd."""
    path = Path(path)
    for base, prefix in ((runs_dir, runs_dir.name if runs_dir else ""), (Path.cwd(), "")):
        if base is None:
            continue
        try:
            relative = path.resolve().relative_to(base.resolve())
        except (ValueError, OSError):
            continue
        return str(Path(prefix) / relative) if prefix else str(relative)
    return str(path)

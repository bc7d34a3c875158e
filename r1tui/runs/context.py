"""What a stage is given when the orchestrator runs it (the seam between the two layers).

Stage packages (data, train, export, eval) take a ``StageContext``; the orchestrator
(``r1tui.pipeline``) builds it. It lives here, in the ground layer, so that stages never
import the orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.runs.events import EventSink
from r1tui.runs.files import read_json_object
from r1tui.runs.layout import RunLayout

if TYPE_CHECKING:
    from r1tui.config import Config


@dataclass
class StageContext:
    """What a stage gets: the run, its config, where to report, and the run's options."""

    config: Config
    layout: RunLayout
    events: EventSink
    data_dir: Path  # the run's data/ or the prepared dataset it was started on
    external_dataset: bool = False
    resume: bool = False
    main: bool = True  # rank 0 (the only rank that writes the log and the run folder)
    world_size: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # per-command choices (export --quant)
    previous: dict[str, Any] = field(default_factory=dict)  # this stage's record before it ran

    def record(self, name: str) -> dict[str, Any]:
        """A stage's entry in stages.json ({} when it never ran)."""
        entry = read_json_object(self.layout.stages_record).get(name)
        return entry if isinstance(entry, dict) else {}

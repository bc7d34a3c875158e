"""Events as readable one-line text (for `r1tui logs`), and a run's crash diagnosis.

How an event reads is owned by ``r1tui.runs.logs`` (the Logs panel shows the same lines);
it is re-exported here for the CLI."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from r1tui.runs.logs import describe, format_event

__all__ = ["describe", "diagnosis_of", "format_event"]

if TYPE_CHECKING:
    from r1tui.runs.diagnosis import Diagnosis
    from r1tui.runs.layout import RunLayout
    from r1tui.runs.reducer import RunState


def diagnosis_of(layout: RunLayout, state: RunState | None = None) -> Diagnosis | None:
    """The crash diagnosis of a run (None unless it crashed or failed), with the OOM hint
    computed from the run's own frozen config (never ./config.toml: ``logs`` and ``runs``
    read no config)."""
    from r1tui.errors import R1Error
    from r1tui.runs.diagnosis import diagnose
    from r1tui.runs.status import fold_run

    if state is None:
        state = fold_run(layout)[0]
    if state.status not in ("crashed", "failed"):
        return None
    try:
        config = layout.frozen_config()
    except R1Error:
        config = None
    return diagnose(layout, state, config, now=time.time())

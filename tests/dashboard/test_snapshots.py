"""SVG snapshots of the main views at 80x24 (and one larger), fed by the recorded run.

Regenerate after an intended change with
``pytest tests/dashboard/test_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import pytest

from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.widgets.data import DataPanel

SMALL = (80, 24)


@pytest.fixture
def runs_dir(fixed_runs_dir):
    """The same runs path on every run: the snapshots show it (or sizes of files holding it)."""
    return fixed_runs_dir


def before(settle, wait_for, screen_text, keys: str = "", marker: str | None = None, extra=None):
    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(pilot, app)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.05)
        if marker is not None:
            await wait_for(pilot, lambda: marker in screen_text(app), what=repr(marker))
        if extra is not None:
            await extra(pilot, app)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize(("keys", "marker"), [
    pytest.param("", "events · log:", id="overview"),
    pytest.param(KEY["training"], "checkpoints step", id="training"),
    pytest.param(KEY["export"], "tokenizer parity", id="export"),
    pytest.param(KEY["evaluator"], "eval: tiny", id="evaluator"),
    pytest.param(KEY["resources"], "no GPU", id="resources"),
])
def test_run_views(keys, marker, snap_compare, make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    assert snap_compare(app, terminal_size=SMALL, run_before=before(settle, wait_for, screen_text, keys, marker))


def test_data_view(snap_compare, make_app, exported_run, settle, wait_for, screen_text):
    async def preview_drawn(pilot, app) -> None:
        panel = app.query_one(DataPanel)
        await wait_for(pilot, lambda: panel.examples is not None and "[INST]" in screen_text(app), what="preview")

    app = make_app(exported_run)
    assert snap_compare(app, terminal_size=SMALL,
                        run_before=before(settle, wait_for, screen_text, KEY["data"], "example 1/", preview_drawn))


def test_dry_run_view_without_a_run(snap_compare, make_app, settle, wait_for, screen_text):
    async def masking_done(pilot, app) -> None:
        await wait_for(pilot, lambda: app.masking_stats is not None, what="masking stats")
        await pilot.pause(0.2)

    app = make_app(None)
    assert snap_compare(app, terminal_size=SMALL,
                        run_before=before(settle, wait_for, screen_text, "", "masked ", masking_done))


def test_start_plan_dialog_in_dry_run(snap_compare, make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run, dry_run=True, python="python")
    assert snap_compare(app, terminal_size=SMALL,
                        run_before=before(settle, wait_for, screen_text, "1s", "nothing was launched"))


def test_overview_when_larger(snap_compare, make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    assert snap_compare(app, terminal_size=(120, 36),
                        run_before=before(settle, wait_for, screen_text, "", "events · log:"))


def test_generate_view(snap_compare, make_app, generation_run, settle, wait_for, screen_text):
    """The teacher mid-way, from a constructed generate log (fixed times: rates and ETA are stable)."""
    run, events = generation_run(steps=5)
    app = make_app(run, clock=lambda: events[-1].ts + 1)
    assert snap_compare(app, terminal_size=SMALL,
                        run_before=before(settle, wait_for, screen_text, KEY["generate"], "rejected"))

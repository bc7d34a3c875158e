"""Run registered stages with one resume rule, and say beforehand what would run.

The rule, for every stage alike: a stage is skipped (``stage_finished`` with status
``skipped``) when ``stages.json`` records that it finished with the same input
fingerprint and its outputs still exist; otherwise it runs, and its record is
rewritten ("started" before, "finished" with its outputs after). A stage that does not
apply to the run (``skip_reason``) is skipped with that reason. The disk a stage will
write (``output_bytes``) is checked before each step starts, for every stage of the step
that will run, so a full disk is one line before the step's work, not a torn file after
an hour.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.pipeline import registry
from r1tui.pipeline.registry import Stage
from r1tui.present import format_bytes
from r1tui.runs import cancel
from r1tui.runs.context import StageContext
from r1tui.runs.disk import check_free_space
from r1tui.runs.events import EventSink, NullWriter
from r1tui.runs.events import stage as stage_events
from r1tui.runs.files import read_json_object, write_text_atomic
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock

if TYPE_CHECKING:
    from r1tui.config import Config


@dataclass(frozen=True)
class PlannedStage:
    name: str
    runs: bool  # False: up to date, or does not apply
    reason: str  # why it is skipped ("" when it runs)
    bytes: int | None  # what it would write, when the stage can tell


def _record(ctx: StageContext, name: str, **entry: Any) -> None:
    records = read_json_object(ctx.layout.stages_record)
    records[name] = entry
    write_text_atomic(ctx.layout.stages_record, json.dumps(records, indent=2, default=str))


def forget(layout: RunLayout, name: str) -> None:
    """Drop a stage's record: a command rewrote its outputs with other settings (``r1tui eval
    RUN -n 5``), so the next run of the pipeline must not take them as up to date."""
    records = read_json_object(layout.stages_record)
    if records.pop(name, None) is not None:
        write_text_atomic(layout.stages_record, json.dumps(records, indent=2, default=str))


def up_to_date(stage: Stage, ctx: StageContext) -> bool:
    """The one resume rule: recorded finished with these inputs, and the outputs exist."""
    previous = ctx.record(stage.name)
    return (previous.get("status") == "finished" and previous.get("inputs") == stage.fingerprint(ctx)
            and stage.done(ctx))


def plan_stages(ctx: StageContext, names: Sequence[str]) -> list[PlannedStage]:
    """What ``run_stages`` would do, without doing it. Once a stage runs, every later stage
    runs too (its inputs are about to change)."""
    plan: list[PlannedStage] = []
    cascade = False
    for stage in (registry.get(name) for name in names):
        reason = stage.skip_reason(ctx) if stage.skip_reason else None
        if reason is None and not cascade and up_to_date(stage, ctx):
            reason = "up to date"
        runs = reason is None
        cascade = cascade or runs
        size = stage.output_bytes(ctx) if stage.output_bytes and runs else None
        plan.append(PlannedStage(stage.name, runs, reason or "", size))
    return plan


def check_disk(ctx: StageContext, plan: Sequence[PlannedStage]) -> None:
    """Refuse in one line when what the planned stages write will not fit."""
    todo = [p for p in plan if p.runs and p.bytes]
    if todo:
        what = " + ".join(f"{p.name} {format_bytes(p.bytes)}" for p in todo)
        check_free_space(ctx.layout.root, sum(p.bytes for p in todo), f"{what}")


def run_stages(ctx: StageContext, names: Sequence[str]) -> list[str]:
    """Run the named stages in pipeline order; returns the names of those skipped."""
    selected = [registry.get(name) for name in registry.expand(names)]
    skipped, checked_steps = [], set()
    for stage in selected:
        cancel.raise_if_requested()
        if not ctx.main and not stage.all_ranks:
            continue
        if ctx.main and stage.step not in checked_steps:
            # Disk for everything this step will write, before its first stage starts (not
            # at the start of the run: what export writes is known only once training ended).
            checked_steps.add(stage.step)
            with _failing_as(stage, ctx):
                check_disk(ctx, plan_stages(ctx, [s.name for s in selected if s.step == stage.step and s.output_bytes]))
        if _run_one(stage, ctx):
            skipped.append(stage.name)
    return skipped


@contextlib.contextmanager
def _failing_as(stage: Stage, ctx: StageContext) -> Iterator[None]:
    """A stage's pre-checks (its disk, its inputs, the export's preflight) failing is that
    stage failing: recorded under its name, not left on the stage that ran before it."""
    try:
        yield
    except Exception:
        if ctx.main:
            with stage_events(ctx.events, stage.name):
                raise
        raise


def _run_one(stage: Stage, ctx: StageContext) -> bool:
    """Run or skip one stage; True when skipped."""
    with _failing_as(stage, ctx):
        reason = stage.skip_reason(ctx) if stage.skip_reason else None
        if reason is None and up_to_date(stage, ctx):
            reason = f"up to date: {stage.writes} exist and the inputs did not change"
        inputs = stage.fingerprint(ctx) if reason is None else None
    if reason is not None:
        if ctx.main:
            with stage_events(ctx.events, stage.name) as outputs:
                outputs["_status"] = "skipped"
                outputs["reason"] = reason
        return True
    ctx.previous = ctx.record(stage.name)
    if ctx.main:
        _record(ctx, stage.name, inputs=inputs, status="started", started_at=time.time())
    result = stage.run(ctx) or {}
    if ctx.main:
        _record(ctx, stage.name, inputs=inputs, status="finished", finished_at=time.time(),
                outputs=result)
    return False


def context(config: Config, layout: RunLayout, events: EventSink | None = None, *, resume: bool = False,
            dataset: Path | None = None, options: dict[str, Any] | None = None, rank: int = 0,
            world_size: int = 1) -> StageContext:
    """The context a command or the pipeline process runs stages in."""
    return StageContext(config=config, layout=layout, events=events or NullWriter(),
                        data_dir=dataset.resolve() if dataset is not None else layout.data,
                        external_dataset=dataset is not None, resume=resume, main=rank == 0,
                        world_size=world_size, options=dict(options or {}))


def run_named(config: Config, layout: RunLayout, names: Sequence[str], events: EventSink | None = None,
              **options: Any) -> list[str]:
    """Run steps or stages of a run from a command (``r1tui export`` runs the step ``export``),
    holding the run's lock, SIGTERM and Ctrl-C cancelling the stage (``StageCancelled``);
    returns the stages skipped as up to date."""
    cancel.clear()
    handlers = cancel.install(ignore_hangup=False)  # `r1tui cancel` stops the stage cleanly: recorded cancelled
    try:
        with RunLock(layout, options.pop("what", "r1tui " + " ".join(names))):
            return run_stages(context(config, layout, events, options=options), names)
    finally:
        cancel.restore(handlers)

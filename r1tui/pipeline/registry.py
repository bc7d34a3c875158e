"""The stage registry: every stage of the pipeline, declared once.

A stage declares its name, the step ``--stages`` knows it by (export's four stages
share the step ``export``), what it does and writes (for plans, ``--help`` and the
docs), how its inputs are fingerprinted, how to tell that its outputs exist, and the
function that runs it. The orchestrator (``r1tui.pipeline.orchestrator``) applies one
resume rule to all of them: a stage whose recorded fingerprint equals the current one
and whose outputs exist is skipped. The CLI's ``--stages``, ``r1tui runs``, the
dashboard's Pipeline panel and the README's stage table all read this list.

A stage's ``run`` reports through ``ctx.events`` with ``r1tui.runs.events.stage`` (its own
``stage_started`` / ``stage_finished``, inputs and outputs), as every stage function
does when a command calls it outside a run.

Adding a stage: write its module in the layer it belongs to (taking a
``r1tui.runs.context.StageContext``), declare a ``Stage`` for it and ``register`` it
(the built-ins are declared in ``r1tui.pipeline.builtin``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from r1tui.errors import R1Error
from r1tui.runs.context import StageContext


@dataclass(frozen=True)
class Stage:
    name: str
    step: str  # the name --stages and a run's plan use (several stages may share one)
    does: str  # one line: what it does
    writes: str  # one line: what it leaves in the run folder
    fingerprint: Callable[[StageContext], str]  # identity of its inputs (config sections, files)
    done: Callable[[StageContext], bool]  # its outputs exist
    run: Callable[[StageContext], dict[str, Any] | None]  # does the work; returns outputs to record
    output_bytes: Callable[[StageContext], int] | None = None  # what it writes, checked against free disk
    skip_reason: Callable[[StageContext], str | None] | None = None  # why it does not apply to this run
    all_ranks: bool = False  # under --processes N every rank runs it; else rank 0 only


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage, *, before: str | None = None) -> Stage:
    """Add a stage at the end of the pipeline (or just before ``before``)."""
    if stage.name in _REGISTRY:
        raise ValueError(f"stage {stage.name!r} is already registered")
    if before is None:
        _REGISTRY[stage.name] = stage
        return stage
    if before not in _REGISTRY:
        raise ValueError(f"no stage {before!r} to register {stage.name!r} before")
    items = list(_REGISTRY.items())
    index = [name for name, _ in items].index(before)
    items.insert(index, (stage.name, stage))
    _REGISTRY.clear()
    _REGISTRY.update(items)
    return stage


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def stages() -> list[Stage]:
    """Every stage, in the order the pipeline runs them."""
    return list(_REGISTRY.values())


def get(name: str) -> Stage:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise R1Error(f"unknown stage {name!r}; stages are {', '.join(_REGISTRY)}") from None


def stage_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def steps() -> tuple[str, ...]:
    """The names ``--stages`` takes and a run plans in, in pipeline order."""
    return tuple(dict.fromkeys(stage.step for stage in _REGISTRY.values()))


def groups() -> dict[str, tuple[str, ...]]:
    """Each step that runs as several stages -> those stages (export -> merge, gguf, …)."""
    out: dict[str, list[str]] = {}
    for stage in _REGISTRY.values():
        out.setdefault(stage.step, []).append(stage.name)
    return {step: tuple(names) for step, names in out.items() if names != [step]}


def expand(names: Sequence[str], flag: str = "--stages") -> list[str]:
    """Steps or stage names -> the stages they stand for, in pipeline order."""
    known = {*steps(), *stage_names()}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise R1Error(f"{flag}: unknown stage {unknown[0]!r}; use a comma-separated subset of {','.join(steps())}"
                      f" (or of the stages {','.join(stage_names())})")
    wanted = set(names)
    return [s.name for s in _REGISTRY.values() if s.name in wanted or s.step in wanted]


def steps_of(stage_list: Sequence[str]) -> list[str]:
    """The steps the given stages belong to, in order (for a run's plan and resume)."""
    chosen = set(stage_list)
    return list(dict.fromkeys(s.step for s in _REGISTRY.values() if s.name in chosen))

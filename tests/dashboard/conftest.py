"""Fixtures for the dashboard tests: a run folder holding the log recorded from a real
tiny run, the app built on it, and a launcher that records command lines."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from r1tui.dashboard.actions import ActionPlan, Launched, Launcher
from r1tui.dashboard.source import RunRef
from r1tui.runs.layout import RunLayout

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
RECORDED_LOG = FIXTURES / "tiny_run_events.jsonl"
RECORDED_FILES = FIXTURES / "tiny_run"  # small result files of the same run
REPO = HERE.parent.parent
TINY_CONFIG = REPO / "configs" / "tiny.toml"


def recorded_run_id() -> str:
    first = json.loads(RECORDED_LOG.read_text(encoding="utf-8").splitlines()[0])
    return first["data"]["run_id"]


def recorded_end_ts() -> float:
    last = json.loads(RECORDED_LOG.read_text(encoding="utf-8").splitlines()[-1])
    return float(last["ts"])


def make_run(runs_dir: Path, *, events: bool = True, results: bool = True, run_id: str | None = None) -> RunRef:
    """A run folder like the runner's: frozen config, the recorded events, result files."""
    from r1tui.config import dump_toml, load_config

    run = RunLayout(runs_dir / (run_id or recorded_run_id()))
    run.root.mkdir(parents=True)
    run.config.write_text(dump_toml(load_config(TINY_CONFIG)), encoding="utf-8")
    if events:
        shutil.copy(RECORDED_LOG, run.events)
    if results:
        for target in (run.data_stats, run.parity, run.eval_results):
            target.parent.mkdir(exist_ok=True)
            shutil.copy(RECORDED_FILES / target.name, target)
    return RunRef(run)


class RecordingLauncher(Launcher):
    """The launch seam with the process start left out: records each command line.

    Used where a test checks *which* command an action would start; one test
    launches for real through the plain Launcher.
    """

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        self.plans: list[ActionPlan] = []

    def launch(self, plan: ActionPlan) -> Launched:
        self.plans.append(plan)
        launched = Launched(pid=0, argv=plan.argv, log_path=None, action=plan.action)
        self.launched.append(launched)
        return launched

    @property
    def argvs(self) -> list[list[str]]:
        return [list(plan.argv) for plan in self.plans]


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def fixed_runs_dir() -> Iterator[Path]:
    """A runs folder at the same path on every run, for SVG snapshots of screens that print
    it (a plan's exact command line) or whose file sizes hold it (the Runs screen)."""
    folder = Path(tempfile.gettempdir()) / "r1tui-snapshot-runs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def recorded_run(runs_dir: Path) -> RunRef:
    return make_run(runs_dir)


@pytest.fixture
def launcher(tmp_path: Path) -> RecordingLauncher:
    return RecordingLauncher(tmp_path / "launches")


@pytest.fixture
def make_app(runs_dir: Path, launcher: RecordingLauncher, monkeypatch):
    """Build a DashboardApp the way `r1tui attach` does, with deterministic time."""
    from r1tui.dashboard.app import DashboardApp

    monkeypatch.chdir(REPO)  # paths shown relative to the cwd are then stable

    def build(run: RunRef | None, **kwargs) -> DashboardApp:
        kwargs.setdefault("sample_local_gpu", False)
        kwargs.setdefault("clock", recorded_end_ts)
        kwargs.setdefault("python", "python")
        kwargs.setdefault("config_path", TINY_CONFIG if run is None else None)
        kwargs.setdefault("launcher", launcher)
        return DashboardApp(run=run, runs_dir=runs_dir, **kwargs)

    return build


async def _settle(pilot, app, timeout: float = 15.0) -> None:
    """Wait until the tail worker replayed the whole log and the screen caught up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not app.caught_up and loop.time() < deadline:
        await pilot.pause(0.05)
    assert app.caught_up, "the dashboard did not replay the log in time"
    # ...and until the screen shows it: the header drawn, the footer composed.
    while True:
        lines = _screen_text(app).splitlines()
        if lines and " r1tui " in lines[0] and "quit" in lines[-1]:
            break
        assert loop.time() < deadline, "the header and footer were not drawn in time"
        await pilot.pause(0.05)


async def _wait_for(pilot, condition, timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


@pytest.fixture
def settle():
    return _settle


@pytest.fixture
def wait_for():
    return _wait_for


@pytest.fixture
def new_run(runs_dir: Path):
    def build(**kwargs) -> RunRef:
        return make_run(runs_dir, **kwargs)

    return build


# ---- the real tiny GGUFs (scripted_gguf, random_gguf) come from tests/conftest.py

SCRIPT = sys.modules["r1tui_test_tiny_gguf"].SCRIPT


@pytest.fixture
def script() -> str:
    """What the scripted GGUF answers to any prompt."""
    return SCRIPT


def _screen_text(app) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


@pytest.fixture
def screen_text():
    return _screen_text


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory) -> Path:
    """A real prepared dataset (r1tui.data.prepare on the tiny config, 12 examples)."""
    from r1tui.config import load_config
    from r1tui.data.prepare import prepare_dataset

    config = load_config(TINY_CONFIG)
    config.data.num_examples = 12
    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare_dataset(config, out)
    return out


@pytest.fixture
def exported_run(new_run, prepared_data, scripted_gguf) -> RunRef:
    """The recorded run with its prepared data and a real Q4_K_M GGUF in place."""
    from r1tui.config import load_config
    from r1tui.export.gguf import gguf_stem

    run = new_run()
    shutil.rmtree(run.layout.data)
    shutil.copytree(prepared_data, run.layout.data)
    target = run.layout.gguf(gguf_stem(load_config(TINY_CONFIG)), "Q4_K_M")
    target.parent.mkdir(exist_ok=True)
    shutil.copy(scripted_gguf, target)
    return run


# ---- a constructed log of the generate stage (the teacher's progress), with fixed times

GENERATION_T0 = 1_800_000_000.0  # run_started; every other event is placed after it
GENERATION_TEACHER = {"model": "deepseek-r1-distill-qwen-32b", "base_url": ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"],
                      "num_prompts": 200, "samples": 4, "max_tokens": 8192, "concurrency": 32,
                      "price_in_per_m": 0.5, "price_out_per_m": 2.0}


def teacher_config(**teacher):
    """The tiny config with a ``[teacher]`` (GENERATION_TEACHER unless given)."""
    from r1tui.config import load_config

    config = load_config(TINY_CONFIG)
    for key, value in (teacher or GENERATION_TEACHER).items():
        setattr(config.teacher, key, value)
    return config


def generation_events(steps: int = 5, finished: bool = False, price_in: float = 0.5, price_out: float = 2.0):
    """run_started (with generate in its stages), stage_started, ``steps`` generation
    events 12 s apart as the stage writes them (running totals), and, when ``finished``,
    stage_finished and run_finished. Four rejection reasons, growing at different rates."""
    from r1tui.runs.events import EVENT_SCHEMA, Event

    events: list[Event] = []

    def add(type: str, ts: float, stage: str | None = None, **data) -> None:
        assert set(data) <= EVENT_SCHEMA[type], f"{type}: {set(data) - EVENT_SCHEMA[type]}"
        events.append(Event(type=type, data=data, stage=stage, ts=ts, seq=len(events) + 1))

    t0 = GENERATION_T0
    add("run_started", t0, run_id=recorded_run_id(), pid=1, stages=["generate", "prepare", "train"],
        dry_run=False, resumed=False, heartbeat_s=10.0, backend="hf")
    add("stage_started", t0 + 1, stage="generate")
    total, prompts_total = 800, 200
    for i in range(1, steps + 1):
        completed, retries = 96 * i, 3 * i
        rejected = {"wrong_answer": 14 * i, "no_think": 6 * i, "truncated": 3 * i, "near_duplicate": i}
        requests = completed + retries
        tokens_in, tokens_out = 180 * requests, 2_911 * completed
        ts = t0 + 1 + 12 * i
        add("stage_progress", ts, stage="generate", completed=completed, total=total, unit="sample")
        add("generation", ts, stage="generate", completed=completed, total=total,
            accepted=completed - sum(rejected.values()), rejected=rejected, requests=requests, retries=retries,
            kept=completed - sum(rejected.values()), tokens_in=tokens_in, tokens_out=tokens_out, elapsed_s=12.0 * i,
            cost_usd=(tokens_in * price_in + tokens_out * price_out) / 1e6,
            prompts_done=24 * i, prompts_total=prompts_total)
    if finished:
        end = events[-1].ts + 0.5
        add("stage_finished", end, stage="generate", status="finished", duration_s=end - (t0 + 1))
        add("run_finished", end + 0.1, status="finished")
    return events


def write_events(path: Path, events, mode: str = "w") -> None:
    with open(path, mode, encoding="utf-8") as log:
        log.writelines(event.to_json() + "\n" for event in events)


@pytest.fixture
def generation_run(runs_dir: Path):
    """A run folder holding the constructed generate log and a config with a teacher; a
    live pid file (this process) stands for the pipeline while the stage runs."""
    import os

    from r1tui.config import dump_toml

    def build(steps: int = 5, finished: bool = False, teacher: dict | None = None) -> tuple[RunRef, list]:
        run = make_run(runs_dir, events=False, results=False)
        run.layout.config.write_text(dump_toml(teacher_config(**(teacher or {}))), encoding="utf-8")
        events = generation_events(steps, finished)
        write_events(run.layout.events, events)
        run.layout.pid.write_text(f"{os.getpid()}\n")
        return run, events

    return build


@pytest.fixture
def generation_log():
    """The helpers above, for the tests (a conftest is not importable under importlib mode)."""
    import types

    return types.SimpleNamespace(events=generation_events, teacher_config=teacher_config, write=write_events,
                                 teacher=GENERATION_TEACHER)

"""The dashboard app: routes events to the state and actions to detached processes.

The app owns the run being watched (``run_ref``), its folded events (``state``), the
config and its dry-run report, and the dry-run toggle. A thread worker tails the
run's event log and posts one ``EventsBatch`` per poll; the app folds it and
redraws the header and the visible panel only. Actions launch ``python -m r1tui …``
in a new session through ``launcher``, so quitting never stops them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from r1tui.config import Config
from r1tui.dashboard.actions import (
    ACTIONS,
    ActionPlan,
    Launcher,
    guard_live,
    plan_action,
    resume_point,
)
from r1tui.dashboard.format import display_path
from r1tui.dashboard.monitor import ResourceMonitor
from r1tui.dashboard.screens.main import PANELS, MainScreen
from r1tui.dashboard.source import EventTail, RunRef, find_ggufs, find_runs, load_run_config
from r1tui.dashboard.widgets.base import Panel
from r1tui.dryrun import DryRunReport, build_report
from r1tui.pipeline import registry
from r1tui.present import format_bytes
from r1tui.runs.alerts import Alert, AlertSettings, AlertWatcher, notification_escapes
from r1tui.runs.diagnosis import diagnose
from r1tui.runs.events import Event
from r1tui.runs.layout import RunLayout
from r1tui.runs.reducer import RunState
from r1tui.runs.status import live_runs, writer_alive

REFRESH_SECONDS = 0.1  # redraw at most this often while events pour in
ALIVE_CHECK_SECONDS = 1.0
NEW_RUN_WAIT_SECONDS = 120.0


class EventsBatch(Message):
    """Events read from the log in one poll, and whether a writer holds the run."""

    def __init__(self, generation: int, events: list[Event], alive: bool | None, caught_up: bool) -> None:
        super().__init__()
        self.generation = generation
        self.events = events
        self.alive = alive
        self.caught_up = caught_up


class DashboardApp(App[None]):
    CSS_PATH = Path(__file__).with_name("dashboard.tcss")  # absolute: subclasses elsewhere find it too
    TITLE = "r1tui"

    dry_run = reactive(False)

    def __init__(self, *, run: RunRef | None, runs_dir: Path, config_path: Path | None = None,
                 dry_run: bool | None = None, launcher: Launcher | None = None, gguf: Path | None = None,
                 poll_s: float = 0.1, sample_local_gpu: bool = True, clock: Callable[[], float] = time.time,
                 initial_panel: str | None = None, python: str | None = None) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.config_path = config_path
        self.run_ref: RunRef | None = None
        self.state = RunState(groups=registry.groups())
        self.config: Config | None = None
        self.config_error: str | None = None
        self.report: DryRunReport | None = None
        self.masking_stats: dict[str, Any] | None = None
        self.launcher = launcher or Launcher(runs_dir / ".dashboard-launches")
        self.gguf = gguf
        self.poll_s = poll_s
        self.sample_local_gpu = sample_local_gpu
        self.clock = clock
        self.python = python
        self.caught_up = False
        self.last_plan: ActionPlan | None = None
        self._generation = 0
        self._applied = threading.Event()
        self._last_refresh = 0.0
        self._refresh_pending = False
        self._waiting_for_new_run: tuple[set[str], float] | None = None
        self._start: tuple[Path | None, Any, str | None, DryRunReport | None] | None = None
        self._open(run)
        self.set_reactive(DashboardApp.dry_run, (run is None) if dry_run is None else dry_run)
        self.initial_panel = initial_panel or ("overview" if run is not None else "config")
        self.monitor = ResourceMonitor()  # this machine, sampled while Overview or Resources shows

    # -- the run being watched ------------------------------------------------
    def _open(self, run: RunRef | None) -> None:
        self.run_ref = run
        self.state = RunState(groups=registry.groups())
        self.caught_up = run is None
        self.config, self.config_error, self.report = _load_config(run.layout if run else None, self.config_path)
        self.masking_stats = None
        self._start = None
        # edge-triggered: primed once caught up, so opening a finished run rings nothing
        self.alerts = AlertWatcher(AlertSettings.from_config(self.config))

    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self._start_tail()
        self.compute_masking_stats(self.config)
        self.refresh_views()

    @work(thread=True, exclusive=True, group="masking", exit_on_error=False)
    def compute_masking_stats(self, config: Config) -> None:
        """The dry run's masking statistics (renders up to 256 rows; ~0.2 s, no torch)."""
        if config is None:
            return
        from r1tui.data.prepare import dry_run_masking_stats

        try:
            stats = dry_run_masking_stats(config)
        except Exception as exc:  # noqa: BLE001 - a data problem is shown, not raised
            stats = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        self.call_from_thread(self._masking_computed, config, stats)

    def _masking_computed(self, config: Config, stats: dict[str, Any]) -> None:
        if config is self.config:
            self.masking_stats = stats
            self.refresh_views()

    def _start_tail(self) -> None:
        self._generation += 1
        if self.run_ref is not None:
            self._applied.set()
            self.tail(self.run_ref, self._generation)

    def switch_run(self, run: RunRef | None) -> None:
        self._open(run)
        self._start_tail()
        self.compute_masking_stats(self.config)
        if self.main is not None:
            for panel in self.main.query(Panel):
                panel.reset_for_run()
        self.refresh_views()
        self.notify(f"watching {run.run_id}" if run else "no run")

    def use_config(self, path: Path) -> None:
        """The Config panel saved ``path``: `start` launches it from now on. With no run open
        it is also the config shown; a run's own frozen config stays what it ran with."""
        self.config_path = path
        self._start = None
        if self.run_ref is None:
            self.config, self.config_error, self.report = _load_config(None, path)
            self.masking_stats = None
            self.compute_masking_stats(self.config)

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def tail(self, run: RunRef, generation: int) -> None:
        """Replay the log from the start, then follow it; one message per read."""
        worker = get_current_worker()
        tail = EventTail(run.layout.events)
        last_check = 0.0
        alive: bool | None = None
        while not worker.is_cancelled:
            events = tail.read()
            now = time.monotonic()
            checked = now - last_check >= ALIVE_CHECK_SECONDS
            if checked:
                last_check = now
                alive, _ = writer_alive(run.layout)
            caught_up = tail.at_end()
            if events or checked:
                self._applied.clear()
                self.post_message(EventsBatch(generation, events, alive, caught_up))
                # Wait until the app folded it: reads then batch whatever arrived meanwhile.
                while not self._applied.wait(0.2):
                    if worker.is_cancelled:
                        return
            if caught_up or not events:
                # not events: nothing new, or only a torn last line (a writer cut off
                # mid-line); wait for more rather than spinning on it
                time.sleep(self.poll_s)

    def on_events_batch(self, batch: EventsBatch) -> None:
        try:
            if batch.generation != self._generation:
                return
            before = (self.state.version, self.caught_up)
            self.state.apply_all(batch.events)
            self.state.set_process_alive(batch.alive, self.clock())
            self.caught_up = batch.caught_up
            if self.caught_up:
                self.ring(self.alerts.update(self.state, self.clock()))
            if (self.state.version, self.caught_up) != before:
                # a batch that changed nothing (the once-a-second liveness check of a quiet
                # log) draws nothing: a finished run left open costs almost no CPU; a live
                # run's clocks are redrawn by _tick
                self.request_refresh()
        finally:
            self._applied.set()

    def ring(self, alerts: list[Alert]) -> None:
        """Alerts reach a person over SSH: a toast, plus ([alerts] in the config) the bell
        and the desktop-notification escapes, written raw through the driver as
        ``App.bell`` writes its BEL (a headless app has no terminal to write to)."""
        for alert in alerts:
            found = diagnose(self.run_ref.layout, self.state, self.config) \
                if self.run_ref and alert.kind in ("crashed", "failed") else None
            self.notify(alert.message + (f"\n{found.hint}" if found and found.hint else ""), title=alert.title,
                        severity={"error": "error", "warning": "warning"}.get(alert.level, "information"), timeout=30)
            escapes = notification_escapes(alert, self.alerts.settings, tmux=bool(os.environ.get("TMUX")))
            if escapes and not self.is_headless and self._driver is not None:
                self._driver.write(escapes)

    # -- drawing ---------------------------------------------------------------
    @property
    def main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def request_refresh(self) -> None:
        """Redraw now, or soon if we just did (bursts of events redraw at most 10 times a second: REFRESH_SECONDS)."""
        wait = REFRESH_SECONDS - (time.monotonic() - self._last_refresh)
        if wait <= 0:
            self.refresh_views()
        elif not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(wait, self.refresh_views)

    def refresh_views(self) -> None:
        self._refresh_pending = False
        self._last_refresh = time.monotonic()
        main = self.main
        if main is None or not main.is_mounted:
            return
        # query, not query_one: an event batch can land while the screen's children are
        # still being mounted (or already removed at exit); then there is nothing to draw
        for header in main.query("#header"):
            header.refresh_view()
        panel = main.active_panel()
        if panel is not None:
            try:
                panel.refresh_view()
            except NoMatches:
                pass  # the panel's widgets are still mounting, or already gone at exit

    def _tick(self) -> None:
        for failed in self.launcher.reap():
            self.notify(f"{failed.action or 'command'} failed (exit {failed.returncode}): {failed.last_error()}",
                        severity="error", timeout=15)
        if self.state.is_live:
            self.refresh_views()
        self._check_new_run()

    def watch_dry_run(self, dry_run: bool) -> None:
        if self.main is not None and self.main.is_mounted:
            self.refresh_views()  # the header's badge, and a panel that shows a plan (Generate)
            self.notify("dry run on: actions show their plan and launch nothing" if dry_run
                        else "dry run off: actions launch detached processes", timeout=3)

    # -- actions ---------------------------------------------------------------
    def start_config(self) -> tuple[Path | None, Any, str | None, DryRunReport | None]:
        """What `start` launches: (config path, config, its load error, its dry-run report).

        ``--config`` when given, else the config shown (the open run's frozen copy, or the
        default lookup); with a run open, --config is loaded here, not the run's copy.
        """
        if self._start is None:
            if self.config_path is not None and self.run_ref is not None:
                self._start = (self.config_path, *_load_config(None, self.config_path))
            else:
                path = self.config_path or (self.config.source_path if self.config is not None else None)
                self._start = (path, self.config, self.config_error, self.report)
        return self._start

    def plan(self, name: str) -> ActionPlan:
        config_path = self.start_config()[0] if name == "start" else None
        plan = plan_action(
            name, run_dir=self.run_ref.run_dir if self.run_ref else None, config_path=config_path,
            run_status=self.state.status, python=self.python, runs_dir=self.runs_dir, show_path=self.show_path,
            quant_types=list(self.config.export.quant_types) if self.config is not None else None,
            resume_point=resume_point(self.run_ref.run_dir, self.state.stage("train").status,
                                      "train" in self.state.planned_stages) if name == "resume" and self.run_ref else "",
        )
        if name in ("start", "resume"):  # another run live on this machine: ask first, naming it
            plan = guard_live(plan, [(layout.run_id, who) for layout, who in live_runs(self.runs_dir)
                                     if self.run_ref is None or name == "start" or layout.root != self.run_ref.run_dir])
        if name == "start" and self.start_config()[2]:
            plan = replace(plan, blocked=f"the config does not load: {self.start_config()[2]}")
        if name == "push" and not plan.blocked and self.config is not None and not self.config.hub_repo_id:
            plan = replace(plan, blocked="no Hub repo to push to: set hub.repo_id in the config or HF_REPO_ID")
        return plan

    def show_path(self, path: str) -> str:
        return display_path(path, self.runs_dir)

    def request_action(self, name: str) -> None:
        """Show the plan (dry run, blocked, or needs confirming) or launch right away."""
        self.offer_plan(self.plan(name), self.estimates(name))

    def offer_plan(self, plan: ActionPlan, estimates: str = "") -> None:
        """A plan made for this run or another (the Runs screen's): shown, or launched right away."""
        from r1tui.dashboard.screens.modals import PlanScreen

        self.last_plan = plan
        if not self.dry_run and not plan.blocked and not plan.confirm:
            self.launch(plan)
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed and not self.dry_run and not plan.blocked:
                self.launch(plan)

        self.push_screen(PlanScreen(plan, self.dry_run, estimates, self.show_path), answered)

    def estimates(self, name: str) -> str:
        """The numbers behind an action, for its plan (computed, never typed in)."""
        report = self.start_config()[3] if name == "start" else self.report
        if report is None:
            return ""
        if name == "start":
            params, vram = report.parameters, report.vram
            return (f"estimates: {params.total:,} parameters · LoRA {params.lora_trainable:,} "
                    f"({params.lora_share_of_base:.2%}) · training VRAM {format_bytes(vram.total)} of "
                    f"{format_bytes(vram.gpu_bytes)} ({'fits' if vram.fits else 'does not fit'})")
        if name == "export":
            rows = [r for r in report.gguf if r.configured]
            return "predicted GGUF sizes: " + ", ".join(f"{r.quant} {format_bytes(r.bytes)}" for r in rows)
        if name == "push" and self.main is not None:
            plan = self.main.query_one("#panel-push").plan
            if plan is not None:
                return f"{len(plan.files)} files, {format_bytes(plan.total_bytes)} to {plan.repo_id or '?'}"
        return ""

    def launch(self, plan: ActionPlan) -> None:
        launched = self.launcher.launch(plan)
        self.notify(f"{plan.title}: launched pid {launched.pid}" +
                    (f" (log {launched.log_path})" if launched.log_path else ""), timeout=6)
        if plan.action == "start":
            known = {ref.run_id for ref in find_runs(self.runs_dir)}
            self._waiting_for_new_run = (known, time.monotonic())

    def _check_new_run(self) -> None:
        if self._waiting_for_new_run is None:
            return
        known, since = self._waiting_for_new_run
        if time.monotonic() - since > NEW_RUN_WAIT_SECONDS:
            self._waiting_for_new_run = None
            return
        fresh = [ref for ref in find_runs(self.runs_dir) if ref.run_id not in known]
        if fresh:
            self._waiting_for_new_run = None
            self.switch_run(fresh[0])
            if self.main is not None:
                self.main.action_show_panel("overview")

    # -- screenshots ----------------------------------------------------------
    def screenshot_dir(self) -> Path:
        """Where a screenshot goes: the run's folder, or the working directory with no run open."""
        return self.run_ref.run_dir if self.run_ref is not None else Path.cwd()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Save the SVG locally (Textual's default, ~/Downloads, is missing on a headless box) and say where."""
        folder = Path(path) if path else self.screenshot_dir()
        try:
            saved = self.save_screenshot(filename, str(folder), time_format)
        except OSError as exc:
            self.notify(f"screenshot not saved in {folder}: {exc.strerror or exc}", severity="error", timeout=10)
            return None
        self.notify(f"screenshot saved: {Path(saved).resolve()}", title="Screenshot", timeout=10)
        return saved

    # -- REPL helpers ---------------------------------------------------------
    def _ggufs(self) -> list[Path]:
        configured = list(self.config.export.quant_types) if self.config is not None else []
        return find_ggufs(self.runs_dir, self.run_ref.layout if self.run_ref else None, configured)

    def gguf_candidates(self) -> list[Path]:
        found = self._ggufs()
        if self.gguf is not None and self.gguf not in found:
            found.insert(0, self.gguf)
        return found

    def default_gguf(self) -> Path | None:
        if self.gguf is not None:
            return self.gguf
        found = self._ggufs()
        return found[0] if found else None

    # -- command palette ------------------------------------------------------
    def show_runs(self) -> None:
        """The Runs screen (R, and the palette's Runs)."""
        from r1tui.dashboard.screens.runs import RunsScreen

        self.push_screen(RunsScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        titles = {"start": "Start a run", "resume": "Resume the run", "cancel": "Cancel the run",
                  "export": "Export GGUF", "evaluate": "Evaluate", "push": "Push to the Hub"}
        for name in ACTIONS:
            yield SystemCommand(titles[name], f"{name}: shows the plan when dry run is on",
                                lambda name=name: self.request_action(name))
        yield SystemCommand("Runs", "every run under the runs folder: open, compare, resume, cancel, delete (R)",
                            self.show_runs)
        yield SystemCommand("Toggle dry run", "with dry run on, actions launch nothing",
                            lambda: setattr(self, "dry_run", not self.dry_run))
        if self.main is not None:
            for panel in PANELS:
                yield SystemCommand(f"Show {panel.TITLE}", f"switch to the {panel.TITLE} panel",
                                    lambda p=panel.PANEL_ID: self.main.action_show_panel(p))
        for ref in find_runs(self.runs_dir)[:20]:
            yield SystemCommand(f"Open run {ref.run_id}", str(ref.run_dir),
                                lambda ref=ref: self.switch_run(ref), discover=False)


def _load_config(run: RunLayout | None, config_path: Path | None) -> tuple[Any, str | None, DryRunReport | None]:
    """(config, its load error, its dry-run report): the run's frozen config, else config_path."""
    try:
        config = load_run_config(run, config_path)
    except Exception as exc:  # noqa: BLE001 - R1Error/ConfigError: one line in the Config panel
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, None
    return config, None, build_report(config, with_masking=False)

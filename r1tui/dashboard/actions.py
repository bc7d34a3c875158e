"""The dashboard's actions: the same detached CLI processes a person would start.

``plan_action`` says what an action would do (the exact command line, and why) without
doing it; with dry run on that plan is all the dashboard shows. ``Launcher.launch``
starts the command in its own session (``start_new_session``) with its output going
to a log file, so closing the dashboard or losing SSH never stops it. Tests swap the
``Launcher`` for one that records command lines (the seam is ``DashboardApp.launcher``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from r1tui.pipeline import registry

ACTIONS = ("start", "resume", "cancel", "export", "evaluate", "push")
EXPORT_STEP = "export"  # the registry's step that `r1tui export` runs


def export_stages() -> list[str]:
    """The stages the export action (`r1tui export`) runs, in order, from the stage registry."""
    return [stage.name for stage in registry.stages() if stage.step == EXPORT_STEP]


# What each dialog's buttons say: (do it, don't). Every button names what it does.
BUTTONS = {
    "start": ("Start the run", "Don't start"),
    "resume": ("Resume the run", "Don't resume"),
    "cancel": ("Cancel the run", "Keep it running"),
    "export": ("Export", "Don't export"),
    "evaluate": ("Evaluate", "Don't evaluate"),
    "push": ("Push to the Hub", "Don't push"),
}


@dataclass(frozen=True)
class ActionPlan:
    action: str
    title: str
    argv: tuple[str, ...]
    details: tuple[str, ...] = ()
    confirm: bool = False  # ask before launching (with dry run off)
    blocked: str = ""  # why it cannot run now (empty: it can)
    warning: str = ""  # what to know before saying yes (another run is live on this machine)

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def buttons(self) -> tuple[str, str]:
        """(the button that launches, the one that does not), each saying what it does."""
        return BUTTONS.get(self.action, (self.title, "Close"))

    def shown(self, cwd: Path | None = None) -> str:
        """The exact command, pasteable in the dashboard's folder (``cwd``, where the launcher
        runs it): a path under that folder relative to it, any other path absolute, so a
        copy-paste does what the dashboard would do."""
        base = (cwd or Path.cwd()).resolve()

        def exact(arg: str) -> str:
            if not os.path.isabs(arg):
                return arg
            try:
                return str(Path(arg).relative_to(base)) or "."
            except ValueError:
                return arg

        return shlex.join([self.argv[0], *(exact(a) for a in self.argv[1:])])


def _cli(python: str, *args: str) -> tuple[str, ...]:
    return (python, "-m", "r1tui", *args)


def plan_action(
    action: str,
    *,
    run_dir: Path | None,
    config_path: Path | None,
    run_status: str = "none",
    python: str | None = None,
    quant_types: list[str] | None = None,
    runs_dir: Path | None = None,
    show_path: Callable[[str], str] = str,
    resume_point: str = "",
) -> ActionPlan:
    """What ``action`` would launch for this run. Pure: reads and writes nothing.
    ``resume_point``: where a resume restarts training (``resume_point``)."""
    python = python or sys.executable
    run = str(run_dir) if run_dir is not None else None
    live = run_status == "running"
    if action == "start":
        args = ["run"] + (["--config", str(config_path)] if config_path else [])
        args += ["--runs-dir", str(runs_dir)] if runs_dir is not None else []
        return ActionPlan(
            action, "Start a run", _cli(python, *args),
            (f"runs every stage ({' → '.join(registry.stage_names())}) in a detached process",
             f"config: {show_path(str(config_path)) if config_path else 'the default lookup ($R1TUI_CONFIG, ./config.toml, built-in)'}",
             "the dashboard switches to the new run when its folder appears"),
        )
    if run is None:
        return ActionPlan(action, action.capitalize(), (), blocked="no run yet: start one first")
    if action == "resume":
        return ActionPlan(
            action, "Resume the run", _cli(python, "run", "--resume", run),
            ("continues in a detached process; stages whose artifacts exist and whose inputs did not change are skipped",
             *([resume_point] if resume_point else [])),
            blocked="the run is still running" if live else "",
        )
    if action == "cancel":
        return ActionPlan(
            action, "Cancel the run", _cli(python, "cancel", run),
            ("asks the run's process to stop; the current stage is marked cancelled",),
            confirm=True, blocked="" if live else f"the run is not running ({run_status})",
        )
    if action == "export":
        quants = ", ".join(quant_types or []) or "the configured quant types"
        stages = [stage for stage in registry.stages() if stage.step == EXPORT_STEP]
        return ActionPlan(
            action, "Export GGUF", _cli(python, "export", run),
            (f"runs {' → '.join(stage.name for stage in stages)}, quant types {quants}",
             *(f"{stage.name}: {stage.does}" for stage in stages)),
            blocked="the run is still running" if live else "",
        )
    if action == "evaluate":
        return ActionPlan(
            action, "Evaluate", _cli(python, "eval", run),
            ("answers the held-out questions with the quantized GGUF and scores accuracy, format and reasoning",),
            blocked="the run is still running" if live else "",
        )
    if action == "push":
        return ActionPlan(
            action, "Push to the Hub", _cli(python, "push", run),
            ("uploads the GGUFs, the adapter and the model card (see the Push panel for the plan)",),
            confirm=True, blocked="the run is still running" if live else "",
        )
    raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")


def resume_point(run_dir: Path, train_status: str, planned: bool = True) -> str:
    """Where a resume restarts training, from what is on disk: the newest complete
    checkpoint (the one the trainer itself resumes from), or step 1 when none was saved."""
    if not planned:
        return ""
    if train_status in ("finished", "skipped"):
        return "training finished: skipped unless its inputs changed"
    from r1tui.train.trainer import checkpoint_step, latest_checkpoint  # light: no torch

    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return "no checkpoint was saved: training starts again from step 1"
    return f"training restarts from {checkpoint.name} (step {checkpoint_step(checkpoint) + 1})"


def guard_live(plan: ActionPlan, live: list[tuple[str, str]]) -> ActionPlan:
    """A start or resume while other runs are live on this machine asks first and names
    them. ``live``: (run id, who writes it) of each run a writer holds now."""
    if not live or plan.blocked or plan.action not in ("start", "resume"):
        return plan
    names = "; ".join(f"{run_id} ({who})" for run_id, who in live)
    many = len(live) > 1
    warning = (f"{'other runs are' if many else 'another run is'} live on this machine: {names}. "
               f"Both will share the GPU, CPU and disk; a second training run can run {'them' if many else 'both'} "
               "out of memory.")
    return replace(plan, confirm=True, warning=warning)


@dataclass
class Launched:
    pid: int
    argv: tuple[str, ...]
    log_path: Path | None
    process: subprocess.Popen | None = field(default=None, repr=False)
    action: str = ""
    returncode: int | None = None  # set once reaped

    def last_error(self) -> str:
        """Why it failed: the last ``error:`` line of its log, else the last line."""
        try:
            lines = [line.strip() for line in self.log_path.read_text(encoding="utf-8", errors="replace")
                     .splitlines() if line.strip()] if self.log_path else []
        except OSError:
            lines = []
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or ["(no output; see the log)"])[-1]


class Launcher:
    """Starts detached CLI processes; their output goes to ``log_dir``."""

    def __init__(self, log_dir: Path, cwd: Path | None = None):
        self.log_dir = log_dir
        self.cwd = cwd
        self.launched: list[Launched] = []

    def launch(self, plan: ActionPlan) -> Launched:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{plan.action}-{os.getpid()}.log"
        env = dict(os.environ)
        env.pop("DRY_RUN", None)  # the dashboard's own toggle decided: this one is for real
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                list(plan.argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.cwd, env=env, start_new_session=True, close_fds=True,
            )
        launched = Launched(process.pid, plan.argv, log_path, process, plan.action)
        self.launched.append(launched)
        return launched

    def reap(self) -> list[Launched]:
        """Collect exited children so they do not linger as zombies while we run;
        returns the ones that just exited with a non-zero status."""
        failed = []
        for launched in self.launched:
            if launched.process is not None and launched.returncode is None:
                launched.returncode = launched.process.poll()
                if launched.returncode:
                    failed.append(launched)
        return failed

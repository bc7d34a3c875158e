"""Dialogs: an action's plan (dry run, or confirm before launching), and the GGUF picker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from r1tui.dashboard.actions import ActionPlan
from r1tui.dashboard.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from r1tui.dashboard.app import DashboardApp


class PlanScreen(ConfirmScreen):
    """Shows what an action would launch. Dry run: a report only. Otherwise: confirm.

    Its buttons (and the footer's y / n) say what they do: "Cancel the run (y)" and
    "Keep it running (n)", never a bare "Launch". The command shown is the exact one the
    launcher runs, pasteable in the dashboard's folder. Dry run or a plan that cannot run
    now: one button, Close (y is off). Its look is in dashboard.tcss (#plan-*)."""

    BINDINGS = [Binding("d", "toggle_dry_run", "dry run")]  # y, n and Esc: ConfirmScreen's, named below

    PREFIX = "plan"
    BUTTON_IDS = ("launch", "close")

    def __init__(self, plan: ActionPlan, dry_run: bool, extra: str = "",
                 show_path: Callable[[str], str] = str) -> None:
        do, dont = plan.buttons
        super().__init__(f"{plan.title}?", do, dont, variant="warning" if plan.confirm else "primary")
        self.plan = plan
        self.dry_run = dry_run
        self.extra = extra
        self.show_path = show_path
        self._label_keys()

    @property
    def answerable(self) -> bool:
        """Yes is on offer: not a dry run, and nothing blocks the plan."""
        return not self.dry_run and not self.plan.blocked

    def _label_keys(self) -> None:
        """The footer's y and n name the plan's own buttons (n: "close" when y is off)."""
        self.label_keys(self.do, self.dont if self.answerable else "close", show_escape=False)

    def compose(self) -> ComposeResult:
        plan = self.plan
        self.question = f"Dry run — {plan.title}" if self.dry_run else f"{plan.title}?"
        yield from super().compose()

    def compose_body(self) -> ComposeResult:
        plan = self.plan
        body = Text()
        if plan.blocked:
            body.append(f"cannot run now: {plan.blocked}\n", style="bold red")
        if plan.warning:
            body.append(f"{plan.warning}\n", style="bold yellow")
        body.append("would launch:\n" if self.dry_run or plan.blocked
                    else "will launch (detached; quitting the dashboard does not stop it):\n", style="bold")
        body.append(f"  {plan.shown()}\n", style="cyan")
        for line in plan.details:
            body.append(f"• {line}\n")
        if self.extra:
            body.append(f"{self.extra}\n", style="dim")
        if self.dry_run:
            body.append("dry run is on: nothing was launched, written or uploaded (d turns it off)",
                        style="bold yellow")
        yield Static(body, id="plan-body")

    def compose_buttons(self) -> ComposeResult:
        if self.answerable:
            yield from super().compose_buttons()
        else:
            yield Button("Close (esc)", id="close")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm":
            return self.answerable
        return True

    def action_toggle_dry_run(self) -> None:
        """The app's toggle, from inside the dialog: the plan is shown again under the new setting."""
        app = cast("DashboardApp", self.app)
        app.dry_run = self.dry_run = not app.dry_run
        self._label_keys()
        self.refresh(recompose=True)
        self.refresh_bindings()


class GgufPicker(ModalScreen[Path | None]):
    """Pick a GGUF found under runs/, or type a path."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, candidates: list[Path], current: Path | None) -> None:
        super().__init__()
        self.candidates = candidates
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="gguf-dialog"):
            yield Label("Chat with which GGUF?", id="gguf-title")
            options = [Option(("● " if p == self.current else "  ") + str(p), id=str(i))
                       for i, p in enumerate(self.candidates)]
            yield OptionList(*options, id="gguf-options")
            yield Input(placeholder="or type a path to a .gguf and press enter", id="gguf-path")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if self.candidates:
            self.query_one(OptionList).focus()
        else:
            self.query_one(Input).focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.candidates[int(event.option.id or 0)])

    @on(Input.Submitted, "#gguf-path")
    def _typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            self.dismiss(path)
        else:
            self.notify(f"{path}: not a .gguf file", severity="error")

    def action_cancel(self) -> None:
        self.dismiss(None)

"""The run picker of the Training panel's overlay: which other run's loss to draw.

Dismisses with the picked run id, ``NO_OVERLAY`` for "none" (remove the overlay), or
None on Esc (nothing changes). The panel decides what a pick means: picking the run
already shown removes it.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

NO_OVERLAY = ""  # the id of the "none" option: no run overlaid


class PickRunScreen(ModalScreen[str | None]):
    """A list of run ids, the overlaid one marked; enter picks, Esc closes."""

    DEFAULT_CSS = """
    PickRunScreen {
        align: center middle;
    }
    #pick-run-dialog {
        width: 80%;
        max-width: 70;
        height: auto;
        max-height: 80%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    #pick-run-options {
        height: auto;
        max-height: 16;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "close")]

    def __init__(self, run_ids: list[str], shown: str | None) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-run-dialog"):
            yield Label("Overlay the loss of which run? (enter picks; the one shown again removes it)",
                        id="pick-run-title")
            options = [Option(("● " if self.shown is None else "  ") + "none", id="none")]
            options += [Option(("● " if run_id == self.shown else "  ") + run_id, id=f"run-{index}")
                        for index, run_id in enumerate(self.run_ids)]
            yield OptionList(*options, id="pick-run-options")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        # the run shown now, else the newest other run: enter then overlays it at once
        options.highlighted = 1 + (self.run_ids.index(self.shown) if self.shown in self.run_ids else 0)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or "none"
        self.dismiss(NO_OVERLAY if option_id == "none" else self.run_ids[int(option_id.removeprefix("run-"))])

    def action_cancel(self) -> None:
        self.dismiss(None)

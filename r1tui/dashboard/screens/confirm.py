"""The one confirmation dialog: a question, what it concerns, and two buttons that say what
they do.

``ConfirmScreen`` dismisses with True when the user says yes (``y``, or the first button)
and False when they say no (``n``, Esc, or the second button). Its buttons name what they
do ("Delete the run (y)" / "Keep it (n)", "Cancel the run (y)" / "Keep it running (n)"),
never a bare OK; the footer's y and n say it again, shorter.

Every yes/no dialog of the dashboard is one: the delete of the Runs screen
(``DeleteRunScreen``), the config editor's write (``DiffScreen``) and an action's plan
(``PlanScreen``, which adds the dry-run toggle and a close-only form). Each names its parts
with its own prefix (``#delete-dialog``, ``#delete-title``, ``#delete-body``,
``#delete-buttons``) so its stylesheet, and tests, find them; the look they share is here.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask ``question``; y or the first button answers yes, n / Esc or the second no.

    ``do`` and ``dont`` are the buttons' labels (the key is appended: "Delete the run (y)");
    ``keys`` the footer's words for y and for n / Esc (default: the labels); ``body`` what
    the question is about, scrolled when long."""

    # Every confirmation's look; a dialog changes what differs by its ids (#delete-dialog …).
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen .confirm-dialog { width: 90%; max-width: 100; height: auto; max-height: 90%;
                                    border: thick $accent; background: $surface; padding: 0 1; }
    ConfirmScreen .confirm-body { height: auto; max-height: 24; }
    ConfirmScreen .confirm-buttons { height: auto; }
    """

    BINDINGS = [Binding("y", "confirm", "yes"), Binding("escape,n", "refuse", "no")]

    PREFIX = "confirm"  # the ids of the parts: #confirm-dialog, #confirm-title, #confirm-body, #confirm-buttons
    BUTTON_IDS = ("yes", "no")

    def __init__(self, question: str | Text, do: str, dont: str, *, body: RenderableType | None = None,
                 keys: tuple[str, str] | None = None, variant: str = "warning") -> None:
        super().__init__()
        self.question = question
        self.do, self.dont = do, dont
        self.body = body
        self.variant = variant
        self.label_keys(*(keys or (do, dont)))

    def label_keys(self, yes: str, no: str, *, show_escape: bool = True) -> None:
        """The footer's words for y and for n / Esc (the footer shows the first key of each);
        no comes last, after any key a dialog adds of its own."""
        keys = self._bindings.key_to_bindings
        for key, action, description in (("y", "confirm", yes), ("escape", "refuse", no), ("n", "refuse", no)):
            if key != "y":
                keys.pop(key, None)  # to the end
            keys[key] = [Binding(key, action, description, show=key != "escape" or show_escape)]

    def compose(self) -> ComposeResult:
        with Vertical(id=f"{self.PREFIX}-dialog", classes="confirm-dialog"):
            yield Label(self.question, id=f"{self.PREFIX}-title")
            yield from self.compose_body()
            with Horizontal(id=f"{self.PREFIX}-buttons", classes="confirm-buttons"):
                yield from self.compose_buttons()
        yield Footer(compact=True, show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        if self.body is not None:
            with VerticalScroll(id=f"{self.PREFIX}-body", classes="confirm-body"):
                yield Static(self.body)

    def compose_buttons(self) -> ComposeResult:
        yes, no = self.BUTTON_IDS
        yield Button(f"{self.do} (y)", variant=self.variant, id=yes)
        yield Button(f"{self.dont} (n)", id=no)

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == self.BUTTON_IDS[0])

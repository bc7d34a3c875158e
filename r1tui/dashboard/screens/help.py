"""The key sheet (``?``): every key active now, read from the bindings, never typed in.

``key_sheet`` walks the screen's active bindings (Textual's ``Screen.active_bindings``: the
focused widget's, its parents', the screen's and the app's, each key once, as a key press
would resolve it) and sorts them into the visible panel's keys, the panel keys, the
dashboard's and the app's. A screen binding belongs to the panel when the screen would
hide it with no panel shown (its ``check_action`` gates it on the panel).

``scroll_target`` is the navigation half: the scrollable part of a panel that the arrow and
page keys move while the tabs keep the focus.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Footer, Label, Static


@dataclass(frozen=True)
class KeyLine:
    key: str
    description: str
    enabled: bool = True


@dataclass(frozen=True)
class KeySection:
    title: str
    keys: tuple[KeyLine, ...]


def _inside(node: object, ancestor: Widget | None) -> bool:
    while ancestor is not None and node is not None:
        if node is ancestor:
            return True
        node = getattr(node, "parent", None)
    return False


def _gated_on_panel(screen: Screen, binding: Binding) -> bool:
    """Would the screen hide this binding with no panel shown? Then it is a panel's key."""
    from textual.actions import parse

    try:
        _, action, parameters = parse(binding.action)
        nowhere = SimpleNamespace(is_mounted=True, active_panel_id="")
        return type(screen).check_action(nowhere, action, parameters) is False  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a check that reads more of the screen: not a panel gate
        return False


def key_sheet(screen: Screen, panel: Widget | None) -> list[KeySection]:
    """The keys active on ``screen`` now, in sections: this panel, panels, dashboard, app."""
    app = screen.app
    title = getattr(panel, "TITLE", "") or "this view"
    sections: dict[str, list[KeyLine]] = {f"{title} panel": [], "Panels": [], "Dashboard": [], "Scrolling": [],
                                          "App": []}
    scroll_keys: list[str] = []
    for active in screen.active_bindings.values():
        binding = active.binding
        line = KeyLine(app.get_key_display(binding), binding.description or binding.action, active.enabled)
        node = active.node
        if _is_scroll(binding):
            scroll_keys.append(line.key)  # the same keys on every scrollable part: one line for them all
            continue
        if node is app:
            section = "App"
        elif node is screen:
            if binding.group is not None and binding.group.description == "panel":
                section = "Panels"
            elif _gated_on_panel(screen, binding):
                section = f"{title} panel"
            else:
                section = "Dashboard"
        elif _inside(node, panel):
            section = f"{title} panel"
        else:
            section = getattr(node, "__class__", type(node)).__name__  # e.g. the tab bar's keys
        sections.setdefault(section, []).append(line)
    if scroll_keys:
        sections["Scrolling"].append(KeyLine(" ".join(scroll_keys), "scroll the panel (the mouse wheel too)"))
    return [KeySection(name, tuple(lines)) for name, lines in sections.items() if lines]


def _is_scroll(binding: Binding) -> bool:
    action = binding.action.rsplit(".", 1)[-1]
    return action.startswith(("scroll_", "page_")) and not binding.show


KEY_WIDTH = 10  # the widest single key shown in the key column ("shift+tab")


def sheet_table(sections: list[KeySection]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, justify="right", style="bold", min_width=KEY_WIDTH)
    table.add_column()
    for number, section in enumerate(sections):
        if number:
            table.add_row("", "")
        table.add_row("", Text(section.title, style="bold underline"))
        for line in section.keys:
            style = "" if line.enabled else "dim"
            if len(line.key) > KEY_WIDTH:  # a list of keys (the scroll keys): under the descriptions
                table.add_row("", Text.assemble((line.key, style or "bold cyan"), (f"  {line.description}", style)))
                continue
            table.add_row(Text(line.key, style=style or "bold cyan"), Text(line.description, style=style))
    return table


class HelpScreen(ModalScreen[None]):
    """The key sheet; Esc, ? or q closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "close")]

    def __init__(self, sections: list[KeySection], panel_title: str = "") -> None:
        super().__init__()
        self.sections = sections
        self.panel_title = panel_title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Label(f"Keys{' — ' + self.panel_title if self.panel_title else ''}", id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(sheet_table(self.sections), id="help-keys")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)


def scroll_target(panel: Widget | None) -> Widget | None:
    """The first part of ``panel`` that can scroll vertically now (None: nothing overflows)."""
    if panel is None:
        return None
    for widget in panel.query("*"):
        if isinstance(widget, ScrollableContainer) and widget.display and widget.max_scroll_y > 0:
            return widget
    return None

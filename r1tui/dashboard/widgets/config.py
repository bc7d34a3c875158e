"""Config & estimates: a form over the config `start` launches, with the dry run's estimates
recomputed as values change.

The form's plain half is ``r1tui.dashboard.config_form`` (fields, validation through the
config loader, the TOML round trip). Here: one row per field (an Input, a Switch or a
Select), the error under the field it names, a two-line summary of the estimates above the
form and the calculator's tables below it. A change waits ``DEBOUNCE_S`` for more typing,
then a thread worker validates and rebuilds the report (milliseconds) and, when the data
side changed, the masking statistics (a tokenizer pass over up to 256 rows).

What the form edits: ``--config`` (or ./config.toml, or the built-in defaults) — the file
`start` launches. A run's own config is a record of what it ran with: the form shows it, and
saves edits to it only as a new file (ctrl+n, "Save as" under configs/).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Select, Static, Switch

from r1tui.dashboard.config_form import (
    FIELDS,
    ConfigForm,
    FieldSpec,
    Validation,
    diff,
    field_of,
    save_as_path,
)
from r1tui.dashboard.format import display_path
from r1tui.dashboard.screens.confirm import ConfirmScreen
from r1tui.dashboard.widgets.base import Panel
from r1tui.errors import ConfigError
from r1tui.present import format_bytes, format_duration
from r1tui.runs.files import write_text_atomic

DEBOUNCE_S = 0.25  # recompute once typing pauses this long
CONFIGS_DIR = Path("configs")  # "Save as" writes configs/<name>.toml (relative to the working directory)
# Keys whose change alters the masking statistics (a tokenizer pass over rows): other edits
# recompute the calculator's figures only.
MASKING_KEYS = ("model.", "data.")


class ConfigPanel(Panel):
    PANEL_ID = "config"
    TITLE = "Config"

    # ctrl+s (save) and ctrl+n (save as) are the main screen's: they work from the tabs too
    BINDINGS = [Binding("escape", "leave_form", "leave form")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.form: ConfigForm | None = None
        self.load_error: str | None = None
        self.frozen_run: str | None = None  # the run whose frozen config is shown (save as only)
        self.validation: Validation | None = None
        self.report: Any = None
        self.masking: dict[str, Any] | None = None
        self.masking_for: tuple[Any, ...] | None = None
        self.computed_at: float | None = None  # when the shown estimates were computed (monotonic)
        self.compute_s: float | None = None  # how long the last recomputation took (change to figures)
        self.masking_pending = False
        self._generation = 0
        self._timer: Any = None
        self._changed_at = 0.0
        self._loaded_for: object = None
        self._filling = False

    def compose(self) -> ComposeResult:
        yield Static(id="config-origin")
        yield Static(id="config-summary")
        with VerticalScroll(id="config-body"):
            with Vertical(id="config-form"):
                section = ""
                for spec in FIELDS:
                    if spec.section != section:
                        section = spec.section
                        yield Label(Text(f"[{section}]"), classes="config-section")
                    with Horizontal(classes="config-row"):
                        yield Label(spec.name, classes="config-key")
                        yield _widget_for(spec)
                        yield Label(spec.hint, classes="config-hint")
                    yield Static(id=f"{spec.widget_id}-error", classes="config-error")
            yield Static(id="config-tables")

    # -- loading ---------------------------------------------------------------
    def target(self) -> tuple[Path | None, str | None]:
        """(the file the form edits, the run id when it is a run's frozen config)."""
        app = self.dashboard
        if app.config_path is not None:
            return app.config_path, None
        if app.run_ref is not None and app.run_ref.layout.config.is_file():
            return app.run_ref.layout.config, app.run_ref.run_id
        from r1tui.config import default_config_path

        path = default_config_path()
        return (path if path.is_file() else None), None

    def reset_for_run(self) -> None:
        self._loaded_for = None

    def refresh_view(self) -> None:
        path, run_id = self.target()
        key = (path, run_id)
        if key != self._loaded_for:
            self._loaded_for = key
            self.load(path, run_id)

    def load(self, path: Path | None, run_id: str | None = None) -> None:
        self.frozen_run = run_id
        self._changed_at = 0.0  # a load is no edit: compute_s times edits only
        try:
            self.form = ConfigForm.load(path)
            self.load_error = None
        except Exception as exc:  # noqa: BLE001 - tomlkit's parse errors: one line, no form
            self.form = None
            self.load_error = f"{path}: not valid TOML ({str(exc).splitlines()[0]}); fix the syntax at the position shown"
        self._fill()
        # a run's own config is a record: its estimates first, the form (save as) below them
        body, tables = self.query_one("#config-body"), self.query_one("#config-tables")
        if run_id:
            body.move_child(tables, before=self.query_one("#config-form"))
        else:
            body.move_child(tables, after=self.query_one("#config-form"))
        self.recompute(now=True)

    def _fill(self) -> None:
        """Put the form's texts into the widgets (without treating that as an edit)."""
        self._filling = True
        try:
            for spec in FIELDS:
                widget = self.query_one(f"#{spec.widget_id}")
                widget.disabled = self.form is None
                if self.form is None:
                    continue
                text = self.form.texts[spec.key]
                if isinstance(widget, Switch):
                    widget.value = text == "true"
                elif isinstance(widget, Select):
                    options = list(spec.choices) + ([text] if text not in spec.choices else [])
                    widget.set_options((option, option) for option in options)
                    widget.value = text
                else:
                    widget.value = text
        finally:
            self.call_after_refresh(self._done_filling)

    def _done_filling(self) -> None:
        self._filling = False

    # -- edits -----------------------------------------------------------------
    @on(Input.Changed)
    @on(Switch.Changed)
    @on(Select.Changed)
    def _edited(self, event: Input.Changed | Switch.Changed | Select.Changed) -> None:
        widget = event.control
        spec = getattr(widget, "spec", None)
        if spec is None or self.form is None or self._filling:
            return
        event.stop()
        if isinstance(widget, Switch):
            text = "true" if widget.value else "false"
        elif isinstance(widget, Select):
            if widget.value is Select.NULL:
                return
            text = str(widget.value)
        else:
            text = widget.value
        if self.form.texts[spec.key] == text:
            return
        self.form.set(spec.key, text)
        self._changed_at = time.monotonic()
        self.recompute()

    def recompute(self, now: bool = False) -> None:
        """Validate and re-estimate once typing pauses (DEBOUNCE_S), off the UI thread."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if now:
            self._start_compute()
        else:
            self._timer = self.set_timer(DEBOUNCE_S, self._start_compute)

    def _start_compute(self) -> None:
        self._timer = None
        self._generation += 1
        if self.form is None:
            self._show(None, None, self._generation, 0.0)
            return
        self._compute(self.form, dict(self.form.texts), self._generation, self._changed_at)

    @work(thread=True, exclusive=True, group="config-estimates", exit_on_error=False)
    def _compute(self, form: ConfigForm, texts: dict[str, str], generation: int, changed_at: float) -> None:
        from r1tui.dryrun import build_report

        validation = form.validate()
        report = None
        if validation.config is not None:
            try:
                report = build_report(validation.config, with_masking=False)
            except ConfigError as exc:  # the backend's settings, checked by the dry run itself
                validation = Validation(None, str(exc), field_of(str(exc)), validation.data)
        self.app.call_from_thread(self._show, validation, report, generation, changed_at)
        if validation.config is None:
            return
        masking_key = _masking_key(texts)
        if masking_key == self.masking_for and self.masking is not None:
            return
        from r1tui.data.prepare import dry_run_masking_stats

        try:
            stats = dry_run_masking_stats(validation.config)
        except Exception as exc:  # noqa: BLE001 - a data problem is shown, not raised
            stats = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        self.app.call_from_thread(self._masking_done, stats, masking_key, generation)

    def _show(self, validation: Validation | None, report: Any, generation: int, changed_at: float) -> None:
        if generation != self._generation:
            return  # an older computation: a newer one is on its way
        self.validation = validation
        self.report = report
        self.computed_at = time.monotonic()
        self.compute_s = self.computed_at - changed_at if changed_at else None
        self.masking_pending = validation is not None and validation.config is not None and \
            _masking_key(self.form.texts) != self.masking_for
        self._draw()

    def _masking_done(self, stats: dict[str, Any], key: tuple[Any, ...], generation: int) -> None:
        self.masking, self.masking_for = stats, key
        if generation == self._generation:
            self.masking_pending = False
        self._draw()

    # -- drawing ---------------------------------------------------------------
    def _draw(self) -> None:
        app = self.dashboard
        form, validation = self.form, self.validation
        origin = Text(no_wrap=True, overflow="ellipsis")
        if form is None:
            origin.append(f"config error: {self.load_error or app.config_error}", style="bold red")
        else:
            origin.append("config ", style="bold")
            origin.append(display_path(str(form.path), app.runs_dir) if form.path else "built-in defaults")
            if self.frozen_run:
                origin.append(f" (run {self.frozen_run}'s own, frozen: ctrl+n saves as a new config)", style="yellow")
            changed = form.changed
            origin.append(f" · {len(changed)} changed" if changed else " · unchanged",
                          style="bold yellow" if changed else "dim")
            if validation is not None and validation.error:
                origin.append(" · invalid: not saved", style="bold red")
        self.query_one("#config-origin", Static).update(origin)
        for spec in FIELDS:
            error = self.query_one(f"#{spec.widget_id}-error", Static)
            widget = self.query_one(f"#{spec.widget_id}")
            at_field = validation is not None and validation.key == spec.key
            error.update(Text(validation.error, style="bold red") if at_field else "")
            error.display = at_field
            widget.set_class(at_field, "-invalid-field")
        summary = self.query_one("#config-summary", Static)
        summary.update(self._summary())
        # a run's untouched record: its tables come first and say it all; once edited, the
        # summary keeps the figures in sight while the form is scrolled
        summary.display = not self.frozen_run or form is None or bool(form.changed) or \
            bool(validation is not None and validation.error)
        tables = self.query_one("#config-tables", Static)
        if self.report is None or validation is None or validation.config is None:
            tables.update(Text(""))
            return
        from r1tui.dryrun import report_renderables, with_masking

        masking = self.masking if self.masking and "error" not in self.masking and not self.masking_pending else None
        parts = list(report_renderables(with_masking(self.report, validation.config, masking)))
        if self.masking is not None and "error" in self.masking:
            parts.append(Text(f"masking statistics: {self.masking['error']}", style="red"))
        tables.update(Group(*parts))

    def _summary(self) -> Text:
        """The estimates in two lines, above the form (the tables below it say more)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        validation, report = self.validation, self.report
        if validation is None:
            return Text("estimating…", style="dim")
        if validation.error:
            if validation.key is None:  # a key the form does not edit: the whole line here
                return Text(validation.error, style="bold red")
            return Text.assemble(("estimates wait for a valid form: ", "dim"), (validation.key, "bold red"),
                                 (" (the error is under it)", "dim"))
        if report is None:
            return Text("estimating…", style="dim")
        params, vram = report.parameters, report.vram
        text.append(f"{params.total:,} params")
        text.append(f" · LoRA {params.lora_trainable:,} ({params.lora_share_of_base:.2%})")
        text.append(f" · VRAM {format_bytes(vram.total)} of {format_bytes(vram.gpu_bytes)} ")
        text.append("fits" if vram.fits else "does not fit", style="bold green" if vram.fits else "bold red")
        text.append(f" · largest seq {vram.max_seq_len_that_fits:,}")
        text.append("\n")
        configured = [row for row in report.gguf if row.configured]
        text.append("GGUF " + ", ".join(f"{row.quant} {format_bytes(row.bytes)}" for row in configured))
        masking = self.masking
        if self.masking_pending or masking is None:
            text.append(" · masking: computing…", style="dim")
        elif "error" in masking:
            text.append(" · masking: " + masking["error"], style="red")
        else:
            masked = masking.get("masked_fraction")
            if isinstance(masked, (int, float)):
                text.append(f" · masked {masked:.1%} of {masking.get('tokens', 0):,} tokens")
            from r1tui.dryrun import with_masking

            epoch = with_masking(report, validation.config, masking).epoch
            if epoch is not None and epoch.hours is not None:
                text.append(f" · epoch ≈ {format_duration(epoch.hours * 3600)}")
            elif epoch is not None:
                text.append(" · epoch time: no figure for this GPU", style="dim")
        return text

    # -- saving ----------------------------------------------------------------
    def action_leave_form(self) -> None:
        self.screen.query_one("Tabs").focus()

    def action_save(self) -> None:
        form = self.form
        if form is None:
            self.notify(self.load_error or "no config to save", severity="error")
            return
        if self.frozen_run or form.path is None:
            why = f"run {self.frozen_run}'s config is a record of what it ran with" if self.frozen_run \
                else "these are the built-in defaults, not a file"
            self.notify(f"{why}; ctrl+n saves your edits as a new config under configs/", severity="warning")
            return
        if not form.changed:
            self.notify("nothing changed: the file is as it was", timeout=4)
            return
        self._save_to(form.path, form.path.parent)

    def action_save_as(self) -> None:
        if self.form is None:
            self.notify(self.load_error or "no config to save", severity="error")
            return

        def named(name: str | None) -> None:
            if not name:
                return
            try:
                path = save_as_path(name, CONFIGS_DIR.resolve())
            except ConfigError as exc:
                self.notify(str(exc), severity="error", timeout=10)
                return
            self._save_to(path, path.parent)

        self.app.push_screen(SaveAsScreen(), named)

    def _save_to(self, path: Path, folder: Path) -> None:
        """Validate, show the diff, and on yes write through a temp file and a rename."""
        form = self.form
        validation = form.validate(folder)
        if validation.error:
            self.validation = validation
            self._draw()
            self.notify(f"not saved: {validation.error}", severity="error", timeout=10)
            return
        new_text = form.render(folder)
        same_file = form.path is not None and path.resolve() == form.path.resolve()
        before = form.original
        if same_file and path.is_file() and path.read_text(encoding="utf-8") != before:
            self.notify(f"{path} changed on disk since the form read it; not saved (reopen the panel to reload it)",
                        severity="error", timeout=10)
            return
        shown = display_path(str(path), self.dashboard.runs_dir)

        def answered(write: bool | None) -> None:
            if not write:
                return
            try:
                write_text_atomic(path, new_text)
            except OSError as exc:
                self.notify(f"{shown} not written: {exc.strerror or exc}", severity="error", timeout=10)
                return
            count = len(form.changed)
            form.saved(path, new_text)
            self.frozen_run = None
            self.dashboard.use_config(path)
            self._loaded_for = (path, None)
            self._draw()
            self.notify(f"saved {shown} ({count} value{'s' if count != 1 else ''} changed)", timeout=6)

        self.app.push_screen(DiffScreen(diff(before, new_text, shown if same_file else
                                             display_path(str(form.path), self.dashboard.runs_dir)
                                             if form.path else "defaults"), shown, new=not same_file), answered)


def _masking_key(texts: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The fields the masking statistics depend on, as they stand."""
    return tuple(sorted((key, text) for key, text in texts.items() if key.startswith(MASKING_KEYS)))


def _widget_for(spec: FieldSpec) -> Any:
    if spec.kind == "bool":
        widget: Any = Switch(id=spec.widget_id, animate=False)
    elif spec.kind == "choice":
        widget = Select([(c, c) for c in spec.choices], allow_blank=False, id=spec.widget_id, compact=True)
    else:
        widget = Input(id=spec.widget_id, compact=True, select_on_focus=False)
    widget.spec = spec
    widget.add_class("config-field")
    return widget


class DiffScreen(ConfirmScreen):
    """What saving would change, as a unified diff; y writes it, n / Esc does not."""

    DEFAULT_CSS = """
    #diff-dialog { max-width: 110; }
    #diff-body { max-height: 30; }
    """
    PREFIX = "diff"
    BUTTON_IDS = ("write", "close")

    def __init__(self, text: str, name: str, new: bool) -> None:
        super().__init__(f"Write {name}?" + (" (a new file; the diff is against the config it came from)"
                                             if new else ""),
                         f"Write {Path(name).name}", "Don't write",
                         body=Syntax(text or "(no difference)", "diff", theme="ansi_dark", word_wrap=True),
                         keys=("write", "don't write"))
        self.text, self.file_name, self.new = text, name, new


class SaveAsScreen(ModalScreen[str | None]):
    """The name of a new config, saved as configs/<name>.toml."""

    DEFAULT_CSS = """
    SaveAsScreen { align: center middle; }
    #save-as-dialog { width: 80%; max-width: 70; height: auto; border: thick $accent;
                      background: $surface; padding: 0 1; }
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="save-as-dialog"):
            yield Label("Save the edited config as configs/<name>.toml — name:")
            yield Input(placeholder="e.g. my-run (enter saves, esc cancels)", id="save-as-name")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#save-as-name")
    def _named(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)

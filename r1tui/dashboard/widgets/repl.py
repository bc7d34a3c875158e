"""REPL: chat with a GGUF through r1tui.infer.llama.LlamaChat, prompted with the
training template. Tokens stream in from a thread worker; the think block is shown
apart (dim, foldable) from the answer; tokens/s; stop, clear, switch GGUF.

Sampling (temperature, top_p, max new tokens, seed, system prompt) is a setting of the
panel, kept per GGUF path: a model's first settings come from the config (eval.* as
`r1tui eval` samples, data.system_prompt as training rendered), ctrl+r edits them in a small
form, ctrl+up / ctrl+down step the temperature. The second status line shows them; each
reply is sampled with them, its seed included (the same seed gives the same reply).

Thinking (r1tui.infer.thinking, issue 21) is a setting of the panel too, kept per GGUF: the
first comes from [infer] (``thinking_from_config``), ctrl+g toggles the think prefill, ctrl+b edits the budget (cap and minimum) in a
small form. The third status line shows them; each reply goes through the chat's
``thinking`` settings, and its folded think block says how many tokens were thought and
whether the cap cut it (the chat's ``last`` GenerationStats)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Collapsible, Footer, Input, Label, Static

from r1tui.config import Config, Seed, Temperature, Tokens, TopP
from r1tui.dashboard.screens.modals import GgufPicker
from r1tui.dashboard.widgets.base import Panel
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.infer.thinking import ThinkSettings
from r1tui.response_format import THINK_END, THINK_START

FLUSH_SECONDS = 1 / 30  # stream to the screen at most this often
TEMPERATURE_STEP = 0.1  # ctrl+up / ctrl+down


@dataclass(frozen=True)
class Sampling:
    """How the REPL samples a reply (one set per GGUF)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    system_prompt: str = ""

    @classmethod
    def from_config(cls, config: Config | None) -> Sampling:
        """What `r1tui eval` samples with (eval.sampling, eval.max_new_tokens, eval.seed) and the
        system prompt training rendered (data.system_prompt)."""
        if config is None:
            return cls()
        temperature, top_p = config.eval.sampling
        return cls(temperature, top_p, config.eval.max_new_tokens, config.eval.seed, config.data.system_prompt)

    def describe(self) -> str:
        text = (f"T {self.temperature:g} · top-p {self.top_p:g} · max {self.max_new_tokens:,} tokens · "
                f"seed {self.seed}")
        return text + (f" · system: {self.system_prompt}" if self.system_prompt else " · no system prompt")


# Each setting's text field: (name, the config's own type for it, the config key it mirrors)
SAMPLING_FIELDS = (("temperature", Temperature, "eval.temperature"), ("top_p", TopP, "eval.top_p"),
                   ("max_new_tokens", Tokens, "eval.max_new_tokens"), ("seed", Seed, "eval.seed"),
                   ("system_prompt", str, "data.system_prompt"))


def parse_sampling(texts: dict[str, str]) -> tuple[Sampling | None, dict[str, str]]:
    """The form's texts as settings, checked against the config's own ranges (a temperature
    of 0 to 10, top_p above 0 up to 1, …); else one line per field that is wrong."""
    from pydantic import TypeAdapter, ValidationError

    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind, key in SAMPLING_FIELDS:
        text = texts.get(name, "")
        if kind is str:
            values[name] = text
            continue
        try:
            values[name] = TypeAdapter(kind).validate_python(text.strip())
        except ValidationError as exc:
            errors[name] = f"{name} = {text.strip()!r}: {exc.errors()[0]['msg']} (as {key} in the config)"
    return (Sampling(**values) if not errors else None), errors


class Turn(Vertical):
    """One exchange: the question, the think block (foldable) and the answer."""

    def __init__(self, question: str, folded: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.question = question
        self.folded = folded  # the panel's fold state when the question was sent
        self.think = ""
        self.answer = ""
        self.raw = ""

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("you ", "bold cyan"), self.question), classes="question")
        with Collapsible(title="thinking…", collapsed=self.folded, classes="think"):
            yield Static(classes="think-text")
        yield Static(Text("…", style="dim"), classes="answer")

    def on_mount(self) -> None:
        self.query_one(Collapsible).display = False

    def add(self, parts: list[tuple[str, str]]) -> None:
        for kind, text in parts:
            self.raw += text
            if kind == "think":
                self.think += text
            else:
                self.answer += text
        if self.think:
            block = self.query_one(Collapsible)
            block.display = True
            shown = self.think.replace(THINK_START, "").replace(THINK_END, "").strip()
            self.query_one(".think-text", Static).update(Text(shown, style="dim italic"))
        if self.answer:
            self.query_one(".answer", Static).update(Text(self.answer.strip()))

    def finish(self, note: str, error: str = "", stats: Any = None) -> None:
        block = self.query_one(Collapsible)
        block.title = think_title(self.think, stats)
        if error:  # the model did not load, or generation failed: that is the answer
            self.query_one(".answer", Static).update(Text(error, style="bold red"))
        elif not self.answer.strip():
            self.query_one(".answer", Static).update(Text("(no answer after the think block)", style="dim"))
        if note:
            self.mount(Static(Text(note, style="dim"), classes="turn-note"))


def think_title(think: str, stats: Any = None) -> str:
    """The fold's label: the think tokens generated (the chat's stats), whether the cap closed
    the block, continuations added; without stats (a failed reply), the words seen."""
    if not think:
        return "no think block"
    if stats is None or not (stats.think_tokens or stats.think_prefilled or stats.think_capped):
        return f"thought for {len(think.split())} words"
    title = f"thought for {stats.think_tokens} tokens"
    if stats.think_capped:
        title += " · cut by the budget"
    if stats.think_continuations:
        title += f" · {stats.think_continuations}× continued"
    return title


def thinking_line(thinking: ThinkSettings) -> str:
    """The REPL's third status line: prefill, cap, minimum."""
    parts = ["prefill <think>" if thinking.prefill else "no prefill"]
    parts.append(f"think ≤ {thinking.max_think_tokens} tokens, answer ≤ {thinking.answer_tokens}"
                 if thinking.max_think_tokens else "no think cap")
    if thinking.min_think_tokens:
        parts.append(f"think ≥ {thinking.min_think_tokens} ({thinking.continuation!r} on an early close)")
    return " · ".join(parts)


def parse_budget(cap_text: str, minimum_text: str) -> tuple[tuple[int, int] | None, str]:
    """(cap, minimum) from the budget form's texts (whole numbers, 0: none; the minimum at most
    the cap), else one line saying what is wrong and how to fix it."""
    values = []
    for name, text in (("cap", cap_text), ("minimum", minimum_text)):
        text = text.strip() or "0"
        if not text.isdigit():
            return None, f"think {name} = {text!r}: give a whole number of tokens (0: none)"
        values.append(int(text))
    cap, minimum = values
    if cap and minimum > cap:
        return None, f"think minimum {minimum} is above the cap of {cap}; lower it or raise the cap"
    return (cap, minimum), ""


class ReplPanel(Panel):
    PANEL_ID = "repl"
    TITLE = "REPL"

    BINDINGS = [
        Binding("escape", "stop", "stop"),
        Binding("ctrl+l", "clear", "clear"),
        Binding("ctrl+o", "switch_gguf", "GGUF"),
        Binding("ctrl+t", "fold_think", "fold think"),
        Binding("ctrl+r", "sampling", "sampling"),
        Binding("ctrl+g", "toggle_prefill", "prefill <think>"),
        Binding("ctrl+b", "think_budget", "think budget"),
        Binding("ctrl+up", "temperature(1)", "T+", show=False),
        Binding("ctrl+down", "temperature(-1)", "T-", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[dict[str, str]] = []
        self.gguf: Path | None = None
        self._chat: Any = None
        self._chat_for: Path | None = None
        self._stop = threading.Event()
        self.generating = False
        self.tokens_per_s: float | None = None
        self.error = ""  # the last turn's failure, shown in the status line
        self._folded = False
        # bumped whenever the transcript is dropped: a late reply for a cleared turn is ignored
        self._conversation = 0
        self.sampling_by_gguf: dict[Path, Sampling] = {}  # kept per model for this session
        self.last_sampling: Sampling | None = None  # what the last reply was sampled with
        self.thinking_by_gguf: dict[Path, ThinkSettings] = {}  # likewise, the think prefill and budget
        self.last_thinking: ThinkSettings | None = None  # what the last reply thought with

    def reset_for_run(self) -> None:
        self.gguf = None  # the new run's own GGUF (or the one given with --gguf)
        self._forget()

    def compose(self) -> ComposeResult:
        yield Static(id="repl-status")
        yield Static(id="repl-sampling")
        yield Static(id="repl-thinking")
        yield VerticalScroll(id="transcript")
        yield Input(placeholder="ask the model… (enter sends)", id="prompt")

    def on_show(self) -> None:
        super().on_show()
        self.focus_prompt()

    def focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def refresh_view(self) -> None:
        if self.gguf is None:
            self.gguf = self.dashboard.default_gguf()
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append("model ", style="bold")
        if self.gguf is None:
            status.append("no GGUF yet: export the run, or ctrl+o to pick one", style="yellow")
        else:
            status.append(self.gguf.name)
        status.append(" · ")
        if self.generating:
            status.append("generating", style="bold yellow")
        elif self.error:
            status.append(self.error, style="bold red")
        else:
            status.append("idle", style="dim")
        if self.tokens_per_s is not None:
            status.append(f" · {self.tokens_per_s:.1f} tok/s")
        status.append(f" · {len(self.messages) // 2} turns", style="dim")
        self.query_one("#repl-status", Static).update(status)
        sampling = Text(no_wrap=True, overflow="ellipsis")
        sampling.append("sampling ", style="bold")
        sampling.append(self.sampling.describe())
        sampling.append(" (ctrl+r)", style="dim")
        self.query_one("#repl-sampling", Static).update(sampling)
        thinking = Text(no_wrap=True, overflow="ellipsis")
        thinking.append("thinking ", style="bold")
        thinking.append(thinking_line(self.thinking))
        thinking.append(" (ctrl+g prefill, ctrl+b budget)", style="dim")
        self.query_one("#repl-thinking", Static).update(thinking)

    # -- sampling ------------------------------------------------------------
    @property
    def sampling(self) -> Sampling:
        """The settings of the GGUF chatted with (the config's until changed)."""
        key = self.gguf.resolve() if self.gguf is not None else Path()
        if key not in self.sampling_by_gguf:
            self.sampling_by_gguf[key] = Sampling.from_config(self.dashboard.config)
        return self.sampling_by_gguf[key]

    def set_sampling(self, sampling: Sampling) -> None:
        key = self.gguf.resolve() if self.gguf is not None else Path()
        self.sampling_by_gguf[key] = sampling
        self.refresh_view()

    def action_sampling(self) -> None:
        def chosen(sampling: Sampling | None) -> None:
            if sampling is not None:
                self.set_sampling(sampling)
                self.notify(f"sampling: {sampling.describe()}", timeout=4)
            self.focus_prompt()

        self.app.push_screen(SamplingScreen(self.sampling, self.gguf.name if self.gguf else "no GGUF"), chosen)

    def action_temperature(self, steps: int) -> None:
        sampling = self.sampling
        temperature = round(min(10.0, max(0.0, sampling.temperature + steps * TEMPERATURE_STEP)), 2)
        self.set_sampling(replace(sampling, temperature=temperature))

    # -- thinking (prefill and budget) ---------------------------------------
    @property
    def thinking(self) -> ThinkSettings:
        """The think settings of the GGUF chatted with: [infer]'s (``thinking_from_config``) until changed."""
        key = self.gguf.resolve() if self.gguf is not None else Path()
        if key not in self.thinking_by_gguf:
            self.thinking_by_gguf[key] = thinking_from_config(self.dashboard.config, self.gguf)
        return self.thinking_by_gguf[key]

    def set_thinking(self, thinking: ThinkSettings) -> None:
        key = self.gguf.resolve() if self.gguf is not None else Path()
        self.thinking_by_gguf[key] = thinking
        self.refresh_view()

    def action_toggle_prefill(self) -> None:
        thinking = self.thinking.replace(prefill=not self.thinking.prefill)
        self.set_thinking(thinking)
        self.notify(f"prefill <think>: {'on' if thinking.prefill else 'off'}", timeout=3)

    def action_think_budget(self) -> None:
        def chosen(thinking: ThinkSettings | None) -> None:
            if thinking is not None:
                self.set_thinking(thinking)
                self.notify(f"thinking: {thinking_line(thinking)}", timeout=4)
            self.focus_prompt()

        self.app.push_screen(ThinkBudgetScreen(self.thinking, self.gguf.name if self.gguf else "no GGUF"), chosen)

    # -- actions -------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def send(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question or self.generating:
            return
        event.input.value = ""
        if self.gguf is None:
            self.notify("no GGUF to chat with: export the run first, or ctrl+o to pick one", severity="warning")
            return
        turn = Turn(question, folded=self._folded)  # ctrl+t's state holds for replies still to come
        self.query_one("#transcript", VerticalScroll).mount(turn)
        self.messages.append({"role": "user", "content": question})
        self.generating = True
        self.tokens_per_s = None
        self.error = ""
        self._stop.clear()
        self.refresh_view()
        sampling = self.sampling
        system = [{"role": "system", "content": sampling.system_prompt}] if sampling.system_prompt else []
        self.generate(turn, system + list(self.messages), self.gguf, self._conversation, sampling, self.thinking)

    def action_stop(self) -> None:
        if self.screen.query("HelpPanel"):
            self.app.action_hide_help_panel()  # esc closes the Keys panel first, as everywhere
        elif self.generating:
            self._stop.set()
        else:
            self.app.action_focus_next()

    def action_clear(self) -> None:
        self._forget()
        self.refresh_view()

    def _forget(self) -> None:
        """Stop any reply and drop the transcript: the next question starts a new chat."""
        self._stop.set()
        self._conversation += 1
        self.messages.clear()
        self.tokens_per_s = None
        self.error = ""
        for transcript in self.query("#transcript"):
            transcript.remove_children()

    def action_fold_think(self) -> None:
        self._folded = not self._folded
        for block in self.query(Collapsible):
            block.collapsed = self._folded

    def action_switch_gguf(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.use_gguf(path)

        self.app.push_screen(TypingGgufPicker(self.dashboard.gguf_candidates(), self.gguf), chosen)

    def use_gguf(self, path: Path) -> None:
        if path != self.gguf:
            self._forget()  # another model: the old transcript is not its conversation
        self.gguf = path
        self.refresh_view()
        self.notify(f"chatting with {path.name}")

    # -- generation (thread worker) -----------------------------------------
    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def generate(self, turn: Turn, messages: list[dict[str, str]], gguf: Path, conversation: int,
                 sampling: Sampling | None = None, thinking: ThinkSettings | None = None) -> None:
        from r1tui.infer.stream import ThinkSplitter

        config = self.dashboard.config
        splitter = ThinkSplitter()
        pending: list[tuple[str, str]] = []
        note = error = ""
        stats = None
        try:
            chat = self._load(gguf, config)
            chat.thinking = thinking or ThinkSettings()  # the same settings `r1tui chat` gives its chat
            self.last_thinking = chat.thinking
            sampling = sampling or Sampling.from_config(config)
            self.last_sampling = sampling  # what the reply was sampled with (the tests read it)
            flushed = time.perf_counter()
            for chunk in chat.stream(messages, max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                     stop_event=self._stop, top_p=sampling.top_p, seed=sampling.seed):
                pending += splitter.feed(chunk)
                if time.perf_counter() - flushed >= FLUSH_SECONDS:
                    self.app.call_from_thread(self._stream, turn, pending, chat.last, conversation)
                    pending, flushed = [], time.perf_counter()
            pending += splitter.flush()
            stats = chat.last
            if stats is not None:
                note = (f"{stats.completion_tokens} tokens · {stats.tokens_per_s:.1f} tok/s · "
                        f"{stats.finish_reason}")
        except Exception as exc:  # noqa: BLE001 - shown as the answer and in the status line, never a crash
            error = f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        self.app.call_from_thread(self._finished, turn, pending, note, error, chat_stats(self._chat), conversation,
                                  stats)

    def _load(self, gguf: Path, config: Config | None) -> Any:
        if self._chat is None or self._chat_for != gguf:
            from r1tui.infer.llama import LlamaChat

            if self._chat is not None:
                self._chat.close()
                self._chat = None
            spec = tokenizer_spec(config) if config is not None else "v3"
            n_ctx = config.eval.n_ctx if config is not None else 4096
            self._chat = LlamaChat(gguf, tokenizer_spec=spec, n_ctx=n_ctx)
            self._chat_for = gguf
        return self._chat

    def _stream(self, turn: Turn, parts: list[tuple[str, str]], stats: Any, conversation: int) -> None:
        if conversation != self._conversation:
            return  # cleared meanwhile: the turn is gone
        turn.add(parts)
        speed = getattr(stats, "tokens_per_s", None)
        if speed:
            self.tokens_per_s = speed
        self.refresh_view()
        self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)

    def _finished(self, turn: Turn, parts: list[tuple[str, str]], note: str, error: str, speed: float | None,
                  conversation: int, stats: Any = None) -> None:
        try:
            if conversation != self._conversation:
                return  # cleared meanwhile (ctrl+l, another run or GGUF): nothing to record
            turn.add(parts)
            turn.finish(note, error, None if error else stats)
            if turn.raw and not error:
                self.messages.append({"role": "assistant", "content": turn.raw})
            elif self.messages and self.messages[-1]["role"] == "user":
                self.messages.pop()  # nothing came back: do not leave a dangling user turn
            self.error = error
            if speed:
                self.tokens_per_s = speed
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)
        finally:
            self.generating = False  # whatever happened above, enter sends again
            self.refresh_view()

    def on_unmount(self) -> None:
        self._stop.set()


class TypingGgufPicker(GgufPicker):
    """The GGUF picker, where typing goes to the path field even while the list has the focus
    (no Tab first): a printable key moves the focus there and types itself."""

    def on_key(self, event: events.Key) -> None:
        path = self.query_one("#gguf-path", Input)
        if event.is_printable and event.character and self.focused is not path:
            event.stop()
            event.prevent_default()
            path.select_on_focus = False  # else the focus selects the first key, and the second replaces it
            path.focus()
            path.insert_text_at_cursor(event.character)


def chat_stats(chat: Any) -> float | None:
    stats = getattr(chat, "last", None)
    speed = getattr(stats, "tokens_per_s", None)
    return speed or None


def thinking_from_config(config: Config | None, gguf: Path | None = None) -> ThinkSettings:
    """[infer]'s think settings for ``gguf``, resolved as `r1tui chat` resolves them: "auto"
    prefills when the run the GGUF was exported from trained on replies that open with the
    think block (a GGUF outside a run: no prefill); ctrl+g toggles it."""
    from r1tui.data.tokenizer import tokenizer_spec
    from r1tui.eval.run import trained_in
    from r1tui.infer.thinking import resolve_prefill, settings_from_config

    if config is None:
        return ThinkSettings()
    prefill, _ = resolve_prefill(config, trained_in(gguf), tokenizer_spec(config))
    return settings_from_config(config, prefill)


class ThinkBudgetScreen(ModalScreen[ThinkSettings | None]):
    """The REPL's thinking budget for one GGUF: the cap and the minimum in think tokens (0:
    none); enter in either field saves, esc cancels."""

    DEFAULT_CSS = """
    ThinkBudgetScreen { align: center middle; }
    #think-dialog { width: 90%; max-width: 90; height: auto; border: thick $accent;
                    background: $surface; padding: 0 1; }
    .think-row { height: 1; }
    .think-row Label { width: 24; }
    .think-row Input { width: 1fr; }
    #think-error { color: $error; height: auto; display: none; }
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, thinking: ThinkSettings, model: str) -> None:
        super().__init__()
        self.thinking = thinking
        self.model = model

    def compose(self) -> ComposeResult:
        with Vertical(id="think-dialog"):
            yield Label(f"Thinking budget for {self.model}: think tokens, 0 for none (enter saves)", id="think-title")
            for name, label, value in (("max", "cap (max think tokens)", self.thinking.max_think_tokens),
                                       ("min", "minimum", self.thinking.min_think_tokens)):
                with Horizontal(classes="think-row"):
                    yield Label(label)
                    yield Input(str(value), id=f"think-{name}", compact=True, select_on_focus=False)
            yield Static(id="think-error")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#think-max", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        budget, problem = parse_budget(self.query_one("#think-max", Input).value,
                                       self.query_one("#think-min", Input).value)
        error = self.query_one("#think-error", Static)
        error.update(problem)
        error.display = bool(problem)
        if budget is not None:
            self.dismiss(self.thinking.replace(max_think_tokens=budget[0], min_think_tokens=budget[1]))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SamplingScreen(ModalScreen[Sampling | None]):
    """The REPL's sampling settings for one GGUF: enter in any field saves, Esc cancels."""

    DEFAULT_CSS = """
    SamplingScreen { align: center middle; }
    #sampling-dialog { width: 90%; max-width: 90; height: auto; border: thick $accent;
                       background: $surface; padding: 0 1; }
    .sampling-row { height: 1; }
    .sampling-row Label { width: 16; }
    .sampling-row Input { width: 1fr; }
    .sampling-error { color: $error; height: auto; padding-left: 16; display: none; }
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, sampling: Sampling, model: str) -> None:
        super().__init__()
        self.sampling = sampling
        self.model = model

    def compose(self) -> ComposeResult:
        with Vertical(id="sampling-dialog"):
            yield Label(f"Sampling for {self.model} (enter saves, esc cancels)", id="sampling-title")
            for name, _, _ in SAMPLING_FIELDS:
                with Horizontal(classes="sampling-row"):
                    yield Label(name.replace("_", " "))
                    value = getattr(self.sampling, name)
                    yield Input(f"{value:g}" if isinstance(value, float) else str(value), id=f"sampling-{name}",
                                compact=True, select_on_focus=False)
                yield Static(id=f"sampling-{name}-error", classes="sampling-error")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#sampling-temperature", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        texts = {name: self.query_one(f"#sampling-{name}", Input).value for name, _, _ in SAMPLING_FIELDS}
        sampling, errors = parse_sampling(texts)
        for name, _, _ in SAMPLING_FIELDS:
            error = self.query_one(f"#sampling-{name}-error", Static)
            error.update(errors.get(name, ""))
            error.display = name in errors
        if sampling is not None:
            self.dismiss(sampling)

    def action_cancel(self) -> None:
        self.dismiss(None)

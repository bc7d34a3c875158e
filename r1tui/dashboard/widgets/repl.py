"""REPL: chat with a GGUF through r1tui.infer.llama.LlamaChat, prompted with the
training template. Tokens stream in from a thread worker; the think block is shown
apart (dim, foldable) from the answer; tokens/s; stop, clear, switch GGUF."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Collapsible, Input, Static

from r1tui.config import Config
from r1tui.dashboard.widgets.base import Panel
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.response_format import THINK_END, THINK_START

FLUSH_SECONDS = 1 / 30  # stream to the screen at most this often


class Turn(Vertical):
    """One exchange: the question, the think block (foldable) and the answer."""

    def __init__(self, question: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.question = question
        self.think = ""
        self.answer = ""
        self.raw = ""

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("you ", "bold cyan"), self.question), classes="question")
        with Collapsible(title="thinking…", collapsed=False, classes="think"):
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

    def finish(self, note: str, error: str = "") -> None:
        block = self.query_one(Collapsible)
        words = len(self.think.split())
        block.title = f"thought for {words} words" if self.think else "no think block"
        if error:  # the model did not load, or generation failed: that is the answer
            self.query_one(".answer", Static).update(Text(error, style="bold red"))
        elif not self.answer.strip():
            self.query_one(".answer", Static).update(Text("(no answer after the think block)", style="dim"))
        if note:
            self.mount(Static(Text(note, style="dim"), classes="turn-note"))


class ReplPanel(Panel):
    PANEL_ID = "repl"
    TITLE = "REPL"

    BINDINGS = [
        Binding("escape", "stop", "stop"),
        Binding("ctrl+l", "clear", "clear"),
        Binding("ctrl+o", "switch_gguf", "GGUF"),
        Binding("ctrl+t", "fold_think", "fold think"),
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

    def reset_for_run(self) -> None:
        self.gguf = None  # the new run's own GGUF (or the one given with --gguf)
        self._forget()

    def compose(self) -> ComposeResult:
        yield Static(id="repl-status")
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
        turn = Turn(question)
        self.query_one("#transcript", VerticalScroll).mount(turn)
        self.messages.append({"role": "user", "content": question})
        self.generating = True
        self.tokens_per_s = None
        self.error = ""
        self._stop.clear()
        self.refresh_view()
        self.generate(turn, list(self.messages), self.gguf, self._conversation)

    def action_stop(self) -> None:
        if self.generating:
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
        from r1tui.dashboard.screens.modals import GgufPicker

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.use_gguf(path)

        self.app.push_screen(GgufPicker(self.dashboard.gguf_candidates(), self.gguf), chosen)

    def use_gguf(self, path: Path) -> None:
        if path != self.gguf:
            self._forget()  # another model: the old transcript is not its conversation
        self.gguf = path
        self.refresh_view()
        self.notify(f"chatting with {path.name}")

    # -- generation (thread worker) -----------------------------------------
    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def generate(self, turn: Turn, messages: list[dict[str, str]], gguf: Path, conversation: int) -> None:
        from r1tui.infer.stream import ThinkSplitter

        config = self.dashboard.config
        splitter = ThinkSplitter()
        pending: list[tuple[str, str]] = []
        note = error = ""
        try:
            chat = self._load(gguf, config)
            max_tokens = config.eval.max_new_tokens if config is not None else 512
            temperature = (config.eval.temperature or 0.0) if config is not None else 0.0
            flushed = time.perf_counter()
            for chunk in chat.stream(messages, max_tokens=max_tokens, temperature=temperature,
                                     stop_event=self._stop):
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
        self.app.call_from_thread(self._finished, turn, pending, note, error, chat_stats(self._chat), conversation)

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
                  conversation: int) -> None:
        try:
            if conversation != self._conversation:
                return  # cleared meanwhile (ctrl+l, another run or GGUF): nothing to record
            turn.add(parts)
            turn.finish(note, error)
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


def chat_stats(chat: Any) -> float | None:
    stats = getattr(chat, "last", None)
    speed = getattr(stats, "tokens_per_s", None)
    return speed or None

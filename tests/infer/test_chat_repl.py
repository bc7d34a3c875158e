"""The chat REPL's loop on the scripted GGUF: think block dim, answer plain, commands, history."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from r1tui.cli.chat import repl
from r1tui.infer.llama import LlamaChat

SETTINGS = {"max_tokens": 100, "temperature": 0.0, "system": "", "n_ctx": 512, "tokenizer": "v3"}


class Recorder(LlamaChat):
    """The real LlamaChat, keeping the conversations it was asked to continue."""

    seen: list

    def stream(self, messages, *args, **kwargs):
        self.seen.append([dict(m) for m in messages])
        return super().stream(messages, *args, **kwargs)


def test_repl_streams_styles_and_keeps_history(scripted_gguf, scripted_reply):
    lines = iter(["What is 2 + 2?", "", "Are you sure?", "/reset", "/what", "Again?", "/exit", "never read"])
    out = Console(record=True, force_terminal=True, color_system="standard", width=200)
    with Recorder(scripted_gguf, n_ctx=512) as chat:
        chat.seen = []
        repl(chat, out, SETTINGS, read=lambda prompt: next(lines))
    styled = Text.from_ansi(out.export_text(styles=True))
    text = styled.plain

    # three replies, each the scripted text, each with its stats line
    assert text.count(scripted_reply) == 3
    assert text.count("37 tokens") == 3 and text.count("finished by eos") == 3
    # the think block is dim (and italic), the final answer is not
    think_end = scripted_reply.index("</think>") + len("</think>")
    start = text.index(scripted_reply)
    styles = [styled.get_style_at_offset(out, start + i) for i in range(len(scripted_reply))]
    assert all(style.dim and style.italic for style in styles[:think_end])
    assert not any(style.dim for style, char in zip(styles[think_end:], scripted_reply[think_end:], strict=True) if char.strip())
    # history: the second turn carries the first exchange, /reset forgets it
    assert [len(conversation) for conversation in chat.seen] == [1, 3, 1]
    assert chat.seen[1][1] == {"role": "assistant", "content": scripted_reply}
    assert "conversation cleared" in text and "unknown command /what" in text


def test_repl_quits_on_end_of_input(scripted_gguf):
    def end(prompt):
        raise EOFError

    out = Console(record=True, width=120)
    with LlamaChat(scripted_gguf, n_ctx=512) as chat:
        repl(chat, out, SETTINGS, read=end)
    assert "r1tui chat" in out.export_text()


def test_think_commands_prefill_and_cap_the_next_replies(scripted_gguf):
    """/prefill on: the reply starts with the think opening (the scripted chain then says
    "FINAL ANSWER: 4" inside it); /think 4 closes the block at 4 tokens and forces the answer
    line; the stats line says how much was thought and that the budget cut it."""
    lines = iter(["/prefill on", "What is 2 + 2?", "/think 4", "What is 2 + 2?", "/think lots", "/think off",
                  "/prefill off", "/exit"])
    out = Console(record=True, width=200)
    with Recorder(scripted_gguf, n_ctx=512) as chat:
        chat.seen = []
        repl(chat, out, SETTINGS, read=lambda prompt: next(lines))
        assert chat.thinking.max_think_tokens == 0 and not chat.thinking.prefill
    text = out.export_text()
    assert "prefill <think>: on" in text and "<think>\nFINAL ANSWER: 4\n" in text
    assert "thinking: at most 4 tokens, then the answer" in text
    assert "<think>\nFINAL ANSW\n</think>\n\nFINAL ANSWER:" in text
    assert "thought 4 tokens (cut by the budget)" in text
    assert "usage: /think N" in text and "thinking: no cap" in text and "prefill <think>: off" in text
    # the kept history holds the whole reply, prefill included, as the next prompt renders it
    assert chat.seen[1][1]["content"].startswith("<think>\nFINAL ANSWER: 4")


def test_chat_options_are_checked_and_shown_in_the_plan(scripted_gguf, capsys, monkeypatch):
    from r1tui.cli import main

    monkeypatch.setenv("DRY_RUN", "1")
    assert main(["chat", "--gguf", str(scripted_gguf), "--prefill-think", "true", "--max-think-tokens", "32"]) == 0
    assert "prefill <think>, think ≤ 32 tokens, then answer in ≤ 64" in " ".join(capsys.readouterr().out.split())
    assert main(["chat", "--gguf", str(scripted_gguf), "--min-think-tokens", "40", "--max-think-tokens", "32"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == "error: --min-think-tokens 40 is above the cap of 32 think tokens; lower it or raise the cap"

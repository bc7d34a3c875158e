"""`r1tui chat`: a plain-terminal REPL against a GGUF, prompted with the training template."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from r1tui.cli._common import add_config_argument, add_runs_dir_argument, apply_infer_flags, console
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error

HELP = "chat with a GGUF in the terminal (streaming, think block dimmed, /reset, /exit)"
DESCRIPTION = """\
A plain-terminal REPL over llama.cpp. The conversation is rendered with the same
template training used (not llama.cpp's guess), replies stream as they are
generated, the <think> block is shown dim and apart from the final answer, and each
reply ends with its token count, tokens/s and why it stopped (eos or the limit).

RUN is a run id (or a unique prefix), a run folder or `latest` (its Q4_K_M GGUF and tokenizer are used;
with neither RUN nor --gguf, the newest run); --gguf PATH chats with any GGUF. Ctrl-C stops a reply; Ctrl-D or /exit quits.

Thinking (as in training's format; defaults from [infer]): --prefill-think starts every reply
with the think opening exactly as training tokenized it (auto: when the run's training replies
open with it); --max-think-tokens N closes the think block at N tokens and forces the answer
line (s1's budget forcing), the answer then getting infer.answer_tokens; --min-think-tokens N
turns a closing tag before N tokens into the continuation word ("Wait"). Each reply's stats
line says how many tokens were thought and whether the budget cut it.

Commands inside the REPL:
  /reset   forget the conversation       /exit   quit
  /think N cap thinking at N tokens      /think off   no cap
  /prefill on | off                      /help    show these commands

Examples:
  r1tui chat latest
  r1tui chat --gguf model-Q4_K_M.gguf --temperature 0.7 --system "Answer briefly."
"""

COMMANDS_HELP = ("/reset forget the conversation · /think N cap thinking (/think off) · /prefill on|off · "
                 "/exit quit · /help this line · Ctrl-C stops a reply")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="run id, id prefix, run folder, or 'latest' (default: the newest, unless --gguf)")
    parser.add_argument("--gguf", metavar="PATH", help="the GGUF to chat with (default: the run's Q4_K_M)")
    parser.add_argument("--tokenizer", metavar="SPEC", help="v3, tekken, tekken-v7 or a folder (default: model.tokenizer)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="reply budget (default: eval.max_new_tokens)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: eval.temperature)")
    parser.add_argument("--n-ctx", type=int, metavar="N", help="context size (default: eval.n_ctx)")
    parser.add_argument("--system", metavar="TEXT", help="system prompt (default: data.system_prompt)")
    parser.add_argument("--prefill-think", choices=("auto", "true", "false"),
                        help="start replies with the think opening (default: infer.prefill_think)")
    parser.add_argument("--max-think-tokens", type=int, metavar="N",
                        help="cap the think block at N tokens, then force the answer line (default: infer.max_think_tokens; 0: none)")
    parser.add_argument("--min-think-tokens", type=int, metavar="N",
                        help="think at least N tokens: an earlier close becomes the continuation word (default: infer.min_think_tokens)")
    parser.add_argument("--continuation", metavar="WORD", help="appended where thinking stopped too early (default: infer.continuation)")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.cli._common import run_and_config

    if not args.run and not args.gguf:
        args.run = "latest"  # like `logs` and `attach`: no RUN means the newest run
    layout, config = run_and_config(args)
    if args.gguf:
        gguf = Path(args.gguf).expanduser().resolve()
    elif layout is not None:
        from r1tui.eval.run import find_run_gguf

        gguf = find_run_gguf(layout, config)
    else:
        raise R1Error("which model? give a RUN or --gguf PATH (see r1tui chat --help)")
    for flag, value in (("--max-tokens", args.max_tokens), ("--n-ctx", args.n_ctx)):
        if value is not None and value <= 0:
            raise R1Error(f"{flag} {value}: must be at least 1")
    if args.temperature is not None and args.temperature < 0:
        raise R1Error(f"--temperature {args.temperature}: must be 0 or more")
    thinking = _thinking(config, args, layout.root if layout is not None and not args.gguf else
                         _trained_in(gguf))
    settings = {
        "tokenizer": args.tokenizer or tokenizer_spec(config),
        "max_tokens": args.max_tokens or config.eval.max_new_tokens,
        "temperature": (config.eval.temperature or 0.0) if args.temperature is None else args.temperature,
        "n_ctx": args.n_ctx or config.eval.n_ctx,
        "system": config.data.system_prompt if args.system is None else args.system,
        "thinking": thinking,
    }
    out = console()
    if dry_run_requested():
        out.print(f"[bold]dry run[/]: would chat with {gguf} (tokenizer {settings['tokenizer']}, "
                  f"n_ctx {settings['n_ctx']}, up to {settings['max_tokens']} tokens per reply; "
                  f"{thinking.describe()})")
        return 0

    from r1tui.infer.llama import LlamaChat

    with LlamaChat(gguf, tokenizer_spec=settings["tokenizer"], n_ctx=settings["n_ctx"], seed=config.eval.seed) as chat:
        repl(chat, out, settings)
    return 0


def _thinking(config, args: argparse.Namespace, run_dir):
    """The reply settings (r1tui.infer.thinking) from [infer] and the command line; one line on bad values."""
    from r1tui.infer.thinking import resolve_prefill, settings_from_config

    apply_infer_flags(config, args)
    prefill, _ = resolve_prefill(config, run_dir, tokenizer_spec(config) if not args.tokenizer else args.tokenizer)
    return settings_from_config(config, prefill)


def _trained_in(gguf: Path):
    from r1tui.eval.run import trained_in

    return trained_in(gguf)


def think_command(text: str, thinking):
    """(new settings, message) for /think N, /think off, /prefill on|off; None for another line."""
    words = text.split()
    if words[0] == "/think" and len(words) == 2:
        if words[1] in ("off", "0"):
            return thinking.replace(max_think_tokens=0), "thinking: no cap"
        if words[1].isdigit():
            cap = int(words[1])
            if thinking.min_think_tokens > cap:
                return thinking, f"/think {cap}: below the minimum of {thinking.min_think_tokens} think tokens"
            return thinking.replace(max_think_tokens=cap), f"thinking: at most {cap} tokens, then the answer"
    if words[0] == "/prefill" and len(words) == 2 and words[1] in ("on", "off"):
        return thinking.replace(prefill=words[1] == "on"), f"prefill <think>: {words[1]}"
    if words[0] in ("/think", "/prefill"):
        return thinking, f"usage: /think N (a cap in tokens), /think off, /prefill on|off — not {text!r}"
    return None


def repl(chat, out, settings: dict, read=input) -> None:
    """Read a line, stream the reply, repeat. ``read`` is the line reader (input by default)."""
    from r1tui.infer.stream import ThinkSplitter

    if settings.get("thinking") is not None:
        chat.thinking = settings["thinking"]
    out.print(f"[bold]r1tui chat[/] · {chat.gguf_path.name} · tokenizer {chat.tokenizer_spec} · "
              f"temperature {settings['temperature']} · {chat.thinking.describe()}")
    out.print(f"[dim]{COMMANDS_HELP}[/]", highlight=False)
    history: list[dict[str, str]] = []
    while True:
        try:
            line = read("you> ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/reset":
            history.clear()
            out.print("[dim]conversation cleared[/]", highlight=False)
            continue
        if text == "/help":
            out.print(f"[dim]{COMMANDS_HELP}[/]", highlight=False)
            continue
        changed = think_command(text, chat.thinking) if text.startswith("/") else None
        if changed is not None:
            chat.thinking, message = changed
            out.print(f"[dim]{message}[/]", highlight=False)
            continue
        if text.startswith("/"):
            out.print(f"[yellow]unknown command {text.split()[0]}[/] [dim]{COMMANDS_HELP}[/]", highlight=False)
            continue
        messages = ([{"role": "system", "content": settings["system"]}] if settings["system"] else [])
        messages += history + [{"role": "user", "content": text}]
        splitter = ThinkSplitter()
        stop = threading.Event()
        reply = []
        try:
            for chunk in chat.stream(messages, max_tokens=settings["max_tokens"],
                                     temperature=settings["temperature"], stop_event=stop):
                reply.append(chunk)
                _show(out, splitter.feed(chunk))
        except KeyboardInterrupt:
            stop.set()
            _show(out, splitter.flush())
            out.print("\n[yellow]stopped[/] [dim](this turn is not kept)[/]", highlight=False)
            continue
        except R1Error as exc:
            out.print(f"[red]error:[/] {exc}", highlight=False)
            continue
        _show(out, splitter.flush())
        stats = chat.last
        out.print()
        out.print(f"[dim]{stats.completion_tokens} tokens · {stats.tokens_per_s:.1f} tok/s · "
                  f"finished by {stats.finish_reason}{_think_note(stats)}[/]", highlight=False)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": "".join(reply)}]


def _show(out, parts: list[tuple[str, str]]) -> None:
    for kind, text in parts:
        out.print(text, style="dim italic" if kind == "think" else None, end="", markup=False, highlight=False,
                  soft_wrap=True)


def _think_note(stats) -> str:
    """ · thought 412 tokens (cut by the budget) · 2× continued — when there was a think block."""
    if not (stats.think_tokens or stats.think_prefilled or stats.think_capped):
        return ""
    note = f" · thought {stats.think_tokens} tokens" + (" (cut by the budget)" if stats.think_capped else "")
    return note + (f" · {stats.think_continuations}× continued" if stats.think_continuations else "")

"""`r1tui chat`: a plain-terminal REPL against a GGUF, prompted with the training template."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from r1tui.cli._common import add_config_argument, add_runs_dir_argument, console
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error

HELP = "chat with a GGUF in the terminal (streaming, think block dimmed, /reset, /exit)"
DESCRIPTION = """\
A plain-terminal REPL over llama.cpp. The conversation is rendered with the same
template training used (not llama.cpp's guess), replies stream as they are
generated, the <think> block is shown dim and apart from the final answer, and each
reply ends with its token count, tokens/s and why it stopped (eos or the limit).

RUN is a run id (or a unique prefix), a run folder or `latest` (its Q4_K_M GGUF and tokenizer are used);
--gguf PATH chats with any GGUF. Ctrl-C stops a reply; Ctrl-D or /exit quits.

Commands inside the REPL:
  /reset   forget the conversation       /exit   quit
  /help    show these commands

Examples:
  r1tui chat latest
  r1tui chat --gguf model-Q4_K_M.gguf --temperature 0.7 --system "Answer briefly."
"""

COMMANDS_HELP = "/reset forget the conversation · /exit quit · /help this line · Ctrl-C stops a reply"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("run", nargs="?", metavar="RUN", help="run id, id prefix, run folder, or 'latest'")
    parser.add_argument("--gguf", metavar="PATH", help="the GGUF to chat with (default: the run's Q4_K_M)")
    parser.add_argument("--tokenizer", metavar="SPEC", help="v3, tekken or a folder (default: model.tokenizer)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="reply budget (default: eval.max_new_tokens)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default: eval.temperature)")
    parser.add_argument("--n-ctx", type=int, metavar="N", help="context size (default: eval.n_ctx)")
    parser.add_argument("--system", metavar="TEXT", help="system prompt (default: data.system_prompt)")


def run(args: argparse.Namespace) -> int:
    from r1tui.cli import dry_run_requested
    from r1tui.cli._common import run_and_config

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
    settings = {
        "tokenizer": args.tokenizer or tokenizer_spec(config),
        "max_tokens": args.max_tokens or config.eval.max_new_tokens,
        "temperature": (config.eval.temperature or 0.0) if args.temperature is None else args.temperature,
        "n_ctx": args.n_ctx or config.eval.n_ctx,
        "system": config.data.system_prompt if args.system is None else args.system,
    }
    out = console()
    if dry_run_requested():
        out.print(f"[bold]dry run[/]: would chat with {gguf} (tokenizer {settings['tokenizer']}, "
                  f"n_ctx {settings['n_ctx']}, up to {settings['max_tokens']} tokens per reply)")
        return 0

    from r1tui.infer.llama import LlamaChat

    with LlamaChat(gguf, tokenizer_spec=settings["tokenizer"], n_ctx=settings["n_ctx"], seed=config.eval.seed) as chat:
        repl(chat, out, settings)
    return 0


def repl(chat, out, settings: dict, read=input) -> None:
    """Read a line, stream the reply, repeat. ``read`` is the line reader (input by default)."""
    from r1tui.infer.stream import ThinkSplitter

    out.print(f"[bold]r1tui chat[/] · {chat.gguf_path.name} · tokenizer {chat.tokenizer_spec} · "
              f"temperature {settings['temperature']}")
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
                  f"finished by {stats.finish_reason}[/]", highlight=False)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": "".join(reply)}]


def _show(out, parts: list[tuple[str, str]]) -> None:
    for kind, text in parts:
        out.print(text, style="dim italic" if kind == "think" else None, end="", markup=False, highlight=False,
                  soft_wrap=True)

"""A fork server for the drills: one interpreter imports r1tui and its heavy libraries once,
then forks a fresh child process for every command it is asked to run.

Each child is a real process (its own pid, its own stdout and stderr files, environment
and working folder; it can be sent SIGTERM or SIGKILL) that runs the real entry point,
``r1tui.cli.main(argv)`` or the pipeline process's ``r1tui.pipeline.process.main(argv)``,
exactly as ``python -m r1tui ...`` would, minus the seconds of interpreter start-up and
imports. That is what lets the drills run dozens of commands, cancels and kills on a
2-core machine.

The parent never runs a torch operation and starts no thread, so a fork is safe.
Protocol: one JSON object per line on stdin, one JSON answer per line on stdout.

    {"op": "spawn", "entry": "cli"|"pipeline", "argv": [...], "env": {...}, "cwd": "...",
     "out": "stdout file", "err": "stderr file"}            -> {"pid": N}
    {"op": "wait", "pid": N, "timeout": S}                  -> {"pid": N, "rc": rc or null}
        (rc is the exit status, or minus the signal that ended the child)

Started as ``python forkserver.py [--only] [preload ...]`` (``--only``: these modules instead
of the default list); it prints {"ready": true} once the preloads are imported.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time

PRELOAD = (
    "r1tui.cli", "r1tui.cli._common", "r1tui.config", "r1tui.pipeline.process", "r1tui.pipeline.builtin",
    "torch", "transformers", "transformers.models.mistral.modeling_mistral", "peft", "trl", "datasets",
    "accelerate", "llama_cpp", "safetensors.torch", "r1tui.export.stages", "r1tui.export.merge",
    "r1tui.export.parity", "r1tui.train.trainer", "r1tui.train.hf_backend", "r1tui.train.callback",
    "r1tui.data.prepare", "r1tui.data.tokenizer", "rich.console", "rich.progress", "rich.table",
)


def _preload(names) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional library only costs its import later
            sys.stderr.write(f"forkserver: could not preload {name}: {exc}\n")
    try:
        from r1tui.cli import build_parser

        build_parser()  # imports every command module
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"forkserver: could not build the parser: {exc}\n")


def _child(request: dict) -> None:
    """In the forked child: set up its process state, run the entry point, exit with its code."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own group: a signal to it reaches the helpers it starts, as in a shell
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        os.dup2(os.open(request["out"], flags, 0o600), 1)
        os.dup2(os.open(request["err"], flags, 0o600), 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - the child's whole life
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
        sys.argv = ["r1tui", *request["argv"]]
        if request.get("entry") == "pipeline":
            from r1tui.pipeline.process import main
        else:
            from r1tui.cli import main
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code if isinstance(code, int) else 1)


def main() -> int:
    extra = tuple(sys.argv[1:])
    _preload(extra[1:] if extra[:1] == ("--only",) else PRELOAD + extra)
    answers = sys.stdout
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    finished: dict[int, int] = {}
    children: set[int] = set()

    def reap(pid: int, block: bool) -> int | None:
        if pid in finished:
            return finished[pid]
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return None
        if done == 0:
            return None
        finished[pid] = os.waitstatus_to_exitcode(status)
        children.discard(pid)
        return finished[pid]

    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "spawn":
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request)
                children.add(pid)
                answer = {"pid": pid}
            elif request["op"] == "wait":
                deadline = time.monotonic() + float(request.get("timeout", 600))
                rc = reap(request["pid"], block=False)
                while rc is None and time.monotonic() < deadline and request["pid"] in children:
                    time.sleep(0.02)
                    rc = reap(request["pid"], block=False)
                answer = {"pid": request["pid"], "rc": rc}
            else:
                answer = {"error": f"unknown op {request['op']!r}"}
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
    finally:
        for pid in list(children):  # the test ended: nothing it started outlives it
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            reap(pid, block=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

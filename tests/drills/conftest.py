"""Fixtures for the reliability drills (issue 14): real processes, real signals, real disks.

- ``reference`` (session): one whole tiny pipeline (`r1tui run`, detached, prepare → train →
  export → eval) with a well-formed Hub token in its environment. It is the uninterrupted
  run every drill compares with (losses, adapter bytes, GGUF bytes), and the secrets drill
  searches it for the token.
- ``forkserver`` (session): ``tests/drills/forkserver.py``, an interpreter that imported
  r1tui, torch and llama.cpp once and forks a real child process per command, so a drill can
  start, cancel and kill dozens of commands without paying the imports each time.
- ``tmpfs``: a small real file system (``mount -t tmpfs``), the full disk of the disk drills.
- ``tmux``: a real terminal for the dashboard.

What the drills need from other areas' conftests is written here again, small; the Hub
stand-in is reused as it is (test_secrets.py loads it by path from tests/export/conftest.py),
and so is ``wait_for``, from tests/conftest.py (pytest has imported it as ``tests.conftest``
before this file).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import wait_for  # every drill passes its own timeout

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# A well-formed Hub token (hf_ and 34 letters and digits) and malformed ones; each piece of a
# malformed one is long and unlikely enough that finding it anywhere means it leaked.
_rng = random.Random(1414)
GOOD_TOKEN = "hf_" + "".join(_rng.choices(string.ascii_letters + string.digits, k=34))
MALFORMED_TOKENS = {
    "newline": "hf_" + "".join(_rng.choices(string.ascii_letters, k=24)) + "\n" + "Nl" + "".join(
        _rng.choices(string.ascii_letters, k=14)),
    "carriage return": "hf_" + "".join(_rng.choices(string.ascii_letters, k=24)) + "\r" + "Cr" + "".join(
        _rng.choices(string.ascii_letters, k=14)),
    "spaces": "  hf_" + "".join(_rng.choices(string.ascii_letters, k=24)) + " " + "Sp" + "".join(
        _rng.choices(string.ascii_letters, k=14)) + " ",
}

# The drills' run: the tiny model, a short context and few steps (the cosine schedule with
# warm-up makes a resumed run's learning rates depend on the restored scheduler).
TRAIN = {"max_steps": 8, "save_steps": 2, "lr_scheduler": "cosine", "warmup_ratio": 0.1, "per_device_batch_size": 1}
DRILL_SETTINGS = {"model": {"max_seq_length": 128}, "train": TRAIN, "data": {"num_examples": 48},
                  "eval": {"num_samples": 2, "max_new_tokens": 16}}


def token_pieces(token: str) -> list[str]:
    """What must never be found: the token whole, stripped, and each whitespace-separated piece."""
    return sorted({token, token.strip(), *token.split()} - {""}, key=len, reverse=True)


def find_pieces(pieces: list[str], *roots: Path, texts: dict[str, str] | None = None) -> list[str]:
    """Where any of ``pieces`` occurs: every file under ``roots`` (bytes), and ``texts``."""
    found = []
    needles = [p.encode() for p in pieces]
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found += [f"{path}: {p.decode()!r}" for p in needles if p in data]
    for name, text in (texts or {}).items():
        found += [f"{name}: {p!r}" for p in pieces if p in text]
    return found


def drill_env(token: str | None = GOOD_TOKEN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "DRY_RUN", "HF_REPO_ID", "R1TUI_CONFIG")}
    env.update(PYTHONUNBUFFERED="1", R1TUI_HEARTBEAT_S="1", COLUMNS="200")
    if token is not None:
        env["HF_TOKEN"] = token
    env.update(extra)
    return env


def write_drill_config(folder: Path, runs_dir: Path, **sections: dict) -> Path:
    """configs/tiny.toml with the drills' settings (and ``sections`` over them)."""
    import tomllib

    from r1tui.config import dump_toml, parse_config

    data = tomllib.loads((REPO / "configs" / "tiny.toml").read_text(encoding="utf-8"))
    for section, values in {**DRILL_SETTINGS}.items():
        data.setdefault(section, {}).update(values)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    data["runs"] = {"dir": str(runs_dir)}
    config = parse_config(data, origin="drill", base_dir=REPO / "configs")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    return path


def r1tui(*args: str, env: dict | None = None, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1tui", *args], capture_output=True, text=True,
                          env=env or drill_env(), cwd=cwd, timeout=timeout)


def metrics(run_dir: Path) -> list[dict]:
    from r1tui.runs.events import read_events

    return [e.data for e in read_events(Path(run_dir) / "events.jsonl") if e.type == "metric"]


def wait_finished(run_dir: Path, timeout: float = 600):
    """Wait for a run's writer to let go; returns its RunStatus."""
    from r1tui.runs.layout import RunLayout
    from r1tui.runs.lock import holder
    from r1tui.runs.status import run_status

    layout = RunLayout(Path(run_dir))
    wait_for(lambda: run_status(layout).status != "running" and holder(layout) is None, timeout=timeout,
             poll=0.2, what=f"run {layout.run_id} to end")
    return run_status(layout)


# ---------------------------------------------------------------- the reference run


@pytest.fixture(scope="session")
def reference(tmp_path_factory, forkserver):
    """The whole tiny pipeline, uninterrupted: `r1tui run` detached, with HF_TOKEN set. (The
    fork server, which nearly every drill uses, does its imports meanwhile.)"""
    from r1tui.runs.layout import RunLayout

    root = tmp_path_factory.mktemp("drill-reference")
    runs_dir = root / "runs"
    config = write_drill_config(root, runs_dir)
    env = drill_env(GOOD_TOKEN)
    started = r1tui("run", "--config", str(config), "--json", env=env)
    assert started.returncode == 0, started.stderr
    layout = RunLayout(Path(json.loads(started.stdout)["run_dir"]))
    status = wait_finished(layout.root)
    assert status.status == "finished", (status, layout.pipeline_log.read_text()[-3000:])
    logged = metrics(layout.root)
    assert [m["step"] for m in logged] == list(range(1, TRAIN["max_steps"] + 1))
    return SimpleNamespace(layout=layout, config=config, runs_dir=runs_dir, root=root, env=env, metrics=logged,
                           outputs={"r1tui run stdout": started.stdout, "r1tui run stderr": started.stderr})


def assert_same_training(run_dir: Path, reference_metrics: list[dict], reference_adapter: Path, context: str = ""):
    """Every logged step once, each loss and learning rate equal to the uninterrupted run's, and
    the final adapter's weights byte-identical."""
    logged = metrics(run_dir)
    assert [m["step"] for m in logged] == [m["step"] for m in reference_metrics], (context, logged)
    for got, want in zip(logged, reference_metrics, strict=True):
        assert got["loss"] == want["loss"], (context, got["step"], got["loss"], want["loss"])
        assert got["learning_rate"] == want["learning_rate"], (context, got["step"])
    weights = "adapter_model.safetensors"
    assert (Path(run_dir) / "adapter" / weights).read_bytes() == (reference_adapter / weights).read_bytes(), context


@pytest.fixture(scope="session")
def drills():
    """The helpers above, for the test modules (importlib mode has no sibling imports)."""
    return SimpleNamespace(GOOD_TOKEN=GOOD_TOKEN, MALFORMED_TOKENS=MALFORMED_TOKENS, TRAIN=TRAIN,
                           token_pieces=token_pieces, find_pieces=find_pieces, env=drill_env, r1tui=r1tui,
                           write_config=write_drill_config, wait_for=wait_for, metrics=metrics,
                           wait_finished=wait_finished, assert_same_training=assert_same_training,
                           repo=REPO)


# ---------------------------------------------------------------- the fork server


class ForkServer:
    """Client of tests/drills/forkserver.py: ``spawn`` a command, ``wait`` for it, ``run`` both."""

    def __init__(self, env: dict[str, str], folder: Path, preload: tuple[str, ...] = ()):
        self.folder = folder
        self.env = env
        self.process = subprocess.Popen([sys.executable, str(HERE / "forkserver.py"), *preload], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self._ready = False  # it imports while the caller goes on; the first request waits for it
        self._count = 0

    def _ask(self, request: dict) -> dict:
        if not self._ready:
            ready = self.process.stdout.readline()
            assert ready and json.loads(ready) == {"ready": True}, "the fork server did not start"
            self._ready = True
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def spawn(self, *argv: str, env: dict | None = None, cwd: Path | None = None, entry: str = "cli"):
        self._count += 1
        out, err = self.folder / f"{self._count}.out", self.folder / f"{self._count}.err"
        pid = self._ask({"op": "spawn", "entry": entry, "argv": list(argv), "env": env or self.env,
                         "cwd": str(cwd or REPO), "out": str(out), "err": str(err)})["pid"]
        return SimpleNamespace(pid=pid, out=out, err=err, argv=argv)

    def wait(self, child, timeout: float = 300) -> SimpleNamespace:
        rc = self._ask({"op": "wait", "pid": child.pid, "timeout": timeout})["rc"]
        assert rc is not None, f"{' '.join(child.argv)} still runs after {timeout} s"
        return SimpleNamespace(returncode=rc, stdout=child.out.read_text(errors="replace"),
                               stderr=child.err.read_text(errors="replace"), argv=child.argv, pid=child.pid)

    def run(self, *argv: str, timeout: float = 300, **kwargs) -> SimpleNamespace:
        return self.wait(self.spawn(*argv, **kwargs), timeout=timeout)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="session")
def forkserver(tmp_path_factory):
    server = ForkServer(drill_env(GOOD_TOKEN), tmp_path_factory.mktemp("forkserver"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def forkserver_factory(tmp_path_factory):
    """Another fork server with its own environment (huggingface_hub reads HF_ENDPOINT and
    HF_HUB_OFFLINE once, at import)."""
    servers = []

    def make(env: dict[str, str], preload: tuple[str, ...] = ()) -> ForkServer:
        servers.append(ForkServer(env, tmp_path_factory.mktemp("forkserver"), preload))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def tmpfs():
    """``mount(folder, size)``: a real small file system at ``folder``; ``resize(folder, size)``."""
    mounted: list[Path] = []
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs to fill a disk needs root; this test runs as uid {os.geteuid()}")

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mount -t tmpfs failed here ({done.stderr.strip()}); a full disk cannot be made")
        mounted.append(folder)
        return folder

    def resize(folder: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)

    yield SimpleNamespace(mount=mount, resize=resize)
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


# ---------------------------------------------------------------- a real terminal


class Tmux:
    def __init__(self):
        if shutil.which("tmux") is None:
            pytest.fail("tmux is needed for the terminal drills (apt-get install tmux)", pytrace=False)
        self.socket = f"r1tui-drill-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, command: str, env: dict[str, str], width: int = 160, height: int = 45) -> int:
        """A session running ``command`` in a shell; returns the shell's pid."""
        self("-f", os.devnull, "new-session", "-d", "-s", "drill", "-x", str(width), "-y", str(height),
             *(arg for key, value in env.items() for arg in ("-e", f"{key}={value}")), "-c", str(REPO), command)
        return int(self("display-message", "-p", "-t", "drill", "#{pane_pid}").strip())

    def screen(self, history: bool = False) -> str:
        """What the terminal shows (``history``: and everything scrolled off it)."""
        return self("capture-pane", "-p", "-J", *(("-S", "-") if history else ()), "-t", "drill", check=False)

    def close(self) -> None:
        self("kill-server", check=False)


@pytest.fixture
def tmux():
    terminal = Tmux()
    yield terminal
    terminal.close()

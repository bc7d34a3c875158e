"""Fixtures for the runs area: a masked dataset built like the data stage's, tiny configs.

The dataset is built here with the real v3 tokenizer and chat template (ids and
labels made together: -100 over the prompt), in the data stage's on-disk format
(a datasets Arrow folder with input_ids, labels, domain), so these tests do not
depend on the data stage's code.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from r1tui.config import dump_toml, parse_config

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.toml"


def build_dataset(folder: Path, tokenizer_dir: Path, rows: int = 48, seed: int = 0) -> Path:
    """Arithmetic with a worked <think> trace: a structure a random model learns fast."""
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    rng = random.Random(seed)
    records = {"input_ids": [], "labels": [], "domain": []}
    for _ in range(rows):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        user = {"role": "user", "content": f"What is {a} + {b}?"}
        answer = (f"<think>\n{a} + {b}: add the tens {a // 10 * 10} + {b // 10 * 10}, then the units "
                  f"{a % 10} + {b % 10}.\n</think>\nFINAL ANSWER: {a + b}")
        prompt = tokenizer.apply_chat_template([user], tokenize=True, return_dict=False)
        full = tokenizer.apply_chat_template([user, {"role": "assistant", "content": answer}], tokenize=True,
                                             return_dict=False)
        assert full[: len(prompt)] == prompt
        records["input_ids"].append(list(full))
        records["labels"].append([-100] * len(prompt) + list(full[len(prompt):]))
        records["domain"].append("math")
    datasets.Dataset.from_dict(records).save_to_disk(str(folder))
    return folder


@pytest.fixture(scope="session")
def prepared_dataset(tmp_path_factory, v3_tokenizer_dir) -> Path:
    return build_dataset(tmp_path_factory.mktemp("prepared") / "data", v3_tokenizer_dir)


def write_config(folder: Path, runs_dir: Path, **sections: dict) -> Path:
    """configs/tiny.toml with sections overridden, runs going to ``runs_dir``."""
    data = tomllib.loads(TINY.read_text(encoding="utf-8"))
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    data["runs"] = {"dir": str(runs_dir)}
    config = parse_config(data, origin="test", base_dir=TINY.parent)
    path = folder / "config.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    return path


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return tmp_path / "runs"


def cli_env(tmp_home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", R1TUI_HEARTBEAT_S="1")
    if tmp_home is not None:
        env["HOME"] = str(tmp_home)
    return env


def r1tui(*args: str, env: dict | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "r1tui", *args], capture_output=True, text=True,
                          env=env or cli_env(), timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1tui {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout: float = 120, poll: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def runs_helpers():
    """The helpers above, for test modules (importlib mode has no sibling imports)."""
    from types import SimpleNamespace

    return SimpleNamespace(write_config=write_config, r1tui=r1tui, cli_env=cli_env, wait_for=wait_for,
                           build_dataset=build_dataset, repo=REPO)

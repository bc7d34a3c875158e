"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "configs" / "tiny.toml"


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _offline_and_isolated(tmp_path_factory):
    """No test may reach the Hub, and Unsloth/HF caches go to a temp dir, not ~."""
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "UNSLOTH_CACHE_DIR", "TRITON_CACHE_DIR")}
    os.environ.update({
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(home / "hf"), "UNSLOTH_CACHE_DIR": str(home / "unsloth"), "TRITON_CACHE_DIR": str(home / "triton"),
    })
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_config_path() -> Path:
    return TINY_CONFIG


@pytest.fixture(scope="session")
def v3_tokenizer_dir(tmp_path_factory) -> Path:
    """A transformers tokenizer folder built offline from mistral-common's v3 file."""
    from r1tui.data.tokenizer import save_hf_tokenizer

    return save_hf_tokenizer("v3", tmp_path_factory.mktemp("v3_tokenizer"))


@pytest.fixture(scope="session")
def tekken_v11_folder(tmp_path_factory) -> Path:
    """Tekken in the v11 format, as Mistral Small 3.2 (2506) ships it: the same vocabulary, and
    (v11 needs them listed) the special tokens, with [ARGS] and [CALL_ID] among them."""
    import json

    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    from r1tui.data.tokenizer import tokenizer_file

    folder = tmp_path_factory.mktemp("tekken_v11")
    data = json.loads(tokenizer_file("tekken").read_text(encoding="utf-8"))
    data["config"]["version"] = "v11"
    data.pop("image", None)
    special = [dict(token) for token in Tekkenizer.DEPRECATED_SPECIAL_TOKENS]
    named = {32: "[ARGS]", 33: "[CALL_ID]"}
    special += [{"rank": rank, "token_str": named.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
                for rank in range(len(special), data["config"]["default_num_special_tokens"])]
    data["special_tokens"] = special
    (folder / "tekken.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


# ---- the real tiny GGUFs of tests/tiny_gguf.py (built once per session, shared by
# the eval, infer and dashboard tests). Loaded by path: tests are not a package.

def _load_tiny_gguf():
    name = "r1tui_test_tiny_gguf"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("tiny_gguf.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tiny_gguf = _load_tiny_gguf()
scripted_gguf = tiny_gguf.scripted_gguf
random_gguf = tiny_gguf.random_gguf
scripted_model_dir = tiny_gguf.scripted_model_dir
scripted_reply = tiny_gguf.scripted_reply
llama_teacher = tiny_gguf.llama_teacher  # llama.cpp's own OpenAI-compatible server


# ---------------------------------------------------------------- runs and training
# A masked dataset built here with the real v3 tokenizer and chat template (ids and labels
# made together: -100 over the prompt), in the data stage's on-disk format, so the runs
# and train tests do not depend on the data stage's code; tiny configs; CLI helpers.

from r1tui.config import dump_toml, parse_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
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

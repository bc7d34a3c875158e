"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import importlib.util
import os
import sys
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

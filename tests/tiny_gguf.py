"""Builds real tiny Q4_K_M GGUFs for the eval and infer tests (not a test module).

Both are MistralForCausalLM models with the tiny preset's dimensions and the real v3
tokenizer folder, converted by llama.cpp's own converter (the copy install.sh keeps
in .venv/share/r1tui/llama.cpp) and quantized with llama_cpp.llama_model_quantize:

- ``random``: seeded random weights. It never stops by itself and says nothing useful.
- ``scripted``: hand-set weights that make it a bigram chain. Attention and MLP
  outputs are zero, so the last hidden state is the current token's embedding; each
  token of SCRIPT has its own one-hot embedding and the head maps it to the next
  one, every other token maps to the first. Whatever the prompt, greedy decoding
  emits SCRIPT and then </s>: a real GGUF, run by real llama.cpp, whose answer is known.
  A token the script uses twice is spelled the second time with SentencePiece's byte
  tokens, so every chain token is distinct.

Builds are cached per folder, so the eval and infer test folders share one build:
tests/conftest.py loads this module and re-exports its session fixtures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = "<think>Two plus two makes four. Verify: 4-2=2, so it holds.</think>\nFINAL ANSWER: 4"


def converter_dir() -> Path:
    folder = Path(sys.prefix) / "share" / "r1tui" / "llama.cpp"
    if not (folder / "convert_hf_to_gguf.py").is_file():
        raise RuntimeError(f"llama.cpp's converter is missing at {folder}; run the converter lines of install.sh")
    return folder


def script_chain(script: str = SCRIPT) -> list[int]:
    """Distinct token ids that decode to ``script`` as an assistant reply, ending with </s>."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    from r1tui.data.tokenizer import load_reference

    reference = load_reference("v3")
    ids = reference.encode_chat_completion(ChatCompletionRequest(
        messages=[UserMessage(content="q"), AssistantMessage(content=script)])).tokens
    ids = ids[ids.index(4) + 1:]  # after [/INST]
    pieces = reference.instruct_tokenizer.tokenizer._model
    chain: list[int] = []
    for token in ids:
        if token not in chain:
            chain.append(token)
            continue
        for byte in pieces.id_to_piece(token).replace("\u2581", " ").encode("utf-8"):
            byte_token = pieces.piece_to_id(f"<0x{byte:02X}>")
            if byte_token in chain:
                raise ValueError(f"script repeats byte {byte:#x}; choose a script with fewer repeats")
            chain.append(byte_token)
    return chain


def build_model(folder: Path, kind: str = "random") -> Path:
    """The Hugging Face folder (fp16 weights + v3 tokenizer) of a ``random`` or ``scripted`` tiny model."""
    model_dir = folder / f"{kind}-model"
    if (model_dir / "config.json").is_file():
        return model_dir
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from r1tui.calculator import PRESETS
    from r1tui.data.tokenizer import save_hf_tokenizer

    arch = PRESETS["tiny"]
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, head_dim=arch.head_dim,
        max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    model = MistralForCausalLM(config)
    if kind == "scripted":
        _make_scripted(model, script_chain())
    partial = folder / f".{kind}-model.partial"
    model.to(torch.float16).save_pretrained(partial)
    save_hf_tokenizer("v3", partial)
    partial.replace(model_dir)
    return model_dir


def build_gguf(folder: Path, kind: str = "random") -> Path:
    """The Q4_K_M GGUF of a ``random`` or ``scripted`` tiny model; reuses an earlier build in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    f16 = folder / f"{kind}-F16.gguf"
    q4 = folder / f"{kind}-Q4_K_M.gguf"
    if q4.is_file():
        return q4
    model_dir = build_model(folder, kind)

    converter = converter_dir()
    env = {**os.environ, "PYTHONPATH": str(converter / "gguf-py")}
    subprocess.run(
        [sys.executable, str(converter / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(f16),
         "--outtype", "f16"],
        check=True, env=env, capture_output=True, text=True,
    )

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    partial = q4.with_suffix(".partial")
    status = llama_cpp.llama_model_quantize(str(f16).encode(), str(partial).encode(), params)
    if status != 0:
        raise RuntimeError(f"llama_model_quantize returned {status}")
    partial.replace(q4)
    return q4


# ---- session fixtures (re-exported by tests/conftest.py)


def _shared_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "tiny_gguf"


@pytest.fixture(scope="session")
def scripted_gguf(tmp_path_factory) -> Path:
    """A real Q4_K_M GGUF that answers every prompt with SCRIPT and then </s>."""
    return build_gguf(_shared_folder(tmp_path_factory), "scripted")


@pytest.fixture(scope="session")
def random_gguf(tmp_path_factory) -> Path:
    """A real Q4_K_M GGUF of a seeded random tiny model (never stops on its own)."""
    return build_gguf(_shared_folder(tmp_path_factory), "random")


@pytest.fixture(scope="session")
def scripted_model_dir(tmp_path_factory) -> Path:
    """The Hugging Face folder of the scripted model (for the transformers backend and runs)."""
    folder = _shared_folder(tmp_path_factory)
    folder.mkdir(parents=True, exist_ok=True)
    return build_model(folder, "scripted")


def _make_scripted(model, chain: list[int]) -> None:
    import torch

    hidden = model.config.hidden_size
    if len(chain) > hidden:
        raise ValueError(f"a chain of {len(chain)} tokens needs hidden size >= {len(chain)}")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        embed = model.model.embed_tokens.weight
        head = model.lm_head.weight
        embed.fill_(0.02)                 # every other token: the same vector ...
        head.zero_()
        head[chain[0]].fill_(0.05)        # ... which leads to the script's first token
        for index, token in enumerate(chain[:-1]):
            embed[token].zero_()
            embed[token, index] = 1.0     # a one-hot state per chain token
            head[chain[index + 1], index] = 1.0


@pytest.fixture(scope="session")
def scripted_reply() -> str:
    """What the scripted model says to any prompt."""
    return SCRIPT


# ---------------------------------------------------------------- llama.cpp's own server
# The REAL OpenAI-compatible server of llama-cpp-python (``python -m llama_cpp.server``)
# serving the scripted GGUF, one per session: the generate tests' teacher and the eval
# tests' endpoint.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the llama.cpp server at {url} did not answer within {timeout} s")


@dataclass(frozen=True)
class LlamaServer:
    url: str
    model: str
    log: Path


@pytest.fixture(scope="session")
def llama_teacher(scripted_gguf, tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server on the scripted tiny GGUF (one per session)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(scripted_gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "512"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_serving(url, process)
        yield LlamaServer(url=url, model=str(scripted_gguf), log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

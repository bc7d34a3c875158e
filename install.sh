#!/usr/bin/env bash
# One-command install for a fresh Linux machine (CPU or CUDA), then the default dry run.
#   ./install.sh            -> .venv with everything, llama.cpp's converter, `python demo.py`
# Environment: PYTHON (default python3), VENV (default .venv), TORCH_INDEX_URL (optional:
# where torch comes from, e.g. https://download.pytorch.org/whl/cpu for the small CPU build).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
LLAMA_CPP_PYTHON_VERSION=0.3.36   # keep equal to the pin in pyproject.toml

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# 1. torch first, pinned, from pip's configured indexes (or TORCH_INDEX_URL): PyPI's Linux
#    wheel is the CUDA build, which also runs on a CPU; CI's pip finds the CPU wheel on its
#    own disk. Installing it first stops any later requirement from pulling another build.
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "${PIP[@]}" --index-url "$TORCH_INDEX_URL" "torch==2.13.0"
else
  "${PIP[@]}" "torch==2.13.0"
fi

# 2. llama-cpp-python's source distribution: pip builds the binding from it, and we keep
#    llama.cpp's own converter (convert_hf_to_gguf.py + conversion/ + gguf-py/) from the
#    same sources, so export never downloads or builds anything.
SDIST_DIR="$VENV/share/r1tui/sdist"
mkdir -p "$SDIST_DIR"
SDIST="$SDIST_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
  "$VENV/bin/python" -m pip download --disable-pip-version-check --no-binary :all: --no-deps \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$SDIST_DIR"
fi
CONVERTER_DIR="$VENV/share/r1tui/llama.cpp"
rm -rf "$CONVERTER_DIR" && mkdir -p "$CONVERTER_DIR"
tar -xzf "$SDIST" -C "$CONVERTER_DIR" --strip-components=3 \
  "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" \
  "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/conversion" \
  "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/gguf-py"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_CUDA=on -DLLAVA_BUILD=OFF}"
else
  export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
fi
"${PIP[@]}" "$SDIST"

# 2b. Two of llama.cpp's programs, built from the same sources, offline, static, into
#     share/r1tui/bin/: llama-imatrix (export.imatrix: an importance matrix from the run's own
#     traces) and llama-mtmd-cli (reads images through a Mistral Small 3.x run's mmproj/).
#     Only those targets; about 5 min on 2 cores (another compile of ggml + llama, and mtmd).
#     R1TUI_LLAMA_TOOLS=0 skips it.
if [ "${R1TUI_LLAMA_TOOLS:-1}" != 0 ]; then
  echo "building llama.cpp's llama-imatrix and llama-mtmd-cli from $SDIST (R1TUI_LLAMA_TOOLS=0 skips it)"
  TOOLS_SRC="$(mktemp -d)"
  tar -xzf "$SDIST" -C "$TOOLS_SRC" --strip-components=3 "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  GPU_ARGS=()
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then GPU_ARGS=(-DGGML_CUDA=on); fi
  cmake -S "$TOOLS_SRC" -B "$TOOLS_SRC/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF "${GPU_ARGS[@]}" > "$TOOLS_SRC/configure.log" 2>&1 \
    || { tail -n 30 "$TOOLS_SRC/configure.log"; exit 1; }
  cmake --build "$TOOLS_SRC/build" --target llama-imatrix llama-mtmd-cli -j "$(nproc)" > "$TOOLS_SRC/build.log" 2>&1 \
    || { tail -n 30 "$TOOLS_SRC/build.log"; exit 1; }
  mkdir -p "$VENV/share/r1tui/bin"
  install -m 755 "$TOOLS_SRC/build/bin/llama-imatrix" "$TOOLS_SRC/build/bin/llama-mtmd-cli" "$VENV/share/r1tui/bin/"
  rm -rf "$TOOLS_SRC"
fi

# 3. the project and its pinned dependencies, plus the test tools.
"${PIP[@]}" -e ".[dev]"

# 4. Unsloth. On a CUDA box with its dependencies (triton, xformers, bitsandbytes, ...),
#    holding torch at the pin so no dependency can swap the build. On a CPU box without
#    them: triton/xformers/torchvision cannot be used there, and Unsloth 2026.10 imports
#    and trains on its CPU fallback with only what step 3 already installed (psutil, tqdm,
#    packaging, pyyaml, regex, pillow, requests, protobuf, sentencepiece come with
#    transformers, accelerate, peft and mistral-common). Its other listed extras are not
#    needed there: tyro, json5, structlog and hf_transfer are imported nowhere in
#    unsloth/unsloth_zoo, msgspec only by the vLLM path, einops only by vendored GPU
#    kernels, nest_asyncio inside a try/except (checked for 2026.10.9; see docs/runs.md).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  "${PIP[@]}" -e ".[unsloth]" "torch==2.13.0"
else
  "${PIP[@]}" --no-deps "unsloth==2026.10.9" "unsloth_zoo==2026.10.9"
fi

# 5. the main job on its embedded default: a dry run of config.toml (no GPU, writes nothing).
"$VENV/bin/python" demo.py

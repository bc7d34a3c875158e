"""The run's base model as a GGUF, made by the export's own recipe, for `r1tui eval --vs base`.

The base weights the adapter was trained on are saved in ``export.merge_dtype`` with the
same tokenizer folder as the merged model, converted by llama.cpp's converter and
quantized to the quant type of the tuned GGUF being compared, so the two files differ
by the LoRA delta alone. The result is cached in ``<runs.dir>/.cache/base-gguf/<key>/``
(``RunLayout.base_gguf_cache``), keyed by the base weights, the tokenizer, the dtype and
the quant: every run on the same base reuses it. Intermediate files (the saved folder,
the F16 GGUF when a smaller quant is wanted) are removed once the GGUF is in place.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from r1tui.config import Config
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error
from r1tui.export.gguf import convert_to_gguf, find_converter, quantize_gguf
from r1tui.export.merge import (
    base_architecture,
    converter_input,
    merge_adapter,
    merged_bytes,
    resolve_base,
)
from r1tui.quants import QUANT_TYPES
from r1tui.runs.disk import check_free_space
from r1tui.runs.files import digest, fingerprint, make_private, remove_stale_temps
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

StepFn = Callable[[str], None]


def base_of(config: Config, layout: RunLayout) -> str:
    """The run's base weights: a local folder, or a Hub id in the local cache."""
    if (layout.adapter / "adapter_config.json").is_file():
        return resolve_base(config, layout.root, layout.adapter)
    if config.model.random_init and layout.base.is_dir():
        return str(layout.base)
    if config.model.path is not None and Path(config.model.path).is_dir():
        return str(config.model.path)
    return config.model.name


def base_gguf_path(config: Config, layout: RunLayout, quant: str) -> Path:
    """Where the base GGUF for ``quant`` is (or will be) cached."""
    base = base_of(config, layout)
    local = Path(base).is_dir()
    key = digest({"base": fingerprint(Path(base)) if local else base, "tokenizer": tokenizer_spec(config),
                  "dtype": config.export.merge_dtype, "quant": quant})
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", config.model.name.rstrip("/").split("/")[-1]) or "model"
    return layout.base_gguf_cache / key / f"{name}-base-{quant}.gguf"


def build_base_gguf(config: Config, layout: RunLayout, quant: str, on_step: StepFn | None = None) -> Path:
    """The cached base GGUF for ``quant``, made now if it is not there yet."""
    if quant not in QUANT_TYPES:
        raise R1Error(f"cannot export the base model at {quant!r}; allowed: {', '.join(QUANT_TYPES)}")
    target = base_gguf_path(config, layout, quant)
    if target.is_file():
        return target

    def step(message: str) -> None:
        log.info("base GGUF: %s", message)
        if on_step is not None:
            on_step(message)

    base = base_of(config, layout)
    converter = find_converter(config.export.llama_cpp_dir)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    if config.runs.private:
        make_private(layout.base_gguf_cache)  # the cache follows the runs' own privacy
    remove_stale_temps(folder)
    arch = base_architecture(base, config)
    dtype = config.export.merge_dtype
    check_free_space(folder, 2 * merged_bytes(arch, dtype), f"the base model's {dtype} copy and its F16 GGUF")
    saved = folder / ".base-model"
    f16 = target if quant == "F16" else folder / f".{target.stem}-F16.gguf"
    try:
        merge_adapter(None, saved, base=base, dtype=dtype, tokenizer_spec=tokenizer_spec(config),
                      on_step=lambda number, total, message: step(f"{message} ({number}/{total})"))
        step("converting to an F16 GGUF")
        with converter_input(saved) as source:  # a Tekken folder is read through a view without tekken.json
            convert_to_gguf(source, f16, converter, model_name=f"{config.model.name.split('/')[-1]} base")
        if quant != "F16":
            step(f"quantizing to {quant}")
            quantize_gguf(f16, target, quant)
    finally:
        shutil.rmtree(saved, ignore_errors=True)
        if f16 != target:
            f16.unlink(missing_ok=True)
    return target

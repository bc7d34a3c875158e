"""Fold a LoRA adapter into its base weights and save a folder llama.cpp converts faithfully.

The merged folder holds fp16 (or bf16) safetensors and the tokenizer r1tui publishes
(``r1tui.data.tokenizer.published_tokenizer``): ``AutoTokenizer`` loads it as
mistral-common's own encoder (exact ids), and llama.cpp's converter finds what it needs,
with the two traps handled (see README): ``tokenizer.model`` is present (transformers 5
never writes it, and without it the converter falls back to tokenizer.json and loses the
scores), and ``add_prefix_space`` is false (else llama.cpp adds a space after every
control token). ``converter_input`` is the folder the converter reads.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from r1tui.config import Config
from r1tui.data.tokenizer import write_published_tokenizer
from r1tui.errors import R1Error
from r1tui.runs.disk import check_free_space
from r1tui.runs.files import remove_stale_temps, replace_dir, temp_sibling
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
# What a vision checkpoint keeps beside its weights for images (llama.cpp's --mmproj reads it).
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
StepFn = Callable[[int, int, str], None]


def adapter_base(adapter_dir: Path, run_dir: Path | None = None) -> str | None:
    """`base_model_name_or_path` from adapter_config.json, as a local folder when it is one."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    if not config_path.is_file():
        raise R1Error(f"{adapter_dir}: no adapter_config.json; train first (`r1tui train`) or pass a run with adapter/")
    named = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not named:
        return None
    candidate = Path(named).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    for root in filter(None, (run_dir, Path(adapter_dir), Path.cwd())):
        if (Path(root) / candidate).is_dir():
            return str((Path(root) / candidate).resolve())
    return named  # a Hub id (its files are in the local Hub cache since training)


def resolve_base(config: Config, run_dir: Path, adapter_dir: Path) -> str:
    """The base weights to merge into: the adapter's own record first, then the config."""
    named = adapter_base(adapter_dir, run_dir)
    if named and Path(named).is_dir():
        return named
    if config.model.random_init and RunLayout(Path(run_dir)).base.is_dir():
        return str(RunLayout(Path(run_dir)).base)
    if config.model.path is not None and Path(config.model.path).is_dir():
        return str(config.model.path)
    if named and re.fullmatch(r"[\w.-]+/[\w.-]+", named) and not named.startswith("."):
        return named  # a Hub id: from_pretrained finds it in the local Hub cache
    if named:
        raise R1Error(f"the adapter's base model {named!r} is not a folder here; set model.path to the base model folder")
    return config.model.name


def base_architecture(base: str, config: Config):
    from r1tui.calculator import Architecture, resolve_architecture

    config_json = Path(base) / "config.json"
    if config_json.is_file():
        return Architecture.from_config_json(config_json)
    return resolve_architecture(config.model.architecture)


def merged_bytes(arch, dtype: str) -> int:
    from r1tui.calculator import count_checkpoint_parameters

    return count_checkpoint_parameters(arch) * DTYPE_BYTES[dtype]


def merge_adapter(adapter_dir: Path | None, out_dir: Path, *, base: str, dtype: str = "float16",
                  tokenizer_spec: str = "v3", arch=None, on_step: StepFn | None = None) -> Path:
    """merge_and_unload() into `base`, save to `out_dir` atomically; returns `out_dir`.

    Without an adapter the base itself is saved the same way (what `r1tui eval --vs base`
    converts, so that base and tuned GGUFs are made by one recipe).
    """
    adapter_dir, out_dir = (Path(adapter_dir) if adapter_dir is not None else None), Path(out_dir)
    steps = 5 if adapter_dir is not None else 3

    def step(number: int, message: str) -> None:
        log.info("merge: %s", message)
        if on_step is not None:
            on_step(number, steps, message)

    if arch is not None:
        check_free_space(out_dir.parent, merged_bytes(arch, dtype), f"the merged {dtype} model")
    import torch
    from transformers.utils import logging as transformers_logging

    from r1tui.train.base import model_class

    # the steps are reported through `on_step`; transformers' own bars on stderr would stand
    # beside the CLI's progress bar, and above its one-line error when the export fails
    transformers_logging.disable_progress_bar()
    torch_dtype = getattr(torch, dtype)
    remove_stale_temps(out_dir.parent)
    tmp = temp_sibling(out_dir)
    try:
        step(1, f"loading base {base} ({dtype})")
        try:
            # a Mistral3 checkpoint loads whole: its vision part is saved unchanged beside the
            # merged language model (the gguf stage writes it to its own mmproj file)
            model = model_class(base).from_pretrained(base, dtype=torch_dtype, low_cpu_mem_usage=True)
        except OSError as exc:
            raise R1Error(f"cannot load the base model {base!r} ({str(exc).splitlines()[0]}); "
                          "set model.path to a local copy of the base weights") from None
        if adapter_dir is not None:
            from peft import PeftModel

            step(2, f"loading adapter {adapter_dir}")
            model = PeftModel.from_pretrained(model, str(adapter_dir))
            step(3, "merging LoRA weights into the base")
            model = model.merge_and_unload()
        model.config.dtype = torch_dtype
        step(steps - 1, f"saving {dtype} safetensors")
        model.save_pretrained(str(tmp), safe_serialization=True)
        del model
        step(steps, "writing the tokenizer folder")
        write_published_tokenizer(tokenizer_spec, tmp)
        for name in PROCESSOR_FILES:  # a Mistral3 checkpoint's image preprocessing, unchanged
            if (Path(base) / name).is_file():
                shutil.copyfile(Path(base) / name, tmp / name)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


@contextmanager
def converter_input(merged: Path, mmproj: bool = False) -> Iterator[Path]:
    """The folder llama.cpp's converter reads for ``merged``.

    A SentencePiece folder is read as it is (the converter takes tokenizer.model and
    tokenizer_config.json, never transformers' tokenizer). With ``tekken.json`` the
    converter would build its vocabulary with ``AutoTokenizer``, which then returns
    ``MistralCommonBackend`` (no ``.vocab``: conversion fails), so it reads a sibling
    folder of links to merged/'s files without tekken.json and with the tokenizer.json
    class named in tokenizer_config.json.

    ``mmproj`` (the vision part of a Mistral3 checkpoint): the pinned converter takes the
    ``[IMG_BREAK]`` row of the language model's embedding into the mmproj
    (``v.token_embd.img_break``, without which llama.cpp refuses the file), but drops every
    tensor named ``language_model.*`` before it gets there, which is how transformers saves
    a Mistral3. The view then also holds ``model-img-break.safetensors``: that embedding's
    first rows up to the token, under the name the converter looks for.
    """
    merged = Path(merged)
    if not (merged / "tekken.json").is_file() and not mmproj:
        yield merged
        return
    view = temp_sibling(merged, ".convert")
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir()
    try:
        for path in merged.iterdir():
            if path.name not in ("tekken.json", "tokenizer_config.json", SAFETENSORS_INDEX):
                (view / path.name).symlink_to(path.resolve())
        config = json.loads((merged / "tokenizer_config.json").read_text(encoding="utf-8"))
        if (merged / "tekken.json").is_file():
            config["tokenizer_class"] = "TokenizersBackend"
        (view / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        index = json.loads((merged / SAFETENSORS_INDEX).read_text(encoding="utf-8")) \
            if (merged / SAFETENSORS_INDEX).is_file() else None
        if mmproj:
            name = _image_break_rows(merged, view / "model-img-break.safetensors")
            if index is not None and name:
                index["weight_map"][name] = "model-img-break.safetensors"
        if index is not None:
            (view / SAFETENSORS_INDEX).write_text(json.dumps(index), encoding="utf-8")
        yield view
    finally:
        shutil.rmtree(view, ignore_errors=True)


SAFETENSORS_INDEX = "model.safetensors.index.json"


def _image_break_rows(merged: Path, target: Path) -> str | None:
    """Write the language model's embedding rows 0..[IMG_BREAK] to ``target`` as
    ``embed_tokens.weight``; returns that name (None when the tokenizer has no such token)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    added = json.loads((merged / "tokenizer.json").read_text(encoding="utf-8")).get("added_tokens") or []
    token = next((int(t["id"]) for t in added if t.get("content") == "[IMG_BREAK]"), None)
    if token is None:
        return None
    for shard in sorted(merged.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as tensors:
            key = next((k for k in tensors.keys() if k.endswith("embed_tokens.weight")), None)
            if key is not None:
                rows = tensors.get_slice(key)[: token + 1].contiguous()
                save_file({"embed_tokens.weight": rows}, str(target))
                return "embed_tokens.weight"
    raise R1Error(f"{merged}: no embed_tokens.weight in its safetensors; the vision projector needs the "
                  "[IMG_BREAK] embedding of the language model")

"""config.toml -> validated, typed settings.

Every knob of the pipeline lives here. This module parses and validates only: it reads
no file but the config itself. What ``model.tokenizer = "auto"`` stands for (the
tokenizer file ``model.path`` ships, else the preset's) is the data layer's question
(``r1tui.data.tokenizer.tokenizer_spec``). Unknown keys, wrong types and impossible
values stop with one line naming the key, the value and what is allowed. Paths are
resolved relative to the config file. Secrets never live in the file: the Hub token
comes from ``HF_TOKEN`` or the Hub's own login, and a ``token`` key is rejected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from r1tui.errors import ConfigError
from r1tui.quants import QUANT_TYPES

LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ARCHITECTURES = ("mistral-small-2409", "mistral-small-24b", "mistral-small-3.1", "mistral-small-3.2",
                 "magistral-small", "tiny")

# Every number has the range a real run can have: a typo of a few digits is one clear
# line, not a VRAM estimate of 1e20 GB.
MILLION = 1_000_000
Tokens = Annotated[int, Field(ge=1, le=2**20)]  # a sequence or a generation budget (1M tokens)
Steps = Annotated[int, Field(ge=1, le=100 * MILLION)]
Count = Annotated[int, Field(ge=1, le=100 * MILLION)]  # rows, prompts, questions
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what numpy, torch and llama.cpp all take
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Temperature = Annotated[float, Field(ge=0.0, le=10.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]
Price = Annotated[float, Field(ge=0.0, le=10_000.0)]  # USD per million tokens


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = "mistralai/Mistral-Small-Instruct-2409"
    # A built-in architecture preset, or a path to a local config.json.
    architecture: str = "mistral-small-2409"
    # Where the weights come from: a local folder, or empty for the Hub id in `name`.
    path: Path | None = None
    # Build a random-init model of `architecture` (the offline tiny model).
    random_init: bool = False
    # "auto" (the tokenizer in `path`, else the preset's), "v3" (SentencePiece, 2409),
    # "tekken" (Tekken in the v3 format: Nemo), "tekken-v7" (Mistral Small 3.x, 24B) or a folder
    # holding tokenizer files.
    tokenizer: str = "auto"
    max_seq_length: Tokens = 8192
    load_in_4bit: bool = True
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    licence: str = ""  # empty: taken from the architecture preset

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value in ARCHITECTURES or value.endswith(".json"):
            return value
        raise ValueError(f"must be one of {', '.join(ARCHITECTURES)} or a path to a config.json")


class LoraConfig(_Section):
    r: Annotated[int, Field(ge=1, le=4096)] = 64
    alpha: Annotated[int, Field(ge=1, le=65536)] = 128
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    target_modules: list[str] = Field(default_factory=lambda: list(LORA_TARGET_MODULES))

    @field_validator("target_modules")
    @classmethod
    def _known_modules(cls, modules: list[str]) -> list[str]:
        unknown = [m for m in modules if m not in LORA_TARGET_MODULES]
        if unknown:
            raise ValueError(f"unknown module {unknown[0]!r}; allowed: {', '.join(LORA_TARGET_MODULES)}")
        if not modules:
            raise ValueError(f"needs at least one of {', '.join(LORA_TARGET_MODULES)}")
        return modules


class TrainConfig(_Section):
    backend: Literal["auto", "unsloth", "hf"] = "auto"
    optimizer: Literal["adamw_8bit", "adamw_torch", "paged_adamw_8bit", "sgd"] = "adamw_8bit"
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 2e-4
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.03
    weight_decay: Fraction = 0.0
    per_device_batch_size: Annotated[int, Field(ge=1, le=65536)] = 1
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=65536)] = 8
    epochs: Annotated[float, Field(gt=0.0, le=10_000.0)] = 1.0
    max_steps: Annotated[int, Field(ge=-1, le=100 * MILLION)] = -1  # -1: run `epochs`
    logging_steps: Steps = 1
    save_steps: Steps = 100
    # Loss on the held-out rows (data.eval_rows) every this many steps; 0: no evaluation.
    eval_steps: Annotated[int, Field(ge=0, le=100 * MILLION)] = 0
    seed: Seed = 3407
    gradient_checkpointing: bool = True
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    gpu_sample_seconds: Annotated[float, Field(ge=0.1, le=3600.0)] = 5.0
    # With several processes (--processes, --nodes): "ddp" keeps a whole model on every
    # rank; "fsdp" shards the base, the LoRA weights, gradients and optimizer state across
    # the ranks (FSDP2 through accelerate, backend hf). One process ignores it.
    distributed: Literal["ddp", "fsdp"] = "ddp"
    # Under fsdp: keep the sharded parameters and optimizer state in CPU RAM between uses.
    fsdp_offload: bool = False

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (train for `epochs`) or a positive number of steps")
        return value


class HardwareConfig(_Section):
    gpu_name: str = "RTX 4090"
    gpu_memory_gb: Annotated[float, Field(gt=0.0, le=100_000.0)] = 24.0


class DataConfig(_Section):
    # "synthetic" (the offline generator), a local .jsonl/.parquet path, or "hf:<dataset>".
    source: str = "synthetic"
    split: str = "train"
    # Field mapping for local files: canonical name -> column in the file.
    fields: dict[str, str] = Field(default_factory=dict)
    num_examples: Count = 2000  # synthetic rows, or a cap on other sources
    # Rows the prepare stage holds out of training (a seeded pick, disjoint from the rest)
    # for the validation loss of train.eval_steps; 0: none.
    eval_rows: Annotated[int, Field(ge=0, le=100 * MILLION)] = 0
    seed: Seed = 0
    system_prompt: str = ""
    train_on: Literal["all", "last"] = "all"
    mask_think: bool = False
    overlong: Literal["drop", "truncate"] = "drop"


class ExportConfig(_Section):
    quant_types: list[str] = Field(default_factory=lambda: ["Q4_K_M"])
    merge_dtype: Literal["float16", "bfloat16"] = "float16"
    # A llama.cpp checkout holding convert_hf_to_gguf.py; empty: the one install.sh kept.
    llama_cpp_dir: Path | None = None
    # Tokens of rendered traces each quant is measured on against the F16 (gguf/quality.json); 0: off.
    quality_tokens: Annotated[int, Field(ge=0, le=2**20)] = 2048
    # Also write each k-quant with an importance matrix computed by llama-imatrix on the run's
    # own training rows (imatrix/, gguf/<stem>-imatrix-<QUANT>.gguf); `r1tui export --imatrix`.
    imatrix: bool = False
    imatrix_tokens: Annotated[int, Field(ge=32, le=2**24)] = 65536  # calibration tokens (whole rows)
    imatrix_chunk: Annotated[int, Field(ge=16, le=32768)] = 512  # llama-imatrix's -c: tokens per chunk
    # Which of two twins push publishes: the imatrix quant, the plain one, or both.
    imatrix_publish: Literal["imatrix", "plain", "both"] = "imatrix"

    @field_validator("quant_types")
    @classmethod
    def _known_quants(cls, quants: list[str]) -> list[str]:
        unknown = [q for q in quants if q not in QUANT_TYPES]
        if unknown:
            raise ValueError(f"unknown quant type {unknown[0]!r}; allowed: {', '.join(QUANT_TYPES)}")
        if not quants:
            raise ValueError(f"needs at least one of {', '.join(QUANT_TYPES)}")
        return quants


class HubConfig(_Section):
    repo_id: str = ""  # HF_REPO_ID overrides
    private: bool = True


SAMPLED_TEMPERATURE = 0.6  # the reasoning-eval norm (R1 report, lighteval, open-r1) for n > 1
SAMPLED_TOP_P = 0.95


class EvalConfig(_Section):
    source: str = "synthetic"  # synthetic, a file, hf:<dataset>, or a standard set (gsm8k, math500, ...)
    num_samples: Count = 30  # questions
    samples_per_question: Annotated[int, Field(ge=1, le=1024)] = 1  # n: pass@1 averages over n; pass@k, maj@k
    seed: Seed = 1_000_003  # disjoint from data.seed's stream by construction
    max_new_tokens: Tokens = 1024
    # unset: greedy (0.0, 1.0) with one sample per question, else 0.6 and 0.95
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n_ctx: Tokens = 4096
    numeric_tolerance: Fraction = 1e-3
    # Generations at once: llama.cpp contexts over one memory-mapped GGUF, or requests in
    # flight to `base_url`.
    slots: Annotated[int, Field(ge=1, le=256)] = 1
    # An OpenAI-compatible server (vLLM, SGLang, llama.cpp's llama-server) to generate with
    # instead of a local llama.cpp; the prompt is sent as the training token ids.
    base_url: str = ""
    model: str = ""  # the served model's name (empty: the server's first model)
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from the file

    @property
    def sampled(self) -> bool:
        return self.samples_per_question > 1

    @property
    def sampling(self) -> tuple[float, float]:
        """(temperature, top_p) for generation: what is set, else the default for n."""
        temperature = self.temperature if self.temperature is not None else (
            SAMPLED_TEMPERATURE if self.sampled else 0.0)
        top_p = self.top_p if self.top_p is not None else (SAMPLED_TOP_P if temperature > 0 else 1.0)
        return temperature, top_p


class InferConfig(_Section):
    """How replies are generated in chat and eval (r1tui.infer.thinking): the think block
    prefilled, and s1's budget forcing of its length."""

    # Start the reply with the think opening exactly as training rendered it; "auto": when the
    # model's run trained on replies that open with it (read from the run's prepared data).
    prefill_think: bool | Literal["auto"] = "auto"
    max_think_tokens: Annotated[int, Field(ge=0, le=2**20)] = 0  # 0: no cap; at the cap the answer line is forced
    min_think_tokens: Annotated[int, Field(ge=0, le=2**20)] = 0  # below it a closing tag becomes `continuation`
    continuation: Annotated[str, Field(min_length=1, max_length=64)] = "Wait"
    answer_tokens: Annotated[int, Field(ge=1, le=65536)] = 64  # the answer's own budget after a forced close


class TeacherConfig(_Section):
    # An OpenAI-compatible chat-completions endpoint, or several: requests go to the least
    # loaded one (more vLLM / SGLang replicas, on as many machines as there are).
    base_url: str | list[str] = "http://127.0.0.1:8000/v1"
    model: str = ""  # empty: no teacher configured (the generate stage is skipped)
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from the file
    # Where the prompts come from: any data source (a .jsonl/.parquet, hf:<dataset>, synthetic).
    prompts: str = "synthetic"
    num_prompts: Count = 200  # a cap on the prompts read
    samples: Annotated[int, Field(ge=1, le=1024)] = 4  # completions per prompt
    temperature: Temperature = 0.6
    top_p: TopP = 0.95
    max_tokens: Tokens = 16384
    concurrency: Annotated[int, Field(ge=1, le=4096)] = 16
    timeout_s: Annotated[float, Field(gt=0.0, le=86_400.0)] = 600.0  # one request, before it is retried
    max_retries: Annotated[int, Field(ge=0, le=100)] = 5  # on 429 / 5xx / timeouts, with backoff and Retry-After
    keep: Literal["all", "shortest"] = "all"  # correct samples kept per prompt
    keep_n: Annotated[int, Field(ge=1, le=1024)] = 1  # with keep = "shortest"
    near_duplicate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9  # word 5-gram Jaccard at or above: a duplicate
    price_in_per_m: Price = 0.0  # USD per million prompt tokens (0: no cost shown)
    price_out_per_m: Price = 0.0  # USD per million completion tokens

    @property
    def base_urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @field_validator("base_url")
    @classmethod
    def _some_url(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls or any(not u.startswith(("http://", "https://")) for u in urls):
            raise ValueError("needs one or more http(s):// URLs of OpenAI-compatible servers (ending in /v1)")
        return value


class DecontaminateConfig(_Section):
    ngram: Annotated[int, Field(ge=3, le=64)] = 8  # word n-grams shared with an eval prompt (open-r1 uses 8)
    # Files of prompts to keep out of training besides the eval sets r1tui knows.
    against: list[str] = Field(default_factory=list)


class RunsConfig(_Section):
    dir: Path = Path("runs")
    # Run folders hold training data, adapters and cards: on a shared GPU box only their
    # owner may read them (folders 0700, files 0600) unless this is false.
    private: bool = True


class AlertsConfig(_Section):
    """What the dashboard does when a run finishes, crashes, fails, logs a NaN/inf or
    spiking loss, or fills its GPU (r1tui.runs.alerts): a toast always, and these."""

    bell: bool = True  # ring the terminal bell (BEL)
    desktop: bool = True  # desktop notification escapes OSC 9 and OSC 777 (through tmux)
    loss_spike: bool = True  # alert when the loss jumps far above its running average
    vram_percent: Annotated[float, Field(gt=0.0, le=100.0)] = 95.0  # GPU memory use that alerts


class Config(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    infer: InferConfig = Field(default_factory=InferConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    runs: RunsConfig = Field(default_factory=RunsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    # Where the file was read from (not a key in the file).
    source_path: Path | None = Field(default=None, exclude=True)

    @property
    def hub_repo_id(self) -> str:
        return os.environ.get("HF_REPO_ID") or self.hub.repo_id

    def to_toml_dict(self) -> dict[str, Any]:
        """The config as plain TOML-able data (paths as strings, no None)."""
        return _drop_none(self.model_dump(mode="json"))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


_SECRET_KEYS = {"token", "hf_token", "api_key", "password", "secret"}
_PATH_FIELDS = (("model", "path"), ("export", "llama_cpp_dir"), ("runs", "dir"))


def parse_config(data: dict[str, Any], origin: str = "config", base_dir: Path | None = None) -> Config:
    """Validate a TOML-shaped dict. Raises ConfigError with one line on the first problem."""
    _refuse_secrets(data, origin)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, data, origin)) from None
    _check_eval_split(config, origin)
    _check_think_budget(config, origin)
    base = base_dir or Path.cwd()
    for section, key in _PATH_FIELDS:
        value = getattr(getattr(config, section), key)
        if value is not None and not value.is_absolute():
            setattr(getattr(config, section), key, (base / value).resolve())
    for local_source in ("data", "eval"):
        section = getattr(config, local_source)
        if is_local_source(section.source):
            section.source = str((base / section.source).resolve())
    if is_local_source(config.teacher.prompts):
        config.teacher.prompts = str((base / config.teacher.prompts).resolve())
    if config.model.tokenizer not in ("auto", "v3", "tekken", "tekken-v7"):
        config.model.tokenizer = str((base / config.model.tokenizer).resolve())
    if config.model.architecture.endswith(".json"):
        config.model.architecture = str((base / config.model.architecture).resolve())
        _check_architecture_file(config.model.architecture, origin)
    return config


def _check_eval_split(config: Config, origin: str) -> None:
    """The keys of the validation loss, against each other (each alone is valid)."""
    eval_steps, eval_rows, rows = config.train.eval_steps, config.data.eval_rows, config.data.num_examples
    if eval_steps and not eval_rows:
        raise ConfigError(f"{origin}: train.eval_steps = {eval_steps}: evaluation needs held-out rows; "
                          "set data.eval_rows (e.g. 100), or train.eval_steps = 0")
    if eval_rows >= rows:
        raise ConfigError(f"{origin}: data.eval_rows = {eval_rows}: holds out every row of data.num_examples = "
                          f"{rows}; hold out fewer, or read more rows")


def _check_think_budget(config: Config, origin: str) -> None:
    low, high = config.infer.min_think_tokens, config.infer.max_think_tokens
    if high and low > high:
        raise ConfigError(f"{origin}: infer.min_think_tokens = {low}: above infer.max_think_tokens = {high}; "
                          "lower the minimum or raise the cap (0: no cap)")


def check_backend_settings(config: Config) -> None:
    """Refuse, in one line, settings the chosen backend would silently ignore (checked by the
    dry run and before a run starts, not on load: an old run's frozen config stays readable)."""
    problem = unsloth_quantization_problem(config) if config.train.backend == "unsloth" else None
    if problem:
        origin = str(config.source_path) if config.source_path else "config"
        raise ConfigError(f"{origin}: {problem}")


def unsloth_quantization_problem(config: Config) -> str | None:
    """Unsloth always loads 4-bit as NF4 with double quantization, computing in train.dtype;
    other model.bnb_4bit_* settings would be silently ignored under it."""
    model = config.model
    if not model.load_in_4bit:
        return None
    wanted = {"bnb_4bit_quant_type": (model.bnb_4bit_quant_type, "nf4"),
              "bnb_4bit_use_double_quant": (model.bnb_4bit_use_double_quant, True),
              "bnb_4bit_compute_dtype": (model.bnb_4bit_compute_dtype, config.train.dtype)}
    for key, (value, unsloth_value) in wanted.items():
        if value != unsloth_value:
            return (f"model.{key} = {value!r}: the unsloth backend always uses {unsloth_value!r} "
                    f"(NF4, double quant, compute in train.dtype); set it so, or train.backend = \"hf\"")
    return None


def _check_architecture_file(path: str, origin: str) -> None:
    from r1tui.calculator import Architecture

    try:
        Architecture.from_config_json(path)
    except FileNotFoundError:
        raise ConfigError(f"{origin}: model.architecture = {path!r}: no such file; name a model's config.json "
                          f"or a preset ({', '.join(ARCHITECTURES)})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{origin}: model.architecture = {path!r}: not a usable config.json "
                          f"({type(exc).__name__}: {exc}); it needs hidden_size, intermediate_size, "
                          "num_hidden_layers, num_attention_heads and vocab_size") from None


# The standard reasoning eval sets a source may name (r1tui.eval.standard_sets reads them).
STANDARD_EVAL_SETS = ("gsm8k", "math500", "aime24", "aime25", "gpqa-diamond")


def is_local_source(source: str) -> bool:
    """A file path, as opposed to synthetic, hf:<dataset> or a standard set's name."""
    return source not in ("synthetic", *STANDARD_EVAL_SETS) and not source.startswith("hf:")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; paths inside it are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config PATH or run from a folder with config.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at the position shown") from None
    config = parse_config(data, origin=str(path), base_dir=path.resolve().parent)
    config.source_path = path.resolve()
    return config


def dump_toml(config: Config) -> str:
    """Serialise a config back to TOML (used to freeze a run's config)."""
    lines: list[str] = []
    for section, values in config.to_toml_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _refuse_secrets(data: dict[str, Any], origin: str, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(
                f"{origin}: {dotted}: secrets never go in the config file; "
                "set HF_TOKEN in the environment or run `hf auth login`"
            )
        if isinstance(value, dict):
            _refuse_secrets(value, origin, f"{dotted}.")


def _one_line(exc: ValidationError, data: dict[str, Any], origin: str) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    dotted = ".".join(loc)
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"{origin}: unknown key {dotted!r}; allowed here: {', '.join(allowed)}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{origin}: {dotted} = {value!r}: {message}"


def _allowed_keys(section_path: list[str]) -> list[str]:
    model: type[BaseModel] = Config
    for part in section_path:
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return [name for name in model.model_fields if name != "source_path"]


def default_config_path() -> Path:
    """`R1TUI_CONFIG`, else ./config.toml, else the packaged default."""
    env = os.environ.get("R1TUI_CONFIG")
    if env:
        return Path(env)
    return Path("config.toml")

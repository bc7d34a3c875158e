"""Config validation: every kind of bad input stops with one line naming key, value, rule."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from r1tui.config import (
    LORA_TARGET_MODULES,
    QUANT_TYPES,
    Config,
    dump_toml,
    load_config,
    parse_config,
)
from r1tui.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_equals_builtin_defaults():
    shipped = load_config(REPO / "config.toml")
    defaults = parse_config({}, base_dir=REPO)
    assert shipped.to_toml_dict() == defaults.to_toml_dict()


def test_defaults_are_the_missions():
    config = Config()
    assert config.model.name == "mistralai/Mistral-Small-Instruct-2409"
    assert (config.lora.r, config.lora.alpha) == (64, 128)
    assert config.lora.target_modules == list(LORA_TARGET_MODULES)
    assert config.model.max_seq_length == 8192
    assert (config.model.load_in_4bit, config.model.bnb_4bit_quant_type) == (True, "nf4")
    assert config.model.bnb_4bit_use_double_quant and config.model.bnb_4bit_compute_dtype == "bfloat16"
    assert config.export.quant_types == ["Q4_K_M"]
    assert config.train.backend == "auto"


def test_tiny_config_loads_with_paths_relative_to_the_file():
    tiny = load_config(REPO / "configs" / "tiny.toml")
    assert tiny.model.architecture == "tiny" and tiny.model.random_init
    assert tiny.runs.dir == (REPO / "runs").resolve()


@pytest.mark.parametrize(
    ("toml_text", "expected_fragments"),
    [
        ("[lora]\nrank = 8\n", ["unknown key 'lora.rank'", "allowed here: r, alpha, dropout, target_modules"]),
        ("[loraa]\nr = 8\n", ["unknown key 'loraa'", "lora"]),
        ("[lora]\nr = 0\n", ["lora.r = 0", "greater than or equal to 1"]),
        ("[lora]\nr = -4\n", ["lora.r = -4", "greater than or equal to 1"]),
        ("[lora]\nalpha = 0\n", ["lora.alpha = 0", "greater than or equal to 1"]),
        ("[lora]\nr = \"big\"\n", ["lora.r = 'big'", "integer"]),
        ("[lora]\ntarget_modules = [\"q_proj\", \"lm_head\"]\n", ["lora.target_modules", "unknown module 'lm_head'", "q_proj"]),
        ("[model]\nmax_seq_length = 0\n", ["model.max_seq_length = 0", "greater than or equal to 1"]),
        # every number has a range a real run can have
        ("[model]\nmax_seq_length = 99999999999999999999999\n", ["model.max_seq_length", "less than or equal to 1048576"]),
        ("[train]\nmax_steps = 0\n", ["train.max_steps = 0", "-1 (train for `epochs`) or a positive number"]),
        ("[train]\nmax_steps = -2\n", ["train.max_steps = -2", "greater than or equal to -1"]),
        ("[train]\nlearning_rate = 5.0\n", ["train.learning_rate = 5.0", "less than or equal to 1"]),
        ("[train]\nseed = -1\n", ["train.seed = -1", "greater than or equal to 0"]),
        ("[train]\nper_device_batch_size = 1000000\n", ["train.per_device_batch_size", "less than or equal to 65536"]),
        ("[lora]\nr = 100000\n", ["lora.r = 100000", "less than or equal to 4096"]),
        ("[data]\nnum_examples = 1000000000000\n", ["data.num_examples", "less than or equal to 100000000"]),
        ("[eval]\nsamples_per_question = 0\n", ["eval.samples_per_question = 0", "greater than or equal to 1"]),
        ("[eval]\nslots = 1000\n", ["eval.slots = 1000", "less than or equal to 256"]),
        ("[eval]\ntemperature = 50\n", ["eval.temperature = 50", "less than or equal to 10"]),
        ("[teacher]\ntimeout_s = 0\n", ["teacher.timeout_s = 0", "greater than 0"]),
        ("[hardware]\ngpu_memory_gb = -24\n", ["hardware.gpu_memory_gb = -24", "greater than 0"]),
        ("[export]\nquant_types = [\"Q3_K\"]\n", ["export.quant_types", "unknown quant type 'Q3_K'", ", ".join(QUANT_TYPES)]),
        ("[train]\nbackend = \"deepspeed\"\n", ["train.backend = 'deepspeed'", "'auto'", "'unsloth'", "'hf'"]),
        ("[model]\narchitecture = \"llama-70b\"\n", ["model.architecture = 'llama-70b'", "mistral-small-2409"]),
        ("[hub]\ntoken = \"hf_abc\"\n", ["hub.token", "secrets never go in the config file", "HF_TOKEN"]),
        ("[lora]\nr = 8\nr = 9\n", ["not valid TOML"]),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, toml_text, expected_fragments):
    path = tmp_path / "config.toml"
    path.write_text(toml_text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for fragment in expected_fragments:
        assert fragment in message


def test_secret_value_is_never_echoed(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[hub]\ntoken = "hf_supersecret"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert "hf_supersecret" not in str(excinfo.value)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_frozen_copy_round_trips(tmp_path):
    config = load_config(REPO / "configs" / "tiny.toml")
    text = dump_toml(config)
    again = parse_config(tomllib.loads(text), base_dir=tmp_path)
    assert again.to_toml_dict() == config.to_toml_dict()


def test_hf_repo_id_environment_overrides(monkeypatch):
    config = parse_config({"hub": {"repo_id": "me/from-file"}})
    assert config.hub_repo_id == "me/from-file"
    monkeypatch.setenv("HF_REPO_ID", "me/from-env")
    assert config.hub_repo_id == "me/from-env"


def test_cli_prints_one_line_and_exits_nonzero(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[lora]\nr = 0\n")
    result = subprocess.run([sys.executable, "-m", "r1tui", "dry-run", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "lora.r = 0" in lines[0] and "Traceback" not in result.stderr


def test_architecture_json_must_exist_and_be_usable(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[model]\narchitecture = "missing/config.json"\n')
    with pytest.raises(ConfigError, match="model.architecture = .*no such file"):
        load_config(path)
    (tmp_path / "bad.json").write_text('{"hidden_size": 64}')
    path.write_text('[model]\narchitecture = "bad.json"\n')
    with pytest.raises(ConfigError, match="not a usable config.json"):
        load_config(path)


def test_r1tui_config_naming_a_missing_file_is_an_error(tmp_path):
    import os

    env = {**os.environ, "R1TUI_CONFIG": str(tmp_path / "nope.toml")}
    result = subprocess.run([sys.executable, "-m", "r1tui", "dry-run"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 1 and "R1TUI_CONFIG=" in result.stderr and "no such config file" in result.stderr


def test_tokenizer_auto_takes_the_model_folders_own_then_the_presets(tmp_path):
    import json
    import shutil

    from r1tui.data.tokenizer import tokenizer_file, tokenizer_spec

    def resolved(data: dict) -> str:
        return tokenizer_spec(parse_config(data))

    model_dir = tmp_path / "Mistral-Small-Instruct-2409"
    model_dir.mkdir()
    shutil.copy(tokenizer_file("v3"), model_dir / "tokenizer.model.v3")  # as Mistral's repo ships it
    assert resolved({"model": {"path": str(model_dir)}}) == str(model_dir)
    assert resolved({"model": {"path": str(tmp_path)}}) == "v3"  # no file: the preset's
    assert resolved({"model": {"architecture": "mistral-small-24b"}}) == "tekken-v7"  # 2501: V7-Tekken
    # An architecture given as a config.json: the tokenizer next to it, else a one-line error.
    (model_dir / "config.json").write_text(json.dumps({
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
        "vocab_size": 32768}))
    arch = {"architecture": str(model_dir / "config.json")}
    assert resolved({"model": arch}) == str(model_dir)
    (model_dir / "tokenizer.model.v3").unlink()
    with pytest.raises(ConfigError, match="model.tokenizer = 'auto' found no tokenizer.model or tekken.json in "):
        resolved({"model": arch})
    assert parse_config({"model": arch}).model.tokenizer == "auto"  # config.py parses only: no file is read
    # The resolved spec is what a run freezes, so a reloaded run uses the same tokenizer.
    frozen = tmp_path / "frozen.toml"
    config = parse_config({"model": {"architecture": "mistral-small-24b"}})
    tokenizer_spec(config)  # as create_run does before freezing
    frozen.write_text(dump_toml(config))
    assert 'tokenizer = "tekken-v7"' in frozen.read_text() and load_config(frozen).model.tokenizer == "tekken-v7"


@pytest.mark.parametrize(("architecture", "tokenizer", "family"), [
    ("tiny", "tekken", "Tekken"), ("mistral-small-24b", "v3", "SentencePiece")])
def test_tokenizer_of_the_other_family_is_refused(architecture, tokenizer, family):
    from r1tui.data.tokenizer import tokenizer_spec

    with pytest.raises(ConfigError, match=f"is a {family} tokenizer but architecture '{architecture}' uses "):
        tokenizer_spec(parse_config({"model": {"architecture": architecture, "tokenizer": tokenizer}}))


def test_unsloth_backend_refuses_4bit_settings_it_would_ignore(tmp_path, capsys, monkeypatch):
    """Unsloth loads NF4 + double quant computing in train.dtype whatever model.bnb_4bit_* say:
    the dry run and `run`/`train` refuse other values; loading such a config (an old run's
    frozen copy, say) still works."""
    from r1tui.cli import main
    from r1tui.config import check_backend_settings

    check_backend_settings(parse_config({"train": {"backend": "unsloth"}}))  # the defaults are its own
    for model in ({"bnb_4bit_quant_type": "fp4"}, {"bnb_4bit_use_double_quant": False},
                  {"bnb_4bit_compute_dtype": "float16"}):
        config = parse_config({"model": model, "train": {"backend": "unsloth"}})
        with pytest.raises(ConfigError, match=f"model.{next(iter(model))} = .*the unsloth backend always uses"):
            check_backend_settings(config)
        check_backend_settings(parse_config({"model": model, "train": {"backend": "hf"}}))  # hf honours them
    check_backend_settings(parse_config({"model": {"load_in_4bit": False, "bnb_4bit_quant_type": "fp4"},
                                         "train": {"backend": "unsloth"}}))  # no 4-bit, nothing ignored
    path = tmp_path / "config.toml"
    path.write_text('[model]\nbnb_4bit_quant_type = "fp4"\n[train]\nbackend = "unsloth"\n')
    monkeypatch.setenv("DRY_RUN", "1")  # were it not refused, train would only print its plan
    for command in (["dry-run"], ["train"]):
        assert main([*command, "--config", str(path)]) == 1
        assert "the unsloth backend always uses 'nf4'" in capsys.readouterr().err


def test_tokenizer_auto_checks_the_family_of_what_it_found(tmp_path):
    from r1tui.data.tokenizer import tokenizer_file, tokenizer_spec

    folder = tmp_path / "Mistral-Small-24B"
    folder.mkdir()
    (folder / "tekken.json").symlink_to(tokenizer_file("tekken"))
    with pytest.raises(ConfigError, match=f"the tokenizer in {folder} is a Tekken tokenizer but architecture "
                                          "'mistral-small-2409' uses v3"):
        tokenizer_spec(parse_config({"model": {"path": str(folder)}}))
    assert tokenizer_spec(parse_config({"model": {"path": str(folder), "architecture": "mistral-small-24b"}})) == \
        str(folder)


@pytest.mark.parametrize(
    ("toml_text", "expected_fragments"),
    [
        ("[train]\neval_steps = -1\n", ["train.eval_steps = -1", "greater than or equal to 0"]),
        ("[data]\neval_rows = -5\n", ["data.eval_rows = -5", "greater than or equal to 0"]),
        ("[train]\neval_steps = 10\n", ["train.eval_steps = 10", "needs held-out rows", "set data.eval_rows"]),
        ("[data]\nnum_examples = 50\neval_rows = 50\n",
         ["data.eval_rows = 50", "holds out every row of data.num_examples = 50"]),
    ],
)
def test_bad_eval_split_is_one_clear_line(tmp_path, toml_text, expected_fragments):
    path = tmp_path / "config.toml"
    path.write_text(toml_text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith(str(path))
    for fragment in expected_fragments:
        assert fragment in message


def test_eval_split_keys_default_off_and_round_trip(tmp_path):
    assert (Config().train.eval_steps, Config().data.eval_rows) == (0, 0)
    path = tmp_path / "config.toml"
    path.write_text("[train]\neval_steps = 25\n[data]\nnum_examples = 200\neval_rows = 20\n")
    config = load_config(path)
    assert (config.train.eval_steps, config.data.eval_rows) == (25, 20)
    again = parse_config(tomllib.loads(dump_toml(config)), base_dir=tmp_path)
    assert (again.train.eval_steps, again.data.eval_rows) == (25, 20)


@pytest.mark.parametrize("preset", ["mistral-small-3.1", "mistral-small-3.2", "magistral-small"])
def test_mistral_small_3_presets_take_tekken_v7(preset):
    from r1tui.data.tokenizer import tokenizer_spec

    assert tokenizer_spec(parse_config({"model": {"architecture": preset}})) == "tekken-v7"
    with pytest.raises(ConfigError, match=f"is a SentencePiece tokenizer but architecture '{preset}' uses tekken-v7"):
        tokenizer_spec(parse_config({"model": {"architecture": preset, "tokenizer": "v3"}}))


def test_a_mistral3_config_json_is_an_architecture(tmp_path):
    """model.architecture read from a Mistral3ForConditionalGeneration folder: the text config
    sits under text_config, the vision part is known to the calculator and to training."""
    from r1tui.train.base import config_has_vision

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
                                "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                                                "num_attention_heads": 2, "vocab_size": 131072},
                                "vision_config": {"hidden_size": 32, "intermediate_size": 64,
                                                  "num_hidden_layers": 3, "patch_size": 14}}))
    config = parse_config({"model": {"architecture": str(path), "tokenizer": "tekken-v7"}})
    assert config_has_vision(config)
    assert not config_has_vision(parse_config({"model": {"architecture": "mistral-small-24b"}}))
    path.write_text(json.dumps({"architectures": ["Mistral3ForConditionalGeneration"], "text_config": {}}))
    with pytest.raises(ConfigError, match="not a usable config.json .*KeyError.*it needs hidden_size"):
        parse_config({"model": {"architecture": str(path)}})


def test_unsloth_falls_back_to_hf_for_a_vision_checkpoint_in_one_line(caplog):
    from r1tui.train import resolve_backend

    assert resolve_backend(parse_config({"model": {"architecture": "mistral-small-3.1"},
                                         "train": {"backend": "unsloth"}})) == "hf"
    assert [r.getMessage() for r in caplog.records] == [
        "a Mistral3 (vision) checkpoint trains with the hf backend: r1tui's unsloth backend (FastLanguageModel) "
        "adapts text-only Mistral models"]
    assert resolve_backend(parse_config({"model": {"architecture": "mistral-small-24b"},
                                         "train": {"backend": "unsloth"}})) == "unsloth"

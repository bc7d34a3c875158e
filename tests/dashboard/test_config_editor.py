"""The Config panel's editor: each kind of field, errors at the field in the loader's own
words, live estimates, and the save round trip (comments and key order kept, nothing
invalid ever written). Real config loading, real calculator, real tokenizer."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Switch

from r1tui import calculator
from r1tui.config import load_config
from r1tui.dashboard.config_form import FIELDS, ConfigForm, field_of, rebase_paths
from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.widgets import config as config_widget
from r1tui.dashboard.widgets.config import ConfigPanel, DiffScreen, SaveAsScreen
from r1tui.errors import ConfigError

pytestmark = pytest.mark.anyio

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
SMALL, LARGE = (80, 24), (120, 40)


def commented_config(folder: Path) -> Path:
    """tiny.toml with a comment after every key: the round trip must keep them all."""
    lines = []
    for line in TINY.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\w+ = ", line) and "#" not in line:
            line = f"{line}   # note on {line.split(' =')[0]}"
        lines.append(line)
    path = folder / "edit.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setattr(config_widget, "CONFIGS_DIR", tmp_path / "configs")  # never the repo's own
    return commented_config(tmp_path)


async def open_editor(pilot, app, wait_for) -> ConfigPanel:
    await pilot.press(KEY["config"])
    panel = app.query_one(ConfigPanel)
    await wait_for(pilot, lambda: panel.report is not None and panel.masking is not None
                   and not panel.masking_pending, timeout=30, what="the estimates")
    return panel


async def type_into(pilot, app, key: str, text: str) -> None:
    """Real keys: focus the field, clear it, type."""
    widget = app.query_one(f"#field-{key.replace('.', '-')}", Input)
    widget.focus()
    await pilot.press("home", "ctrl+k", *text)


async def recomputed(pilot, panel: ConfigPanel, wait_for, before: float | None) -> None:
    await wait_for(pilot, lambda: panel._timer is None and panel.computed_at != before, timeout=10,
                   what="the recomputed estimates")


async def test_each_field_type_reestimates_and_saves_only_what_changed(make_app, config_file, settle, wait_for,
                                                                       screen_text):
    app = make_app(None, config_path=config_file)
    original = config_file.read_text(encoding="utf-8")
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        panel = await open_editor(pilot, app, wait_for)
        arch = calculator.resolve_architecture("tiny")
        all_seven = panel.validation.config.lora.target_modules
        assert panel.report.parameters.lora_trainable == calculator.count_lora(arch, 16, all_seven).trainable

        # int: the LoRA rank; the trainable count follows the calculator at once
        before = panel.computed_at
        await type_into(pilot, app, "lora.r", "8")
        await recomputed(pilot, panel, wait_for, before)
        targets = panel.validation.config.lora.target_modules
        assert panel.report.parameters.lora_trainable == calculator.count_lora(arch, 8, targets).trainable
        assert panel.compute_s is not None and panel.compute_s < 1.0, panel.compute_s
        assert f"LoRA {calculator.count_lora(arch, 8, targets).trainable:,}" in screen_text(app)

        # list: fewer target modules, fewer trainable parameters
        before = panel.computed_at
        await type_into(pilot, app, "lora.target_modules", "q_proj, v_proj")
        await recomputed(pilot, panel, wait_for, before)
        assert panel.report.parameters.lora_trainable == calculator.count_lora(arch, 8, ["q_proj", "v_proj"]).trainable

        # float: kept as typed
        await type_into(pilot, app, "train.learning_rate", "5e-4")
        # bool: a real key on the switch; 4-bit changes the VRAM estimate
        switch = app.query_one("#field-model-load_in_4bit", Switch)
        vram_before = panel.report.vram.total
        before = panel.computed_at
        switch.focus()
        await pilot.press("enter")
        await recomputed(pilot, panel, wait_for, before)
        assert switch.value is True and panel.validation.config.model.load_in_4bit is True
        config = panel.validation.config
        expected = calculator.estimate_training_vram(arch, seq_len=config.model.max_seq_length,
                                                     **calculator.training_vram_settings(config))
        assert panel.report.vram.total == expected.total != vram_before
        # choice: the scheduler
        before = panel.computed_at
        app.query_one("#field-train-lr_scheduler", Select).value = "cosine"
        await recomputed(pilot, panel, wait_for, before)
        assert panel.validation.error is None, panel.validation.error
        assert sorted(panel.form.changed) == ["lora.r", "lora.target_modules", "model.load_in_4bit",
                                              "train.learning_rate", "train.lr_scheduler"]
        assert "5 changed" in screen_text(app)

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff")
        shown = screen_text(app)
        assert '+r = 8' in shown and '-r = 16' in shown
        assert config_file.read_text(encoding="utf-8") == original, "written before the diff was confirmed"
        await pilot.press("y")
        await wait_for(pilot, lambda: config_file.read_text(encoding="utf-8") != original, what="the write")
        assert app.config_path == config_file and app.start_config()[0] == config_file

    saved = config_file.read_text(encoding="utf-8")
    before_lines, after_lines = original.splitlines(), saved.splitlines()
    assert len(before_lines) == len(after_lines)  # every key where it was; no key added or moved
    differing = [(a, b) for a, b in zip(before_lines, after_lines, strict=True) if a != b]
    assert [b.split(" =")[0] for _, b in differing] == ["load_in_4bit", "r", "target_modules", "learning_rate",
                                                        "lr_scheduler"]
    for old, new in differing:
        assert "# note on" in new or "#" not in old, new  # the comment stays on its line
    assert 'learning_rate = 5e-4' in saved
    old_data, new_data = tomllib.loads(original), tomllib.loads(saved)
    old_data["model"]["load_in_4bit"], old_data["lora"]["r"] = True, 8
    old_data["lora"]["target_modules"] = ["q_proj", "v_proj"]
    old_data["train"]["learning_rate"], old_data["train"]["lr_scheduler"] = 5e-4, "cosine"
    assert new_data == old_data
    assert load_config(config_file).lora.r == 8  # what `start` launches loads


async def test_an_invalid_value_shows_the_loaders_line_at_the_field_and_writes_nothing(
        make_app, config_file, settle, wait_for, screen_text, tmp_path):
    app = make_app(None, config_path=config_file)
    original = config_file.read_text(encoding="utf-8")
    # what loading a file holding the same value says, word for word
    bad = tmp_path / "bad.toml"
    bad.write_text(original.replace("r = 16", "r = 0"), encoding="utf-8")
    with pytest.raises(ConfigError) as loaded:
        load_config(bad)
    expected = str(loaded.value).replace(str(bad), str(config_file))
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        panel = await open_editor(pilot, app, wait_for)
        before = panel.computed_at
        await type_into(pilot, app, "lora.r", "0")
        await recomputed(pilot, panel, wait_for, before)
        assert panel.validation.error == expected
        assert panel.validation.key == "lora.r"
        error = app.query_one("#field-lora-r-error")
        assert error.display and str(error.content) == expected
        assert app.query_one("#field-lora-r").has_class("-invalid-field")
        assert "invalid: not saved" in screen_text(app)

        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, DiffScreen)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, SaveAsScreen), what="the name")
        await pilot.press(*"broken", "enter")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, DiffScreen)
        # text where a number goes: the loader's own words too
        await type_into(pilot, app, "lora.r", "abc")
        before = panel.computed_at
        await recomputed(pilot, panel, wait_for, before)
        assert "lora.r = 'abc': Input should be a valid integer" in panel.validation.error
    assert config_file.read_text(encoding="utf-8") == original
    assert not (tmp_path / "configs").exists() or not list((tmp_path / "configs").iterdir())
    assert not list(config_file.parent.glob(".edit.toml.*"))  # no temp file left behind


async def test_save_as_writes_a_new_config_under_configs_with_paths_kept(make_app, config_file, settle, wait_for,
                                                                         tmp_path):
    data = tmp_path / "traces.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2", "reasoning": "one and one"}\n', encoding="utf-8")
    app = make_app(None, config_path=config_file)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        panel = await open_editor(pilot, app, wait_for)
        await type_into(pilot, app, "data.source", "traces.jsonl")  # relative to edit.toml's folder
        await type_into(pilot, app, "model.max_seq_length", "1024")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, SaveAsScreen), what="the name")
        await pilot.press(*"longer", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff")
        await pilot.press("y")
        target = tmp_path / "configs" / "longer.toml"
        await wait_for(pilot, lambda: target.is_file(), what="the new config")
        assert app.config_path == target and panel.form.path == target
    new = load_config(target)
    assert new.model.max_seq_length == 1024
    assert Path(new.data.source) == data.resolve()  # the same file, seen from configs/
    assert 'source = "../traces.jsonl"' in target.read_text(encoding="utf-8")
    assert "# note on name" in target.read_text(encoding="utf-8")
    assert load_config(config_file).model.max_seq_length == 512  # the original untouched


def test_form_round_trip_without_a_terminal(tmp_path):
    """The plain half: no change gives the file back byte for byte; every field kind parses."""
    path = commented_config(tmp_path)
    form = ConfigForm.load(path)
    assert form.render() == path.read_text(encoding="utf-8")
    assert form.validate().config is not None
    kinds = {spec.kind for spec in FIELDS}
    assert kinds == {"text", "int", "float", "bool", "choice", "list", "path"}
    form.set("model.path", "weights")
    assert form.validate().config.model.path == (tmp_path / "weights").resolve()
    form.set("model.path", "")
    assert form.render() == path.read_text(encoding="utf-8")
    assert field_of("x.toml: data.eval_rows = 5: holds out every row of data.num_examples = 5") == "data.eval_rows"
    import tomlkit

    document = tomlkit.parse('[data]\nsource = "d/x.jsonl"  # mine\n[runs]\ndir = "/abs"\n')
    rebase_paths(document, tmp_path, tmp_path / "configs")
    assert tomlkit.dumps(document) == '[data]\nsource = "../d/x.jsonl"  # mine\n[runs]\ndir = "/abs"\n'


def _ready(wait_for, invalid: bool = False):
    async def run_before(pilot) -> None:
        app = pilot.app
        while not app.caught_up:
            await pilot.pause(0.05)
        panel = await open_editor(pilot, app, wait_for)
        if invalid:
            before = panel.computed_at
            await type_into(pilot, app, "lora.r", "0")
            await recomputed(pilot, panel, wait_for, before)
            app.screen.query_one("Tabs").focus()
        await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_editor_snapshot(size, snap_compare, make_app, config_file, wait_for, monkeypatch):
    monkeypatch.chdir(config_file.parent)  # --config edit.toml: the error line names edit.toml, not a temp folder
    app = make_app(None, config_path=Path(config_file.name))
    assert snap_compare(app, terminal_size=size, run_before=_ready(wait_for, invalid=size == LARGE))

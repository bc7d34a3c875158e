"""The prepare stage: source rows -> rendered, masked, length-checked Arrow dataset.

``prepare_dataset(config, out_dir)`` writes ``out_dir`` (``datasets.save_to_disk``,
columns ``input_ids``, ``labels``, ``domain``) and ``out_dir/stats.json``. With
``data.eval_rows`` a seeded pick of that many rows is held out of training and written
to ``out_dir/eval`` (same columns) for the trainer's validation loss. The folder is
built under a temporary name beside ``out_dir`` and renamed into place, so a reader
never sees half a dataset.

Length policy at ``model.max_seq_length``: a longer row is dropped
(``data.overlong = "drop"``, reason ``too_long``) or cut to the maximum
(``"truncate"``, counted under ``truncated``); a cut row left with no trained token is
dropped (``response_cut_off``). No row is ever kept with every label at -100.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tui.data.render import IGNORE_INDEX, ChatRenderer, RenderError, load_renderer
from r1tui.data.sources import LoadedExamples, load_examples, parse_source
from r1tui.data.stats import DRY_RUN_ROWS, MaskingStats
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.errors import R1Error
from r1tui.runs.events import NullWriter, stage
from r1tui.runs.files import current_umask

if TYPE_CHECKING:
    from r1tui.config import Config

log = logging.getLogger(__name__)

STATS_FILE = "stats.json"
EVAL_DIR = "eval"  # the held-out rows (data.eval_rows), a dataset folder inside the prepared one
BATCH_ROWS = 256

Columns = dict[str, list]


def render_examples(loaded: LoadedExamples, renderer: ChatRenderer, config: Config,
                    progress: Callable[[int, int], None] | None = None) -> tuple[Columns, MaskingStats]:
    """Render every example, apply the length policy, and count everything."""
    data = config.data
    max_length = config.model.max_seq_length
    stats = MaskingStats(max_length=max_length, source=loaded.source, tokenizer=renderer.spec, train_on=data.train_on,
                         mask_think=data.mask_think, overlong=data.overlong, rows_read=loaded.rows_read)
    stats.dropped.update(loaded.skipped)
    columns: Columns = {"input_ids": [], "labels": [], "domain": []}
    examples = loaded.examples
    for start in range(0, len(examples), BATCH_ROWS):
        batch = examples[start:start + BATCH_ROWS]
        conversations = [_with_system_prompt(example.messages, data.system_prompt) for example in batch]
        rendered = renderer.render_many(conversations, train_on=data.train_on, mask_think=data.mask_think)
        for example, result in zip(batch, rendered, strict=True):
            if isinstance(result, RenderError):
                stats.dropped[result.reason] += 1
                continue
            input_ids, labels = result.input_ids, result.labels
            stats.observe_length(len(input_ids))
            if len(input_ids) > max_length:
                if data.overlong == "drop":
                    stats.dropped["too_long"] += 1
                    continue
                input_ids, labels = input_ids[:max_length], labels[:max_length]
            trained = len(labels) - labels.count(IGNORE_INDEX)
            if not trained:
                stats.dropped["response_cut_off" if len(result.input_ids) > max_length else "no_trained_tokens"] += 1
                continue
            if len(result.input_ids) > max_length:
                stats.truncated["too_long"] += 1
            columns["input_ids"].append(input_ids)
            columns["labels"].append(labels)
            columns["domain"].append(example.domain)
            stats.add(len(input_ids), trained, example.domain)
        if progress is not None:
            progress(min(start + BATCH_ROWS, len(examples)), len(examples))
    return columns, stats


def _with_system_prompt(messages: list[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    if not system_prompt or any(message["role"] == "system" for message in messages):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def prepare_dataset(config: Config, out_dir: str | Path, events=None, data_path: str | Path | None = None) -> dict[str, Any]:
    """Render and mask the configured data (or ``data_path``) into ``out_dir``; returns the stats."""
    out_dir = Path(out_dir)
    _refuse_foreign_folder(out_dir)
    source = str(Path(data_path).expanduser().resolve()) if data_path else config.data.source
    events = events if events is not None else NullWriter()
    with stage(events, "prepare", source=source, out_dir=str(out_dir)) as outputs:
        renderer = load_renderer(tokenizer_spec(config))
        events.emit("stage_progress", stage="prepare", completed=0, total=0, unit="rows", message=f"reading {source}")
        loaded = load_examples(source, split=config.data.split, fields=config.data.fields,
                               num_examples=config.data.num_examples, seed=config.data.seed)

        def progress(done: int, total: int) -> None:
            events.emit("stage_progress", stage="prepare", completed=done, total=total, unit="rows", message="rendering")

        columns, stats = render_examples(loaded, renderer, config, progress)
        if not columns["input_ids"]:
            reasons = ", ".join(f"{reason} {count}" for reason, count in stats.dropped.items()) or "the source is empty"
            raise R1Error(f"{source}: no usable rows ({reasons}); check data.source, data.fields and model.max_seq_length")
        result = stats.to_dict()
        columns, held_out = split_eval_rows(columns, config.data.eval_rows, config.data.seed)
        result.update(train_examples=len(columns["input_ids"]), eval_examples=len(held_out["input_ids"]))
        _write_dataset(columns, result, out_dir, held_out)
        events.emit("artifact", stage="prepare", kind="dataset", path=str(out_dir), examples=result["examples"],
             tokens=result["tokens"])
        outputs.update(path=str(out_dir), examples=result["examples"], eval_examples=result["eval_examples"],
                       tokens=result["tokens"],
                       trained_tokens=result["trained_tokens"], dropped=result["dropped_total"],
                       truncated=result["truncated_total"])
    return result


def eval_row_indices(rows: int, eval_rows: int, seed: int) -> list[int]:
    """Which of ``rows`` rendered rows are held out for the validation loss: ``eval_rows``
    of them, a seeded pick (the same for the same rows and seed), in row order. Rows are
    held out by position: a source holding the same conversation twice may have a copy on
    each side."""
    if eval_rows <= 0:
        return []
    if eval_rows >= rows:
        raise R1Error(f"data.eval_rows = {eval_rows}: only {rows} rows are left after the length policy, "
                      "so none would be trained on; hold out fewer (or read more rows)")
    # a stream of its own, so holding rows out never shifts what data.seed picks elsewhere
    return sorted(random.Random(f"r1tui-eval-split-{seed}").sample(range(rows), eval_rows))


def split_eval_rows(columns: Columns, eval_rows: int, seed: int) -> tuple[Columns, Columns]:
    """(training columns, held-out columns): disjoint, every row on exactly one side."""
    held = set(eval_row_indices(len(columns["input_ids"]), eval_rows, seed))
    train: Columns = {name: [] for name in columns}
    held_out: Columns = {name: [] for name in columns}
    for name, values in columns.items():
        for index, value in enumerate(values):
            (held_out if index in held else train)[name].append(value)
    return train, held_out


def _refuse_foreign_folder(out_dir: Path) -> None:
    """Only an earlier prepared dataset may be replaced: never a folder of other things."""
    if out_dir.is_file():
        raise R1Error(f"--out {out_dir}: is a file; name a new folder (or an earlier prepared dataset)")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not ((out_dir / STATS_FILE).is_file() and (out_dir / "dataset_info.json").is_file()):
            raise R1Error(f"--out {out_dir}: this folder holds other files and is not a prepared dataset; "
                          "name a new or empty folder")


def _write_dataset(columns: Columns, stats: dict[str, Any], out_dir: Path, held_out: Columns | None = None) -> None:
    from datasets import Dataset, Features, Sequence, Value
    from datasets.utils.logging import (
        disable_progress_bar,
        enable_progress_bar,
        is_progress_bar_enabled,
    )

    # int64: a torch-formatted view then gives the Long labels cross-entropy wants
    features = Features({"input_ids": Sequence(Value("int64")), "labels": Sequence(Value("int64")),
                         "domain": Value("string")})
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it 0700; the dataset is an ordinary folder
    bars_were_on = is_progress_bar_enabled()
    disable_progress_bar()  # datasets' tqdm would land in pipeline.log / under our own progress bar
    try:
        Dataset.from_dict(columns, features=features).save_to_disk(str(staging))
        if held_out and held_out["input_ids"]:  # the held-out rows beside, never in, the training set
            Dataset.from_dict(held_out, features=features).save_to_disk(str(staging / EVAL_DIR))
        (staging / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, retired / out_dir.name)
            os.replace(staging, out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if bars_were_on:
            enable_progress_bar()
    log.info("wrote %d examples to %s", stats["examples"], out_dir)


def load_stats(data_dir: str | Path) -> dict[str, Any]:
    """The stats.json of a prepared dataset folder."""
    return json.loads((Path(data_dir) / STATS_FILE).read_text(encoding="utf-8"))


def dry_run_masking_stats(config: Config) -> dict[str, Any]:
    """Masking stats of the configured data, on at most ``DRY_RUN_ROWS`` rows; writes nothing.

    A Hub source is not downloaded in a dry run: the offline synthetic set stands in,
    and the dict says so (``note``). ``rows_used`` is how many rows were rendered.
    """
    started = time.perf_counter()
    data = config.data
    kind, _, _ = parse_source(data.source)
    source, note = data.source, None
    if kind == "hf":
        source, note = "synthetic", f"{data.source} is not downloaded in a dry run; the offline synthetic set stands in"
    cap = min(DRY_RUN_ROWS, data.num_examples)
    loaded = load_examples(source, split=data.split, fields=data.fields, num_examples=cap, seed=data.seed)
    renderer = load_renderer(tokenizer_spec(config))
    _, stats = render_examples(loaded, renderer, config)
    result = stats.to_dict()
    result.update({
        "dry_run": True,
        "rows_used": loaded.rows_read,
        "rows_cap": cap,
        "configured_source": data.source,
        "note": note,
        "elapsed_s": time.perf_counter() - started,
    })
    return result

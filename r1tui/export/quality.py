"""What quantization cost: each quant's next-token distributions against the F16 GGUF's.

The quantize stage calls ``update_report`` once its quants are written. It takes rendered
conversations in the training format (ids and labels straight from the prepared dataset:
the held-out rows of ``data/eval`` when ``data.eval_rows`` made them, else a seeded slice of
the training rows, and it says which), at most ``export.quality_tokens`` tokens in all,
and runs them through llama.cpp (llama-cpp-python, ``logits_all=True``): first the F16
GGUF, whose log-probabilities are kept in a scratch file beside the run (positions ×
vocabulary float32, removed afterwards), then each quant, one model in memory at a time.
Nothing is re-implemented: the logits are llama.cpp's own, from the files that ship.

Per quant and per scope (``all`` next-token predictions of the rendered conversations,
``response``: the trained tokens, ``answer``: the tokens after ``</think>``):

- ``kld_mean`` / ``kld_p99`` / ``kld_max``: KL(F16 ‖ quant) of the next-token distributions,
  in nats;
- ``top1_agreement``: the share of positions where both pick the same most likely token;
- ``ppl_reference``, ``ppl``: perplexity of the actual next tokens under F16 and the quant;
  ``ppl_ratio`` = ppl / ppl_reference.

The report goes to ``gguf/quality.json`` (written atomically). A quant whose file, F16 and
sample did not change since the last report keeps its entry; the F16 pass runs only when
some quant needs it. When there is no prepared dataset the report says why instead.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tui.data.prepare import EVAL_DIR
from r1tui.data.render import IGNORE_INDEX
from r1tui.errors import R1Error
from r1tui.runs.files import digest, fingerprint, read_json_object, temp_sibling, write_json_atomic
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

VERSION = 1
QUALITY_FILE = "quality.json"
SCOPES = ("all", "response", "answer")
_ROWS_PER_CHUNK = 256  # log-softmax in slices: a 131k vocabulary × a long row would not fit in memory at once

ProgressFn = Callable[[int, int, str], None]  # (completed tokens, total tokens, message)


def quality_path(layout: RunLayout) -> Path:
    """``gguf/quality.json``."""
    return layout.gguf_dir / QUALITY_FILE


def read_quality(layout: RunLayout) -> dict[str, Any]:
    """The last report ({} when there is none)."""
    return read_json_object(quality_path(layout))


def scratch_bytes(tokens: int, vocab_size: int, data_dir: Path) -> int:
    """At most what the F16's log-probabilities take while the quants are measured (float32
    per position and vocabulary entry); 0 when there is no prepared dataset to measure on."""
    data_dir = Path(data_dir)
    if not (_is_dataset(data_dir / EVAL_DIR) or _is_dataset(data_dir)):
        return 0
    return 4 * max(tokens - 1, 0) * vocab_size


# ---------------------------------------------------------------- which traces


@dataclass(frozen=True)
class Sample:
    """The rendered conversations the report runs, cut to the token budget."""

    sequences: list[list[int]]  # training ids, BOS first
    labels: list[list[int]]  # -100 where the prompt is (what training masked)
    source: str  # "held-out" or "training"
    description: str  # one line: where the rows come from
    rows_available: int
    indices: tuple[int, ...] = ()  # the rows' positions in the dataset they came from

    @property
    def tokens(self) -> int:
        return sum(len(ids) for ids in self.sequences)

    @property
    def positions(self) -> int:
        return sum(len(ids) - 1 for ids in self.sequences)

    @property
    def identity(self) -> str:
        return digest({"ids": self.sequences, "labels": self.labels})


def _is_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() and (folder / "state.json").is_file()


def select_sample(data_dir: Path, budget: int, seed: int) -> Sample | str:
    """The rows to measure on, or one line saying why there are none.

    Held-out rows (``data_dir/eval``) when there are any, in their order; else a seeded
    shuffle of the training rows. Whole rows that fit the budget (see ``_cut``).
    """
    import datasets

    data_dir = Path(data_dir)
    held_out = data_dir / EVAL_DIR
    if _is_dataset(held_out):
        rows = datasets.load_from_disk(str(held_out))
        if len(rows):
            order = list(range(len(rows)))
            return _cut(rows, order, budget, "held-out",
                        f"held-out rows ({data_dir.name}/{EVAL_DIR}, data.eval_rows = {len(rows)})")
    if not _is_dataset(data_dir):
        return (f"no prepared dataset in {data_dir.name}/ to measure on; run the prepare stage "
                "(`r1tui prepare` or `r1tui run`), or set export.quality_tokens = 0 to skip the report")
    rows = datasets.load_from_disk(str(data_dir))
    if not len(rows):
        return f"the prepared dataset in {data_dir.name}/ has no rows to measure on"
    order = list(range(len(rows)))
    random.Random(f"r1tui-quality-{seed}").shuffle(order)
    return _cut(rows, order, budget, "training",
                f"a seeded slice of the training rows ({data_dir.name}/; no held-out rows: "
                "set data.eval_rows to hold some out)")


def _cut(rows, order: Sequence[int], budget: int, source: str, description: str) -> Sample:
    """Whole rows, in ``order``, while they fit the budget (a cut row would lose its answer,
    which comes last); when not even one fits, the first row cut to the budget."""
    import pyarrow.compute as pc

    sequences: list[list[int]] = []
    labels: list[list[int]] = []
    indices: list[int] = []
    left = budget
    lengths = pc.list_value_length(rows.with_format("arrow")["input_ids"]).to_pylist()  # without reading the rows
    for index in order:
        if left < 2:  # one token predicts nothing
            break
        if 2 <= lengths[int(index)] <= left:
            row = rows[int(index)]
            sequences.append([int(t) for t in row["input_ids"]])
            labels.append([int(t) for t in row["labels"]])
            indices.append(int(index))
            left -= len(sequences[-1])
    if not sequences and order and budget >= 2:
        row = rows[int(order[0])]
        sequences.append([int(t) for t in row["input_ids"]][:budget])
        labels.append([int(t) for t in row["labels"]][:budget])
        indices.append(int(order[0]))
    return Sample(sequences=sequences, labels=labels, source=source, description=description,
                  rows_available=len(rows), indices=tuple(indices))


# ---------------------------------------------------------------- llama.cpp's logits


def _load(path: Path, n_ctx: int):
    """The GGUF in llama.cpp with logits for every position; on a GPU build all layers are
    offloaded when they fit, else it is loaded again on the CPU."""
    import llama_cpp

    settings = dict(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 512), logits_all=True, verbose=False,
                    seed=0)
    try:
        return llama_cpp.Llama(n_gpu_layers=-1, **settings)
    except ValueError:
        if not llama_cpp.llama_supports_gpu_offload():
            raise R1Error(f"{path.name}: llama.cpp could not load this GGUF for the quality report; re-export it, "
                          "or set export.quality_tokens = 0 to skip the report") from None
        log.info("%s does not fit the GPU: the quality report evaluates it on the CPU", path.name)
    try:
        return llama_cpp.Llama(n_gpu_layers=0, **settings)
    except ValueError:
        raise R1Error(f"{path.name}: llama.cpp could not load this GGUF for the quality report; re-export it, "
                      "or set export.quality_tokens = 0 to skip the report") from None


def _log_softmax(logits):
    import numpy as np

    shifted = logits - logits.max(axis=1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(np.float32, copy=False)


def _answer_mask(llm, ids: Sequence[int]) -> list[bool]:
    """For each position, whether the token there comes after ``</think>`` in its assistant
    turn (text read back through the GGUF's own vocabulary, control tokens included)."""
    tail, length = b"", 0  # the last bytes read, and how many were read in all
    think_end = inst_end = -1  # where the last "</think>" and the last "[/INST]" start
    mask = []
    for token in ids:
        mask.append(think_end > inst_end)
        piece = llm.detokenize([token], special=True)
        tail, length = (tail + piece)[-64:], length + len(piece)
        offset = length - len(tail)
        for marker in (b"</think>", b"[/INST]"):
            found = tail.rfind(marker)
            if found >= 0 and marker == b"</think>":
                think_end = max(think_end, offset + found)
            elif found >= 0:
                inst_end = max(inst_end, offset + found)
    return mask


class _Pass:
    """Evaluates the sample's sequences through one GGUF, yielding per sequence the
    log-probabilities of every next-token prediction, in slices of rows."""

    def __init__(self, path: Path, sample: Sample, on_tokens: Callable[[int, str], None]):
        self.path, self.sample, self.on_tokens = path, sample, on_tokens

    def run(self):
        llm = _load(self.path, max(len(ids) for ids in self.sample.sequences))
        try:
            for number, ids in enumerate(self.sample.sequences):
                llm.reset()
                llm.eval(ids)
                yield number, llm, ids, self._slices(llm.scores, len(ids) - 1)
                self.on_tokens(len(ids), f"{self.path.name}: {number + 1}/{len(self.sample.sequences)} sequences")
        finally:
            llm.close()

    @staticmethod
    def _slices(scores, rows: int):
        """(first row, log-probabilities of the rows from there), a slice at a time (lazily:
        read before the next sequence is evaluated)."""
        for start in range(0, rows, _ROWS_PER_CHUNK):
            yield start, _log_softmax(scores[start:min(start + _ROWS_PER_CHUNK, rows)])


def measure(reference: Path, candidates: dict[str, Path], sample: Sample, scratch: Path,
            on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Every candidate against ``reference`` on ``sample``; ``scratch`` holds the reference's
    log-probabilities meanwhile (created and removed here). Returns {"reference_seconds",
    "positions": {scope: count}, "quants": {quant: {scope: metrics, "file", "seconds"}}}.
    Memory: one model at a time, plus llama-cpp-python's logits of the longest row
    (its length × the vocabulary × 4 bytes)."""
    import numpy as np

    if not sample.sequences:
        raise R1Error("the quality report has no sequence to run; raise export.quality_tokens")
    total = sample.tokens * (1 + len(candidates))
    done = 0

    def tokens_done(count: int, message: str) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done, total, message)

    positions = sample.positions
    nll_ref = np.empty(positions, dtype=np.float64)
    top_ref = np.empty(positions, dtype=np.int64)
    masks = {scope: np.zeros(positions, dtype=bool) for scope in SCOPES}
    masks["all"][:] = True
    reference_log_probs = None
    started = time.perf_counter()
    try:
        for number, llm, ids, slices in _Pass(reference, sample, tokens_done).run():
            if reference_log_probs is None:
                reference_log_probs = np.lib.format.open_memmap(
                    scratch, mode="w+", dtype=np.float32, shape=(positions, llm.n_vocab()))
            base = sum(len(s) - 1 for s in sample.sequences[:number])
            following = np.asarray(ids[1:])
            labels = sample.labels[number]
            answer = _answer_mask(llm, ids)
            for row in range(len(ids) - 1):
                masks["response"][base + row] = labels[row + 1] != IGNORE_INDEX
                masks["answer"][base + row] = answer[row + 1]
            for start, log_probs in slices:
                rows = slice(base + start, base + start + len(log_probs))
                reference_log_probs[rows] = log_probs
                nll_ref[rows] = -log_probs[np.arange(len(log_probs)), following[start:start + len(log_probs)]]
                top_ref[rows] = log_probs.argmax(axis=1)
        reference_seconds = time.perf_counter() - started

        quants: dict[str, Any] = {}
        for quant, path in candidates.items():
            started = time.perf_counter()
            kld = np.empty(positions, dtype=np.float64)
            nll = np.empty(positions, dtype=np.float64)
            agree = np.empty(positions, dtype=bool)
            for number, _llm, ids, slices in _Pass(path, sample, tokens_done).run():
                base = sum(len(s) - 1 for s in sample.sequences[:number])
                following = np.asarray(ids[1:])
                for start, log_probs in slices:
                    rows = slice(base + start, base + start + len(log_probs))
                    expected = np.asarray(reference_log_probs[rows], dtype=np.float64)
                    candidate = log_probs.astype(np.float64)
                    # KL(P||Q) = sum P (log P - log Q); identical rows give exactly 0
                    kld[rows] = np.maximum((np.exp(expected) * (expected - candidate)).sum(axis=1), 0.0)
                    nll[rows] = -candidate[np.arange(len(candidate)), following[start:start + len(candidate)]]
                    agree[rows] = log_probs.argmax(axis=1) == top_ref[rows]
            entry: dict[str, Any] = {scope: _metrics(kld[mask], agree[mask], nll_ref[mask], nll[mask])
                                     for scope, mask in masks.items()}
            entry["file"] = path.name
            entry["seconds"] = round(time.perf_counter() - started, 3)
            quants[quant] = entry
    finally:
        del reference_log_probs
        Path(scratch).unlink(missing_ok=True)
    return {"reference_seconds": round(reference_seconds, 3),
            "positions": {scope: int(mask.sum()) for scope, mask in masks.items()}, "quants": quants}


def _metrics(kld, agree, nll_ref, nll) -> dict[str, Any]:
    import numpy as np

    if not len(kld):
        return {"positions": 0}
    return {
        "positions": int(len(kld)),
        "kld_mean": float(kld.mean()),
        "kld_p99": float(np.percentile(kld, 99)),
        "kld_max": float(kld.max()),
        "top1_agreement": float(agree.mean()),
        "ppl_reference": float(np.exp(nll_ref.mean())),
        "ppl": float(np.exp(nll.mean())),
        "ppl_ratio": float(np.exp((nll - nll_ref).mean())),
    }


# ---------------------------------------------------------------- the report


def entry_inputs(reference: Path, candidate: Path, sample: Sample) -> str:
    """What a quant's figures depend on: the two files and the exact token sample."""
    return digest({"reference": fingerprint(reference), "candidate": fingerprint(candidate),
                   "sample": sample.identity})


def _skipped(path: Path, reference: Path, budget: int, reason: str) -> dict[str, Any]:
    report = {"version": VERSION, "reference": reference.name, "token_budget": budget, "skipped": reason,
              "quants": {}}
    if read_json_object(path) != report:
        write_json_atomic(path, report)
    log.warning("quality report skipped: %s", reason)
    return report


def update_report(path: Path, reference: Path, candidates: dict[str, Path], data_dir: Path, budget: int, seed: int,
                  scratch_dir: Path, on_progress: ProgressFn | None = None) -> tuple[dict[str, Any], bool]:
    """Write ``path`` (quality.json) for ``candidates`` against ``reference``; returns
    (report, whether anything was measured). Entries still valid are kept; nothing is
    written unless the whole report is complete."""
    import llama_cpp

    sample = (select_sample(data_dir, budget, seed) if candidates
              else "no quant type besides F16 was written: nothing to compare with the F16")
    if isinstance(sample, str):
        return _skipped(path, reference, budget, sample), False
    previous = read_json_object(path)
    kept = previous.get("quants") if isinstance(previous.get("quants"), dict) else {}
    inputs = {quant: entry_inputs(reference, candidate, sample) for quant, candidate in candidates.items()}
    fresh = {quant: kept[quant] for quant in candidates
             if isinstance(kept.get(quant), dict) and kept[quant].get("inputs") == inputs[quant]}
    todo = {quant: candidate for quant, candidate in candidates.items() if quant not in fresh}
    if not todo and (previous.get("data") or {}).get("identity") == sample.identity:
        report = {**previous, "quants": {quant: fresh[quant] for quant in candidates}}
        if report != previous:
            write_json_atomic(path, report)
        return report, False
    started = time.perf_counter()
    measured = measure(reference, todo, sample, temp_sibling(Path(scratch_dir) / "quality-reference.npy"),
                       on_progress)
    for quant, entry in measured["quants"].items():
        entry["inputs"] = inputs[quant]
    report = {
        "version": VERSION,
        "reference": reference.name,
        "token_budget": budget,
        "data": {"source": sample.source, "description": sample.description, "rows": len(sample.sequences),
                 "rows_available": sample.rows_available, "tokens": sample.tokens,
                 "positions": measured["positions"], "identity": sample.identity},
        "quants": {quant: (measured["quants"].get(quant) or fresh[quant]) for quant in candidates},
        "reference_seconds": measured["reference_seconds"],
        "seconds": round(time.perf_counter() - started, 3),
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
    }
    write_json_atomic(path, report)
    return report, True


# ---------------------------------------------------------------- how it reads


def _figure(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per quant and scope: quant, scope, positions, mean KLD, p99 KLD, top-1
    agreement, perplexity ratio (what the CLI and the card print)."""
    rows = []
    for quant, entry in (report.get("quants") or {}).items():
        for scope in SCOPES:
            figures = entry.get(scope) or {}
            if not figures.get("positions"):
                rows.append([quant, scope, "0", "–", "–", "–", "–"])
                continue
            rows.append([quant, scope, str(figures["positions"]), _figure(figures["kld_mean"]),
                         _figure(figures["kld_p99"]), f"{figures['top1_agreement'] * 100:.2f} %",
                         _figure(figures["ppl_ratio"], 5)])
    return rows


TABLE_HEADER = ["quant", "scope", "positions", "KLD mean", "KLD p99", "top-1 agreement", "perplexity ratio"]


def summary_line(report: dict[str, Any]) -> str:
    """Where the figures come from, in one line."""
    if report.get("skipped"):
        return f"quantization quality: not measured ({report['skipped']})"
    data = report.get("data") or {}
    return (f"quantization quality against {report.get('reference')}: {data.get('tokens')} tokens of "
            f"{data.get('rows')} rendered conversations, {data.get('description')}; "
            f"KL divergence in nats, perplexity ratio = quant / F16")


def markdown(report: dict[str, Any]) -> str:
    """The model card's section body."""
    if not report:
        return "Not measured (export.quality_tokens = 0, or exported before the report existed)."
    lines = [summary_line(report) + ".", ""]
    rows = table_rows(report)
    if rows:
        lines += ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += ["", "`all`: every next-token prediction of the rendered conversations; `response`: the trained "
                  "tokens; `answer`: the tokens after `</think>`."]
    return "\n".join(lines)

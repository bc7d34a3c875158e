"""The bad-input drill: a corpus of wrong configs, data files, run ids, GGUFs, tokens, repo ids
and command-line values. Each one, run as its own process (forked from
tests/drills/forkserver.py, the real `r1tui` entry point), must exit non-zero with exactly one
line on stderr that starts with "error:", no traceback, and leave every file that was there
before byte-identical (and write nothing new but, at most, a run's empty lock file).

The workspace (one per module) holds a good config, the bad files, and runs: an exported one
(a copy of the reference run), one that never trained, two whose ids share a prefix, one whose
config is broken, and one another process is writing (this test process holds its lock).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1tui.runs.events import EventWriter
from r1tui.runs.layout import RunLayout
from r1tui.runs.lock import RunLock

pytestmark = pytest.mark.slow

NO_ADAPTER = "20261201-000000-nada"
AMBIGUOUS = ("20261201-000001-amb1", "20261201-000001-amb2")
BROKEN_CONFIG = "20261201-000002-bcfg"
BUSY = "20261201-000003-busy"

# ---------------------------------------------------------------- the corpus

# config files: name -> TOML text, each checked by `r1tui dry-run --no-masking --config FILE`
BAD_CONFIGS = {
    "unknown-section": "[nonsense]\nx = 1\n",
    "unknown-key": "[train]\nlearning_rat = 1e-4\n",
    "wrong-type": '[train]\nmax_steps = "ten"\n',
    "max-steps-zero": "[train]\nmax_steps = 0\n",
    "max-steps-negative": "[train]\nmax_steps = -2\n",
    "max-steps-huge": "[train]\nmax_steps = 1000000000000\n",
    "learning-rate-zero": "[train]\nlearning_rate = 0.0\n",
    "learning-rate-huge": "[train]\nlearning_rate = 5.0\n",
    "learning-rate-nan": "[train]\nlearning_rate = nan\n",
    "learning-rate-inf": "[train]\nlearning_rate = inf\n",
    "warmup-one": "[train]\nwarmup_ratio = 1.0\n",
    "batch-zero": "[train]\nper_device_batch_size = 0\n",
    "accumulation-zero": "[train]\ngradient_accumulation_steps = 0\n",
    "epochs-zero": "[train]\nepochs = 0\n",
    "seed-negative": "[train]\nseed = -1\n",
    "seed-too-big": "[train]\nseed = 1099511627776\n",
    "optimizer-unknown": '[train]\noptimizer = "adam"\n',
    "dtype-unknown": '[train]\ndtype = "float8"\n',
    "backend-unknown": '[train]\nbackend = "jax"\n',
    "gpu-sample-zero": "[train]\ngpu_sample_seconds = 0\n",
    "lora-r-zero": "[lora]\nr = 0\n",
    "lora-alpha-zero": "[lora]\nalpha = 0\n",
    "lora-dropout-one": "[lora]\ndropout = 1.0\n",
    "lora-module-unknown": '[lora]\ntarget_modules = ["qkv_proj"]\n',
    "lora-modules-empty": "[lora]\ntarget_modules = []\n",
    "seq-length-zero": "[model]\nmax_seq_length = 0\n",
    "seq-length-huge": "[model]\nmax_seq_length = 100000000\n",
    "architecture-unknown": '[model]\narchitecture = "gpt9"\n',
    "architecture-missing-file": '[model]\narchitecture = "no-such-config.json"\n',
    "architecture-bad-file": '[model]\narchitecture = "bad-architecture.json"\n',
    "tokenizer-missing-folder": '[model]\ntokenizer = "/nonexistent/tokenizer"\n',
    "quant-unknown": '[export]\nquant_types = ["Q3_X"]\n',
    "quants-empty": "[export]\nquant_types = []\n",
    "merge-dtype-unknown": '[export]\nmerge_dtype = "int8"\n',
    "secret-hub-token": '[hub]\ntoken = "hf_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"\n',
    "secret-api-key": '[teacher]\napi_key = "sk-123456"\n',
    "teacher-url-ftp": '[teacher]\nbase_url = "ftp://example.org/v1"\n',
    "teacher-urls-empty": "[teacher]\nbase_url = []\n",
    "teacher-samples-zero": "[teacher]\nsamples = 0\n",
    "eval-top-p-zero": "[eval]\ntop_p = 0.0\n",
    "eval-temperature-huge": "[eval]\ntemperature = 11.0\n",
    "eval-slots-zero": "[eval]\nslots = 0\n",
    "eval-n-ctx-zero": "[eval]\nn_ctx = 0\n",
    "gpu-memory-zero": "[hardware]\ngpu_memory_gb = 0\n",
    "data-overlong-unknown": '[data]\noverlong = "cut"\n',
    "data-num-examples-zero": "[data]\nnum_examples = 0\n",
    "decontaminate-ngram-two": "[decontaminate]\nngram = 2\n",
    "section-is-a-value": "train = 3\n",
    "toml-syntax": "[train\nmax_steps = 3\n",
    "toml-duplicate-key": "[train]\nseed = 1\nseed = 2\n",
}

CASES: list[tuple[str, list[str], dict[str, str]]] = []  # (id, argv, extra environment)
for name in BAD_CONFIGS:
    CASES.append((f"config-{name}", ["dry-run", "--no-masking", "--config", f"configs/{name}.toml"], {}))
CASES += [
    ("config-not-utf8", ["dry-run", "--no-masking", "--config", "configs/latin1.toml"], {}),
    ("config-missing", ["dry-run", "--no-masking", "--config", "configs/missing.toml"], {}),
    ("config-is-a-folder", ["dry-run", "--no-masking", "--config", "configs"], {}),
    ("config-env-missing", ["dry-run", "--no-masking"], {"R1TUI_CONFIG": "configs/missing.toml"}),
    ("config-run-refused", ["run", "--config", "configs/max-steps-zero.toml"], {}),
    ("config-train-refused", ["train", "--config", "configs/lora-r-zero.toml"], {}),
    ("config-unsloth-settings", ["run", "--config", "configs/unsloth-fp4.toml"], {}),
    # data files
    ("data-missing", ["prepare", "--data", "data/missing.jsonl", "--out", "out/prepared"], {}),
    ("data-unknown-format", ["prepare", "--data", "data/rows.csv", "--out", "out/prepared"], {}),
    ("data-empty", ["prepare", "--data", "data/empty.jsonl", "--out", "out/prepared"], {}),
    ("data-no-usable-row", ["prepare", "--data", "data/wrong-fields.jsonl", "--out", "out/prepared"], {}),
    ("data-binary", ["prepare", "--data", "data/binary.jsonl", "--out", "out/prepared"], {}),
    ("data-not-utf8", ["prepare", "--data", "data/latin1.jsonl", "--out", "out/prepared"], {}),
    ("data-broken-json-array", ["prepare", "--data", "data/broken-array.json", "--out", "out/prepared"], {}),
    ("data-bad-parquet", ["prepare", "--data", "data/garbage.parquet", "--out", "out/prepared"], {}),
    ("data-is-a-folder", ["prepare", "--data", "data/folder.jsonl", "--out", "out/prepared"], {}),
    ("data-hub-id-malformed", ["prepare", "--data", "hf:no-owner", "--out", "out/prepared"], {}),
    ("data-hub-offline", ["prepare", "--data", "hf:someone/some-set", "--out", "out/prepared"], {}),
    ("data-out-is-a-file", ["prepare", "--data", "synthetic", "--out", "data/empty.jsonl"], {}),
    ("data-out-foreign-folder", ["prepare", "--data", "synthetic", "--out", "data"], {}),
    ("data-preview-negative", ["prepare", "--out", "out/prepared", "--preview", "-3"], {}),
    ("data-train-dataset-missing", ["train", "--dataset", "out/no-dataset"], {}),
    ("data-train-dataset-not-a-dataset", ["train", "--dataset", "data/folder.jsonl"], {}),
    ("data-decontaminate-missing", ["decontaminate", "--data", "data/missing.jsonl", "--out", "out/kept.jsonl"], {}),
    ("data-decontaminate-against-missing", ["decontaminate", "--data", "synthetic", "--against", "data/missing.txt",
                                            "--out", "out/kept.jsonl"], {}),
    ("data-curate-budget-zero", ["curate", "--data", "synthetic", "--out", "out/chosen.jsonl", "--budget-tokens", "0"],
     {}),
    ("data-curate-hours-negative", ["curate", "--data", "synthetic", "--out", "out/chosen.jsonl", "--budget-hours",
                                    "-1"], {}),
    ("data-generate-no-teacher", ["generate", "--out", "out/traces.jsonl"], {}),
    ("data-generate-prompts-missing", ["generate", "--prompts", "data/missing.jsonl", "--out", "out/traces.jsonl"],
     {}),
    # run ids
    ("run-unknown-logs", ["logs", "nope"], {}),
    ("run-unknown-cancel", ["cancel", "nope"], {}),
    ("run-unknown-export", ["export", "nope"], {}),
    ("run-unknown-eval", ["eval", "nope"], {}),
    ("run-unknown-push", ["push", "nope"], {}),
    ("run-unknown-resume", ["run", "--resume", "nope"], {}),
    ("run-unknown-attach", ["attach", "nope"], {}),
    ("run-unknown-chat", ["chat", "nope"], {}),
    ("run-ambiguous-prefix", ["export", "20261201-000001"], {}),
    ("run-folder-not-a-run", ["export", "data"], {}),
    ("run-runs-dir-empty", ["logs", "--runs-dir", "out/no-runs"], {}),
    ("run-without-adapter-export", ["export", NO_ADAPTER], {}),
    ("run-without-gguf-push", ["push", NO_ADAPTER], {}),
    ("run-without-gguf-parity", ["parity", NO_ADAPTER], {}),
    ("run-without-gguf-eval", ["eval", NO_ADAPTER], {}),
    ("run-not-running-cancel", ["cancel", NO_ADAPTER], {}),
    ("run-broken-config-export", ["export", BROKEN_CONFIG], {}),
    ("run-broken-config-resume", ["run", "--resume", BROKEN_CONFIG], {}),
    ("run-busy-export", ["export", BUSY], {}),
    ("run-busy-resume", ["run", "--resume", BUSY], {}),
    ("run-busy-push", ["push", BUSY], {}),
    # GGUFs
    ("gguf-missing", ["parity", "--gguf", "ggufs/missing.gguf"], {}),
    ("gguf-empty", ["parity", "--gguf", "ggufs/empty.gguf"], {}),
    ("gguf-random-bytes", ["parity", "--gguf", "ggufs/random.gguf"], {}),
    ("gguf-truncated", ["parity", "--gguf", "ggufs/truncated.gguf"], {}),
    ("gguf-text", ["parity", "--gguf", "ggufs/text.gguf"], {}),
    ("gguf-folder", ["parity", "--gguf", "ggufs"], {}),
    ("gguf-other-tokenizer", ["parity", "--gguf", "ggufs/real.gguf", "--tokenizer", "tekken"], {}),
    ("gguf-tokenizer-missing", ["parity", "--gguf", "ggufs/real.gguf", "--tokenizer", "ggufs/no-tokenizer"], {}),
    ("gguf-chat-truncated", ["chat", "--gguf", "ggufs/truncated.gguf"], {}),
    ("gguf-eval-random", ["eval", "--gguf", "ggufs/random.gguf", "-n", "1", "--out", "out/eval"], {}),
    ("gguf-attach-missing", ["attach", "--gguf", "ggufs/missing.gguf"], {}),
]
# Hub tokens and repo ids (push of the exported run; nothing may go out, and nothing does:
# each is refused before the network, which HF_HUB_OFFLINE closes anyway)
GOOD = "hf_" + "Zq8" * 11 + "Z"
for name, token in {"newline": GOOD[:20] + "\n" + GOOD[20:], "carriage-return": GOOD + "\r",
                    "inner-space": GOOD[:10] + " " + GOOD[10:], "tab": "\t" + GOOD + "\tx",
                    "control-character": GOOD[:5] + "\x01" + GOOD[5:], "two-lines": f"{GOOD}\n{GOOD}"}.items():
    CASES.append((f"token-{name}", ["push", "EXPORTED"], {"HF_TOKEN": token, "HF_REPO_ID": "alice/tiny-r1"}))
CASES.append(("token-missing", ["push", "EXPORTED"], {"HF_REPO_ID": "alice/tiny-r1", "HF_TOKEN": " "}))
CASES.append(("repo-id-unset", ["push", "EXPORTED"], {"HF_TOKEN": GOOD}))
for name, repo_id in {"space": "alice/tiny r1", "double-dash": "alice/a--b", "dot-git": "alice/x.git",
                      "three-parts": "a/b/c", "empty-name": "alice/", "too-long": "alice/" + "x" * 97,
                      "double-dot": "alice/a..b", "unicode": "alice/mödel", "leading-dash": "alice/-x"}.items():
    CASES.append((f"repo-id-{name}", ["push", "EXPORTED"], {"HF_TOKEN": GOOD, "HF_REPO_ID": repo_id}))
# command-line values
CASES += [
    ("cli-unknown-command", ["frobnicate"], {}),
    ("cli-unknown-option", ["runs", "--bogus"], {}),
    ("cli-missing-run", ["export"], {}),
    ("cli-wait-negative", ["cancel", NO_ADAPTER, "--wait", "-1"], {}),
    ("cli-wait-not-a-number", ["cancel", NO_ADAPTER, "--wait", "soon"], {}),
    ("cli-processes-zero", ["run", "--processes", "0"], {}),
    ("cli-processes-not-a-number", ["run", "--processes", "two"], {}),
    ("cli-quant-unknown", ["export", "EXPORTED", "--quant", "Q9_Z"], {}),
    ("cli-eval-n-not-a-number", ["eval", "EXPORTED", "-n", "abc"], {}),
    ("cli-eval-n-zero", ["eval", "EXPORTED", "-n", "0", "--out", "out/eval"], {}),
    ("cli-eval-temperature-negative", ["eval", "EXPORTED", "--temperature", "-1", "--out", "out/eval"], {}),
    ("cli-eval-slots-zero", ["eval", "EXPORTED", "--slots", "0", "--out", "out/eval"], {}),
    ("cli-eval-base-url-ftp", ["eval", "--base-url", "ftp://x/v1", "--out", "out/eval"], {}),
    ("cli-eval-source-missing", ["eval", "EXPORTED", "--source", "data/missing.jsonl", "--out", "out/eval"], {}),
    ("cli-chat-n-ctx-zero", ["chat", "EXPORTED", "--n-ctx", "0"], {}),
    ("cli-attach-panel-unknown", ["attach", "--panel", "nope"], {}),
    ("cli-logs-type-unknown", ["logs", NO_ADAPTER, "--type", "nonsense"], {}),
    ("cli-curate-two-budgets", ["curate", "--out", "out/c.jsonl", "--budget-tokens", "5", "--budget-hours", "1"], {}),
    ("cli-stages-unknown", ["run", "--stages", "train,polish"], {}),
    ("cli-abbreviated-option", ["runs", "--run", "out"], {}),
    ("cli-decontaminate-ngram-one", ["decontaminate", "--data", "synthetic", "--out", "out/k.jsonl", "--ngram", "1"],
     {}),
]


# ---------------------------------------------------------------- the workspace


def _write_run(runs: Path, run_id: str, config_text: str, *events: tuple[str, dict]) -> RunLayout:
    layout = RunLayout(runs / run_id)
    layout.root.mkdir(parents=True)
    layout.config.write_text(config_text, encoding="utf-8")
    with EventWriter(layout.events) as writer:
        for type_, data in events:
            writer.emit(type_, **data)
    return layout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, reference, drills):
    from r1tui.config import dump_toml, load_config

    ws = tmp_path_factory.mktemp("bad-inputs")
    runs = ws / "runs"
    config_path = drills.write_config(ws, runs)
    frozen = dump_toml(load_config(config_path))

    configs = ws / "configs"
    configs.mkdir()
    for name, text in BAD_CONFIGS.items():
        (configs / f"{name}.toml").write_text(text, encoding="utf-8")
    (configs / "latin1.toml").write_bytes('[data]\nsystem_prompt = "caf\xe9"\n'.encode("latin-1"))
    (configs / "bad-architecture.json").write_text('{"hidden_size": "wide"}', encoding="utf-8")
    (configs / "unsloth-fp4.toml").write_text(
        '[train]\nbackend = "unsloth"\n[model]\nload_in_4bit = true\nbnb_4bit_quant_type = "fp4"\n', encoding="utf-8")

    data = ws / "data"
    data.mkdir()
    (data / "rows.csv").write_text("question,answer\n1+1,2\n", encoding="utf-8")
    (data / "empty.jsonl").write_text("", encoding="utf-8")
    (data / "wrong-fields.jsonl").write_text('{"prompt": "1+1"}\n{"text": 3}\n[1, 2]\n', encoding="utf-8")
    (data / "binary.jsonl").write_bytes(os.urandom(4096))
    (data / "latin1.jsonl").write_bytes('{"question": "caf\xe9?", "answer": "oui"}\n'.encode("latin-1"))
    (data / "broken-array.json").write_text('[{"question": "1+1", "answer":', encoding="utf-8")
    (data / "garbage.parquet").write_bytes(b"PAR1" + os.urandom(2048))
    (data / "folder.jsonl").mkdir()

    ggufs = ws / "ggufs"
    ggufs.mkdir()
    real = next(p for p in reference.layout.gguf_files() if p.name.endswith("-Q4_K_M.gguf"))
    shutil.copyfile(real, ggufs / "real.gguf")
    (ggufs / "empty.gguf").write_bytes(b"")
    (ggufs / "random.gguf").write_bytes(os.urandom(65536))
    (ggufs / "truncated.gguf").write_bytes(real.read_bytes()[: 1 << 20])
    (ggufs / "text.gguf").write_text("this is not a model\n", encoding="utf-8")
    (ws / "out").mkdir()

    exported = runs / reference.layout.run_id
    shutil.copytree(reference.layout.root, exported, ignore=shutil.ignore_patterns("base", "merged", "checkpoints"))
    started = ("run_started", {"run_id": "x", "stages": ["prepare", "train"], "pid": 1, "heartbeat_s": 1.0})
    _write_run(runs, NO_ADAPTER, frozen, started, ("run_finished", {"status": "finished"}))
    for run_id in AMBIGUOUS:
        _write_run(runs, run_id, frozen, started, ("run_finished", {"status": "failed", "error": "boom"}))
    _write_run(runs, BROKEN_CONFIG, "[train\nmax_steps =", started, ("run_finished", {"status": "failed"}))
    busy = _write_run(runs, BUSY, frozen, started)
    lock = RunLock(busy, "a drill holding the lock").acquire()  # another process writes this run
    yield SimpleNamespace(root=ws, exported=exported.name)
    lock.release()


class Snapshot:
    """Every file's bytes (sha1), re-read only when its inode, size, mtime or ctime moved
    (any write changes ctime, which no process can set back)."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, tuple[tuple, str]] = {}
        self.take()

    def take(self) -> dict[str, str]:
        now = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(self.root).as_posix()
                stat = path.stat()
                key = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
                known = self.files.get(rel)
                if known is None or known[0] != key:
                    with open(path, "rb") as f:
                        known = (key, hashlib.file_digest(f, "sha1").hexdigest())
                now[rel] = known
        self.files = now
        return {rel: digest for rel, (_, digest) in now.items()}


@pytest.fixture(scope="module")
def snapshot(workspace):
    return Snapshot(workspace.root)


TALLY = {"cases": 0, "one-line errors": 0, "tracebacks": 0, "files changed or lost": 0, "files written": 0}


@pytest.mark.parametrize(("argv", "env"), [pytest.param(argv, env, id=name) for name, argv, env in CASES])
def test_a_bad_input_is_one_line_and_changes_nothing(workspace, snapshot, forkserver, drills, argv, env):
    argv = [workspace.exported if arg == "EXPORTED" else arg for arg in argv]
    before = snapshot.take()
    result = forkserver.run(*argv, env={**drills.env(None), "COLUMNS": "400", **env}, cwd=workspace.root, timeout=120)
    after = snapshot.take()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    changed = sorted(rel for rel, digest in before.items() if after.get(rel) != digest)
    # a writer refused after it opened the run leaves the run's lock file, empty (nobody holds it):
    # the one file every writer makes and none deletes (r1tui/runs/lock.py)
    written = sorted(rel for rel in set(after) - set(before)
                     if not (rel.endswith("/lock") and (workspace.root / rel).stat().st_size == 0))
    TALLY["cases"] += 1
    TALLY["one-line errors"] += len(lines) == 1 and lines[0].startswith("error: ")
    TALLY["tracebacks"] += "Traceback" in result.stderr + result.stdout
    TALLY["files changed or lost"] += len(changed)
    TALLY["files written"] += len(written)
    if TALLY["cases"] == len(CASES):
        print(f"\nDRILL bad inputs: {TALLY}")
    assert result.returncode > 0, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert changed == [], changed
    assert written == [], written


def test_the_corpus_is_large_enough():
    kinds = {name.split("-")[0] for name, _, _ in CASES}
    assert len(CASES) >= 80 and kinds == {"config", "data", "run", "gguf", "token", "repo", "cli"}, (len(CASES), kinds)

"""r1tui push against a local stand-in for the Hub (HubStandIn in conftest.py), through
the real huggingface_hub client in a real `python -m r1tui push` process.

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HUB_DISABLE_XET when it is
imported, so each push runs in its own process with its own environment. The stand-in
speaks the LFS protocol, so Xet (which needs the Hub's CAS servers) is turned off there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WRITE_TOKEN = "hf_standin_write_token"


@pytest.fixture(scope="module")
def push_ready_run(tmp_path_factory, exported_run) -> Path:
    run_dir, _, _ = exported_run
    target = tmp_path_factory.mktemp("push") / "tiny-run"
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("base", "merged"))
    return target


def push(run_dir: Path, cwd: Path, *args: str, endpoint: str, token: str | None = WRITE_TOKEN,
         repo_id: str | None = "tiny-r1", dry_run_env: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_TOKEN_PATH", "HF_REPO_ID", "DRY_RUN")}
    env.update({"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(cwd / "hf-home"),
                "COLUMNS": "200"})
    if token is not None:
        env["HF_TOKEN"] = token
    if repo_id is not None:
        env["HF_REPO_ID"] = repo_id
    if dry_run_env:
        env["DRY_RUN"] = "1"
    return subprocess.run([sys.executable, "-m", "r1tui", "push", str(run_dir), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def hub_calls(standin) -> list[dict]:
    """Requests made for the push (huggingface_hub also fetches its agent registry, unauthenticated)."""
    return [r for r in standin.requests if r["path"] != "/api/agent-harnesses"]


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_adapter_tokenizer_is_exact(files: dict[str, bytes], folder: Path) -> None:
    """The adapter repo carries the published tokenizer, not the fast one training left beside
    the adapter: AutoTokenizer on it is mistral-common (indented code gives the training ids),
    and mistral-common's Hub lookup (which lists the whole repo) finds its v3 file."""
    from mistral_common.tokens.tokenizers.utils import get_one_valid_tokenizer_file
    from transformers import AutoTokenizer

    from r1tui.data.tokenizer import tokenizer_file

    assert "adapter/tokenizer.json" not in files
    assert files["adapter/tokenizer.model.v3"] == files["adapter/tokenizer.model"] == tokenizer_file("v3").read_bytes()
    assert json.loads(files["adapter/tokenizer_config.json"])["tokenizer_class"] == "MistralCommonBackend"
    assert get_one_valid_tokenizer_file(list(files)) == "adapter/tokenizer.model.v3"
    for name, content in files.items():
        if name.startswith("adapter/"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "adapter"))
    assert type(tokenizer).__name__ == "MistralCommonBackend"
    code = [{"role": "user", "content": "```python\nfor i in range(3):\n    print(i*i)\n```"}]
    ids = tokenizer.apply_chat_template(code, tokenize=True, return_dict=False)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[pieces.index("▁print") - 1] == "▁▁▁"  # the fast tokenizer gives "▁▁▁▁" "print"


def test_push_to_hub_standin_sends_every_file_with_the_token(hub_standin, push_ready_run, tmp_path,
                                                            tmp_path_factory):
    result = push(push_ready_run, tmp_path, endpoint=hub_standin.url)
    assert result.returncode == 0, result.stderr

    repo = hub_standin.repos["alice/tiny-r1"]  # no namespace given: the token's user
    assert repo["private"] is True  # hub.private = true in configs/tiny.toml
    gguf = push_ready_run / "gguf" / "tiny-mistral-random-r1-Q4_K_M.gguf"
    assert repo["files"][gguf.name] == gguf.read_bytes()
    adapter = push_ready_run / "adapter" / "adapter_model.safetensors"
    assert repo["files"]["adapter/adapter_model.safetensors"] == adapter.read_bytes()
    assert repo["files"]["Modelfile"] == (push_ready_run / "gguf" / "Modelfile").read_bytes()
    assert "tiny-mistral-random-r1-F16.gguf" not in repo["files"]  # F16 is not a configured quant type
    published = json.loads(repo["files"]["adapter/adapter_config.json"])
    assert published["base_model_name_or_path"] == "r1tui/tiny-mistral-random"  # not the local base folder
    assert "adapter/README.md" not in repo["files"]  # peft's boilerplate; the repo card covers the adapter
    assert_adapter_tokenizer_is_exact(repo["files"], tmp_path / "downloaded")
    assert json.loads(repo["files"]["parity.json"])["ok"] is True
    for name, content in repo["files"].items():  # no local path of this machine is published
        assert str(tmp_path_factory.getbasetemp()).encode() not in content, name
    card = repo["files"]["README.md"].decode()
    assert card.startswith("---\nlicense: \"apache-2.0\"") and "alice/tiny-r1" in card
    assert card == (push_ready_run / "card" / "README.md").read_text(encoding="utf-8")

    for request in hub_standin.requests:
        if request["path"].startswith(("/api/whoami-v2", "/api/repos/", "/api/models/", "/api/validate-yaml")) \
                or request["path"].endswith("/info/lfs/objects/batch"):
            assert request["headers"].get("authorization") == f"Bearer {WRITE_TOKEN}", request["path"]
        else:  # LFS object PUTs (pre-signed storage URLs on the real Hub) and the client's own registry fetch
            assert WRITE_TOKEN not in json.dumps(request), request["path"]
    assert [r["path"] for r in hub_calls(hub_standin)][-2:] == ["/api/validate-yaml", "/api/models/alice/tiny-r1/commit/main"]
    assert sorted(r["bytes"] for r in hub_standin.requests if r["method"] == "PUT") == sorted(
        [gguf.stat().st_size, adapter.stat().st_size])

    # The token is passed to the client and nowhere else.
    assert WRITE_TOKEN not in result.stdout + result.stderr
    for path in push_ready_run.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert WRITE_TOKEN.encode() not in path.read_bytes(), path
    events = [json.loads(line) for line in (push_ready_run / "events.jsonl").read_text().splitlines()]
    push_events = [e for e in events if e["stage"] == "push"]
    assert [e["data"]["status"] for e in push_events if e["type"] == "stage_finished"][-1] == "finished"
    progress = [e["data"] for e in push_events if e["type"] == "stage_progress"]
    assert progress[-1]["completed"] == progress[-1]["total"] and progress[-1]["unit"] == "byte"
    assert "pushed" in result.stdout and "alice/tiny-r1" in result.stdout


def test_push_dry_run_prints_the_plan_and_touches_no_network(hub_standin, push_ready_run, tmp_path):
    card = push_ready_run / "card" / "README.md"
    card_mtime = card.stat().st_mtime_ns
    for extra, env_flag in ((["--dry-run"], False), ([], True)):
        result = push(push_ready_run, tmp_path, *extra, endpoint=hub_standin.url, repo_id="alice/plan-only",
                      dry_run_env=env_flag)
        assert result.returncode == 0, result.stderr
        for name in ("tiny-mistral-random-r1-Q4_K_M.gguf", "adapter/adapter_model.safetensors", "Modelfile",
                     "README.md"):
            assert name in result.stdout
        assert "alice/plan-only" in result.stdout and "private" in result.stdout and "13.3 MB" in result.stdout
        assert "token: found in HF_TOKEN" in result.stdout and WRITE_TOKEN not in result.stdout
    assert hub_standin.requests == []  # not even the client's registry fetch
    assert card.stat().st_mtime_ns == card_mtime


def test_push_without_a_token_is_one_line(hub_standin, push_ready_run, tmp_path):
    result = push(push_ready_run, tmp_path, endpoint=hub_standin.url, token=None)
    assert result.returncode == 1
    assert error_lines(result) == [line for line in result.stderr.splitlines() if line.strip()]
    assert "no Hugging Face token" in result.stderr and "HF_TOKEN" in result.stderr
    assert hub_calls(hub_standin) == []


@pytest.mark.parametrize(("token", "expected"), [
    ("hf_not_a_token_the_standin_knows", "rejected the token (HTTP 401)"),
    ("hf_standin_read_token", "read-only"),
])
def test_push_with_a_rejected_or_read_only_token_is_one_line(hub_standin, push_ready_run, tmp_path, token, expected):
    result = push(push_ready_run, tmp_path, endpoint=hub_standin.url, token=token)
    assert result.returncode == 1
    assert len(error_lines(result)) == 1 and expected in result.stderr
    assert token not in result.stdout + result.stderr
    assert [r["path"] for r in hub_calls(hub_standin)] == ["/api/whoami-v2"]


def test_push_to_a_repo_owned_by_someone_else_is_refused(hub_standin, push_ready_run, tmp_path):
    result = push(push_ready_run, tmp_path, endpoint=hub_standin.url, repo_id="bob/taken")
    assert result.returncode == 1
    assert len(error_lines(result)) == 1
    assert "bob/taken" in result.stderr and "alice" in result.stderr
    assert [r["path"] for r in hub_calls(hub_standin)] == ["/api/whoami-v2"]
    assert hub_standin.repos["bob/taken"]["files"] == {}


def test_push_when_the_hub_cannot_be_reached_is_one_line(push_ready_run, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = push(push_ready_run, tmp_path, endpoint=f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert len(error_lines(result)) == 1 and "could not reach the Hub" in result.stderr


def test_push_retry_resumes_after_a_network_failure(hub_standin, push_ready_run, tmp_path):
    hub_standin.drop_next_commit = True
    first = push(push_ready_run, tmp_path, endpoint=hub_standin.url)
    assert first.returncode == 1 and len(error_lines(first)) == 1
    assert "could not reach the Hub" in first.stderr and "again to resume" in first.stderr
    uploaded = list(hub_standin.lfs_puts)
    assert len(uploaded) == 2 and hub_standin.repos["alice/tiny-r1"]["files"] == {}

    second = push(push_ready_run, tmp_path, endpoint=hub_standin.url)
    assert second.returncode == 0, second.stderr
    assert hub_standin.lfs_puts == uploaded  # nothing sent twice
    assert "tiny-mistral-random-r1-Q4_K_M.gguf" in hub_standin.repos["alice/tiny-r1"]["files"]


def test_only_the_ggufs_the_last_export_checked_are_published(hub_standin, push_ready_run, tmp_path):
    """A GGUF left from an earlier export (or copied in) is not uploaded, and a checked GGUF
    rewritten after its parity check makes push refuse until export checks it again."""
    run = tmp_path / "run"
    shutil.copytree(push_ready_run, run)
    stale = run / "gguf" / "tiny-mistral-random-r1-Q8_0.gguf"
    shutil.copy(run / "gguf" / "tiny-mistral-random-r1-Q4_K_M.gguf", stale)
    result = push(run, tmp_path, "--dry-run", "--json", endpoint=hub_standin.url)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["not_published"] == [stale.name] and plan["parity_ok"] is True
    assert stale.name not in {f["path_in_repo"] for f in plan["files"]}
    assert "tiny-mistral-random-r1-Q4_K_M.gguf" in {f["path_in_repo"] for f in plan["files"]}

    checked = run / "gguf" / "tiny-mistral-random-r1-Q4_K_M.gguf"
    os.utime(checked, ns=(checked.stat().st_atime_ns, checked.stat().st_mtime_ns + 1_000_000_000))
    result = push(run, tmp_path, endpoint=hub_standin.url)
    assert result.returncode == 1
    assert error_lines(result) == [f"error: tokenizer parity was not checked (or a GGUF changed since) for "
                                   f"{run.name}: a GGUF that tokenizes unlike training is not published; run "
                                   f"`r1tui export {run.name}` and fix what it reports"]
    assert hub_calls(hub_standin) == []


@pytest.mark.parametrize("bad", ["\nsecond", "\rsecond", " second", "\tsecond"])
@pytest.mark.parametrize("debug", [False, True])
def test_a_token_with_whitespace_is_refused_without_ever_showing_it(hub_standin, push_ready_run, tmp_path, bad, debug):
    token = "hf_" + "Q7" * 17 + bad
    result = push(push_ready_run, tmp_path, *(["--debug"] if debug else []), endpoint=hub_standin.url, token=token)
    assert result.returncode == 1
    assert error_lines(result) == ["error: HF_TOKEN holds whitespace or a control character (a newline, a tab, "
                                   "a space); set it to the token alone: export HF_TOKEN=hf_..."]
    shown = result.stdout + result.stderr
    assert "Q7Q7" not in shown and "second" not in shown
    assert ("Traceback" in shown) is debug  # --debug shows where, still without the value
    assert hub_calls(hub_standin) == []


@pytest.mark.parametrize("repo_id", ["not a/valid//repo", "alice/a--b", "alice/x.git", "a/b/c"])
def test_an_invalid_repo_id_is_one_line_naming_the_setting(hub_standin, push_ready_run, tmp_path, repo_id):
    result = push(push_ready_run, tmp_path, endpoint=hub_standin.url, repo_id=repo_id)
    assert result.returncode == 1
    assert error_lines(result) == [f"error: HF_REPO_ID = {repo_id!r} is not a Hub repo id: use name or "
                                   "namespace/name with letters, digits, '-', '_' and '.' (no '--' or '..', at most "
                                   "96 characters each), e.g. your-name/mistral-small-r1"]
    assert hub_calls(hub_standin) == []

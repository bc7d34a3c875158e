"""Fixtures for the export tests: a tiny run folder built here, and one real export of it.

The run folder is what training leaves behind: config.toml, base/ (a seeded random
MistralForCausalLM with the tiny preset's shapes and the real v3 tokenizer), adapter/
(a peft LoRA adapter, r=16 on all seven projections, with non-zero B so merging
changes the weights) and data/stats.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_tiny_run(run_dir: Path, tiny_config_path: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    from r1tui.calculator import PRESETS
    from r1tui.config import dump_toml, load_config
    from r1tui.data.tokenizer import save_hf_tokenizer

    run_dir.mkdir(parents=True)
    config = load_config(tiny_config_path)
    config.runs.dir = run_dir.parent
    (run_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")

    arch = PRESETS["tiny"]
    torch.manual_seed(1234)
    model_config = MistralConfig(
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, head_dim=arch.head_dim, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, max_position_embeddings=4096,
    )
    base = MistralForCausalLM(model_config)
    base.save_pretrained(run_dir / "base")
    save_hf_tokenizer("v3", run_dir / "base")

    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_MODULES, task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)  # peft starts B at zero: merging would change nothing
    peft_model.peft_config["default"].base_model_name_or_path = str(run_dir / "base")
    peft_model.save_pretrained(run_dir / "adapter")
    save_hf_tokenizer("v3", run_dir / "adapter")

    (run_dir / "data").mkdir()
    (run_dir / "data" / "stats.json").write_text(json.dumps({
        "examples": 200, "tokens": 51234, "trained_tokens": 20480, "masked_fraction": 0.6003,
        "max_length": 312, "dropped_overlong": 0,
    }), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="session")
def tiny_run_template(tmp_path_factory, tiny_config_path) -> Path:
    """The tiny run as training leaves it (do not modify: copy it with `fresh_run`)."""
    return build_tiny_run(tmp_path_factory.mktemp("runs") / "tiny-run", tiny_config_path)


def export(run_dir: Path, events=None, **options):
    """``r1tui export``'s path without the terminal: the step "export" through the orchestrator,
    under the run's lock; returns the ExportResult."""
    from r1tui.export.stages import export_result
    from r1tui.pipeline.orchestrator import run_named
    from r1tui.runs.layout import RunLayout

    layout = RunLayout(Path(run_dir))
    config = options.pop("config", None) or layout.frozen_config()
    skipped = run_named(config, layout, ["export"], events=events, what="r1tui export", **options)
    return export_result(layout, skipped)


@pytest.fixture(scope="session")
def run_export():
    """``export(run_dir, events=None, config=None, **options)`` for the tests."""
    return export


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory, tiny_run_template) -> tuple[Path, object, Path]:
    """One real export of the tiny run: (run_dir, its ExportResult, events file)."""
    from r1tui.runs.events import EventWriter

    run_dir = tmp_path_factory.mktemp("exported") / "tiny-run"
    shutil.copytree(tiny_run_template, run_dir)
    events_path = run_dir / "events.jsonl"
    with EventWriter(events_path) as events:
        result = export(run_dir, events=events)
    return run_dir, result, events_path


@pytest.fixture
def fresh_run(tmp_path, tiny_run_template):
    """A private copy of the tiny run (before export) for tests that change it."""
    def make(source: Path | None = None) -> Path:
        target = tmp_path / "run"
        shutil.copytree(source or tiny_run_template, target)
        return target
    return make


@pytest.fixture(scope="session")
def converter_dir() -> Path:
    from r1tui.export.gguf import find_converter

    return find_converter()


VOCAB_SIZES = {"v3": 32768, "tekken": 131072, "tekken-v7": 131072}


def published_model_folder(folder: Path, spec: str) -> Path:
    """What merge leaves in merged/ minus the weights: config.json (a Mistral model with the
    tokenizer's vocabulary) and the published tokenizer of ``spec`` (v3, or Tekken from
    mistral-common's own tekken file, in its v3 or the derived v7 format)."""
    from transformers import MistralConfig

    from r1tui.data.tokenizer import write_published_tokenizer

    config = MistralConfig(vocab_size=VOCAB_SIZES[spec], hidden_size=64, intermediate_size=128,
                           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                           bos_token_id=1, eos_token_id=2)
    config.architectures = ["MistralForCausalLM"]
    config.save_pretrained(folder)
    write_published_tokenizer(spec, folder)
    return folder


@pytest.fixture(scope="session")
def published_folders(tmp_path_factory) -> dict[str, Path]:
    """spec -> a merged-like folder (config.json + published tokenizer), for v3 and both Tekkens."""
    root = tmp_path_factory.mktemp("published")
    return {spec: published_model_folder(root / spec, spec) for spec in VOCAB_SIZES}


@pytest.fixture(scope="session")
def published_ggufs(tmp_path_factory, published_folders, converter_dir) -> dict[str, Path]:
    """spec -> a vocabulary-only GGUF converted by llama.cpp from the published folder (as the
    gguf stage does: through ``converter_input``)."""
    from r1tui.export.gguf import convert_to_gguf
    from r1tui.export.merge import converter_input

    root = tmp_path_factory.mktemp("published-gguf")
    ggufs = {}
    for spec, folder in published_folders.items():
        with converter_input(folder) as source:
            ggufs[spec] = convert_to_gguf(source, root / f"{spec}.gguf", converter_dir, model_name=f"{spec} r1",
                                          vocab_only=True)
    return ggufs


# ---------------------------------------------------------------- a stand-in for the Hub

import base64  # noqa: E402
import hashlib  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

STANDIN_USERS = {
    "hf_standin_write_token": {"name": "alice", "orgs": ["alice-lab"], "role": "write"},
    "hf_standin_read_token": {"name": "alice", "orgs": [], "role": "read"},
}


class HubStandIn:
    """A local HTTP stand-in for the parts of the Hugging Face Hub API that push uses.

    Not the Hub: whoami, repo creation, preupload, the LFS batch API (basic transfer),
    LFS object PUTs and NDJSON commits, with state in memory. It records every request
    (method, path, lower-cased headers, body size) so tests can check what the real
    huggingface_hub client sent. Repos: "bob/taken" exists and belongs to bob.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.repos: dict[str, dict] = {"bob/taken": {"owner": "bob", "private": False, "files": {}}}
        self.lfs: dict[str, bytes] = {}
        self.lfs_puts: list[str] = []
        self.drop_next_commit = False
        self.validated_cards: list[str] = []
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                return

            def do_GET(self):
                standin.handle(self, "GET")

            def do_POST(self):
                standin.handle(self, "POST")

            def do_PUT(self):
                standin.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- plumbing
    @staticmethod
    def _body(handler) -> bytes:
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(handler.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    handler.rfile.readline()
                    return bytes(data)
                data += handler.rfile.read(size)
                handler.rfile.readline()
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))

    @staticmethod
    def _send(handler, status: int, payload=None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _user(self, handler):
        auth = handler.headers.get("Authorization", "")
        return STANDIN_USERS.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def _may_write(self, user, repo_id: str) -> bool:
        return repo_id.split("/")[0] in {user["name"], *user["orgs"]} and user["role"] == "write"

    def _validate_card(self, content: str):
        """The Hub checks a README's YAML metadata before a commit: do the same, roughly."""
        import yaml

        self.validated_cards.append(content)
        try:
            _, front, _ = content.split("---\n", 2)
            meta = yaml.safe_load(front)
        except ValueError:
            return 400, {"errors": [{"message": "no YAML metadata block"}]}
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}]}
        errors = []
        if not isinstance(meta, dict) or "license" not in meta:
            errors.append({"message": "\"license\" is required"})
        elif meta["license"] == "other" and not meta.get("license_name"):
            errors.append({"message": "\"license_name\" is required when license is other"})
        if not all(isinstance(tag, str) for tag in (meta or {}).get("tags", [])):
            errors.append({"message": "\"tags\" must be a list of strings"})
        return (400, {"errors": errors}) if errors else (200, {"errors": [], "warnings": []})

    # -- routes
    def handle(self, handler, method: str) -> None:
        path = handler.path.split("?")[0]
        body = self._body(handler)
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": {k.lower(): v for k, v in handler.headers.items()},
                                  "bytes": len(body)})
        if method == "PUT" and path.startswith("/standin-lfs/"):
            oid = path.rsplit("/", 1)[-1]
            if hashlib.sha256(body).hexdigest() != oid:
                return self._send(handler, 400, {"error": "sha256 mismatch"})
            with self.lock:
                self.lfs[oid] = body
                self.lfs_puts.append(oid)
            return self._send(handler, 200)
        user = self._user(handler)
        if user is None:
            return self._send(handler, 401, {"error": "Invalid credentials in Authorization header"})
        if method == "GET" and path == "/api/whoami-v2":
            return self._send(handler, 200, {"type": "user", "name": user["name"],
                                             "orgs": [{"name": o} for o in user["orgs"]],
                                             "auth": {"type": "access_token", "accessToken": {"role": user["role"]}}})
        if method == "POST" and path == "/api/validate-yaml":
            return self._send(handler, *self._validate_card(json.loads(body)["content"]))
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload.get('organization') or user['name']}/{payload['name']}"
            if not self._may_write(user, repo_id):
                return self._send(handler, 403, {"error": "You don't have the rights to create a model under this namespace"})
            if repo_id in self.repos:
                return self._send(handler, 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"})
            self.repos[repo_id] = {"owner": user["name"], "private": payload.get("visibility") == "private", "files": {}}
            return self._send(handler, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id})
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            repo_id = path.removeprefix("/").removesuffix(".git/info/lfs/objects/batch")
            if not self._may_write(user, repo_id):
                return self._send(handler, 403, {"error": "forbidden"})
            objects = []
            for item in json.loads(body)["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if item["oid"] not in self.lfs:
                    entry["actions"] = {"upload": {"href": f"{self.url}/standin-lfs/{item['oid']}"}}
                objects.append(entry)
            return self._send(handler, 200, {"transfer": "basic", "objects": objects})
        parts = path.split("/")  # /api/models/{ns}/{name}/{action}/{revision}
        if method == "POST" and len(parts) == 7 and parts[:3] == ["", "api", "models"]:
            repo_id, action = f"{parts[3]}/{parts[4]}", parts[5]
            if repo_id not in self.repos:
                return self._send(handler, 404, {"error": "Repository not found"})
            if not self._may_write(user, repo_id):
                return self._send(handler, 403, {"error": "forbidden"})
            if action == "preupload":
                files = [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith((".gguf", ".safetensors")) else "regular",
                          "shouldIgnore": False} for f in json.loads(body)["files"]]
                return self._send(handler, 200, {"files": files})
            if action == "commit":
                if self.drop_next_commit:  # a network failure: the connection dies without an answer
                    self.drop_next_commit = False
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return None
                committed = {}
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    value = item["value"]
                    if item["key"] == "file":
                        committed[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "lfsFile":
                        if value["oid"] not in self.lfs:
                            return self._send(handler, 400, {"error": f"unknown LFS object {value['oid']}"})
                        committed[value["path"]] = self.lfs[value["oid"]]
                self.repos[repo_id]["files"].update(committed)
                oid = hashlib.sha1(body).hexdigest()
                return self._send(handler, 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                                                 "pullRequestUrl": None})
        return self._send(handler, 404, {"error": f"stand-in has no route {method} {path}"})


@pytest.fixture
def hub_standin():
    standin = HubStandIn()
    yield standin
    standin.close()

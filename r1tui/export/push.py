"""Publish a run to the Hugging Face Hub: the GGUF(s), the adapter, the Modelfile, a model card.

- The adapter goes up with the published tokenizer (``adapter_files``: the one merged/
  holds, which ``AutoTokenizer`` loads as mistral-common), not the fast tokenizer files
  training left beside it; parity checks that folder as pushed (``write_adapter``).

- The token comes from ``HF_TOKEN`` or the Hub's saved login (``hf auth login``). It is
  passed to huggingface_hub and nowhere else: never printed, logged, written to the run
  folder or put in an event, and scrubbed from any error text.
- ``HF_REPO_ID`` overrides ``hub.repo_id``; a name without a namespace goes under the
  token's user. A namespace that is neither the user nor one of their organisations is
  refused before anything is uploaded.
- Files go up one at a time (``preupload_lfs_files``, one progress event per file) and
  are committed together at the end (``create_commit``). Content the Hub already holds
  is not sent again, so running push again after a failure resumes.
- A dry run returns the plan (a ``PushPlan``: repo, visibility, every file and its size)
  and touches no network; a push returns a ``PushResult``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.errors import R1Error
from r1tui.runs.layout import RunLayout

log = logging.getLogger(__name__)

TOKEN_HELP = "set HF_TOKEN or run `hf auth login` with a write token (https://huggingface.co/settings/tokens)"


@dataclass(frozen=True)
class PushFile:
    """One file of the upload: where it goes in the repo, where it comes from, its size."""

    path_in_repo: str
    local: str
    bytes: int
    rewritten: bool = False  # adapter_config.json: published with the base's Hub id (adapter_config_for_hub)
    generated: bool = False  # made at push time: the model card, the adapter's published tokenizer files


@dataclass(frozen=True)
class PushPlan:
    """What ``r1tui push`` would upload, read from the run folder alone (no network)."""

    repo_id: str  # "" when neither hub.repo_id nor HF_REPO_ID is set
    repo_id_source: str  # "HF_REPO_ID" or "hub.repo_id"
    private: bool
    files: list[PushFile]
    total_bytes: int
    token: str | None  # where the token would come from ("HF_TOKEN", "saved login"), never the token
    parity_ok: bool | None  # None: never checked, or a checked GGUF was rewritten since
    not_published: list[str] = field(default_factory=list)  # GGUFs in the run the last export did not check

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    repo_id: str
    url: str
    commit: str
    private: bool
    files: list[dict[str, Any]]  # {"path_in_repo", "bytes"} per file
    uploaded_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _token_source() -> str | None:
    """Where a token would come from, without reading it out: "HF_TOKEN", "saved login" or None."""
    if os.environ.get("HF_TOKEN", "").strip():
        return "HF_TOKEN"
    from huggingface_hub import get_token

    return "saved login" if get_token() else None


def _token() -> str:
    from huggingface_hub import get_token

    raw = os.environ.get("HF_TOKEN", "")
    if raw.strip() and any(ch.isspace() or not ch.isprintable() for ch in raw.strip()):
        # httpx would refuse it as a header and print it whole; the value is never shown
        raise R1Error("HF_TOKEN holds whitespace or a control character (a newline, a tab, a space); "
                      "set it to the token alone: export HF_TOKEN=hf_...")
    token = raw.strip() or get_token()
    if not token:
        raise R1Error(f"no Hugging Face token: {TOKEN_HELP}")
    return token


def _layout(run: str | Path | RunLayout) -> RunLayout:
    return run if isinstance(run, RunLayout) else RunLayout(Path(run).resolve())


def _card_bytes(config: Config, layout: RunLayout, repo_id: str) -> int:
    from r1tui.export.card import render_card

    return len(render_card(config, layout, repo_id).encode("utf-8"))


def plan_push(config: Config, run_dir: str | Path | RunLayout) -> PushPlan:
    """Repo, visibility and every file with its size; reads only the run folder."""
    from r1tui.export.card import checked_ggufs, parity_is_current, published_ggufs, read_parity
    from r1tui.export.gguf import mmproj_path

    layout = _layout(run_dir)
    parity = read_parity(layout)
    ggufs = published_ggufs(layout, config, parity)
    if not ggufs:
        raise R1Error(f"{layout.root}: no exported GGUF in {layout.gguf_dir.name}/ (none checked by parity); "
                      f"run `r1tui export {layout.run_id}` first")
    checked = checked_ggufs(layout, parity)
    left_out = sorted(p.name for p in layout.gguf_files() if p not in checked)
    files = [PushFile(p.name, str(p), p.stat().st_size) for p in ggufs]
    mmproj = mmproj_path(layout.root, config)  # a Mistral3 run's vision part, beside the GGUFs in the repo
    if mmproj.is_file():
        files.append(PushFile(mmproj.name, str(mmproj), mmproj.stat().st_size))
    files += adapter_files(config, layout)
    for path in (layout.modelfile, layout.parity):
        if path.is_file():
            files.append(PushFile(path.name, str(path), path.stat().st_size))
    repo_id = config.hub_repo_id
    files.append(PushFile(layout.card.name, str(layout.card), _card_bytes(config, layout, repo_id), generated=True))
    return PushPlan(
        repo_id=repo_id,
        repo_id_source="HF_REPO_ID" if os.environ.get("HF_REPO_ID") else "hub.repo_id",
        private=config.hub.private,
        files=files,
        total_bytes=sum(f.bytes for f in files),
        token=_token_source(),
        parity_ok=parity.get("ok") if parity_is_current(layout, parity) else None,
        not_published=left_out,
    )


def adapter_files(config: Config, run_dir: str | Path | RunLayout) -> list[PushFile]:
    """The adapter folder as published (``adapter/`` in the repo): the adapter's own files,
    without peft's boilerplate README and without the tokenizer files training left beside
    it (transformers' fast conversion: not exact), plus the published tokenizer
    (``r1tui.data.tokenizer.published_tokenizer``, generated files marked ``generated``)."""
    from r1tui.data.tokenizer import is_tokenizer_file, published_tokenizer, tokenizer_spec

    layout = _layout(run_dir)
    adapter_dir = layout.adapter
    if not adapter_dir.is_dir():
        return []
    files = []
    for path in sorted(adapter_dir.rglob("*")):
        relative = path.relative_to(adapter_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts) or relative.name == "README.md":
            continue  # peft's boilerplate card names the local base folder; the repo's card covers the adapter
        if len(relative.parts) == 1 and is_tokenizer_file(relative.name):
            continue  # replaced by the published tokenizer below
        in_repo = f"{adapter_dir.name}/{relative.as_posix()}"
        if relative.as_posix() == "adapter_config.json":
            files.append(PushFile(in_repo, str(path), len(adapter_config_for_hub(config, path)), rewritten=True))
        else:
            files.append(PushFile(in_repo, str(path), path.stat().st_size))
    for name, content in published_tokenizer(tokenizer_spec(config)).items():
        in_repo = f"{adapter_dir.name}/{name}"
        if isinstance(content, Path):
            files.append(PushFile(in_repo, str(content), content.stat().st_size))
        else:
            files.append(PushFile(in_repo, "", len(content), generated=True))
    return files


def file_content(config: Config, file: PushFile) -> str | bytes:
    """What is uploaded for a file of the plan: its local path, or the bytes made at push time."""
    if file.rewritten:
        return adapter_config_for_hub(config, Path(file.local))
    if file.generated and not file.local:  # a published tokenizer file (the card is written to disk first)
        from r1tui.data.tokenizer import published_tokenizer, tokenizer_spec

        return published_tokenizer(tokenizer_spec(config))[Path(file.path_in_repo).name]
    return file.local


def write_adapter(config: Config, run_dir: str | Path | RunLayout, folder: Path) -> Path:
    """The adapter folder exactly as push publishes it, written to ``folder`` (what parity loads)."""
    folder = Path(folder)
    for file in adapter_files(config, run_dir):
        target = folder / Path(file.path_in_repo).relative_to(_layout(run_dir).adapter.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        content = file_content(config, file)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.symlink_to(Path(content).resolve())
    return folder


def adapter_config_for_hub(config: Config, path: Path) -> bytes:
    """adapter_config.json as published: a local base folder is replaced by the base's Hub id,
    so the adapter loads from the Hub on someone else's machine (and no local path leaks)."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    named = str(data.get("base_model_name_or_path") or "")
    if not named or Path(named).is_absolute() or Path(named).exists() or named.startswith("."):
        data["base_model_name_or_path"] = config.model.name
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _hub_error(exc: BaseException, endpoint: str, repo_id: str, token: str | None) -> R1Error:
    """One line for anything the Hub or the network threw at us."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    again = "run `r1tui push RUN` again to resume (files already uploaded are not sent again)"
    if isinstance(exc, OfflineModeIsEnabled):
        return R1Error("HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to push")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        detail = _scrub(str(exc).splitlines()[0], token)
        if status == 401:
            return R1Error(f"the Hub rejected the token (HTTP 401); {TOKEN_HELP}")
        if status == 403:
            return R1Error(f"the Hub refused to let this token write to {repo_id} (HTTP 403): a read-only token, "
                           "or a repo owned by someone else; use a write token or another hub.repo_id")
        if status == 409:
            return R1Error(f"{repo_id} exists and this token cannot use it (HTTP 409); choose another hub.repo_id")
        return R1Error(f"the Hub answered HTTP {status} for {repo_id}: {detail}; {again}")
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return R1Error(f"could not reach the Hub at {endpoint} ({type(exc).__name__}); check the network and {again}")
    message = _scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, token)
    return R1Error(f"push to {repo_id} failed: {type(exc).__name__}: {message}; {again}")


def push_run(config: Config, run_dir: str | Path | RunLayout, events=None, dry_run: bool = False) -> PushPlan | PushResult:
    """Upload the run's GGUF(s), adapter, Modelfile and model card to the Hub.

    Returns the ``PushPlan`` when ``dry_run`` (no network), else the ``PushResult``. The caller
    holds the run's lock (``RunLock``) while it pushes: push rewrites the model card.
    """
    from r1tui.runs.events import NullWriter, stage

    events = events or NullWriter()
    layout = _layout(run_dir)
    plan = plan_push(config, layout)
    if dry_run:
        return plan
    if plan.parity_ok is not True:
        state = "failed" if plan.parity_ok is False else "was not checked (or a GGUF changed since)"
        raise R1Error(f"tokenizer parity {state} for {layout.run_id}: a GGUF that tokenizes unlike training is "
                      f"not published; run `r1tui export {layout.run_id}` and fix what it reports")
    if not plan.repo_id:
        raise R1Error("no Hub repo to push to: set hub.repo_id in the config or HF_REPO_ID (e.g. your-name/mistral-small-r1)")
    _check_repo_id(plan.repo_id, plan.repo_id_source)
    token = _token()

    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if constants.HF_HUB_OFFLINE:
        raise R1Error("HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to push")
    endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = plan.repo_id
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()  # progress goes out as events; the CLI draws them
    try:
        with stage(events, "push", repo_id=repo_id, private=plan.private, files=len(plan.files),
                   bytes=plan.total_bytes) as out:
            try:
                repo_id = _writable_repo(api, repo_id)
                url = api.create_repo(repo_id, private=plan.private, exist_ok=True, repo_type="model")
                from r1tui.export.card import write_card

                write_card(config, layout, repo_id)
                files = plan_push(config, layout).files  # the card's size with the final repo id
                operations = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=file_content(config, f))
                              for f in files]
                total, done = sum(f.bytes for f in files), 0
                for operation, file in zip(operations, files, strict=True):
                    api.preupload_lfs_files(repo_id, additions=[operation], repo_type="model")
                    done += file.bytes
                    events.emit("stage_progress", stage="push", completed=done, total=total, unit="byte",
                                message=file.path_in_repo)
                commit = api.create_commit(repo_id, operations=operations, repo_type="model",
                                           commit_message=f"Upload {layout.run_id} with r1tui")
            except R1Error:
                raise
            except Exception as exc:  # noqa: BLE001 - every Hub/network failure becomes one line
                raise _hub_error(exc, endpoint, repo_id, token) from exc
            result = PushResult(repo_id=repo_id, url=str(url), commit=commit.oid, private=plan.private,
                                files=[{"path_in_repo": f.path_in_repo, "bytes": f.bytes} for f in files],
                                uploaded_bytes=total)
            out.update(repo_id=repo_id, url=str(url), commit=commit.oid, bytes=total)
            events.emit("artifact", stage="push", kind="hub", path=str(url), bytes=total, repo_id=repo_id)
    finally:
        if not bars_were_off:
            enable_progress_bars()
    return result


def _check_repo_id(repo_id: str, source: str) -> None:
    """One line naming the setting when ``repo_id`` is not a Hub model id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise R1Error(f"{source} = {repo_id!r} is not a Hub repo id: use name or namespace/name with letters, "
                      "digits, '-', '_' and '.' (no '--' or '..', at most 96 characters each), "
                      "e.g. your-name/mistral-small-r1") from None


def _writable_repo(api, repo_id: str) -> str:
    """Check the token and that it may write under the repo's namespace; add the namespace if missing."""
    who = api.whoami()
    user = who.get("name", "")
    orgs = [org.get("name", "") for org in who.get("orgs", []) if isinstance(org, dict)]
    role = (((who.get("auth") or {}).get("accessToken") or {}).get("role") or "").lower()
    if role == "read":
        raise R1Error(f"the token is read-only; {TOKEN_HELP}")
    if "/" not in repo_id:
        repo_id = f"{user}/{repo_id}"
    namespace, name = repo_id.split("/", 1)
    if namespace not in {user, *orgs}:
        yours = f"'{user}'" + (f" (organisations: {', '.join(orgs)})" if orgs else "")
        raise R1Error(f"cannot push to {repo_id}: '{namespace}' is not this token's user {yours}; "
                      f"set hub.repo_id or HF_REPO_ID to {user}/{name}")
    return repo_id

"""The secrets drill: a Hub token in the environment, well-formed (hf_ and 34 letters and
digits) and malformed (a newline, a carriage return, spaces in it), through a whole tiny
pipeline and pushes to a local stand-in for the Hub, with and without --debug. Neither the
token nor any piece of a malformed one may appear in any file of the runs, any log, the
commands' stdout or stderr, or the dashboard's screen (tmux capture of `r1tui attach`).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def hub_standin_class(repo):
    """HubStandIn from tests/export/conftest.py (loaded by path: tests are not a package)."""
    name = "r1tui_drills_hub_standin"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, repo / "tests" / "export" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def hub(drills):
    module = hub_standin_class(drills.repo)
    module.STANDIN_USERS[drills.GOOD_TOKEN] = {"name": "alice", "orgs": [], "role": "write"}
    standin = module.HubStandIn()
    yield standin
    standin.close()


def test_no_copy_of_the_token_anywhere(tmp_path, reference, drills, forkserver, forkserver_factory, hub, tmux):
    outputs = dict(reference.outputs)  # `r1tui run` (detached, HF_TOKEN well-formed): its stdout and stderr
    newline_token = drills.MALFORMED_TOKENS["newline"]

    # The whole tiny pipeline again, in the foreground with --debug (every library's debug log on
    # the terminal), HF_TOKEN holding a newline.
    debug_config = drills.write_config(tmp_path / "debug", tmp_path / "debug" / "runs",
                                       train={"max_steps": 1, "save_steps": 1}, eval={"num_samples": 1})
    debug_run = forkserver.run("--debug", "run", "--config", str(debug_config), "--foreground", "--json",
                               env=drills.env(newline_token), timeout=600)
    assert debug_run.returncode == 0, debug_run.stderr[-3000:]
    assert json.loads(debug_run.stdout[debug_run.stdout.index("{"):])["status"] == "finished"
    outputs["r1tui --debug run: stdout"], outputs["r1tui --debug run: stderr"] = debug_run.stdout, debug_run.stderr

    # Pushes of the reference run to the stand-in: the good token is taken, a malformed one refused.
    push_dir = tmp_path / "push" / "runs"
    run = push_dir / reference.layout.run_id
    shutil.copytree(reference.layout.root, run, ignore=shutil.ignore_patterns("base", "merged", "checkpoints"))
    push_env = {k: v for k, v in drills.env(None).items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    push_env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"),
                    HF_REPO_ID="tiny-r1")
    pusher = forkserver_factory(push_env, ("--only", "r1tui.cli", "huggingface_hub", "huggingface_hub.hf_api",
                                           "r1tui.export.push", "r1tui.export.card", "rich.progress", "httpx"))
    tokens = {"well-formed": drills.GOOD_TOKEN, **drills.MALFORMED_TOKENS}
    for name, token in tokens.items():
        for debug in ([], ["--debug"]):
            pushed = pusher.run(*debug, "push", str(run), env={**push_env, "HF_TOKEN": token})
            what = f"push, {name} token{' --debug' if debug else ''}"
            outputs[f"{what}: stdout"], outputs[f"{what}: stderr"] = pushed.stdout, pushed.stderr
            if token == drills.GOOD_TOKEN:
                assert pushed.returncode == 0, pushed.stderr[-3000:]
            else:
                assert pushed.returncode == 1
                errors = [line for line in pushed.stderr.splitlines() if line.startswith("error:")]
                assert errors and "HF_TOKEN holds whitespace or a control character" in errors[0], pushed.stderr
    assert "tiny-mistral-random-r1-Q4_K_M.gguf" in hub.repos["alice/tiny-r1"]["files"]

    # The dashboard on the reference run, HF_TOKEN set, every panel.
    from r1tui.dashboard.screens.main import PANEL_KEYS

    attach = shlex.join([sys.executable, "-m", "r1tui", "attach", reference.layout.run_id, "--runs-dir",
                         str(reference.runs_dir), "--no-gpu-sampling"])
    tmux.start(attach, {"TERM": "xterm-256color", "HF_TOKEN": drills.GOOD_TOKEN})
    drills.wait_for(lambda: reference.layout.run_id in tmux.screen(), timeout=60, poll=0.1, what="the dashboard")
    screen = tmux.screen()
    for panel in sorted(PANEL_KEYS, key=lambda name: name == "repl"):  # the REPL's input takes the keys
        tmux("send-keys", "-t", "drill", PANEL_KEYS[panel])
        deadline = time.monotonic() + 5
        while tmux.screen() == screen and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # let it finish drawing
        if panel == "push":  # the upload plan is made in a worker
            drills.wait_for(lambda: "token from HF_TOKEN" in " ".join(tmux.screen().split()), timeout=30, poll=0.1,
                            what="the upload plan")
        screen = tmux.screen()
        outputs[f"dashboard, {panel} panel"] = tmux.screen(history=True)
    assert "token from HF_TOKEN" in " ".join(outputs["dashboard, push panel"].split())

    pieces = sorted({piece for token in tokens.values() for piece in drills.token_pieces(token)})
    found = drills.find_pieces(pieces, reference.root, tmp_path, texts=outputs)
    print(f"\nDRILL secrets: {len(pieces)} pieces of {len(tokens)} tokens searched in "
          f"{sum(1 for p in [*reference.root.rglob('*'), *tmp_path.rglob('*')] if p.is_file())} files and "
          f"{len(outputs)} outputs; copies found: {len(found)}")
    assert found == []

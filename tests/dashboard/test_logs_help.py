"""The Logs panel (l), the key sheet (?), Esc, the header's dry-run badge, scrolling a panel
without Tab, and the screenshot action: the real app driven by its Pilot on real logs.

Snapshots (80x24 and 120x40) of the Logs panel and the key sheet are in
``__snapshots__/test_logs_help/``; regenerate with
``pytest tests/dashboard/test_logs_help.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual import events
from textual.widgets import HelpPanel, Tabs

from r1tui.dashboard.screens.help import HelpScreen, key_sheet
from r1tui.dashboard.screens.main import PANEL_IDS, MainScreen
from r1tui.dashboard.screens.main import PANEL_KEYS as KEY
from r1tui.dashboard.screens.modals import PlanScreen
from r1tui.dashboard.widgets.evaluator import EvaluatorPanel
from r1tui.dashboard.widgets.logs import LogsPanel
from r1tui.runs.events import Event, EventReader, EventWriter
from r1tui.runs.logs import (
    LEVELS,
    QUIET,
    LogBook,
    LogEntry,
    LogFilter,
    TextLogSource,
    event_level,
    format_event,
    format_gpu_sample,
    next_in,
)

pytestmark = pytest.mark.anyio

SMALL, LARGE = (80, 24), (120, 40)


def shown_texts(panel: LogsPanel) -> list[str]:
    return [panel.book.line(row).text for row in range(len(panel.book.shown))]


async def open_logs(pilot, app, settle, wait_for) -> LogsPanel:
    await settle(pilot, app)
    await pilot.press(KEY["logs"])
    panel = app.query_one(LogsPanel)
    await wait_for(pilot, lambda: panel.caught_up, what="the logs read to their end")
    await pilot.pause(0.05)
    return panel


# ---------------------------------------------------------------- the plain module


def test_the_level_of_each_event_and_what_the_default_filter_lets_through():
    assert event_level(Event("heartbeat")) == "debug"
    assert event_level(Event("stage_progress", {"completed": 1})) == "debug"
    assert event_level(Event("log", {"level": "WARN", "message": "m"})) == "warning"
    assert event_level(Event("log", {"level": "nonsense", "message": "m"})) == "info"
    assert event_level(Event("error", {"message": "boom"})) == "error"
    assert event_level(Event("stage_finished", {"status": "failed"})) == "error"
    assert event_level(Event("run_finished", {"status": "cancelled"})) == "warning"
    assert event_level(Event("metric", {"step": 1})) == "info"
    # the default minimum level hides exactly what `r1tui logs` hides without --all
    default = LogFilter()
    for kind in ("heartbeat", "stage_progress", "metric", "log", "error", "gpu", "artifact"):
        entry = LogEntry("x", event_level(Event(kind, {})), None, kind)
        assert default.matches(entry) == (kind not in QUIET), kind


def test_gpu_lines_read_the_same_in_the_log_and_from_r1tui_gpu():
    """One text for a gpu sample: r1tui.gpu.format_sample is the log's line."""
    from r1tui.gpu import format_sample

    expected = {
        "no GPU (NVML Shared Library Not Found)": {"available": False, "reason": "NVML Shared Library Not Found"},
        "GPU 1 RTX 4090: 12.0 GB/24.0 GB, util 97%, 71°C, 402 W": {
            "available": True, "index": 1, "name": "RTX 4090", "memory_used": 12e9, "memory_total": 24e9,
            "utilization": 97, "temperature": 71, "power_w": 402},
        "GPU 0 N/A: —/—, util N/A, N/A, N/A": {"available": True, "name": None, "memory_used": None,
                                               "memory_total": None},
    }
    for line, sample in expected.items():
        assert format_gpu_sample(sample) == format_sample(sample) == line


def test_a_logbook_filters_by_stage_level_and_text_as_entries_arrive():
    book = LogBook()
    book.add([LogEntry("a train step", "info", "train", "metric"), LogEntry("tick", "debug", "train", "heartbeat"),
              LogEntry("boom", "error", "eval", "error"), LogEntry("run started", "info", None, "run_started")])
    assert [book.line(i).text for i in range(len(book.shown))] == ["a train step", "boom", "run started"]
    assert book.stages == ["train", "eval", "run"]
    book.set_filter(LogFilter(stage="train", min_level="debug"))
    assert [book.line(i).text for i in range(len(book.shown))] == ["a train step", "tick"]
    assert book.add([LogEntry("later step", "info", "train", "metric"), LogEntry("x", "info", "eval", "log")]) == 1
    book.set_filter(LogFilter(min_level="error"))
    assert [book.line(i).text for i in range(len(book.shown))] == ["boom"]
    book.set_filter(LogFilter(text="STEP"))
    assert [book.line(i).text for i in range(len(book.shown))] == ["a train step", "later step"]
    assert next_in(list(LEVELS), "error") == "debug" and next_in([None, "train"], "gone") is None


def test_pipeline_log_lines_take_their_level_and_a_traceback_stays_an_error(tmp_path: Path):
    log = tmp_path / "pipeline.log"
    log.write_bytes(b"2026-11-27 22:39:36,123 INFO r1tui.pipeline: starting\n"
                    b"2026-11-27 22:39:37,000 WARNING r1tui.train: slow\n"
                    b"Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                    b"RuntimeError: CUDA out of memory\n"
                    b"\x1b[31mred\x1b[0m\tprogress 10%\rprogress 100%\n"
                    b"half a li")
    source = TextLogSource(log)
    entries = source.read()
    assert [(e.text, e.level) for e in entries] == [
        ("2026-11-27 22:39:36,123 INFO r1tui.pipeline: starting", "info"),
        ("2026-11-27 22:39:37,000 WARNING r1tui.train: slow", "warning"),
        ("Traceback (most recent call last):", "error"), ('  File "x.py", line 1', "error"),
        ("RuntimeError: CUDA out of memory", "error"), ("progress 100%", "error")]
    assert not source.at_end()  # the torn last line waits for its end
    with open(log, "ab") as more:
        more.write(b"ne\n")
    assert [e.text for e in source.read()] == ["half a line"] and source.at_end()


# ---------------------------------------------------------------- the Logs panel


async def test_the_logs_panel_shows_what_r1tui_logs_prints(make_app, recorded_run, settle, wait_for, capsys):
    from r1tui.cli import main

    assert main(["logs", str(recorded_run.run_dir)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    app = make_app(recorded_run)
    async with app.run_test(size=LARGE) as pilot:
        panel = await open_logs(pilot, app, settle, wait_for)
        shown = shown_texts(panel)
        events_read = EventReader(recorded_run.layout.events).read_new()
        assert shown == [format_event(e) for e in events_read if e.type not in QUIET]
        assert shown == printed[:len(shown)]  # the CLI may add a diagnosis after the events; none here
        assert len(panel.book.entries) == len(events_read) > len(shown)  # heartbeats/ticks held at debug
        # more than the Overview's share of the log: the whole of it
        assert len(shown) > 20 and app.focused is panel.view


async def test_logs_filter_by_stage_level_and_text(make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    async with app.run_test(size=SMALL) as pilot:
        panel = await open_logs(pilot, app, settle, wait_for)
        everything = len(panel.book.shown)
        assert "stage all" in screen_text(app) and "≥ info" in screen_text(app)
        await pilot.press("t")  # the first stage of the log: run
        await pilot.press("t")  # then prepare
        assert panel.book.filter.stage == "prepare"
        assert all(" prepare " in text for text in shown_texts(panel)) and 0 < len(panel.book.shown) < everything
        assert "stage prepare" in screen_text(app)
        for _ in panel.book.stages[1:]:  # round to "all" again
            await pilot.press("t")
        assert panel.book.filter.stage is None and len(panel.book.shown) == everything

        await pilot.press("w")  # ≥ warning
        assert panel.book.filter.min_level == "warning"
        assert all(panel.book.line(i).level in ("warning", "error") for i in range(len(panel.book.shown)))
        await pilot.press("w", "w")  # error, then debug: every line, ticks and heartbeats too
        assert panel.book.filter.min_level == "debug" and len(panel.book.shown) == len(panel.book.entries)
        await wait_for(pilot, lambda: "≥ debug" in screen_text(app), what="the level in the status line")
        await pilot.press("w")  # back to info
        assert len(panel.book.shown) == everything

        await pilot.press("slash")
        assert app.focused.id == "logs-find"
        await pilot.press(*"checkpoint", "enter")
        assert panel.book.filter.text == "checkpoint" and app.focused is panel.view
        assert shown_texts(panel) and all("checkpoint" in t.lower() for t in shown_texts(panel))
        await wait_for(pilot, lambda: "“checkpoint”" in screen_text(app), what="the find in the status line")
        await pilot.press("slash", "escape")  # esc leaves the field, the find stays
        assert app.focused is panel.view and panel.book.filter.text == "checkpoint"
        await pilot.press("slash", *["backspace"] * 10, "enter")  # an empty find clears it
        assert panel.book.filter.text == "" and len(panel.book.shown) == everything


async def test_logs_follow_a_live_log_pause_when_scrolled_up_and_resume_with_end(make_app, new_run, settle,
                                                                                  wait_for, screen_text):
    run = new_run(events=False, results=False)
    writer = EventWriter(run.layout.events)
    writer.emit("run_started", run_id=run.run_id, stages=["train"], pid=1)
    for step in range(1, 61):
        writer.emit("metric", stage="train", step=step, max_steps=500, loss=2.0)
    app = make_app(run)
    try:
        async with app.run_test(size=SMALL) as pilot:
            panel = await open_logs(pilot, app, settle, wait_for)
            view = panel.view
            await wait_for(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, what="at the bottom")
            assert view.following and "following" in screen_text(app)

            writer.emit("log", stage="train", level="warning", message="the newest line")
            await wait_for(pilot, lambda: "the newest line" in screen_text(app), what="a new line followed")
            assert view.scroll_y == view.max_scroll_y

            await pilot.press("pageup")  # scrolling up pauses following
            await wait_for(pilot, lambda: not view.following, what="paused")
            held = view.scroll_y
            assert "paused: End or G follows" in screen_text(app)
            writer.emit("metric", stage="train", step=61, max_steps=500, loss=1.5)
            await wait_for(pilot, lambda: len(panel.book.entries) == 63, what="the line read")
            await pilot.pause(0.1)
            assert view.scroll_y == held < view.max_scroll_y  # still where the reader left it

            await pilot.press("G")
            await wait_for(pilot, lambda: view.following and view.scroll_y == view.max_scroll_y, what="following")
            await pilot.press("home")
            await wait_for(pilot, lambda: not view.following, what="paused at the top")
            await pilot.press("end")
            await wait_for(pilot, lambda: view.following, what="end follows again")
            writer.emit("metric", stage="train", step=62, max_steps=500, loss=1.4)
            await wait_for(pilot, lambda: "step 62/500" in screen_text(app), what="step 62 shown")
    finally:
        writer.close()


async def test_the_pipeline_log_is_one_key_away(make_app, recorded_run, settle, wait_for, screen_text):
    recorded_run.layout.pipeline_log.write_text(
        "2026-11-27 22:39:36,123 INFO r1tui.pipeline.process: run started\n"
        "Traceback (most recent call last):\n  File \"train.py\", line 9, in step\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n", encoding="utf-8")
    app = make_app(recorded_run)
    async with app.run_test(size=SMALL) as pilot:
        panel = await open_logs(pilot, app, settle, wait_for)
        await pilot.press("f")
        assert panel.source == "pipeline.log"
        await wait_for(pilot, lambda: "CUDA out of memory" in screen_text(app), what="the traceback")
        assert "pipeline.log 4/4 lines" in screen_text(app) and "3 errors" in screen_text(app)
        await pilot.press("w", "w")  # ≥ error: the traceback alone
        assert [panel.book.line(i).text for i in range(len(panel.book.shown))][0].startswith("Traceback")
        await pilot.press("f")
        assert panel.source == "events" and panel.book.filter.min_level == "info"  # each log keeps its filter


async def test_a_log_of_100k_lines_is_read_whole_and_scrolls(make_app, new_run, settle, wait_for, screen_text):
    """Far past RunState.logs' last LOG_LINES: every line is there, the last one on screen, and
    paging to the top is immediate (only the rows in view are drawn). bench/bench_logs.py times it."""
    run = new_run(events=False, results=False)
    write_long_log(run.layout.events, 100_000)
    app = make_app(run)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app, timeout=120)
        started = time.perf_counter()
        await pilot.press(KEY["logs"])
        panel = app.query_one(LogsPanel)
        await wait_for(pilot, lambda: panel.caught_up, timeout=120, what="100k lines read")
        read_s = time.perf_counter() - started
        assert len(panel.book.entries) == 100_000
        await wait_for(pilot, lambda: "line 99999 of the long log" in screen_text(app), what="the last line")
        started = time.perf_counter()
        await pilot.press("home")
        await wait_for(pilot, lambda: "line 0 of the long log" in screen_text(app), what="the first line")
        assert time.perf_counter() - started < 5
        started = time.perf_counter()
        await pilot.press("w")  # re-filter all 100k lines
        refilter_s = time.perf_counter() - started
        assert panel.book.filter.min_level == "warning" and len(panel.book.shown) == 100_000 // 10
        assert read_s < 90 and refilter_s < 5, (read_s, refilter_s)


def write_long_log(path: Path, lines: int) -> None:
    """A log of ``lines`` events as a week-long run writes them: metrics and log lines over
    four stages, a warning every tenth line (written directly: an EventWriter's flush per
    event would make the fixture, not the panel, the slow part)."""
    stages = ("prepare", "train", "export", "eval")
    with open(path, "w", encoding="utf-8") as log:
        for i in range(lines):
            stage = stages[i * len(stages) // lines]
            if i % 10 == 9:
                event = Event("log", {"level": "warning", "message": f"line {i} of the long log"}, stage,
                              1_800_000_000.0 + i, i + 1)
            else:
                event = Event("log", {"level": "info", "message": f"line {i} of the long log"}, stage,
                              1_800_000_000.0 + i, i + 1)
            log.write(event.to_json() + "\n")


# ---------------------------------------------------------------- help, Esc, badge, scrolling, screenshot


async def test_the_key_sheet_lists_the_active_panels_bindings(make_app, recorded_run, settle, wait_for,
                                                            screen_text):
    app = make_app(recorded_run)
    async with app.run_test(size=LARGE) as pilot:
        await open_logs(pilot, app, settle, wait_for)
        active = [b.binding for b in app.screen.active_bindings.values()]
        scrolling = [app.get_key_display(b) for b in active if not b.show and b.action.startswith(("scroll", "page"))]
        expected = {app.get_key_display(b): b.description for b in active if app.get_key_display(b) not in scrolling}
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the key sheet")
        sheet = {section.title: {line.key: line.description for line in section.keys}
                 for section in app.screen.sections}
        assert {"t": "stage", "w": "level", "/": "find", "f": "source", "G": "follow"}.items() \
            <= sheet["Logs panel"].items()
        assert {"↑", "↓", "pgup", "pgdn", "home", "end"} <= set(scrolling)
        assert list(sheet["Scrolling"]) == [" ".join(scrolling)]  # one line for the scroll keys
        del sheet["Scrolling"]
        assert sheet["Panels"][KEY["logs"]] == "Logs" and sheet["Panels"][KEY["evaluator"]] == "Eval"
        assert sheet["Dashboard"]["?"] == "help" and sheet["Dashboard"]["d"] == "dry run"
        assert "start" not in sheet["Dashboard"].values()  # Overview's keys are not active on Logs
        # every key active on the screen, and nothing else, in the sheet
        listed = {key: description for section in sheet.values() for key, description in section.items()}
        assert listed == expected
        text = screen_text(app)
        assert "Keys — Logs" in text and "source" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="the sheet closed")

        await pilot.press(KEY["evaluator"])
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the Eval key sheet")
        eval_keys = next(s for s in app.screen.sections if s.title == "Eval panel")
        assert {(line.key, line.description) for line in eval_keys.keys} >= {("v", "evaluate"), ("⏎", "samples")}
        assert "Keys — Eval" in screen_text(app)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="q closed the sheet")


async def test_escape_closes_every_overlay(make_app, recorded_run, settle, wait_for):
    app = make_app(recorded_run, dry_run=True)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        # Textual's Keys panel: from the tabs, from the REPL's prompt, from the Logs panel's view
        for panel_key in ("1", KEY["repl"], KEY["logs"]):
            if panel_key == KEY["logs"]:
                app.main.action_show_panel("logs")  # from the REPL's prompt, which takes typed keys
            else:
                await pilot.press(panel_key)
            await pilot.pause(0.05)
            app.action_show_help_panel()
            await wait_for(pilot, lambda: app.screen.query(HelpPanel), what="the Keys panel")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.screen.query(HelpPanel), what="esc closed the Keys panel")
        app.main.action_show_panel(PANEL_IDS[0])  # the REPL's prompt takes typed keys: leave by the tab
        await pilot.pause(0.05)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the key sheet")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="esc closed the sheet")
        await pilot.press("s")  # dry run: the start plan
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the plan dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="esc closed the plan")
        app.notify("a toast")
        await pilot.pause(0.05)
        assert app._notifications
        await pilot.press("escape")
        assert not app._notifications


async def test_clicking_the_dry_run_badge_toggles_dry_run(make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run, dry_run=False)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        assert "dry run off" in screen_text(app).splitlines()[0]
        await pilot.click("#header", offset=(SMALL[0] - 3, 0))
        assert app.dry_run
        await wait_for(pilot, lambda: "DRY RUN" in screen_text(app).splitlines()[0], what="the badge redrawn")
        await pilot.click("#header", offset=(SMALL[0] - 3, 0))
        assert not app.dry_run
        await pilot.click("#header", offset=(3, 0))  # elsewhere on the header: nothing
        assert not app.dry_run


async def test_a_long_panel_scrolls_with_the_keys_and_the_wheel_without_tab(make_app, recorded_run, settle,
                                                                            wait_for):
    """The Eval tables overflow 80x16: PgDn, arrows and the wheel scroll them while the tabs keep the focus."""
    app = make_app(recorded_run)
    async with app.run_test(size=(80, 16)) as pilot:
        await settle(pilot, app)
        await pilot.press(KEY["evaluator"])
        scroll = app.query_one(EvaluatorPanel).query_one("VerticalScroll")
        await wait_for(pilot, lambda: scroll.max_scroll_y > 0, what="the Eval panel to overflow")
        assert isinstance(app.focused, Tabs) and scroll.scroll_y == 0
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: scroll.scroll_y > 0, what="PgDn scrolled")
        assert isinstance(app.focused, Tabs)
        await pilot.press("home")
        await wait_for(pilot, lambda: scroll.scroll_y == 0, what="home")
        await pilot.press("down")
        await wait_for(pilot, lambda: scroll.scroll_y == 1, what="down scrolled a line")
        await pilot.press("pageup")
        await wait_for(pilot, lambda: scroll.scroll_y == 0, what="PgUp")
        await pilot._post_mouse_events([events.MouseScrollDown], scroll, offset=(5, 5))
        await wait_for(pilot, lambda: scroll.scroll_y > 0, what="the wheel scrolled")
        await pilot.press("left")  # the tabs keep their arrows
        assert app.main.active_panel_id != "evaluator"


async def test_a_screenshot_lands_in_the_run_folder_and_the_toast_names_it(make_app, recorded_run, settle):
    app = make_app(recorded_run)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        app.action_screenshot()
        await pilot.pause(0.1)
        saved = list(recorded_run.run_dir.glob("*.svg"))
        assert len(saved) == 1 and saved[0].read_text(encoding="utf-8").startswith("<svg")
        assert any(str(saved[0].resolve()) in n.message for n in app._notifications)


async def test_without_a_run_a_screenshot_lands_in_the_working_directory(make_app, tmp_path, monkeypatch, settle):
    app = make_app(None)
    folder = tmp_path / "here"
    folder.mkdir()
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        monkeypatch.chdir(folder)
        for command in app.get_system_commands(app.screen):  # the palette's "Screenshot"
            if command.title == "Screenshot":
                command.callback()
        await pilot.pause(0.3)
        saved = list(folder.glob("*.svg"))
        assert len(saved) == 1
        assert any(str(saved[0].resolve()) in n.message for n in app._notifications)


async def test_a_screenshot_that_cannot_be_written_says_so_in_one_line(make_app, recorded_run, settle):
    app = make_app(recorded_run)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        app.action_screenshot(path=str(recorded_run.run_dir / "no-such-folder"))
        await pilot.pause(0.1)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "screenshot not saved" in errors[0].message and "\n" not in errors[0].message


def test_the_key_sheet_is_built_from_bindings_not_text():
    """key_sheet reads Screen.active_bindings; nothing in help.py names a key of the dashboard."""
    source = Path(key_sheet.__code__.co_filename).read_text(encoding="utf-8")
    for key in ('"t"', '"w"', '"l"', '"enter"', "'start'"):
        assert key not in source


# ---------------------------------------------------------------- snapshots


@pytest.fixture
def utc(monkeypatch):
    """The log's times are local times: draw them in UTC, so the snapshots do not depend on the zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def logs_before(settle, wait_for, screen_text, keys: tuple[str, ...] = ()):
    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(pilot, app)
        await pilot.press(KEY["logs"])
        panel = app.query_one(LogsPanel)
        await wait_for(pilot, lambda: panel.caught_up, what="the log read")
        await wait_for(pilot, lambda: "run finished" in screen_text(app), what="the last line")
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_logs_panel_snapshot(size, utc, snap_compare, make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    assert snap_compare(app, terminal_size=size, run_before=logs_before(settle, wait_for, screen_text))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_help_sheet_snapshot(size, utc, snap_compare, make_app, recorded_run, settle, wait_for, screen_text):
    app = make_app(recorded_run)
    assert snap_compare(app, terminal_size=size,
                        run_before=logs_before(settle, wait_for, screen_text, ("question_mark",)))



async def test_switching_runs_reads_the_new_runs_log(make_app, recorded_run, new_run, settle, wait_for,
                                                     screen_text):
    other = new_run(run_id="20991231-000000-other", events=False, results=False)
    with EventWriter(other.layout.events) as writer:
        writer.emit("run_started", run_id=other.run_id, stages=["train"], pid=1)
        writer.emit("log", stage="train", level="info", message="only in the other run")
    app = make_app(recorded_run)
    async with app.run_test(size=SMALL) as pilot:
        panel = await open_logs(pilot, app, settle, wait_for)
        assert len(panel.book.entries) > 100
        app.switch_run(other)
        await wait_for(pilot, lambda: panel.caught_up and len(panel.book.entries) == 2, what="the other log")
        await wait_for(pilot, lambda: "only in the other run" in screen_text(app), what="its line on screen")

"""Secrets never reach a screen, a log or the event log: the scrubbing in r1tui.errors."""

from __future__ import annotations

import logging

from r1tui.errors import REDACTED, ScrubSecrets, scrub
from r1tui.runs.events import EventWriter, read_events

TOKEN = "hf_" + "Ab3" * 12


def test_scrub_removes_secret_variables_whole_and_in_pieces_and_anything_token_shaped(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", f"{TOKEN}\nsecond-part")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-key-1234")
    text = f"Illegal header value b'Bearer {TOKEN}\\nsecond-part' and sk-local-key-1234 and hf_{'z' * 30}"
    cleaned = scrub(text)
    assert TOKEN not in cleaned and "second-part" not in cleaned and "sk-local-key-1234" not in cleaned
    assert "hf_zzz" not in cleaned and cleaned.count(REDACTED) == 4
    monkeypatch.delenv("HF_TOKEN")
    assert scrub("nothing secret, hf_short") == "nothing secret, hf_short"


def test_third_party_log_records_and_their_tracebacks_are_scrubbed(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    handler.addFilter(ScrubSecrets())
    logger = logging.getLogger("httpx")
    logger.addHandler(handler)
    try:
        logger.warning("sending Authorization: Bearer %s", TOKEN)
        try:
            raise ValueError(f"Illegal header value {TOKEN!r}")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = path.read_text()
    assert TOKEN not in written and written.count(REDACTED) == 2 and "ValueError: Illegal header value" in written


def test_no_secret_reaches_the_event_log(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with EventWriter(tmp_path / "events.jsonl") as events:
        events.emit("error", stage="push", message=f"401 for token {TOKEN}")
    assert TOKEN not in (tmp_path / "events.jsonl").read_text()
    assert read_events(tmp_path / "events.jsonl")[0].data["message"] == f"401 for token {REDACTED}"

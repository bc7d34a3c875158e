"""The one exception type the CLI turns into a single clear line, and the scrubbing every
text that might hold a secret goes through before it reaches a screen, a log or a file."""

from __future__ import annotations

import logging
import os
import re

REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 4  # shorter "keys" are not real secrets, and redacting them would garble text
# Variables whose values are secrets wherever they appear (the Hub's, and the teacher's and
# eval server's default key variable).
SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")
# Anything shaped like a Hub token (hf_ and 30-odd letters and digits), set or not.
HUB_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{20,}")


class R1Error(Exception):
    """A user-facing failure: the message names what is wrong and how to fix it."""


class ConfigError(R1Error):
    """The configuration file or an override is invalid."""


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it (exact occurrences)."""
    if secret and len(secret) >= _MIN_SECRET_CHARS and secret in text:
        text = text.replace(secret, REDACTED)
    return text


def scrub(text: str) -> str:
    """``text`` without the values of SECRET_VARIABLES (whole, stripped, and line by line: a
    value holding a newline is printed in pieces) and without anything shaped like a Hub token."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if not value:
            continue
        for piece in sorted({value, value.strip(), *value.split()}, key=len, reverse=True):
            text = redact(text, piece)
    return HUB_TOKEN_SHAPE.sub(REDACTED, text)


class ScrubSecrets(logging.Filter):
    """A handler filter: every record (ours and third-party loggers', httpx and
    huggingface_hub included) is written with its message and traceback scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def scrub_logging() -> None:
    """Put ScrubSecrets on every handler of the root logger (call after configuring it)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
            handler.addFilter(ScrubSecrets())

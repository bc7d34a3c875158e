"""The one exception type the CLI turns into a single clear line, and the redaction every
error text that might hold a secret goes through before it leaves its module."""

REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 4  # shorter "keys" are not real secrets, and redacting them would garble text


class R1Error(Exception):
    """A user-facing failure: the message names what is wrong and how to fix it."""


class ConfigError(R1Error):
    """The configuration file or an override is invalid."""


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it (exact occurrences)."""
    if secret and len(secret) >= _MIN_SECRET_CHARS and secret in text:
        text = text.replace(secret, REDACTED)
    return text

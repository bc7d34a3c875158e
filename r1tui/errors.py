"""The one exception type the CLI turns into a single clear line."""


class R1Error(Exception):
    """A user-facing failure: the message names what is wrong and how to fix it."""


class ConfigError(R1Error):
    """The configuration file or an override is invalid."""

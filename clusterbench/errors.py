"""Errors that the command line reports as one clear line (no traceback)."""


class ClusterbenchError(Exception):
    """Base class: a user-facing problem with input, config or data."""


class ConfigError(ClusterbenchError):
    """A config key, value or type is wrong; the message names the key."""


class DataError(ClusterbenchError):
    """A dataset file is missing or malformed; the message names the file."""


class RunFolderError(ConfigError):
    """The run folder holds a finished run, or another process is using it; nothing was written
    into it (so a sweep must not record this failure there either)."""


class TrainingError(ClusterbenchError):
    """Training cannot go on (e.g. a non-finite loss); the message says what was kept."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when empty): for one-line errors."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

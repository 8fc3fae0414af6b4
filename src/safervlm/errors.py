"""Errors that name the file and the record at fault, so a user can fix the input."""

from __future__ import annotations


class SafervlmError(Exception):
    """Base class for user-facing errors; the CLI prints them and exits non-zero."""


class InputError(SafervlmError):
    """Bad input data: names the file and, where known, the record."""

    def __init__(self, message: str, *, path: object = None, record: object = None) -> None:
        self.path = None if path is None else str(path)
        self.record = record
        where = ""
        if self.path is not None:
            where += f"{self.path}"
        if record is not None:
            where += f" [record {record}]"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(SafervlmError):
    """A config value is missing, of the wrong type, or points at a missing path."""


class EndpointError(SafervlmError):
    """A served model's endpoint cannot be used: one line naming the model, the URL and why
    (down, an HTTP status with the server's message, an unknown model, a missing key)."""

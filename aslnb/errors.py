"""Errors a user can act on.

Every error the package raises on purpose is an :class:`AslnbError`: its message is
one line saying what went wrong, which file, and what to do. The CLI prints that
line and exits non-zero; a traceback is shown only with ``--debug``.
"""
from __future__ import annotations


class AslnbError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is the whole message."""

    exit_code = 1


class DataError(AslnbError):
    """The image data is missing, empty, unreadable or laid out wrongly."""

    exit_code = 2


class DownloadError(AslnbError):
    """A download failed (offline, HTTP error, truncated or invalid content)."""

    exit_code = 3


class ModelError(AslnbError):
    """A model or weights file cannot be built, found or loaded."""

    exit_code = 4


class RunDirError(AslnbError):
    """A run directory is missing files, incompatible, or would be overwritten."""

    exit_code = 5


class ParameterError(AslnbError):
    """A parameter is unknown or has the wrong type or value."""

    exit_code = 6

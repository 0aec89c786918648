"""Errors a user can act on, and the exit codes of the ``aslnb`` command.

Every error the package raises on purpose is an :class:`AslnbError`: its message is
one line saying what went wrong, which file, and what to do. The CLI prints that
line and exits with the class's ``exit_code`` (the table: :data:`EXIT_CODES`, which
``aslnb --help`` prints); a traceback is shown only with ``--debug``.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2  # argparse's own exit status for usage errors; no AslnbError uses it
EXIT_FETCH_INCOMPLETE = 8
EXIT_NOTEBOOK_FAILED = 9
EXIT_BAD_IMAGES = 10
EXIT_CHECKS_FAILED = 11
EXIT_INTERRUPTED = 130


class AslnbError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is the whole message."""

    exit_code = EXIT_UNEXPECTED

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the one line."""
        return [f"{self.__class__.__name__}: {self}"]


class DataError(AslnbError):
    """The image data is missing, empty, unreadable or laid out wrongly."""

    exit_code = 3


class DownloadError(AslnbError):
    """A download failed (offline, HTTP error, truncated or invalid content)."""

    exit_code = 4


class ModelError(AslnbError):
    """A model or weights file cannot be built, found or loaded."""

    exit_code = 5


class RunDirError(AslnbError):
    """A run directory is missing files, incompatible, or would be overwritten."""

    exit_code = 6


class ParameterError(AslnbError):
    """A parameter is unknown or has the wrong type or value."""

    exit_code = 7


#: Exit status -> meaning, for ``aslnb --help`` and the docs.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_UNEXPECTED: "unexpected error (rerun with --debug for the traceback)",
    EXIT_USAGE: "usage error (unknown option, bad option syntax)",
    DataError.exit_code: "data error: image folder missing, empty or unreadable",
    DownloadError.exit_code: "download failed",
    ModelError.exit_code: "model or weights file cannot be built or loaded",
    RunDirError.exit_code: "run directory incomplete, incompatible or already used",
    ParameterError.exit_code: "bad parameter value, type or name",
    EXIT_FETCH_INCOMPLETE: "data fetch: some files could not be downloaded",
    EXIT_NOTEBOOK_FAILED: "report: a notebook failed",
    EXIT_BAD_IMAGES: "data verify: unreadable images found",
    EXIT_CHECKS_FAILED: "report: a lesson check does not hold (the old report is kept)",
    EXIT_INTERRUPTED: "interrupted",
}

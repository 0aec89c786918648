"""What a training returns (:class:`RunResult`), its progress lines, and its run directory opened."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs import RunDir, start_run


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    config: dict
    history: dict
    metrics: dict
    model: Any = field(default=None, repr=False, compare=False)
    classifier: Any = field(default=None, repr=False, compare=False)  # the aslnb.models.Classifier trained


def log(msg: str, verbose: int) -> None:
    """Print one progress line when ``verbose``."""
    if verbose:
        print(msg, flush=True)


def open_run(out: Path, config: dict, overwrite: bool, verbose: int) -> RunDir:
    """:func:`aslnb.runs.start_run` of ``out`` for ``config`` (its params and data fingerprint); prints its notes."""
    run = start_run(out, config["params"], config["data"]["fingerprint"], overwrite)
    for note in run.notes:
        log(note, verbose)
    return run

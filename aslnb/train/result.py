"""What a training returns (:class:`RunResult`), and its progress lines."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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

"""Lesson checks: the few results a notebook's lesson stands on, printed and recorded.

A notebook states a lesson ("the cache trains the same model", "ImageNet weights beat
random ones") only where a check carries it::

    check(run, "cache trains the same model", diff < 1e-4, f"largest weight difference {diff:.1e}")

prints ``check: cache trains the same model: holds (largest weight difference 0.0e+00)``
or ``check: ...: does NOT hold in this run (...)`` and records
``{"holds": bool, "detail": str}`` under ``nb<NN>.checks.<name>`` in the report's
``metrics.json``. A learner's own run only sees the printed line; ``aslnb report``
under the ``cpu`` profile (the committed report) fails when a recorded check does not
hold (:func:`failed_checks`), and keeps the previous report.
"""
from __future__ import annotations

from typing import Any

from ..io import read_json
from .notebook import NotebookRun, record

__all__ = ["check", "failed_checks"]


def check(run: NotebookRun, name: str, holds: bool, detail: str) -> bool:
    """Print whether the lesson ``name`` holds in this run (with ``detail``: the numbers it rests on) and record it."""
    holds = bool(holds)
    verdict = "holds" if holds else "does NOT hold in this run"
    print(f"check: {name}: {verdict} ({detail})")
    checks = _recorded(run)
    checks[name] = {"holds": holds, "detail": detail}
    record(run, "checks", checks, show=False)
    return holds


def _recorded(run: NotebookRun) -> dict[str, Any]:
    """The checks this notebook recorded so far in this report (none outside a report)."""
    if run.report_dir is None or not (run.report_dir / "metrics.json").is_file():
        return {}
    return dict(read_json(run.report_dir / "metrics.json").get(f"nb{run.notebook}", {}).get("checks", {}))


def failed_checks(metrics: dict[str, Any]) -> list[str]:
    """``"nbNN: NAME (DETAIL)"`` for every recorded check of ``metrics`` (a report's metrics.json) that does not hold."""
    return [f"{nb}: {name} ({c.get('detail', '')})"
            for nb, section in sorted(metrics.items()) if nb.startswith("nb") and isinstance(section, dict)
            for name, c in section.get("checks", {}).items() if not c.get("holds", False)]

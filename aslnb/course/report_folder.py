"""The report folder's life cycle: the previous report stays until the new one is complete.

``<out>/<profile>`` is the report. While a new one runs, the previous report
waits in ``<profile>.previous`` (moved aside for a full report, copied when
only some notebooks run, since those need the others' runs and numbers). On
success ``.previous`` is deleted; on failure the new, partial report becomes
``<profile>.failed`` (for debugging) and ``.previous`` is put back. A run that
was killed outright leaves ``.previous``; the next run restores it first.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ReportFolder:
    """``path``: the report folder; its siblings ``.previous`` and ``.failed``."""

    path: Path

    @property
    def previous(self) -> Path:
        return self.path.with_name(f"{self.path.name}.previous")

    @property
    def failed(self) -> Path:
        return self.path.with_name(f"{self.path.name}.failed")

    def open(self, *, whole: bool) -> None:
        """Recover a killed run's leftovers, set the old report aside, and create the folder."""
        if self.previous.exists():
            if self.path.exists():
                shutil.rmtree(self.failed, ignore_errors=True)
                self.path.rename(self.failed)
            self.previous.rename(self.path)
            print(f"aslnb: warning: an interrupted report left {self.previous}; restored it as {self.path}",
                  file=sys.stderr)
        if self.path.exists():
            if whole:
                self.path.rename(self.previous)
            else:
                shutil.copytree(self.path, self.previous, symlinks=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def close(self, *, ok: bool) -> str | None:
        """Success: drop the old report. Failure: keep the new one as ``.failed``, put the old one back.

        Returns the line to show after a failure (None on success).
        """
        if ok:
            shutil.rmtree(self.previous, ignore_errors=True)
            return None
        shutil.rmtree(self.failed, ignore_errors=True)
        self.path.rename(self.failed)
        if self.previous.exists():
            self.previous.rename(self.path)
            return f"the previous report in {self.path} is unchanged; the failed run is in {self.failed}"
        return f"no report written; the failed run is in {self.failed}"

"""Notebook 01's split study: how far test frames must be from training frames before a probe stops
scoring memory.

The ASL images are video frames, so a test frame a few frame numbers from a
training frame is a near-copy of it. The study fits one linear probe
(:func:`aslnb.course.transfer.linear_probe`) on the same frozen features for
several splits (random; blocked with guard bands of increasing width; one
contiguous chunk per class) and reports, per split, how far the test frames
lie from the nearest training frame of their class and the test accuracy with
a block-bootstrap interval (:func:`aslnb.intervals.bootstrap_accuracy` over
:func:`aslnb.intervals.frame_runs`). :func:`choose_split` then applies a
stated rule to pick the split the course's headline numbers use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.images import frame_number
from ..data.scan import ImageFolder
from ..data.splits import Split, split_folder
from ..errors import ParameterError
from ..intervals import Interval, bootstrap_accuracy, frame_runs
from .analysis import split_indices
from .transfer import linear_probe


@dataclass(frozen=True)
class SplitCase:
    """One split of the study: a label, the method and its guard band."""

    label: str
    method: str
    gap: int = 0


def study_cases(gaps: list[int] | tuple[int, ...] = (20, 50, 100, 200), chunk_gap: int = 20) -> list[SplitCase]:
    """Random, blocked with each guard band in ``gaps``, and one chunk per class (guard ``chunk_gap``)."""
    return ([SplitCase("random", "random")] + [SplitCase(f"blocked, guard {g}", "blocked", g) for g in gaps]
            + [SplitCase("chunk (top 20 %)", "chunk", chunk_gap)])


def frame_array(folder: ImageFolder) -> np.ndarray:
    """The frame number of every file of ``folder`` (-1 where the name has none)."""
    return np.array([-1 if frame_number(f) is None else frame_number(f) for f in folder.files], dtype=np.int64)


def frame_gaps(labels: np.ndarray, frames: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """For each test position: the distance in frame numbers to the nearest training frame of its class."""
    out = np.full(len(test), np.inf)
    for cls in np.unique(labels[test]):
        tr = np.sort(frames[train][labels[train] == cls])
        sel = labels[test] == cls
        if not len(tr):
            continue
        f = frames[test][sel]
        pos = np.searchsorted(tr, f)
        left = np.abs(f - tr[np.clip(pos - 1, 0, len(tr) - 1)])
        right = np.abs(f - tr[np.clip(pos, 0, len(tr) - 1)])
        out[sel] = np.minimum(left, right)
    return out


@dataclass
class SplitResult:
    """What the study measured for one split."""

    case: SplitCase
    split: Split
    n_train: int  # training images the probe used
    gap_median: float
    gap_min: float
    interval: Interval

    def row(self) -> dict[str, Any]:
        s = self.split.sizes()
        return {"split": self.case.label, "train": s["train"], "probe train": self.n_train, "test": s["test"],
                "dropped": s["dropped"], "gap median": self.gap_median, "gap min": self.gap_min,
                "accuracy": round(self.interval.accuracy, 3), "95% low": round(self.interval.low, 3),
                "95% high": round(self.interval.high, 3), "frame runs": self.interval.groups}

    def metrics(self) -> dict[str, Any]:
        iv = self.interval
        return {"method": self.case.method, "gap": self.case.gap, "train": len(self.split.train),
                "probe_train": self.n_train, "test": len(self.split.test), "gap_median": self.gap_median,
                "gap_min": self.gap_min, "accuracy": round(iv.accuracy, 4), "low": round(iv.low, 4),
                "high": round(iv.high, 4),
                "groups": iv.groups}


def even_subset(labels: np.ndarray, frames: np.ndarray, positions: np.ndarray, per_class: int) -> np.ndarray:
    """At most ``per_class`` of ``positions`` per class, spread evenly over each class's frames (sorted)."""
    keep = []
    for cls in np.unique(labels[positions]):
        pos = positions[labels[positions] == cls]
        pos = pos[np.argsort(frames[pos], kind="stable")]
        if len(pos) > per_class:
            pos = pos[np.linspace(0, len(pos) - 1, per_class).round().astype(int)]
        keep.extend(pos.tolist())
    return np.array(sorted(keep), dtype=np.int64)


def run_study(folder: ImageFolder, features: np.ndarray, cases: list[SplitCase], *, seed: int = 0,
              train_per_class: int | None = None, max_iter: int = 300, n_boot: int = 2000) -> list[SplitResult]:
    """Fit a linear probe on ``features`` (one row per file of ``folder``) for every split in ``cases``.

    ``train_per_class`` caps the training images per class (spread evenly over the class's training
    frames), so that splits whose guard bands drop many frames are compared at the same training size.
    """
    if len(features) != len(folder):
        raise ParameterError(f"features has {len(features)} rows for {len(folder)} images")
    frames = frame_array(folder)
    labels = folder.labels
    out = []
    for case in cases:
        sp = split_folder(folder, case.method, seed=seed, gap=case.gap)
        idx = split_indices(folder, sp)
        tr, te = idx["train"], idx["test"]
        if train_per_class:
            tr = even_subset(labels, frames, tr, train_per_class)
        gaps = frame_gaps(labels, frames, tr, te)
        _, clf = linear_probe(features[tr], labels[tr], features[te], labels[te], max_iter=max_iter,
                              return_model=True)
        correct = clf.predict(np.asarray(features[te], dtype=np.float32)) == labels[te]
        iv = bootstrap_accuracy(correct, frame_runs(labels[te], frames[te]), n_boot=n_boot, seed=seed)
        out.append(SplitResult(case, sp, len(tr), float(np.median(gaps)), float(np.min(gaps)), iv))
    return out


def plateau_start(results: list[SplitResult]) -> SplitResult:
    """The first frame-separated split (random excluded, ordered by median gap) such that no split
    further out scores below the lower end of its accuracy interval: where accuracy stops falling.

    Falls back to the split furthest out when none qualifies.
    """
    candidates = sorted((r for r in results if r.case.method != "random"), key=lambda r: r.gap_median)
    if not candidates:
        raise ParameterError("choose_split: the study holds no frame-separated split")
    for i, r in enumerate(candidates):
        if all(later.interval.accuracy >= r.interval.low for later in candidates[i + 1:]):
            return r
    return candidates[-1]


def choose_split(results: list[SplitResult]) -> SplitResult:
    """The headline split: of :func:`plateau_start` and the splits further out (whose accuracies it
    already covers), the one that keeps the most training images.

    Beyond the plateau's start, holding the test frames still further from training does not lower
    the accuracy by more than the interval allows, so the study cannot tell those splits apart by
    the leak; the one whose split keeps the most training frames (``len(split.train)``, whatever
    ``train_per_class`` the probe used) wins.
    """
    start = plateau_start(results)
    beyond = [r for r in results if r.case.method != "random" and r.gap_median >= start.gap_median]
    return max(beyond, key=lambda r: (len(r.split.train), r.gap_median))


def equal_train_per_class(results: list[SplitResult], n_classes: int) -> int:
    """Training images per class that every split of ``results`` can offer on average: the study's cap."""
    return max(1, min(r.n_train for r in results) // max(1, n_classes))


def study_rows(all_train: list[SplitResult], capped: list[SplitResult]) -> list[dict[str, Any]]:
    """One row per split: sizes, frame gaps, and the accuracy (with its interval) with all training
    images and at the cap, as numbers (for :func:`aslnb.course.plots.accuracy_vs_gap`)."""
    rows = []
    for a, b in zip(all_train, capped):
        row = a.row()
        row.update({"acc (cap)": round(b.interval.accuracy, 3), "cap low": round(b.interval.low, 3),
                    "cap high": round(b.interval.high, 3), "probe train (cap)": b.n_train})
        rows.append(row)
    return rows


def study_table(all_train: list[SplitResult], capped: list[SplitResult]):
    """The study as a compact DataFrame (one row per split, accuracies as ``acc [low, high]``)."""
    import pandas as pd

    rows = [{"split": a.case.label, "train": len(a.split.train), "dropped": a.split.dropped,
             "test": len(a.split.test), "test frame runs": a.interval.groups, "gap median": a.gap_median,
             "gap min": a.gap_min, "accuracy [95% CI], all training images": str(a.interval),
             "accuracy [95% CI], capped training": str(b.interval)}
            for a, b in zip(all_train, capped)]
    return pd.DataFrame(rows).set_index("split")


def study_metrics(full: list[SplitResult], equal: list[SplitResult]) -> dict[str, Any]:
    """The study's numbers for metrics.json: per split, all training images and at the cap."""
    return {a.case.label: {**a.metrics(), "capped": b.metrics()} for a, b in zip(full, equal)}

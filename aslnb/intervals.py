"""Confidence intervals for accuracies whose test items come in correlated groups.

The ASL frames are video frames: a held-out test set is a handful of runs of
consecutive, near-identical frames per letter, so its 1,160 images are worth
far fewer independent trials. A plain binomial interval would be too narrow.
:func:`bootstrap_accuracy` resamples whole groups (a cluster or block
bootstrap): the groups are the runs of consecutive frames
(:func:`frame_runs`) for the ASL test split, or the signers of an external set.

Pure numpy, deterministic for a given ``seed``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Interval", "bootstrap_accuracy", "frame_runs"]

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An accuracy with its bootstrap percentile interval and how it was made."""

    accuracy: float
    low: float
    high: float
    level: float
    n: int  # items scored
    groups: int  # independent groups resampled (== n for a plain bootstrap)
    n_boot: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.accuracy:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_accuracy(correct: Sequence[bool] | np.ndarray, groups: Sequence | np.ndarray | None = None, *,
                       n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval:
    """Accuracy of the 0/1 array ``correct`` with a ``level`` interval resampling whole ``groups``.

    ``groups`` gives each item's group id (frame run, signer); ``None`` treats
    every item as its own group (the ordinary bootstrap). The resampled
    accuracy is the pooled share of correct items in the drawn groups, so large
    groups weigh as much as their items.
    """
    c = np.asarray(correct, dtype=float).ravel()
    if c.size == 0:
        raise ValueError("bootstrap_accuracy: no items to score")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: must be between 0 and 1, e.g. 0.95")
    g = np.arange(c.size) if groups is None else np.asarray(groups)
    if g.shape[0] != c.size:
        raise ValueError(f"groups has {g.shape[0]} entries for {c.size} items")
    _, inv = np.unique(g, return_inverse=True)
    hits = np.bincount(inv, weights=c)
    sizes = np.bincount(inv).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, hits.size, size=(n_boot, hits.size))
    boot = hits[draws].sum(1) / sizes[draws].sum(1)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return Interval(float(c.mean()), float(low), float(high), float(level), int(c.size), int(hits.size), int(n_boot))


def frame_runs(labels: Sequence[int] | np.ndarray, frames: Sequence[int | None] | np.ndarray, *,
               max_gap: int = 30) -> np.ndarray:
    """A group id per item: consecutive frames of one class (no two more than ``max_gap`` apart) form one run.

    Items without a frame number (``None`` or negative) each form their own group.
    """
    y = np.asarray(labels)
    f = np.array([-1 if v is None else int(v) for v in frames], dtype=np.int64)
    out = np.empty(y.size, dtype=np.int64)
    next_id = 0
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[np.argsort(f[idx], kind="stable")]
        prev = None
        for i in idx:
            if f[i] < 0 or prev is None or f[i] - prev > max_gap:
                next_id += 1
            out[i] = next_id
            prev = f[i] if f[i] >= 0 else None
    return out

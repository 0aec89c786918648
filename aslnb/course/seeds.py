"""Training variance: a headline accuracy is the mean over training seeds, with its spread.

The test interval (:func:`aslnb.evaluate.accuracy_interval`) resamples test frames: it
says how much the number would move on other frames of the same chunk, not how much
it moves when the same recipe is trained again with another seed (another initial
head, another batch order). :func:`seeds_of` names the :data:`N_SEEDS` training seeds (the notebooks train or reuse each
seed's run with :func:`aslnb.course.notebook.ensure_run`), :func:`run_numbers` reads each run's numbers and
:func:`seed_summary` gives ``{"mean", "sd", "n_seeds", "values"}``, the form every
headline takes in ``metrics.json``. :func:`is_difference` calls two results different
only when the gap exceeds both the test interval and the seed spread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..io import read_json
from .notebook import NotebookRun

__all__ = ["N_SEEDS", "seeds_of", "run_numbers", "seed_summary", "seed_table", "is_difference",
           "describe"]

#: Training seeds behind every headline accuracy (SEED, SEED + 1, ...).
N_SEEDS = 3


def seeds_of(run: NotebookRun, n: int = N_SEEDS) -> list[int]:
    """The training seeds of this notebook run: its SEED and the ``n - 1`` after it."""
    return [run.params["SEED"] + i for i in range(n)]


def run_numbers(run_dir: str | Path, *, early_stopping: bool = True) -> dict[str, float | None]:
    """One run's validation, test and external accuracy (from its ``metrics.json`` and ``history.json``)."""
    run_dir = Path(run_dir)
    metrics, history = read_json(run_dir / "metrics.json"), read_json(run_dir / "history.json")
    last = history["phases"][-1]
    epochs = [e for e in history["epochs"] if e["phase"] == last]
    kept = min(epochs, key=lambda e: e["val_loss"]) if early_stopping else epochs[-1]
    ext = metrics.get("external", {}).get("accuracy")
    return {"val_accuracy": float(kept["val_accuracy"]), "test_accuracy": float(metrics["held_out"]["accuracy"]),
            "external_accuracy": None if ext is None else float(ext)}


def seed_summary(values: Sequence[float], seeds: Sequence[int] | None = None, **extra: Any) -> dict[str, Any]:
    """``{"mean", "sd", "n_seeds", "values", "seeds", **extra}`` of one number over training seeds
    (``sd``: the sample standard deviation, 0 for one seed)."""
    v = np.asarray([float(x) for x in values], dtype=float)
    if not len(v):
        raise ValueError("seed_summary needs at least one value")
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    out = {"mean": round(float(v.mean()), 4), "sd": round(sd, 4), "n_seeds": int(len(v)),
           "values": [round(float(x), 4) for x in v]}
    if seeds is not None:
        out["seeds"] = [int(s) for s in seeds]
    return {**out, **extra}


def seed_table(numbers: Sequence[dict[str, float | None]], seeds: Sequence[int]) -> dict[str, dict[str, Any]]:
    """:func:`seed_summary` of every number :func:`run_numbers` gives (None where a run lacks it)."""
    keys = numbers[0].keys()
    return {k: (None if any(n[k] is None for n in numbers) else seed_summary([n[k] for n in numbers], seeds))
            for k in keys}


def is_difference(a: dict[str, Any], b: dict[str, Any], interval_half_width: float) -> bool:
    """True when the seed means of ``a`` and ``b`` differ by more than both the test interval's half width
    and each one's seed spread (2 sd: about 95 % of seeds)."""
    gap = abs(a["mean"] - b["mean"])
    return gap > interval_half_width and gap > 2 * max(a["sd"], b["sd"])


def describe(summary: dict[str, Any]) -> str:
    """``0.471 ± 0.012 (sd over 3 seeds)``."""
    return f"{summary['mean']:.3f} ± {summary['sd']:.3f} (sd over {summary['n_seeds']} seeds)"

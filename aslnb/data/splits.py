"""Train / validation / test splits: ``chunk`` (the default), ``blocked`` and ``random`` (stratified).

Why ``chunk`` is the default
----------------------------
The ASL Alphabet images are frames of videos: one signer, one room, 3,000
frames per letter, and the file name keeps the frame number (``A1008.jpg`` is
frame 1008 of letter A). Neighbouring frames are near-duplicates, and the hand,
light and background drift slowly over a video, so a test frame is the easier
the closer a training frame lies to it. A random split puts frame 1008 in
training and frame 1009 in the test set: the test measures recall of a
memorised picture. Notebook 01's split study (:mod:`aslnb.course.split_study`)
measures a linear probe's accuracy against the distance between test and
training frames, and picks the split by a stated rule; its answer is ``chunk``.

* ``chunk``: for every class, the highest ``test_fraction`` of its frame
  numbers is the test set, the ``val_fraction`` below it the validation set,
  and training frames within ``gap`` frame numbers of the validation chunk are
  dropped (a guard band).
* ``blocked``: for every class, the frames (sorted by number) are cut into
  ``n_blocks`` contiguous blocks, whole blocks chosen with the seed are held
  out, and training frames within ``gap`` of a held-out frame are dropped.
* ``random``: stratified, image by image.

Files whose names carry no frame number cannot be blocked or chunked; they are
split at random (stratified) with a warning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ParameterError
from .images import frame_number
from .scan import LOG, ImageFolder

#: The split methods, the default first (``TrainConfig.split`` takes its choices from here).
SPLIT_METHODS = ("chunk", "blocked", "random")
DEFAULT_GAP = 20  # frame numbers; sample frames lie ~15 apart, originals 1 apart


@dataclass
class Split:
    """Three disjoint subsets of one :class:`ImageFolder`, and how they were made."""

    train: ImageFolder
    val: ImageFolder
    test: ImageFolder
    method: str
    seed: int
    dropped: int  # training frames removed by the guard band

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test), "dropped": self.dropped}

    def describe(self) -> dict:
        return {"method": self.method, "seed": self.seed, **self.sizes()}


class _TooFew(Exception):
    """A class with too few frames to hold out whole chunks or blocks (:func:`split_folder` names it)."""

    def __init__(self, n: int, detail: str):
        super().__init__(detail)
        self.n = n


def check_fractions(val_fraction: float, test_fraction: float, *, zero_ok: bool = True) -> None:
    """Refuse split fractions a split cannot use, naming the parameter and the fix (one line).

    Each must be a finite number in [0, 1) (``zero_ok=False``, a training run's rule
    (:meth:`aslnb.config.TrainConfig.validate`): in (0, 1)), and together below 1.
    """
    for name, v, example in (("val_fraction", val_fraction, 0.1), ("test_fraction", test_fraction, 0.2)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ParameterError(f"{name}={v!r}: must be a finite number, e.g. {example}")
        if not (0 <= v < 1 if zero_ok else 0 < v < 1):
            rule = "in [0, 1)" if zero_ok else "between 0 and 1 (exclusive)"
            raise ParameterError(f"{name}={v}: must be {rule}, e.g. {example}")
    if val_fraction + test_fraction >= 1:
        raise ParameterError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g}: must be < 1 to leave "
                             "images to train on; lower val_fraction or test_fraction")


def _held_out(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """``(n_val, n_test)`` of ``n`` items: the fractions of ``n`` rounded, at least 1 where a fraction is above 0."""
    n_val, n_test = round(val_fraction * n), round(test_fraction * n)
    return max(n_val, 1 if val_fraction > 0 else 0), max(n_test, 1 if test_fraction > 0 else 0)


def _random_assign(n: int, val_fraction: float, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """0 = train, 1 = val, 2 = test for ``n`` items, sizes rounded per class."""
    order = rng.permutation(n)
    if n >= 3:
        n_val, n_test = _held_out(n, val_fraction, test_fraction)
    else:
        n_val, n_test = round(val_fraction * n), round(test_fraction * n)
    out = np.zeros(n, dtype=np.int8)
    out[order[:n_test]] = 2
    out[order[n_test : n_test + n_val]] = 1
    return out


def _blocked_assign(
    frames: np.ndarray, val_fraction: float, test_fraction: float, rng: np.random.Generator, n_blocks: int, gap: int
) -> np.ndarray:
    """0 train, 1 val, 2 test, -1 dropped (guard band) for one class's frames."""
    n = len(frames)
    order = np.argsort(frames, kind="stable")
    k = min(n_blocks, n)
    blocks = np.array_split(order, k)
    n_val, n_test = _held_out(k, val_fraction, test_fraction)
    if n_test + n_val >= k:
        raise _TooFew(n, f"too few to hold out {val_fraction:.0%} + {test_fraction:.0%} in {k} frame blocks")
    chosen = rng.permutation(k)
    out = np.zeros(n, dtype=np.int8)
    for b in chosen[:n_test]:
        out[blocks[b]] = 2
    for b in chosen[n_test : n_test + n_val]:
        out[blocks[b]] = 1
    held = np.sort(frames[out > 0])
    if len(held) and gap > 0:
        train_idx = np.flatnonzero(out == 0)
        pos = np.searchsorted(held, frames[train_idx])
        left = np.abs(frames[train_idx] - held[np.clip(pos - 1, 0, len(held) - 1)])
        right = np.abs(frames[train_idx] - held[np.clip(pos, 0, len(held) - 1)])
        near = np.minimum(left, right) <= gap
        out[train_idx[near]] = -1
    return out


def _chunk_assign(frames: np.ndarray, val_fraction: float, test_fraction: float, gap: int) -> np.ndarray:
    """0 train, 1 val, 2 test, -1 dropped for one class: the highest frames are the test chunk, the
    ones below it the validation chunk, and training frames within ``gap`` of them are dropped."""
    n = len(frames)
    order = np.argsort(frames, kind="stable")
    n_val, n_test = _held_out(n, val_fraction, test_fraction)
    if n_test + n_val >= n:
        raise _TooFew(n, f"too few to hold out {val_fraction:.0%} + {test_fraction:.0%} as chunks")
    out = np.zeros(n, dtype=np.int8)
    out[order[n - n_test:]] = 2
    out[order[n - n_test - n_val:n - n_test]] = 1
    held = frames[out > 0]
    if len(held) and gap > 0:
        near = (out == 0) & (frames >= held.min() - gap)
        out[near] = -1
    return out


def _check_two_classes(folder: ImageFolder) -> None:
    present = [n for i, n in enumerate(folder.class_names) if (folder.labels == i).any()]
    if len(present) < 2:
        only = f" ({present[0]})" if present else ""
        raise DataError(f"{folder.root}: images of {len(present)} class{only} only; a classifier needs at least "
                        "2 classes: add one folder of images per class")


def split_folder(
    folder: ImageFolder,
    method: str = "chunk",
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    n_blocks: int = 20,
    gap: int = DEFAULT_GAP,
) -> Split:
    """Split ``folder`` into train/val/test per class by ``method`` (see the module docstring).

    ``gap``: the guard band in frame numbers; ``n_blocks``: blocks per class (``blocked``: sizes come in steps
    of ``1/n_blocks``); ``seed`` picks the blocks or images held out (``chunk`` has no use for it).
    """
    if method not in SPLIT_METHODS:
        raise ParameterError(f"split={method!r}: unknown split, choose one of {', '.join(SPLIT_METHODS)}")
    check_fractions(val_fraction, test_fraction)
    _check_two_classes(folder)
    rng = np.random.default_rng(seed)
    assign = np.zeros(len(folder), dtype=np.int8)
    no_frame: list[str] = []
    for lab in range(len(folder.class_names)):
        idx = np.flatnonzero(folder.labels == lab)
        if len(idx) == 0:
            continue
        if method == "random":
            assign[idx] = _random_assign(len(idx), val_fraction, test_fraction, rng)
            continue
        frames = np.array([frame_number(f) if frame_number(f) is not None else -1 for f in folder.files[idx]])
        has = frames >= 0
        try:
            if has.any() and method == "chunk":
                assign[idx[has]] = _chunk_assign(frames[has], val_fraction, test_fraction, gap)
            elif has.any():
                assign[idx[has]] = _blocked_assign(frames[has], val_fraction, test_fraction, rng, n_blocks, gap)
        except _TooFew as exc:
            name = folder.class_names[lab]
            raise ParameterError(f"{Path(folder.root) / name}: only {exc.n} images in class {name!r}: {exc}; "
                                 "add images to it, lower the fractions or use --split random") from None
        if (~has).any():
            no_frame.extend(folder.files[idx[~has]].tolist())
            assign[idx[~has]] = _random_assign(int((~has).sum()), val_fraction, test_fraction, rng)
    if no_frame:
        LOG.warning("%d files have no frame number in their name (e.g. %s): they were split at random, "
                    "so near-duplicates among them may leak across the split", len(no_frame), no_frame[0])
    return Split(
        train=folder.subset(assign == 0),
        val=folder.subset(assign == 1),
        test=folder.subset(assign == 2),
        method=method,
        seed=seed,
        dropped=int((assign == -1).sum()),
    )


def limit_folder(folder: ImageFolder, per_class: int | None) -> ImageFolder:
    """Keep ``per_class`` files per class, spread evenly over each class's frames."""
    if not per_class:
        return folder
    keep = []
    for lab in range(len(folder.class_names)):
        idx = np.flatnonzero(folder.labels == lab)
        if len(idx) > per_class:
            idx = idx[np.linspace(0, len(idx) - 1, per_class).round().astype(int)]
        keep.extend(idx.tolist())
    out = folder.subset(np.array(sorted(keep)))
    out.problems = folder.problems
    return out

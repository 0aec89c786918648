"""The ``crop`` recipe's images: the hand cut out of the frame by its landmarks' box, cached as image files.

:func:`hand_crops` finds each image's hand (:func:`aslnb.features.landmarks.hand_landmarks`, cached), takes
the square around its 21 points enlarged by ``margin`` on every side (black where it leaves the image) and
writes it once to ``<cache>/crops-<key>/<xx>/<sha256 of the image>.jpg`` (``key``: the landmarker's key, the
margin, :data:`VERSION`). The crops are image files like any other: the backbone, its feature cache and
fine-tuning use them unchanged (:func:`with_hand_crops` swaps them into a split). Frames without a hand have
no crop: they are left out of training and predicted ``nothing``, as in the ``landmarks`` recipe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import load_image
from ..data.manifest import sha256_file
from ..data.scan import ImageFolder
from ..errors import DataError
from ..io import atomic_path
from ..settings import cache_dir
from .landmarks import Landmarker, hand_landmarks

VERSION = 1
MARGIN = 0.25  # share of the landmarks' box side added on every side
MAX_SIDE = 320  # crops larger than this are shrunk (the backbone sees 128-260 px)


def crop_box(points: np.ndarray, shape: tuple[int, ...], pad: float, margin: float = MARGIN) -> tuple[int, ...]:
    """The square (left, top, right, bottom) in image pixels around ``points`` (padded-image pixels)."""
    offset = round(pad * max(shape[:2]))
    x, y = points[:, 0] - offset, points[:, 1] - offset
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    half = max(x.max() - x.min(), y.max() - y.min(), 8.0) * (0.5 + margin)
    return int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))


def _write_crop(src: str, points: np.ndarray, pad: float, margin: float, target: Path) -> None:
    img = load_image(src)
    crop = Image.fromarray(img).crop(crop_box(points, img.shape, pad, margin))  # black outside the image
    if max(crop.size) > MAX_SIDE:
        crop = crop.resize((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    with atomic_path(target) as tmp:
        crop.save(tmp, format="JPEG", quality=95)


def hand_crops(files, landmarker: Landmarker, *, margin: float = MARGIN,
               cache_root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(crop paths, found)`` of image ``files``: the cached crop of each frame with a hand ('' without)."""
    files = [str(f) for f in files]
    hands = hand_landmarks(files, landmarker, cache_root=cache_root)
    key = hashlib.sha256(f"v{VERSION}:{landmarker.cache_key()}:{margin:g}".encode()).hexdigest()[:16]
    folder = Path(cache_root or cache_dir()) / f"crops-{key}"
    out = np.array([""] * len(files), dtype=object)
    for i in np.flatnonzero(hands.found):
        d = sha256_file(files[i])
        target = folder / d[:2] / f"{d}.jpg"
        if not target.is_file():
            _write_crop(files[i], hands.points[i], landmarker.settings.pad, margin, target)
        out[i] = str(target)
    return out.astype(str), hands.found


def with_hand_crops(split, landmarker: Landmarker):
    """``split`` with its training and validation frames replaced by their hand crops (no hand: left out);
    also the no-hand record ``{"train": ..., "val": ...}`` for ``config.json``."""
    record, parts = {}, {}
    for name in ("train", "val"):
        part: ImageFolder = getattr(split, name)
        crops, found = hand_crops(part.files, landmarker)
        if not found.any():
            raise DataError(f"{part.root}: no hand found in any {name} frame; the crop recipe needs frames that "
                            "show a hand (use features='image')")
        miss = int((~found).sum())
        record[name] = {"n": len(part), "no_hand": miss, "share": round(miss / len(part), 6) if len(part) else 0.0}
        parts[name] = ImageFolder(part.root, list(part.class_names), crops[found], part.labels[found],
                                  list(part.problems))
    return dataclasses.replace(split, **parts), record

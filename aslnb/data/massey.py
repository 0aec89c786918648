"""The Massey ASL set's layout, read from a scanned folder: its classes, the signer in each file name.

Apart from :mod:`.external` so that :func:`aslnb.data.scan.dataset_info` can name a
Massey-layout folder without importing the module that builds on the scanner.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from .manifest import CLASSES

if TYPE_CHECKING:  # annotation only: scan imports this module
    from .scan import ImageFolder

MASSEY_CLASSES = [str(d) for d in range(10)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
SIGNER_RE = re.compile(r"^(hand\d+)_", re.IGNORECASE)


def map_class(name: str, train_classes: list[str]) -> str | None:
    """The training class an external class name stands for, or None."""
    if name in train_classes:
        return name
    up = name.upper()
    if up in train_classes and len(name) == 1:
        return up
    low = {c.lower(): c for c in train_classes}
    return low.get(name.lower())


def class_mapping(folder: ImageFolder, train_classes: list[str]) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """``(mapping, unmapped, missing)`` of an external set: its class -> the training class (:func:`map_class`),
    its classes without one -> their image counts, and the training classes none of its classes maps onto."""
    counts = folder.counts()
    mapping = {n: t for n in folder.class_names if (t := map_class(n, train_classes))}
    unmapped = {n: counts[n] for n in folder.class_names if n not in mapping}
    return mapping, unmapped, [c for c in train_classes if c not in mapping.values()]


def massey_summary(folder: ImageFolder, train_classes: list[str] = CLASSES) -> dict | None:
    """Per-signer counts and the class mapping of a Massey-layout folder, else None.

    A Massey-layout folder has class folders among ``0``-``9``, ``a``-``z`` (at least
    ten of them) and file names that start with the signer, ``handN_``.
    """
    names = folder.class_names
    if len(names) < 10 or not set(names) <= set(MASSEY_CLASSES) or not len(folder):
        return None
    signers = signers_of(folder.files)
    if (signers != "unknown").sum() < 0.9 * len(signers):
        return None
    per_signer = Counter(signers.tolist())
    mapping, unmapped, missing = class_mapping(folder, train_classes)
    return {
        "layout": "massey",
        "signers": dict(sorted(per_signer.items(), key=lambda kv: (len(kv[0]), kv[0]))),
        "mapping": mapping,
        "unmapped": unmapped,
        "missing_training_classes": missing,
    }


def signers_of(files) -> np.ndarray:
    """The signer (``handN``, lower case) of each file name, ``unknown`` where the name carries none."""
    return np.array([m.group(1).lower() if (m := SIGNER_RE.match(os.path.basename(str(f)))) else "unknown"
                     for f in files])

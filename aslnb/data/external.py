"""External test sets: other hands, other backgrounds (e.g. the Massey ASL set).

The Massey set has classes ``0``-``9`` and ``a``-``z``. Letters map onto the
training classes by upper-casing; classes without a counterpart (the digits)
are reported in :attr:`ExternalSet.unmapped`, never silently dropped, and
training classes the external set lacks (``del``, ``nothing``, ``space``) in
:attr:`ExternalSet.missing`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .scan import ImageFolder, scan_folder


@dataclass
class ExternalSet:
    """External images labelled with the *training* class ids."""

    folder: ImageFolder  # class_names are the training classes
    mapping: dict[str, str]  # external class -> training class
    unmapped: dict[str, int]  # external class -> number of images left out
    missing: list[str] = field(default_factory=list)  # training classes absent here

    @property
    def shared_classes(self) -> list[str]:
        return sorted(set(self.mapping.values()), key=self.folder.class_names.index)

    def describe(self) -> dict:
        return {
            "root": str(self.folder.root),
            "n_images": len(self.folder),
            "mapped": self.mapping,
            "unmapped": self.unmapped,
            "missing_training_classes": self.missing,
        }


def map_class(name: str, train_classes: list[str]) -> str | None:
    """The training class an external class name stands for, or None."""
    if name in train_classes:
        return name
    up = name.upper()
    if up in train_classes and len(name) == 1:
        return up
    low = {c.lower(): c for c in train_classes}
    return low.get(name.lower())


def load_external(root: str | os.PathLike, train_classes: list[str]) -> ExternalSet:
    """Scan an external class-per-folder set and relabel it with training ids."""
    ext = scan_folder(root, allow_empty_classes=True)
    mapping: dict[str, str] = {}
    unmapped: dict[str, int] = {}
    counts = ext.counts()
    files: list[str] = []
    labels: list[int] = []
    for i, name in enumerate(ext.class_names):
        target = map_class(name, train_classes)
        if target is None:
            unmapped[name] = counts[name]
            continue
        mapping[name] = target
        sel = ext.labels == i
        files.extend(ext.files[sel].tolist())
        labels.extend([train_classes.index(target)] * int(sel.sum()))
    if not mapping:
        raise DataError(
            f"{Path(root)}: none of its classes ({', '.join(ext.class_names[:8])}...) match the training classes "
            f"({', '.join(train_classes[:8])}...); is this the right folder?"
        )
    missing = [c for c in train_classes if c not in mapping.values()]
    folder = ImageFolder(Path(root), list(train_classes), np.array(files), np.array(labels, dtype=np.int64),
                         ext.problems)
    return ExternalSet(folder, mapping, unmapped, missing)

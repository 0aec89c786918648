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

from ..errors import DataError, DownloadError
from ..intervals import bootstrap_accuracy
from .manifest import MASSEY_MANIFEST, verify_folder
from .massey import MASSEY_CLASSES, SIGNER_RE, class_mapping, map_class, massey_summary, signers_of
from .scan import ImageFolder, scan_folder

__all__ = [
    "MASSEY_CLASSES", "SIGNER_RE", "TEST_SIGNERS", "VALIDATION_SIGNER", "ExternalSet", "check_external",
    "format_signer_scores", "load_external", "map_class", "massey_steps", "massey_summary", "signer_role",
    "signer_scores", "signers_of",
]


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


def load_external(root: str | os.PathLike, train_classes: list[str]) -> ExternalSet:
    """Scan an external class-per-folder set and relabel it with training ids."""
    ext = scan_folder(root, allow_empty_classes=True)
    mapping, unmapped, missing = class_mapping(ext, train_classes)
    if not mapping:
        raise DataError(
            f"{Path(root)}: none of its classes ({', '.join(ext.class_names[:8])}...) match the training classes "
            f"({', '.join(train_classes[:8])}...); is this the right folder?"
        )
    ids = np.array([train_classes.index(mapping[n]) if n in mapping else -1 for n in ext.class_names], np.int64)
    labels = ids[ext.labels]  # -1: a class with no training counterpart
    folder = ImageFolder(Path(root), list(train_classes), ext.files[labels >= 0], labels[labels >= 0], ext.problems)
    return ExternalSet(folder, mapping, unmapped, missing)


def massey_steps(dest: str | os.PathLike) -> str:
    """One line: how to get the Massey set by hand (its Kaggle page needs a login)."""
    return (
        "the Massey ASL set is the Kaggle dataset ayuraj/asl-dataset, which needs a Kaggle login, so aslnb "
        "cannot download it: (1) sign in and click Download on its Kaggle page, or run "
        "`kaggle datasets download -d ayuraj/asl-dataset` with a Kaggle API token; (2) unzip archive.zip; "
        f"(3) move its folder asl_dataset/ (the one holding 0..9 and a..z) to {dest}; "
        f"(4) check it with `aslnb data fetch --external --dest {dest}`; (5) export ASLNB_EXTERNAL_DATA={dest}"
    )


def check_external(dest: str | os.PathLike):
    """Verify a hand-made copy of the Massey set in ``dest`` against the shipped manifest.

    Raises :class:`~aslnb.errors.DownloadError` with the manual steps when ``dest``
    holds no copy; returns the :class:`~aslnb.data.manifest.VerifyReport` otherwise.
    """
    dest = Path(dest).expanduser()
    if not dest.is_dir() or not any(p.is_dir() for p in dest.iterdir()):
        raise DownloadError(f"{dest}: no copy of the Massey set here; " + massey_steps(dest))
    return verify_folder(dest, MASSEY_MANIFEST)


# --------------------------------------------------------------------------- signers: who is for what

#: The Massey signer settings are chosen on (augmentation strength, epochs, levers to keep).
VALIDATION_SIGNER = "hand1"
#: The Massey signers used only to report: no image, feature or statistic of theirs reaches training or a choice.
TEST_SIGNERS = ("hand2", "hand3", "hand4", "hand5")


def signer_role(signer: str) -> str:
    """``validation`` (:data:`VALIDATION_SIGNER`), ``test`` (:data:`TEST_SIGNERS`) or ``other``."""
    return "validation" if signer == VALIDATION_SIGNER else "test" if signer in TEST_SIGNERS else "other"


def signer_scores(correct, files, labels, *, seed: int = 0) -> dict | None:
    """Letter accuracy per signer and over the test signers, with 95% block-bootstrap intervals.

    Groups resampled: signer x letter (every image of one signer signing one
    letter is one group: the lighting variants of one sign are not independent).
    None when the file names carry no signer.
    """
    correct = np.asarray(correct, dtype=bool)
    who = signers_of(files)
    if (who == "unknown").all():
        return None
    groups = np.char.add(np.char.add(who.astype(str), ":"), np.asarray(labels).astype(str))
    per: dict[str, dict] = {}
    for s in sorted(set(who.tolist()), key=lambda s: (len(s), s)):
        sel = who == s
        per[s] = {"role": signer_role(s), **bootstrap_accuracy(correct[sel], groups[sel], seed=seed).as_dict()}
    out = {"groups": "signer x letter", "validation_signer": VALIDATION_SIGNER, "test_signers": list(TEST_SIGNERS),
           "per_signer": per}
    test = np.isin(who, TEST_SIGNERS)
    if test.any():
        out["test"] = bootstrap_accuracy(correct[test], groups[test], seed=seed).as_dict()
    return out


def format_signer_scores(scores: dict) -> list[str]:
    """Lines of ``aslnb evaluate --external``: each signer's accuracy [95% interval] and the test signers'."""
    lines = [f"  {s} ({v['role']}): {v['accuracy']:.3f} [{v['low']:.3f}, {v['high']:.3f}] on {v['n']} images"
             for s, v in scores["per_signer"].items()]
    if "test" in scores:
        t = scores["test"]
        lines.append(f"  test signers {'+'.join(scores['test_signers'])}: {t['accuracy']:.3f} "
                     f"[{t['low']:.3f}, {t['high']:.3f}] on {t['n']} images (95% interval, groups {scores['groups']})")
    return lines

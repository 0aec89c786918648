"""Notebook 06 (other hands): the levers of the ablation, the kept recipe, its live run and scores.

:data:`LEVERS` is the one list of what ``benchmarks/other_hands.py`` measures;
:data:`RECIPE` is the lever kept on the validation signer (``hand1``), the one
notebook 06 trains live and the README's "Other hands" command uses.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: Lever name -> (what it changes, training parameters over the base recipe).
LEVERS: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": ("frames as they are", {}),
    "views": ("+2 hand views per frame: hand cut out of the room, cropped, pasted on black/plain/noise/gradient, "
              "flipped", {"hand_views": 2, "view_augment": 0.0}),
    "views+augment": ("the same views + Keras augmentation (rotation, scale, shift, colour jitter, cutout)",
                      {"hand_views": 2, "view_augment": 1.0}),
    "linear head": ("frames as they are, a linear softmax head (no hidden layer)", {"head_units": []}),
    "views+linear head": ("+2 hand views per frame, a linear softmax head",
                           {"hand_views": 2, "view_augment": 0.0, "head_units": []}),
    "views+linear head 224px": ("the same at 224 px instead of 128",
                                {"hand_views": 2, "view_augment": 0.0, "head_units": [], "image_size": 224}),
    "views+augment+fine-tune": ("views + augmentation, then the top stage fine-tuned (the cpu profile's second "
                                "phase: 5 epochs, learning rate 3e-4, BatchNormalization frozen)",
                                {"hand_views": 2, "view_augment": 1.0, "fine_tune_epochs": 5,
                                 "fine_tune_until": "block6", "fine_tune_lr": 3e-4}),
}
#: The lever kept: the best accuracy on the validation signer hand1 in benchmarks/other_hands.json (its "best";
#: tests/test_hands.py checks they agree), whose held-out ASL accuracy is not below the baseline's.
KEPT = "views+augment"
RECIPE: dict[str, Any] = dict(LEVERS[KEPT][1])


def external_scores(model, ext_dir: str | os.PathLike, class_names: list[str], image_size: int,
                    per_class: int | None = None) -> dict[str, Any]:
    """Massey predictions of ``model``: per-signer scores and the test signers' confusion matrix.

    ``per_class``: at most that many images per letter (spread over the signers), for quick runs.
    """
    from ..data.external import TEST_SIGNERS, load_external, signer_scores, signers_of
    from ..data.scan import drop_bad_images
    from ..evaluate import class_probabilities, score

    ext = load_external(ext_dir, class_names)
    folder = drop_bad_images(ext.folder, warn=False)
    if per_class:
        keep = np.concatenate([np.flatnonzero(folder.labels == c)[:: max(1, int((folder.labels == c).sum()) // per_class)]
                               for c in np.unique(folder.labels)])
        folder = folder.subset(np.sort(keep))
    probs = class_probabilities(model, folder.files, image_size)
    correct = probs.argmax(1) == folder.labels
    shared = [class_names.index(c) for c in ext.shared_classes]
    test = np.isin(signers_of(folder.files), TEST_SIGNERS)
    return {"signers": signer_scores(correct, folder.files, folder.labels),
            "test_scores": score(folder.labels[test], probs[test], class_names, labels=shared) if test.any() else None,
            "n_images": int(len(folder))}


def signer_table(scores: dict[str, Any]):
    """The per-signer accuracies with their intervals as a DataFrame (role, n, accuracy, low, high)."""
    import pandas as pd

    rows = {s: {k: v[k] for k in ("role", "n", "accuracy", "low", "high")} for s, v in scores["per_signer"].items()}
    if "test" in scores:
        rows["hand2-5 (test)"] = {"role": "test, pooled", **{k: scores["test"][k] for k in ("n", "accuracy", "low",
                                                                                             "high")}}
    return pd.DataFrame(rows).T


def ablation_table(path: str | os.PathLike):
    """``benchmarks/other_hands.json`` as a DataFrame (one row per lever), or None when absent."""
    import pandas as pd

    from ..io import read_json

    if not Path(path).is_file():
        return None
    r = read_json(path)
    rows = {}
    for row in r["rows"]:
        rows[row["lever"]] = {"held-out ASL": round(row["asl_held_out"]["accuracy"], 3),
                              "ASL 95% CI": f"[{row['asl_held_out']['low']:.3f}, {row['asl_held_out']['high']:.3f}]",
                              "hand1 (validation)": round(row["validation"]["accuracy"], 3),
                              "hand1 95% CI": f"[{row['validation']['low']:.3f}, {row['validation']['high']:.3f}]",
                              "hand2-5 (test)": round(row["test"]["accuracy"], 3),
                              "test 95% CI": f"[{row['test']['low']:.3f}, {row['test']['high']:.3f}]",
                              "seconds": row["seconds"]}
    return pd.DataFrame(rows).T.round(3)

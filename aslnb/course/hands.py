"""Notebook 06 (other hands): which network to transfer from, scored per signer; the old levers' ablation.

:data:`LEVERS` is the one list of what ``benchmarks/other_hands.py`` measures (image levers: hand views,
augmentation); :data:`RECIPE` is the lever it kept on the validation signer (``hand1``).
:data:`SOURCES` are notebook 06's rows (which network the classifier transfers from), trained by
:func:`score_source` and shown by :func:`sources_table`; the rest draws and tabulates what the notebook shows.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LANDMARKS_RECIPE
from ..data.images import load_image
from ..evaluate import evaluate
from ..io import read_json
from ..train import train

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


#: Notebook 06's rows: what the classifier transfers from -> the ``features`` of :func:`aslnb.train.train`.
SOURCES: dict[str, str] = {"room pixels (ImageNet Lite0)": "image", "hand crop (ImageNet Lite0)": "crop",
                           "hand landmarks (hand network + MLP)": "landmarks",
                           "landmarks, room pixels where no hand (fusion)": "fusion"}


def source_params(settings: dict[str, Any], features: str, image_params: dict[str, Any]) -> dict[str, Any]:
    """:func:`aslnb.train.train` parameters of one row: ``image_params`` (the profile's Lite0 recipe, its second
    phase dropped to stay cheap) for ``image``/``crop``, the landmarks recipe for ``landmarks``; both limited to the
    profile's ``hands_per_class`` images per class (its ``limit_per_class`` when None), epochs at most the
    recipe's and at least the profile's."""
    limit = settings.get("hands_per_class") or settings.get("limit_per_class")
    if features == "landmarks":
        epochs = min(int(LANDMARKS_RECIPE["epochs"]), max(int(settings["epochs"]) * 4, 1))
        return {**LANDMARKS_RECIPE, "epochs": epochs, "learning_rate": 1e-3, "seed": image_params["seed"],
                "limit_per_class": limit}
    return {**image_params, "features": features, "fine_tune_epochs": 0, "limit_per_class": limit}


def score_source(data_dir: Path, external_dir: Path | None, out: Path, params: dict[str, Any],
                 feature_cache: Path | None = None, external_limit: int | None = None) -> dict[str, Any]:
    """Train one row into ``out`` and score it: held-out ASL, hand1, hand2-5 (intervals; at most ``external_limit``
    Massey images per letter), no-hand shares, seconds."""
    t0 = time.perf_counter()
    res = train(data_dir, out, overwrite=True, verbose=0, feature_cache_dir=None if params.get("features") ==
                "landmarks" else feature_cache, **params)
    m = evaluate(out, data_dir, external=external_dir, model=res.model, verbose=0, external_limit=external_limit,
                 feature_cache_dir=feature_cache)
    row = {"features": params.get("features", "image"), "seconds": round(time.perf_counter() - t0, 1),
           "held_out": _acc(m["held_out"], m["held_out"].get("interval", {})),
           "no_hand_held_out": (m["held_out"].get("no_hand") or {}).get("share")}
    sig = (m.get("external") or {}).get("signers")
    if sig is not None:
        row["hand1"] = _acc(sig["per_signer"][sig["validation_signer"]], sig["per_signer"][sig["validation_signer"]])
        row["hand2-5"] = _acc(sig["test"], sig["test"])
        row["no_hand_massey"] = ((m.get("external") or {}).get("no_hand") or {}).get("share")
    return {**row, "model": res.model, "run_dir": out}


def _acc(acc: dict[str, Any], interval: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": float(acc["accuracy"]), "low": float(interval.get("low", np.nan)),
            "high": float(interval.get("high", np.nan))}


def sources_table(rows: dict[str, dict[str, Any]]):
    """The rows of :func:`score_source` as a DataFrame: accuracy [95% interval] per part, no-hand shares, seconds."""
    import pandas as pd

    def cell(r: dict[str, Any], key: str) -> str:
        v = r.get(key)
        return "-" if v is None else f"{v['accuracy']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"

    table = {name: {"held-out ASL": cell(r, "held_out"), "hand1 (validation)": cell(r, "hand1"),
                    "hand2-5 (test)": cell(r, "hand2-5"),
                    "no hand: ASL / Massey": "-" if r.get("no_hand_held_out") is None else
                    f"{r['no_hand_held_out']:.3f} / {r.get('no_hand_massey') or 0:.3f}", "seconds": r["seconds"]}
             for name, r in rows.items()}
    return pd.DataFrame(table).T


def image_points(files, points: np.ndarray, found: np.ndarray,
                 pad: float) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The images of ``files`` (as decoded for training) and their hand points (x, y) in the image's own pixels
    (``points``/``found``: a :class:`aslnb.features.landmarks.HandSet`'s; ``pad``: the detector's black border)."""
    images, out = [], []
    for f, p, ok in zip(files, points, found):
        img = load_image(f)
        images.append(img)
        out.append(p[:, :2] - round(pad * max(img.shape[:2])) if ok else None)
    return images, out


def first_of(folder, letters: list[str], class_names: list[str], mask: np.ndarray | None = None) -> list[int]:
    """Index of the first image of each letter in ``folder`` (within ``mask``); letters without one are skipped."""
    keep = np.ones(len(folder.labels), bool) if mask is None else mask
    hits = [np.flatnonzero(keep & (folder.labels == class_names.index(c))) for c in letters if c in class_names]
    return [int(h[0]) for h in hits if len(h)]


def grey_levels(files, found: np.ndarray):
    """Per frame: mean and spread (standard deviation) of its grey levels, and whether a hand was found."""
    import pandas as pd

    rows = []
    for f, ok in zip(files, found):
        grey = load_image(f).astype(np.float32).mean(-1)
        rows.append({"hand found": bool(ok), "mean grey": float(grey.mean()), "grey spread": float(grey.std()),
                     "dark share (<40)": float((grey < 40).mean())})
    return pd.DataFrame(rows)


def per_letter(correct: np.ndarray, labels: np.ndarray, class_names: list[str]):
    """Accuracy and image count per letter (rows sorted, worst first)."""
    import pandas as pd

    rows = {class_names[c]: {"accuracy": float(correct[labels == c].mean()), "n": int((labels == c).sum())}
            for c in np.unique(labels)}
    return pd.DataFrame(rows).T.sort_values("accuracy")


def chosen_source(report_dir: Path | None) -> tuple[str, Path] | None:
    """``(features, run folder)`` of notebook 06's row chosen on ``hand1`` in ``report_dir`` (its metrics.json's
    ``nb06.hands.chosen_on_hand1``); None before notebook 06 has run there."""
    metrics = Path(report_dir or ".") / "metrics.json"
    features = (read_json(metrics).get("nb06") or {}).get("hands.chosen_on_hand1") if metrics.is_file() else None
    folder = Path(report_dir or ".") / "runs" / "06_other_hands" / str(features)
    if not features or not (folder / "config.json").is_file():
        return None
    return features, folder

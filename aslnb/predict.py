"""Prediction on image files of any size, mode or format Pillow reads.

Probabilities come from :func:`aslnb.evaluate.run_probabilities`, the same
function evaluation uses (one inference path): the image is resized to the
run's ``image_size`` (config.json) and the saved model normalises it itself
(``features='landmarks'`` or ``'crop'`` runs: the run's hand detection and
normalisation or crop first; no hand found: ``nothing``, and ``"hand": false`` in the result).
That is also all training does to a real frame; the hand views of
``hand_views`` (hand cut out of the room, pasted elsewhere) are extra training
images only, so a photo of another hand in another room needs no cut-out.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .data.images import is_image_name
from .errors import DataError
from .evaluate import run_probabilities
from .runs import load_config, load_labels, load_run


def collect_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand folders into their image files (recursively, sorted); keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_name(f))
            if not found:
                raise DataError(f"{display_path(p)}: folder holds no image files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{display_path(p)}: no such file or folder")
    return out


def display_path(path: str | os.PathLike) -> str:
    """``path`` as one printable line: names with a newline or other control character are shown repr-style."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def predict(run_dir: str | os.PathLike, paths: list[str | os.PathLike] | str, *, top_k: int = 3,
            batch_size: int = 32, model=None) -> list[dict[str, Any]]:
    """``[{"file", "label", "prob", "top_k": [[label, prob], ...]}]`` for each image (plus ``"hand"``: whether a
    hand was found, for the landmarks and crop recipes)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = collect_images(list(paths))  # a wrong path fails before the model is loaded
    if model is None:
        model, names, cfg = load_run(run_dir)
    else:
        names, cfg = load_labels(run_dir), load_config(run_dir)
    top_k = max(1, min(int(top_k), len(names)))
    probs, found = run_probabilities(model, files, cfg, names, source=run_dir, batch_size=batch_size)
    results: list[dict[str, Any]] = []
    for n, (f, p) in enumerate(zip(files, probs)):
        order = np.argsort(-p, kind="stable")[:top_k]
        results.append({"file": str(f), "label": names[order[0]], "prob": float(p[order[0]]),
                        "top_k": [[names[i], float(p[i])] for i in order]})
        if found is not None:  # the landmarks and crop recipes say whether they saw a hand
            results[-1]["hand"] = bool(found[n])
    return results


def format_result(result: dict[str, Any]) -> str:
    """One output line of ``aslnb predict``: ``FILE: LABEL (PROB)  [ALT PROB, ...]`` (file name escaped)."""
    if result.get("hand") is False:
        return f"{display_path(result['file'])}: {result['label']} (no hand found)"
    alts = ", ".join(f"{lab} {p:.2f}" for lab, p in result["top_k"][1:])
    return f"{display_path(result['file'])}: {result['label']} ({result['prob']:.3f})" + (f"  [{alts}]" if alts else "")

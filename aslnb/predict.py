"""Prediction on image files of any size, mode or format Pillow reads.

Probabilities come from :func:`aslnb.evaluate.run_probabilities`, the same
function evaluation uses (one inference path): the image is resized to the
run's ``image_size`` (config.json) and the saved model normalises it itself
(``features='landmarks'`` or ``'crop'`` runs: the run's hand detection and
normalisation or crop first; no hand found: ``nothing``, and ``"hand": false`` in the result;
``'fusion'`` runs: the landmarks part where a hand is found, else the image part, ``"answered_by"`` says which).
That is also all training does to a real frame; the hand views of
``hand_views`` (hand cut out of the room, pasted elsewhere) are extra training
images only, so a photo of another hand in another room needs no cut-out.

A folder given to ``aslnb predict`` stands for the image files directly in it
(the rule of the data folders: files in its sub-folders are named in a warning,
not read). Images that cannot be decoded are listed, one error line each, after
the others are answered; the exit code is then non-zero.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .data.images import display_path, is_image_name, utf8_name
from .data.scan import LOG, find_bad_images, nested_images, skipped_notice
from .errors import DataError, ParameterError
from .evaluate import answered_by, run_probabilities
from .runs import load_run


def collect_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand folders into their own image files (sorted); keep files as given.

    The rule of the data folders (:func:`aslnb.data.scan.scan_folder`): a folder's images are the image
    files directly in it; those in its sub-folders are not read, and one warning line names them.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            entries = sorted(p.iterdir())
            found = [f for f in entries if f.is_file() and not f.name.startswith(".") and is_image_name(f)]
            nested = nested_images([f for f in entries if f.is_dir() and not f.name.startswith(".")])
            if not found:
                hint = f" (its sub-folders hold {len(nested)}): give those folders, e.g. {display_path(p / '*')}/" \
                    if nested else ""
                raise DataError(f"{display_path(p)}: folder holds no image files directly{hint}")
            if nested:
                LOG.warning("%s", skipped_notice(nested, f"sub-folders of {display_path(p)}",
                                                 "give those folders too to predict them"))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{display_path(p)}: no such file or folder")
    return out


def check_top_k(top_k: int) -> None:
    """Refuse a ``top_k`` below 1 (it listed the top label anyway)."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ParameterError(f"--top-k {top_k}: must be at least 1 (the number of labels listed per image, "
                             "most probable first)")


def predict(run_dir: str | os.PathLike, paths: list[str | os.PathLike] | str, *, top_k: int = 3,
            batch_size: int = 32, model=None) -> list[dict[str, Any]]:
    """``[{"file", "label", "prob", "top_k": [[label, prob], ...]}]`` for each image (plus ``"hand"``: whether a
    hand was found, for the landmarks, crop and fusion recipes, and for fusion ``"answered_by"``: ``landmarks``,
    ``image`` or ``landmarks+image``).

    A file that cannot be decoded raises :class:`DataError` naming it (``aslnb predict`` first sets such
    files aside with :func:`readable_images`, answers the others and lists them).
    """
    check_top_k(top_k)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = collect_images(list(paths))  # a wrong path fails before the model is loaded
    model, names, cfg = load_run(run_dir, model)
    top_k = min(int(top_k), len(names))
    probs, found = run_probabilities(model, files, cfg, names, source=run_dir, batch_size=batch_size)
    parts = answered_by(cfg, found) if found is not None else None
    results: list[dict[str, Any]] = []
    for n, (f, p) in enumerate(zip(files, probs)):
        order = np.argsort(-p, kind="stable")[:top_k]
        results.append({"file": str(f), "label": names[order[0]], "prob": float(p[order[0]]),
                        "top_k": [[names[i], float(p[i])] for i in order]})
        if found is not None:  # the landmarks, crop and fusion recipes say whether they saw a hand
            results[-1]["hand"] = bool(found[n])
        if parts is not None:  # a fusion run says which part answered
            results[-1]["answered_by"] = parts[n]
    return results


def readable_images(files: list[Path]) -> tuple[list[Path], dict[Path, str]]:
    """``files`` that decode, and ``{file: one error line naming it}`` for the others, in file order (no model
    is loaded)."""
    reasons = find_bad_images([f for f in files if utf8_name(f)])
    bad: dict[Path, str] = {}
    for f in files:
        if not utf8_name(f):
            bad[f] = f"{display_path(f)}: file name is not valid UTF-8; rename it (UTF-8 or ASCII characters only)"
        elif str(f) in reasons:
            bad[f] = (f"{display_path(f)}: not a readable image ({reasons[str(f)]}); "
                      f"`aslnb data verify {display_path(f.parent)}` lists all such files")
    return [f for f in files if f not in bad], bad


def format_result(result: dict[str, Any]) -> str:
    """One output line of ``aslnb predict``: ``FILE: LABEL (PROB)  [ALT PROB, ...]`` (file name escaped)."""
    if result.get("hand") is False and "answered_by" not in result:
        return f"{display_path(result['file'])}: {result['label']} (no hand found)"
    alts = ", ".join(f"{lab} {p:.2f}" for lab, p in result["top_k"][1:])
    part = f"  by the {result['answered_by']} part" + ("" if result["hand"] else " (no hand found)") \
        if "answered_by" in result else ""
    line = f"{display_path(result['file'])}: {result['label']} ({result['prob']:.3f})"
    return line + (f"  [{alts}]" if alts else "") + part

"""Prediction on image files of any size, mode or format Pillow reads."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .data.images import is_image_name, load_image
from .errors import DataError
from .runs import load_run


def collect_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand folders into their image files (recursively, sorted); keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_name(f))
            if not found:
                raise DataError(f"{p}: folder holds no image files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return out


def predict(run_dir: str | os.PathLike, paths: list[str | os.PathLike] | str, *, top_k: int = 3,
            batch_size: int = 32, model=None) -> list[dict[str, Any]]:
    """``[{"file", "label", "prob", "top_k": [[label, prob], ...]}]`` for each image."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = collect_images(list(paths))  # a wrong path fails before the model is loaded
    if model is None:
        model, names, cfg = load_run(run_dir)
    else:
        from .runs import load_config, load_labels

        names, cfg = load_labels(run_dir), load_config(run_dir)
    size = int(cfg["params"]["image_size"])
    top_k = max(1, min(int(top_k), len(names)))
    results: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        batch = np.stack([load_image(f, size) for f in chunk]).astype(np.float32)
        probs = np.asarray(model.predict_on_batch(batch), dtype=np.float64)
        for f, p in zip(chunk, probs):
            order = np.argsort(-p)[:top_k]
            results.append({"file": str(f), "label": names[order[0]], "prob": float(p[order[0]]),
                            "top_k": [[names[i], float(p[i])] for i in order]})
    return results

"""Freeze-boundary feature cache.

When the backbone is frozen up to stage S and nothing random (augmentation)
runs before it, the activations at S are the same every epoch. They are
computed once per image (batched, through the model's own preprocessing) and
the trainable part is trained on them, which is what the original recognizer
did with its "bottlenecks". The key of a cache file hashes everything the
activations depend on: the data fingerprint, the image size, the frozen
weights themselves and the boundary layer, so a stale cache is never reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

from .data.pipeline import make_dataset
from .data.scan import ImageFolder


def weights_digest(model: keras.Model) -> str:
    """sha256 (16 hex) over every weight of ``model``, in order."""
    h = hashlib.sha256()
    for w in model.weights:
        arr = keras.ops.convert_to_numpy(w)
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def cache_key(folder: ImageFolder, image_size: int, frozen: keras.Model, precision: str = "float32") -> str:
    """Key of the features of ``folder`` through ``frozen`` at ``image_size``."""
    parts = {
        "data": folder.fingerprint(),
        "files": hashlib.sha256("\n".join(map(str, folder.files)).encode()).hexdigest()[:16],
        "image_size": int(image_size),
        "weights": weights_digest(frozen),
        "boundary": frozen.output.name if hasattr(frozen.output, "name") else str(frozen.output_shape),
        "output_shape": list(frozen.output_shape[1:]),
        "precision": precision,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def extract_features(
    frozen: keras.Model,
    folder: ImageFolder,
    image_size: int,
    *,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    precision: str = "float32",
    verbose: int = 0,
) -> np.ndarray:
    """Activations of ``frozen`` for every image of ``folder`` (file order kept).

    With ``cache_dir`` the array is stored as ``<key>.npy`` and reused when the
    key matches; written atomically, so an interrupted run leaves no bad file.
    """
    path = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        path = cache_dir / f"features-{cache_key(folder, image_size, frozen, precision)}.npy"
        if path.is_file():
            arr = np.load(path, mmap_mode=None)
            if arr.shape[0] == len(folder):
                return arr
    ds = make_dataset(folder, image_size, batch_size, with_labels=False)
    feats = frozen.predict(ds, verbose=verbose)
    feats = np.asarray(feats, dtype=np.float32)
    if path is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npy.part")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, feats)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return feats

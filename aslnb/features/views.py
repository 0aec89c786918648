"""Cached training views: the hand cut out of the ASL room, cropped, pasted elsewhere, augmented.

:func:`hand_views` turns the *training* split's frames into ``n_views`` new
images each (:func:`aslnb.data.hands.compose` on a background drawn from
``backgrounds``, then the Keras pipeline of :func:`aslnb.models.augment.augmenter`
at ``strength``) and writes them as JPEG files into a cache folder named by a
key of everything that makes them (the training files, the settings, the
version of this recipe). They are image files like any other, so the frozen
backbone's feature cache serves them and a second run reuses them. The
empty-room frames come from the training split's ``nothing`` class only; the
validation and test splits (and any external set) are never read here.

Views are written into a hidden ``.views-<key>.<pid>-XXXX.part`` folder, renamed
into place when complete; an error or Ctrl-C removes it, and the next call removes
those of processes that are gone (kill -9, SIGTERM).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import hands
from ..data.images import load_images
from ..data.scan import ImageFolder
from ..errors import DataError
from ..models.augment import augment_batch, augmenter
from ..settings import cache_dir as default_cache_dir
from ..io import make_work_dir, stale_parts

VERSION = 1  # change when the composites change: the cache key includes it
NOTHING = "nothing"
_CHUNK = 64


def views_key(train: ImageFolder, *, n_views: int, backgrounds: tuple[str, ...], strength: float, size: int,
              seed: int) -> str:
    """The cache key of the views of ``train`` with these settings."""
    h = hashlib.sha256(f"v{VERSION}:{n_views}:{','.join(backgrounds)}:{strength:g}:{size}:{seed}\n".encode())
    h.update(train.fingerprint().encode())
    return h.hexdigest()[:20]


def hand_views(train: ImageFolder, cache_dir: str | os.PathLike, *, n_views: int = 2,
               backgrounds: tuple[str, ...] = hands.BACKGROUNDS, strength: float = 1.0, size: int = 128,
               seed: int = 0, verbose: int = 0) -> ImageFolder:
    """``n_views`` composites of every frame of ``train`` as an :class:`ImageFolder` (made once, then cached)."""
    names = train.class_names
    if NOTHING not in names or not (train.labels == names.index(NOTHING)).any():
        raise DataError(f"{train.root}: no '{NOTHING}' frames in the training split to learn the empty room from; "
                        "hand views need them (train without hand_prep, or add a 'nothing' class)")
    key = views_key(train, n_views=n_views, backgrounds=backgrounds, strength=strength, size=size, seed=seed)
    final = Path(cache_dir) / f"views-{key}"
    rel = [f"{names[lab]}/{Path(f).stem}_v{v}.jpg" for v in range(n_views) for f, lab in zip(train.files, train.labels)]
    labels = np.tile(train.labels, n_views)
    if not (final.is_dir() and all((final / r).is_file() for r in rel)):
        _make(train, final, rel, n_views=n_views, backgrounds=backgrounds, size=size, seed=seed, verbose=verbose,
              pipeline=augmenter(strength, seed=seed))
    return ImageFolder(final, list(names), np.array([str(final / r) for r in rel]), labels.astype(np.int64), [])


def _make(train: ImageFolder, final: Path, rel: list[str], *, n_views: int, backgrounds, size: int, seed: int,
          verbose: int, pipeline) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    stale = stale_parts(final.parent, ".views-*.part")
    for old in stale:
        shutil.rmtree(old, ignore_errors=True)
    if stale and verbose:
        print(f"hand views: removed {len(stale)} partial hand-views folder{'s' if len(stale) > 1 else ''} of "
              f"stopped runs from {final.parent}", flush=True)
    tmp = make_work_dir(final.parent, f".{final.name}.")
    try:
        nothing = train.class_names.index(NOTHING)
        bg = hands.Background.from_images(load_images(train.files[train.labels == nothing], hands.WORK),
                                          source=str(train.root))
        n = len(train)
        for start in range(0, n, _CHUNK):
            idx = np.arange(start, min(n, start + _CHUNK))
            raw = load_images(train.files[idx], hands.WORK)
            masks = [None if train.labels[i] == nothing else hands.hand_mask(raw[j], bg) for j, i in enumerate(idx)]
            for v in range(n_views):
                batch = np.stack([_one(raw[j], masks[j], train.files[i], v, backgrounds, size, seed)
                                  for j, i in enumerate(idx)])
                batch = augment_batch(pipeline, batch)
                for j, i in enumerate(idx):
                    out = tmp / rel[v * n + i]
                    out.parent.mkdir(exist_ok=True)
                    Image.fromarray(batch[j]).save(out, quality=92)
            if verbose:
                print(f"hand views: {min(n, start + _CHUNK)}/{n} frames", flush=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _one(img: np.ndarray, mask: np.ndarray | None, path: str, view: int, backgrounds, size: int,
         seed: int) -> np.ndarray:
    rng = np.random.default_rng([hands.seed_of(path, seed), view])
    if mask is None:  # an empty room stays a room: 'nothing' must not mean "a plain background"
        return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
    return hands.compose(img, mask, str(rng.choice(backgrounds)), rng, size)


def with_hand_views(split, cfg, cache_dir: str | os.PathLike | None = None, verbose: int = 0):
    """``split`` with the hand views of its training part added to it (``cfg.hand_views`` per frame)."""
    train = split.train
    extra = hand_views(train, Path(cache_dir or default_cache_dir()), n_views=int(cfg.hand_views),
                       strength=float(cfg.view_augment), size=int(cfg.image_size), seed=int(cfg.seed), verbose=verbose)
    merged = ImageFolder(train.root, list(train.class_names), np.concatenate([train.files, extra.files]),
                         np.concatenate([train.labels, extra.labels]), list(train.problems))
    return dataclasses.replace(split, train=merged)

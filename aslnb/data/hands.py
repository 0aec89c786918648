"""Hands without their room: separate the hand from the ASL background, crop it, paste it elsewhere.

Every ASL frame shows one signer in one room, and the ``nothing`` class holds
frames of that empty room. :class:`Background` keeps (small copies of) those
frames; :func:`hand_mask` finds, for a frame, the empty-room frame that looks
most like it and keeps the pixels that differ from it and look like skin (the
red-minus-blue chroma of YCbCr), then the largest connected region.
:func:`compose` crops a square around the hand (the top of the arm: Massey-style
crops end at the wrist) and pastes it on another background: black, a plain
colour, smooth noise or a gradient (:data:`BACKGROUNDS`).

Only the model's *training* images go through this: at prediction time an image
is just resized, so nothing here depends on the room of the test images.
Pure numpy/scipy/Pillow, deterministic for a given seed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from ..errors import DataError

BACKGROUNDS = ("black", "plain", "noise", "gradient")
WORK = 128  # masks are computed at this size
_THUMB = 32


def chroma(img: np.ndarray) -> np.ndarray:
    """Cr - Cb of YCbCr (float, about -255..255): high on skin, low on white, grey and blue."""
    x = img.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return (0.5 * r - 0.4187 * g - 0.0813 * b) - (-0.1687 * r - 0.3313 * g + 0.5 * b)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` (0..255) as uint8, resized bilinearly to ``size`` x ``size``, as float32."""
    return np.asarray(Image.fromarray(img.astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR),
                      dtype=np.float32)


def _work(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) if img.shape[:2] == (WORK, WORK) else _resize(img, WORK)


@dataclass
class Background:
    """The empty-room frames (at :data:`WORK` px), their thumbnails and chroma."""

    frames: np.ndarray  # (M, WORK, WORK, 3) float32
    thumbs: np.ndarray  # (M, 3 * _THUMB**2)
    chroma_max: np.ndarray  # (M, WORK, WORK): chroma, max-filtered against small camera shifts

    @classmethod
    def from_images(cls, images: np.ndarray | list[np.ndarray], source: str = "the background frames") -> "Background":
        if len(images) == 0:
            raise DataError(f"{source}: no empty-room frames to separate hands from their background; the training "
                            "data needs a 'nothing' class (or use hand_prep='none')")
        frames = np.stack([_work(np.asarray(i)) for i in images])
        return cls(frames, _thumbs(frames), np.stack([ndi.maximum_filter(chroma(f), size=9) for f in frames]))


def _thumbs(frames: np.ndarray) -> np.ndarray:
    k = WORK // _THUMB
    n = frames.shape[0]
    return frames.reshape(n, _THUMB, k, _THUMB, k, 3).mean((2, 4)).reshape(n, -1)


def hand_mask(img: np.ndarray, bg: Background) -> np.ndarray:
    """Boolean (WORK, WORK) mask of the hand and arm in ASL frame ``img`` (any size, RGB)."""
    x = _work(img)
    d = np.abs(bg.thumbs - _thumbs(x[None])[0])
    d = np.sort(d, 1)[:, : int(d.shape[1] * 0.6)].mean(1)  # the hand covers part of the frame: ignore the worst 40%
    j = int(d.argmin())
    ch = chroma(x)
    f = bg.frames[j]
    lo = ndi.minimum_filter(f, size=(7, 7, 1))
    hi = ndi.maximum_filter(f, size=(7, 7, 1))
    diff = np.maximum(lo - x, x - hi).max(-1)  # outside the background's range near that pixel
    m = ((ch - bg.chroma_max[j]) > 10) | ((ch > 15) & (diff > 25)) | (diff > 70)
    m = ndi.binary_closing(ndi.binary_opening(m, iterations=1), iterations=3)
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = ndi.sum(m, lab, range(1, n + 1))
    edge = set(np.unique(lab[-1])) | set(np.unique(lab[:, 0])) | set(np.unique(lab[:, -1]))
    arms = [i for i in range(1, n + 1) if i in edge and sizes[i - 1] > 0.2 * sizes.max()]  # the arm enters from below
    pick = max(arms, key=lambda i: sizes[i - 1]) if arms else 1 + int(np.argmax(sizes))
    return ndi.binary_fill_holes(lab == pick)


def hand_box(mask: np.ndarray, *, margin: float = 0.12, max_aspect: float = 1.25) -> tuple[int, int, int]:
    """Square crop ``(top, left, side)`` around the hand: the top of the mask (the arm comes from below)."""
    ys, xs = np.nonzero(mask)
    size = mask.shape[0]
    if ys.size < 20:
        return 0, 0, size
    top, left, right = int(ys.min()), int(xs.min()), int(xs.max()) + 1
    w = right - left
    h = min(int(ys.max()) + 1 - top, int(max_aspect * w) + 1)
    side = min(size, int(max(w, h) * (1 + 2 * margin)) + 1)
    cy, cx = top + h / 2, (left + right) / 2
    t = int(np.clip(cy - side / 2, 0, size - side))
    lft = int(np.clip(cx - side / 2, 0, size - side))
    return t, lft, side


def background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` x ``size`` RGB float background of ``kind`` (one of :data:`BACKGROUNDS`)."""
    if kind == "black":
        return np.full((size, size, 3), rng.uniform(0, 25), np.float32)
    if kind == "plain":
        return np.broadcast_to(rng.uniform(0, 255, 3).astype(np.float32), (size, size, 3)).copy()
    if kind == "noise":
        k = int(rng.integers(2, 17))
        small = rng.uniform(0, 255, (k, k, 3)).astype(np.uint8)
        out = np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC), np.float32)
        return np.clip(out + rng.normal(0, rng.uniform(0, 20), out.shape), 0, 255).astype(np.float32)
    if kind == "gradient":
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = np.linspace(0, 1, size, dtype=np.float32)
        ramp = t[:, None] if rng.random() < 0.5 else t[None, :]
        return (a + (b - a) * np.broadcast_to(ramp, (size, size))[..., None]).astype(np.float32)
    raise DataError(f"background kind {kind!r}: use one of {', '.join(BACKGROUNDS)}")


def compose(img: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator, size: int, *,
            crop: bool = True) -> np.ndarray:
    """The hand of ``img`` (its ``mask``) cropped (``crop``) and pasted on a ``kind`` background, uint8 (size, size, 3)."""
    x = _work(img)
    m = mask.astype(np.float32)
    if crop:
        t, lft, side = hand_box(mask, margin=float(rng.uniform(0.0, 0.2)))
        x, m = x[t:t + side, lft:lft + side], m[t:t + side, lft:lft + side]
    x = _resize(x, size)
    m = _resize(m * 255, size)[..., None] / 255.0
    m = ndi.gaussian_filter(m, sigma=(0.8, 0.8, 0))  # soft edge
    out = m * x + (1 - m) * background(kind, size, rng)
    return np.clip(out, 0, 255).astype(np.uint8)


def views(img: np.ndarray, bg: Background, n: int, rng: np.random.Generator, size: int,
          kinds: tuple[str, ...] = BACKGROUNDS) -> list[np.ndarray]:
    """``n`` composites of one frame: the hand cropped and pasted on backgrounds drawn from ``kinds``."""
    mask = hand_mask(img, bg)
    return [compose(img, mask, str(rng.choice(kinds)), rng, size) for _ in range(n)]


def seed_of(path: str | os.PathLike, seed: int) -> int:
    """A per-file seed: the same file and seed give the same composites in any order or process."""
    import zlib

    return zlib.crc32(f"{os.path.basename(os.fspath(path))}:{seed}".encode())

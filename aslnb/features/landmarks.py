"""Hand landmarks as features: computed once per image (cached on disk, in parallel), normalised, augmented.

:func:`hand_landmarks` gives the 21 points of each image file (:mod:`aslnb.data.landmarks`). Each image's
result is stored in ``<cache>/landmarks-<key>/<xx>/<sha256 of the file>.npy``: ``key`` hashes the detector
settings and the model file's sha256, the file name is the image's content digest, so a result is reused
wherever the same bytes appear and never after the detector changed. What is missing is computed by a pool of
``workers`` processes (spawned: each opens its own detector).

:func:`landmark_features`: the points translated to the wrist (point 0), scaled by the wrist-to-middle-knuckle
length (point 9), left hands (Tasks API label) mirrored to right, flattened (63 values), plus the 210
pairwise distances of the normalised points: 273 values per hand. :func:`augment_points` makes training
variants: in-plane rotation, anisotropic scale, small 3-D rotations, and optionally mirroring.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..data.landmarks import N_POINTS, Detector, DetectorSettings, detect_files, hand_row, init_worker, quiet_stderr
from ..data.landmarker import ENV, WHEEL_MEMBERS, resolve_model
from ..data.manifest import sha256_file
from ..errors import ModelError, RunDirError
from ..io import atomic_path
from ..settings import cache_dir

N_FEATURES = N_POINTS * 3 + N_POINTS * (N_POINTS - 1) // 2  # 63 + 210
ROW = N_POINTS * 3 + 3
CHUNK = 32
POOL_MIN = 64  # fewer missing images than this are detected in this process


@dataclass
class HandSet:
    """Landmarks of N images: ``points`` (N, 21, 3) NaN where ``found`` is False; ``left``, ``retried``."""

    points: np.ndarray
    found: np.ndarray
    left: np.ndarray
    retried: np.ndarray
    stats: dict = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: np.ndarray, stats: dict | None = None) -> "HandSet":
        rows = np.asarray(rows, np.float32).reshape(-1, ROW)
        return cls(rows[:, :N_POINTS * 3].reshape(-1, N_POINTS, 3), rows[:, -3] > 0.5, rows[:, -2] > 0.5,
                   rows[:, -1] > 0.5, stats or {})

    def __len__(self) -> int:
        return len(self.found)

    def no_hand(self) -> dict:
        """``{"n", "no_hand", "share"}``: how many images had no hand."""
        n, miss = len(self), int((~self.found).sum())
        return {"n": n, "no_hand": miss, "share": round(miss / n, 6) if n else 0.0}


@dataclass(frozen=True)
class Landmarker:
    """The model file and settings a run detects hands with (recorded in ``config.json``)."""

    model_path: Path
    model_sha256: str
    settings: DetectorSettings = DetectorSettings()

    networks_sha256: str = ""

    @classmethod
    def resolve(cls, settings: DetectorSettings = DetectorSettings()) -> "Landmarker":
        path = resolve_model()
        return cls(path, sha256_file(path), settings, networks_digest(path))

    def cache_key(self) -> str:
        text = json.dumps({"settings": self.settings.as_dict(), "model": self.networks_sha256}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"detector": self.settings.as_dict(), "model_sha256": self.model_sha256,
                "networks_sha256": self.networks_sha256, "model_file": self.model_path.name,
                "api": "mediapipe.tasks.python.vision.HandLandmarker"}


def networks_digest(path: str | os.PathLike) -> str:
    """sha256 of the bundle's two networks (the official file and one built from the wheel share it when their
    networks are the same bytes, whatever the zip around them)."""
    import zipfile

    h = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        for member in sorted(WHEEL_MEMBERS):
            h.update(member.encode() + b"\0" + zf.read(member))
    return h.hexdigest()


def run_landmarker(run_cfg: dict, source: str | os.PathLike = "the run") -> Landmarker:
    """The :class:`Landmarker` a run was trained with (``config.json``'s ``landmarks``), its networks checked."""
    rec = run_cfg.get("landmarks") or {}
    try:
        settings = DetectorSettings(**{"retry_pad": None, **rec["detector"]})  # runs from before retry_pad
    except (KeyError, TypeError):
        raise RunDirError(f"{source}: config.json has no valid 'landmarks.detector' record; retrain") from None
    lm = Landmarker.resolve(settings)
    if rec.get("networks_sha256") != lm.networks_sha256:
        raise ModelError(f"{lm.model_path}: its networks (sha256 {lm.networks_sha256[:12]}...) are not the ones "
                         f"{source} was trained with ({str(rec.get('networks_sha256'))[:12]}...); set {ENV} to the "
                         "run's hand_landmarker.task or retrain")
    return lm


def landmark_probabilities(model, files, run_cfg: dict, class_names: list[str], *, batch_size: int = 256,
                           source: str | os.PathLike = "the run") -> tuple[np.ndarray, np.ndarray]:
    """``(probs (N, K), found (N,))``: the head's probabilities where a hand was found, else certainty of
    ``nothing`` (uniform when the run has no such class)."""
    hands = hand_landmarks(files, run_landmarker(run_cfg, source))
    probs = no_hand_probabilities(hands.found, class_names)
    if hands.found.any():
        x = landmark_features(normalise(hands.points[hands.found], hands.left[hands.found]))
        probs[hands.found] = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)
    return probs, hands.found


def no_hand_probabilities(found: np.ndarray, class_names: list[str]) -> np.ndarray:
    """(N, K) zeros, with certainty of ``nothing`` (uniform without that class) in the rows without a hand."""
    k = len(class_names)
    probs = np.zeros((len(found), k), np.float64)
    if "nothing" in class_names:
        probs[~np.asarray(found, bool), class_names.index("nothing")] = 1.0
    else:
        probs[~np.asarray(found, bool)] = 1.0 / k
    return probs


def hand_landmarks(files, landmarker: Landmarker, *, cache_root: str | os.PathLike | None = None,
                   workers: int = 2) -> HandSet:
    """The :class:`HandSet` of image ``files`` (in order), from the cache or computed and cached."""
    folder = Path(cache_root or cache_dir()) / f"landmarks-{landmarker.cache_key()}"
    files = [str(f) for f in files]
    paths = [folder / d[:2] / f"{d}.npy" for d in map(sha256_file, files)]  # per image: its sha256
    rows = np.zeros((len(files), ROW), np.float32)
    todo = []
    for i, p in enumerate(paths):
        try:
            rows[i] = np.load(p)
        except (OSError, ValueError):
            todo.append(i)
    for chunk, got in _detect([files[i] for i in todo], landmarker, workers):
        for j, row in zip(chunk, got):  # written as each chunk arrives: an interrupted run keeps its work
            i = todo[j]
            rows[i] = row
            with atomic_path(paths[i]) as tmp:
                np.save(tmp, row)
    return HandSet.from_rows(rows, {"cached": len(files) - len(todo), "computed": len(todo)})


def _detect(files: list[str], landmarker: Landmarker, workers: int):
    """Yield ``(positions, rows)`` chunks of ``files``: in this process for a few, else a spawned process pool."""
    args = (str(landmarker.model_path), landmarker.settings)
    if not files:
        return
    if len(files) < POOL_MIN or workers <= 1:
        with Detector(*args) as det:
            yield range(len(files)), np.stack([hand_row(det.detect_file(f)) for f in files])
        return
    starts = range(0, len(files), CHUNK)
    # the workers inherit a silenced stderr (TensorFlow's and MediaPipe's start-up lines), errors come back pickled
    with quiet_stderr(), ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                             initializer=init_worker, initargs=args) as pool:
        for start, got in zip(starts, pool.map(detect_files, [files[i:i + CHUNK] for i in starts])):
            yield range(start, start + len(got)), got


def normalise(points: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Points (N, 21, 3) centred on the wrist, scaled by the wrist-to-point-9 length, left hands mirrored."""
    p = np.asarray(points, np.float32) - points[:, :1]
    scale = np.linalg.norm(p[:, 9], axis=-1)[:, None, None]
    p = p / np.where(scale > 0, scale, 1.0)
    p[..., 0] *= np.where(np.asarray(left, bool), -1.0, 1.0)[:, None]
    return p


_I, _J = np.triu_indices(N_POINTS, k=1)


def landmark_features(normed: np.ndarray) -> np.ndarray:
    """(N, 273) float32: the 63 normalised coordinates and the 210 pairwise distances."""
    d = np.linalg.norm(normed[:, _I] - normed[:, _J], axis=-1)
    return np.concatenate([normed.reshape(len(normed), -1), d], axis=1).astype(np.float32)


def _rot(axis: int, a: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by angles ``a`` about ``axis``."""
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((len(a), 3, 3))
    i, j = [k for k in range(3) if k != axis]
    m[:, axis, axis] = 1
    m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
    return m


def augment_points(normed: np.ndarray, rng: np.random.Generator, *, roll_deg: float = 15.0, tilt_deg: float = 20.0,
                   stretch: float = 0.1, mirror: float = 0.0) -> np.ndarray:
    """Random variants of normalised hands: in-plane rotation (±``roll_deg``), x/y stretch (±``stretch``),
    3-D rotations about x and y (±``tilt_deg``), mirroring with probability ``mirror``; renormalised."""
    n = len(normed)
    rad = np.deg2rad
    m = (_rot(2, rng.uniform(-rad(roll_deg), rad(roll_deg), n))
         @ _rot(0, rng.uniform(-rad(tilt_deg), rad(tilt_deg), n))
         @ _rot(1, rng.uniform(-rad(tilt_deg), rad(tilt_deg), n)))
    p = np.einsum("nij,nkj->nki", m, normed)
    p[..., 0] *= rng.uniform(1 - stretch, 1 + stretch, n)[:, None]
    p[..., 1] *= rng.uniform(1 - stretch, 1 + stretch, n)[:, None]
    flip = rng.random(n) < mirror
    return normalise(p, flip)

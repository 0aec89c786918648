"""Hand detection and the 21 hand landmarks of an image, through MediaPipe's Tasks API only.

:class:`Detector` wraps ``mediapipe.tasks.python.vision.HandLandmarker`` (one hand, image mode) with the
settings that were measured to matter (:class:`DetectorSettings`): the image is padded 25 % with black on
every side (hands touching the edge are found), the minimum detection confidence is 0.3, and when no hand is
found the image is brightened (gamma 0.5: backlit frames) and tried once more.

"No hand" is a normal outcome: :meth:`Detector.detect` returns a :class:`Hand` whose ``found`` is False and
whose points are NaN. Points are in pixels of the padded image (x, y; z on the x scale), so their shape does
not depend on the image's aspect ratio. ``left`` is the Tasks API's handedness (its label ``Left``); the
legacy ``solutions`` API labels the opposite hand on most images, so only this API is used, in training and
prediction alike.

``mediapipe`` is imported only here, when a detector is opened (it is the optional extra ``hands``), with its
C++ log lines kept off stderr.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

from ..errors import ModelError
from .images import load_image

N_POINTS = 21


@dataclass(frozen=True)
class DetectorSettings:
    """How hands are detected (recorded in the run directory and in the landmark cache key)."""

    pad: float = 0.25  # black border on every side, as a share of the longer image side
    min_confidence: float = 0.3  # min_hand_detection_confidence (and presence) of the Tasks API
    retry_gamma: float = 0.5  # brightened retry when no hand is found (None or 1: no retry)
    # then the same two tries with this border (None: none); chosen on ASL validation + hand1 (benchmarks/landmarks.md)
    retry_pad: float | None = 0.4

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Hand:
    """One image's result: ``points`` (21, 3) float32, NaN when ``found`` is False."""

    points: np.ndarray
    found: bool
    left: bool = False
    retried: bool = False

    @classmethod
    def none(cls, retried: bool = False) -> "Hand":
        return cls(np.full((N_POINTS, 3), np.nan, np.float32), False, False, retried)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block (MediaPipe's C++ logging bypasses Python)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_mediapipe():
    """``mediapipe`` (quietly), or a :class:`ModelError` saying how to install the ``hands`` extra."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        with quiet_stderr():
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"hand landmarks need mediapipe ({exc.__class__.__name__}: {exc}); install the extra: "
                         "pip install 'aslnb[hands]' (or pip install 'mediapipe>=0.10.30')") from None
    return mp


def pad_image(rgb: np.ndarray, pad: float) -> np.ndarray:
    """``rgb`` with a black border of ``pad`` x its longer side on every side."""
    p = int(round(pad * max(rgb.shape[:2])))
    return np.pad(rgb, ((p, p), (p, p), (0, 0))) if p > 0 else rgb


def brighten(rgb: np.ndarray, gamma: float) -> np.ndarray:
    """Gamma correction (``gamma`` < 1 brightens dark pixels most)."""
    lut = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return lut[rgb]


class Detector:
    """A hand landmarker on model file ``model_path``; use as a context manager (or call :meth:`close`)."""

    def __init__(self, model_path: str | os.PathLike, settings: DetectorSettings = DetectorSettings()):
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp, self.settings = mp, settings
        opts = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)), running_mode=vision.RunningMode.IMAGE,
            num_hands=1, min_hand_detection_confidence=settings.min_confidence,
            min_hand_presence_confidence=settings.min_confidence)
        try:
            with quiet_stderr():
                self._lm = vision.HandLandmarker.create_from_options(opts)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{model_path}: the hand landmarker cannot load it ({str(exc).splitlines()[0][:160]});"
                             " delete it so that aslnb fetches or builds it again") from None

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._lm.close()

    def _once(self, rgb: np.ndarray, pad: float) -> Hand | None:
        padded = np.ascontiguousarray(pad_image(rgb, pad))
        with quiet_stderr():
            res = self._lm.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=padded))
        if not res.hand_landmarks:
            return None
        h, w = padded.shape[:2]
        pts = np.array([[p.x * w, p.y * h, p.z * w] for p in res.hand_landmarks[0]], dtype=np.float32)
        # points in the image's own pixels plus the border of settings.pad (the cache's and crops' convention)
        pts[:, :2] += round(self.settings.pad * max(rgb.shape[:2])) - round(pad * max(rgb.shape[:2]))
        left = bool(res.handedness and res.handedness[0][0].category_name == "Left")
        return Hand(pts, True, left)

    def _tries(self, rgb: np.ndarray, pad: float) -> tuple[Hand | None, bool]:
        """The frame with a border of ``pad``, then brightened (``retry_gamma``); and whether that retry ran."""
        hand = self._once(rgb, pad)
        gamma = self.settings.retry_gamma
        if hand is None and gamma and gamma != 1:
            return self._once(brighten(rgb, gamma), pad), True
        return hand, False

    def detect(self, rgb: np.ndarray) -> Hand:
        """The hand of an RGB ``uint8`` image (the retries included: ``retried`` says one ran), or :meth:`Hand.none`."""
        hand, retried = self._tries(rgb, self.settings.pad)
        if hand is None and self.settings.retry_pad:
            hand, _ = self._tries(rgb, self.settings.retry_pad)
            retried = True
        if hand is None:
            return Hand.none(retried=retried)
        hand.retried = retried
        return hand

    def detect_file(self, path: str | os.PathLike) -> Hand:
        """:meth:`detect` on an image file (decoded as training decodes it, EXIF orientation applied)."""
        return self.detect(load_image(path))


# --------------------------------------------------------------------------- worker processes
_WORKER: Detector | None = None


def hand_row(hand: Hand) -> np.ndarray:
    """A :class:`Hand` as one float32 row: 63 point coordinates, then found, left, retried (the cache's format)."""
    return np.concatenate([hand.points.reshape(-1), np.array([hand.found, hand.left, hand.retried], np.float32)])


def init_worker(model_path: str, settings: DetectorSettings) -> None:
    """Process-pool initializer: one :class:`Detector` per worker process."""
    global _WORKER
    _WORKER = Detector(model_path, settings)


def detect_files(paths: list[str]) -> np.ndarray:
    """Rows (:func:`hand_row`) of ``paths`` with the worker's detector (after :func:`init_worker`)."""
    assert _WORKER is not None, "init_worker first"
    return np.stack([hand_row(_WORKER.detect_file(p)) for p in paths]) if paths else np.zeros((0, 66), np.float32)

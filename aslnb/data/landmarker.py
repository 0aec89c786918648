"""The hand landmarker's model file (MediaPipe's ``hand_landmarker.task``): where it comes from.

:func:`resolve_model` looks, in this order, for:

1. the file named by ``$ASLNB_LANDMARKER`` (a ``.task`` bundle of your own);
2. a file already in the cache (``<cache>/landmarker/``: the official download or one built from the wheel);
3. the official download (:data:`MODEL_URL`, sha256 :data:`MODEL_SHA256`, via ``pooch``);
4. a bundle built from the ``mediapipe==0.10.21`` wheel (:data:`WHEEL_SPEC`), fetched with
   ``python -m pip download`` (it ships the same two networks: palm detector and landmark model; a
   ``.task`` file is a zip holding them as ``hand_detector.tflite`` and ``hand_landmarks_detector.tflite``);
5. else one :class:`~aslnb.errors.ModelError` line saying what to do.

The bundle built from the wheel is byte-for-byte reproducible (fixed zip timestamps), so its sha256,
recorded in the run directory and in the landmark cache key, is the same on every machine.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import DownloadError, ModelError
from ..io import atomic_path
from ..settings import cache_dir
from .fetch import fetch_file
from .http import HttpOptions
from .manifest import sha256_file

ENV = "ASLNB_LANDMARKER"
#: The official float16 bundle, version 1 (a versioned URL: ``latest`` may change under a pinned hash).
MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/1/"
             "hand_landmarker.task")
MODEL_SHA256 = "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1"
OFFICIAL_NAME = "hand_landmarker.task"
WHEEL_SPEC = "mediapipe==0.10.21"
WHEEL_NAME = "hand_landmarker-mediapipe-0.10.21.task"
#: bundle member -> file in the wheel
WHEEL_MEMBERS = {
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
#: ``pip download`` of a wheel with the tflite files, whatever this machine's platform (they are the same files).
PIP_ARGS = ["download", WHEEL_SPEC, "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
            "--platform", "manylinux_2_28_x86_64", "--quiet"]
PIP_TIMEOUT_S = 600
MODEL_DEADLINE, MODEL_MAX_BYTES = 300.0, 64 * 2**20  # the official bundle is 7.8 MB


def model_dir() -> Path:
    """Where the model file is cached (``<aslnb cache>/landmarker``)."""
    return cache_dir() / "landmarker"


def is_bundle(path: str | os.PathLike) -> bool:
    """True when ``path`` is a zip holding the two networks of a hand landmarker bundle."""
    try:
        with zipfile.ZipFile(path) as zf:
            return set(WHEEL_MEMBERS) <= set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def resolve_model(*, url: str = MODEL_URL, sha256: str = MODEL_SHA256, wheel: str | os.PathLike | None = None,
                  use_pip: bool = True) -> Path:
    """The path of a usable ``hand_landmarker.task`` (see the module docstring for the order).

    ``wheel``: a local ``mediapipe`` wheel to build from instead of ``pip download``; ``use_pip``: allow the
    ``pip download`` route. Raises :class:`ModelError` (one line) when no route gives a file.
    """
    env = os.environ.get(ENV)
    if env:
        p = Path(env).expanduser()
        if not is_bundle(p):
            raise ModelError(f"{p} (from {ENV}): not a hand landmarker .task bundle (a zip holding "
                             f"{' and '.join(WHEEL_MEMBERS)}); fix {ENV} or unset it")
        return p
    dest = model_dir()
    official, built = dest / OFFICIAL_NAME, dest / WHEEL_NAME
    if official.is_file() and sha256_file(official) == sha256:
        return official
    if built.is_file() and is_bundle(built):
        return built
    try:  # sha256 checked, a total deadline, nothing partial kept
        return fetch_file(url, sha256, dest, name=OFFICIAL_NAME,
                          http=HttpOptions(deadline=MODEL_DEADLINE, max_bytes=MODEL_MAX_BYTES))
    except DownloadError as exc:
        reasons = [f"download of {url} failed: {exc}"]
    if wheel or use_pip:
        try:
            if wheel:
                return build_from_wheel(wheel, built)
            got = pip_download_wheel()
            try:
                return build_from_wheel(got, built)
            finally:
                shutil.rmtree(got.parent, ignore_errors=True)
        except ModelError as exc:
            reasons.append(str(exc))
    raise ModelError(f"hand landmarker model file not found ({'; '.join(reasons)}); download {MODEL_URL} to "
                     f"{official} on a machine with internet, or run `python -m pip download {WHEEL_SPEC} --no-deps` "
                     f"and retry, or set {ENV} to a hand_landmarker.task file")


def pip_download_wheel() -> Path:
    """``python -m pip download mediapipe==0.10.21 --no-deps`` into a temporary folder; the wheel's path."""
    tmp = Path(tempfile.mkdtemp(prefix="aslnb-mediapipe-wheel-"))
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", *PIP_ARGS, "-d", str(tmp)], capture_output=True,
                              text=True, timeout=PIP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"`pip download {WHEEL_SPEC}` did not run ({exc.__class__.__name__})") from None
    wheels = sorted(tmp.glob("mediapipe-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no wheel"]
        raise ModelError(f"`pip download {WHEEL_SPEC}` failed ({last[0][:160]})")
    return wheels[0]


def build_from_wheel(wheel: str | os.PathLike, target: Path) -> Path:
    """Write the bundle ``target`` from a mediapipe wheel's two tflite files (reproducible bytes)."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as wz:
            blobs = {member: wz.read(src) for member, src in WHEEL_MEMBERS.items()}
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"{wheel}: not a mediapipe wheel holding the hand models ({exc.__class__.__name__}); "
                         f"use the wheel of {WHEEL_SPEC}") from None
    with atomic_path(target) as part, zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as zf:
        for member, blob in blobs.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), blob)
    return target

"""Where things live: data folders, the weights cache, run folders.

Precedence everywhere: an explicit argument (``--data``), then the environment
variable (``ASLNB_DATA`` / ``ASLNB_EXTERNAL_DATA``), then the folder that
``aslnb data fetch`` writes to in the user cache directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import DataError

DATA_ENV = "ASLNB_DATA"
EXTERNAL_ENV = "ASLNB_EXTERNAL_DATA"
DOWNLOAD_DEADLINE = 120.0  # seconds one downloaded file may take in all (aslnb data fetch --deadline)


def cache_dir() -> Path:
    """The user cache directory of aslnb (``ASLNB_CACHE`` overrides it)."""
    env = os.environ.get("ASLNB_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("aslnb"))


def default_data_dir() -> Path:
    """Where ``aslnb data fetch`` writes the training images by default."""
    return cache_dir() / "asl-alphabet"


def default_external_dir() -> Path:
    """Where ``aslnb data fetch --external`` looks for a hand-made copy of the Massey set."""
    return cache_dir() / "massey-asl"


def keras_home() -> Path:
    """Keras's cache folder (``KERAS_HOME``, else ``~/.keras``)."""
    env = os.environ.get("KERAS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".keras"


def resolve_data_dir(path: str | os.PathLike | None = None, *, must_exist: bool = True) -> Path:
    """Training-data folder: ``path``, else ``$ASLNB_DATA``, else the fetch folder."""
    if path:
        source, p = "--data", Path(path)
    elif os.environ.get(DATA_ENV):
        source, p = DATA_ENV, Path(os.environ[DATA_ENV])
    else:
        source, p = "default", default_data_dir()
    p = p.expanduser()
    if must_exist and p.exists() and not p.is_dir():
        raise DataError(
            f"training data folder {p} (from {source}) is a file, not a folder: set --data or {DATA_ENV} to "
            "the folder that holds one sub-folder of images per class"
        )
    if must_exist and not p.is_dir():
        raise DataError(
            f"training data folder {p} (from {source}) does not exist: set --data or "
            f"{DATA_ENV} to a class-per-folder image folder, or run "
            f"`aslnb data fetch --dest {p}` on a machine with internet"
        )
    return p


def resolve_external_dir(path: str | os.PathLike | None = None, *, required: bool = False) -> Path | None:
    """External test folder: ``path``, else ``$ASLNB_EXTERNAL_DATA``, else None."""
    if path:
        source, p = "--external", Path(path)
    elif os.environ.get(EXTERNAL_ENV):
        source, p = EXTERNAL_ENV, Path(os.environ[EXTERNAL_ENV])
    else:
        if required:
            raise DataError(
                f"no external test set given: pass --external DIR or set {EXTERNAL_ENV} "
                "(for example to a copy of the Massey ASL data set)"
            )
        return None
    p = p.expanduser()
    if not p.is_dir():
        what = "is a file, not a folder" if p.exists() else "does not exist"
        raise DataError(f"external data folder {p} (from {source}) {what}: fix --external or {EXTERNAL_ENV}")
    return p

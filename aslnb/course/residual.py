"""Residual learning at CPU size: plain vs residual conv nets, gradient norms, ResNet50 stages.

Notebook 02 uses this module to show the *degradation problem* (He et al.,
2016): stacking more plain conv layers makes a network harder to train, so the
deeper plain net ends with a *higher training loss* than a shallower one,
while the same depth built from residual blocks ``y = relu(x + F(x))`` trains
fine. The nets here are deliberately small (16 channels, a stride-2 stem, tiny
images) so that depths 4..24 train in seconds on two CPU cores.

Both families use Keras's default initialisation (Glorot uniform), centred
inputs and no normalisation layers, so nothing hides the effect;
``batch_norm=True`` and ``kernel_initializer="he_normal"`` are there for the
exercises. The residual nets start every residual branch at zero
(``zero_init``, as in "Fixup" and the zero-gamma trick of Goyal et al.), so a
deep residual net starts as the same function as a shallow one. Only ``keras`` APIs are used, except :func:`gradient_norms`, which
takes gradients with ``tf.GradientTape`` (the project runs Keras on TensorFlow).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from ..config import PROFILES, profile_section
from ..errors import ParameterError

#: Per-profile settings of notebook 02: the ``residual_*`` settings of :mod:`aslnb.config`'s profiles,
#: without the prefix. ``per_class``: training images per class (None = the whole blocked train split).
RESIDUAL_DEFAULTS: dict[str, dict[str, Any]] = {name: profile_section(name, "residual_") for name in PROFILES}


def residual_defaults(profile: str) -> dict[str, Any]:
    """A copy of :data:`RESIDUAL_DEFAULTS` for ``profile`` (``cpu`` for unknown names)."""
    return dict(RESIDUAL_DEFAULTS.get(profile, RESIDUAL_DEFAULTS["cpu"]))


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
    last_init = "zeros" if zero_init else kernel_initializer
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
    batch_norm: bool = False,
    zero_init: bool = True,
    kernel_initializer: str = "glorot_uniform",
    verbose: int = 0,
) -> list[DepthRun]:
    """Train a plain and a residual net of every depth on the same data, same seed, same optimiser.

    Returns one :class:`DepthRun` per net: plain nets first, then residual,
    each in the order of ``depths``. Adam, sparse categorical cross-entropy.
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


def plot_training_curves(runs: list[DepthRun], ax=None):
    """Training loss per epoch, one line per net (plain dashed, residual solid, darker = deeper)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    else:
        fig = ax.figure
    depths = sorted({r.depth for r in runs})
    for r in runs:
        shade = 0.35 + 0.65 * (depths.index(r.depth) + 1) / len(depths)
        colour = plt.cm.Reds(shade) if r.residual else plt.cm.Blues(shade)
        epochs = range(1, len(r.loss) + 1)
        ax.plot(epochs, r.loss, "-" if r.residual else "--", marker="o", ms=3, color=colour,
                label=f"{'residual' if r.residual else 'plain'} {r.depth} layers")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title("Degradation: deeper plain nets train worse, residual nets do not")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def plot_gradient_norms(norms: dict[str, dict[str, float]], ax=None):
    """Gradient norm per weighted layer (log scale), one line per net, input layer on the left."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    else:
        fig = ax.figure
    for name, per_layer in norms.items():
        vals = np.maximum(np.array(list(per_layer.values())), 1e-12)
        ax.semilogy(range(1, len(vals) + 1), vals, marker="o", ms=3, label=name,
                    linestyle="--" if name.startswith("plain") else "-")
    ax.set_xlabel("weighted layer (1 = stem conv, last = dense classifier)")
    ax.set_ylabel("gradient norm ||dL/dW|| (log scale)")
    ax.set_title("Gradient reaching each layer at initialisation")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


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


def draw_residual_block(ax=None):
    """Draw ``x -> [conv3x3 -> ReLU -> conv3x3] -> (+) -> ReLU`` with the identity shortcut; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 6.2))
    else:
        fig = ax.figure
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 12)
    ax.axis("off")
    boxes = [  # (y, label, colour)
        (10.0, "conv 3x3, 16 ch", "#cfe2f3"),
        (8.2, "ReLU", "#fde9c9"),
        (6.4, "conv 3x3, 16 ch", "#cfe2f3"),
    ]
    cx = 4.0

    def arrow(xy0, xy1, **kw):
        ax.add_patch(FancyArrowPatch(xy0, xy1, arrowstyle="-|>", mutation_scale=14, lw=1.4, color="0.2", **kw))

    ax.text(cx, 11.7, "x", ha="center", va="center", fontsize=13, style="italic")
    arrow((cx, 11.4), (cx, 10.5))
    for i, (y, label, colour) in enumerate(boxes):
        ax.add_patch(FancyBboxPatch((cx - 2.0, y - 0.45), 4.0, 0.9, boxstyle="round,pad=0.05", fc=colour, ec="0.3"))
        ax.text(cx, y, label, ha="center", va="center", fontsize=10)
        nxt = boxes[i + 1][0] + 0.5 if i + 1 < len(boxes) else 4.75
        arrow((cx, y - 0.5), (cx, nxt))
    ax.add_patch(plt.Circle((cx, 4.3), 0.42, fc="white", ec="0.2", lw=1.4))
    ax.text(cx, 4.3, "+", ha="center", va="center", fontsize=16)
    arrow((cx, 3.85), (cx, 3.05))
    ax.add_patch(FancyBboxPatch((cx - 2.0, 2.1), 4.0, 0.9, boxstyle="round,pad=0.05", fc="#fde9c9", ec="0.3"))
    ax.text(cx, 2.55, "ReLU", ha="center", va="center", fontsize=10)
    arrow((cx, 2.05), (cx, 1.2))
    ax.text(cx, 0.8, "relu(F(x) + x)", ha="center", va="center", fontsize=12, style="italic")
    # identity shortcut
    ax.plot([cx, 8.3, 8.3], [11.1, 11.1, 4.3], color="#c0392b", lw=1.8)
    arrow((8.3, 4.3), (cx + 0.45, 4.3), linestyle="-")
    ax.text(8.5, 7.7, "identity\nshortcut: x", ha="left", va="center", fontsize=10, color="#c0392b")
    ax.text(1.2, 8.2, "F(x)", ha="center", va="center", fontsize=13, style="italic", color="#1f4e79")
    ax.plot([1.8, 1.8], [6.0, 10.4], color="#1f4e79", lw=1)
    ax.set_title("A residual block: the layers learn only the change F(x)")
    return fig

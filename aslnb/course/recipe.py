"""What notebook 04 needs around the study's recipe: the study's figures, data, timers, comparisons.

The recipe itself (backbone, freezing, head, compile, fit) is written out as Keras
code in the notebook; this module only supplies what is not the recipe: the
study's published figures (:data:`STUDY`), the run's split and its images as
arrays, a per-image epoch timer, the time of the study's training phase on this
machine, and small comparisons (largest weight difference; external accuracy is :func:`.transfer.external_accuracy`).
"""
from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from ..config import TrainConfig
from ..data.splits import Split
from ..models import apply_freeze, build_classifier
from ..runs import prepare_split

#: The study's own figures and the conditions they were measured under (quoted, not measured here).
STUDY: dict[str, Any] = {
    "backbone": "ResNet50, ImageNet weights",
    "frozen": "conv1-conv4 (conv5 and the head trained)",
    "head": "global average pooling -> Dense(ReLU) -> Dense(29, softmax)",
    "loss": "categorical cross-entropy",
    "optimizer": "Adam, learning rate 1e-3",
    "batch_size": 32,
    "epochs": 20,
    "image_size": 224,
    "gpu": "NVIDIA Tesla K80",
    "seconds_per_epoch": 132,
}


def run_split(params: dict[str, Any], data_dir) -> Split:
    """The train/val/test split :func:`aslnb.train.train` makes for ``params`` (same files, same order)."""
    return prepare_split(data_dir, TrainConfig.from_params(**params))


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``labels`` (N,) as float32 one-hot rows (N, num_classes), what categorical cross-entropy expects."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


class EpochTimer(keras.callbacks.Callback):
    """Seconds per training image of each epoch: its training batches but the first (it builds the
    training function), without the validation pass."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.per_image: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t, self._n = None, 0

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()
        if self._t is None:
            self._t = self._last  # the clock starts after the first batch
        else:
            self._n += 1

    def on_epoch_end(self, epoch, logs=None):
        if self._n:  # training batches only: the validation pass after them is not counted
            self.per_image.append((self._last - self._t) / (self._n * self.batch_size))

    @property
    def seconds_per_image(self) -> float:
        """The median over epochs (NaN before an epoch of at least two batches)."""
        return float(np.median(self.per_image)) if self.per_image else float("nan")


def study_phase_seconds_per_image(backbone: str, image_size: int = STUDY["image_size"], *, batches: int = 3,
                                  batch_size: int = STUDY["batch_size"], num_classes: int = 29,
                                  seed: int = 0) -> float:
    """Seconds per image of the study's training phase on this machine, measured through images.

    ``backbone`` with its ``conv1``..``conv4`` share frozen (BatchNormalization in inference
    mode), the rest and the head trained with Adam, ``batch_size`` images per step, at
    ``image_size``; ``batches + 1`` steps on random images, the first not timed. The weights do
    not change the time, so the backbone is randomly initialised (nothing is downloaded).
    """
    keras.utils.set_random_seed(seed)
    clf = build_classifier(num_classes, image_size, backbone=backbone, weights="none", freeze_until="conv4")
    apply_freeze(clf.backbone, clf.spec, clf.freeze_until, freeze_bn=True)  # BN frozen, as with ImageNet weights
    clf.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(seed)
    n = (batches + 1) * batch_size
    x = rng.uniform(0, 255, (n, image_size, image_size, 3)).astype("float32")
    y = one_hot(rng.integers(0, num_classes, n), num_classes)
    timer = EpochTimer(batch_size)
    clf.model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    return timer.seconds_per_image


def max_weight_difference(a: keras.Model | list, b: keras.Model | list) -> float:
    """Largest absolute difference between corresponding weights of two models (or weight lists)."""
    wa = a.get_weights() if hasattr(a, "get_weights") else a
    wb = b.get_weights() if hasattr(b, "get_weights") else b
    if len(wa) != len(wb):
        raise ValueError(f"the models have {len(wa)} and {len(wb)} weights: not the same architecture")
    return float(max(np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(wa, wb)))

"""The classifier of the ``landmarks`` recipe: a small Keras MLP on normalised hand-landmark features."""
from __future__ import annotations

import keras
import numpy as np


def build_landmark_head(train_features: np.ndarray, num_classes: int, head_units: list[int], dropout: float = 0.0,
                        seed: int = 0) -> keras.Model:
    """Standardisation (adapted on ``train_features``, saved in the model) -> ReLU layers -> softmax (float32)."""
    n = int(train_features.shape[1])
    norm = keras.layers.Normalization(name="standardise")
    norm.adapt(np.asarray(train_features, np.float32))
    inputs = keras.Input((n,), name="landmark_features")
    x = norm(inputs)
    for i, units in enumerate(head_units):
        x = keras.layers.Dense(int(units), activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, seed=seed + i, name=f"dropout_{i}")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, out, name="landmark_head")

"""Image augmentation as Keras preprocessing layers (pixels 0..255 in and out).

:func:`augmenter` builds the pipeline of one ``strength`` (0: identity):
horizontal flip (a mirrored hand is the same letter signed with the other
hand), rotation, scale/crop, translation, colour jitter (brightness, contrast,
saturation, hue) and cutout (random erasing). The layers only act in training
mode; :func:`augment_batch` applies them once to a batch, which is how
:mod:`aslnb.features.views` makes the cached augmented views that the frozen
backbone's feature cache can serve (an augmentation inside the model would
bypass that cache).
"""
from __future__ import annotations

import keras
import numpy as np


def augmenter(strength: float = 1.0, *, flip: bool = True, cutout: bool = True, seed: int = 0) -> keras.Sequential:
    """The augmentation pipeline at ``strength`` (0 <= s <= 2; 1: rotation 15 deg, scale +-20%, jitter 0.3)."""
    s = float(strength)
    layers: list[keras.layers.Layer] = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if s > 0:
        layers += [
            keras.layers.RandomRotation(15 / 360 * s, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom((-0.2 * s, 0.2 * s), fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomTranslation(0.1 * s, 0.1 * s, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomColorJitter(value_range=(0, 255), brightness_factor=0.3 * s, contrast_factor=0.3 * s,
                                           saturation_factor=(0.5 - 0.25 * min(s, 1), 0.5 + 0.25 * min(s, 1)),
                                           hue_factor=0.05 * s, seed=seed + 4),
        ]
        if cutout:
            layers.append(keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.12 * s), value_range=(0, 255),
                                                     seed=seed + 5))
    return keras.Sequential(layers, name=f"augment_{s:g}")


def augment_batch(pipeline: keras.Sequential, images: np.ndarray) -> np.ndarray:
    """``images`` (N, H, W, 3) uint8 through ``pipeline`` in training mode, back to uint8."""
    if not pipeline.layers:
        return np.asarray(images, dtype=np.uint8)
    out = pipeline(np.asarray(images, dtype=np.float32), training=True)
    return np.clip(np.round(keras.ops.convert_to_numpy(out)), 0, 255).astype(np.uint8)

"""Grad-CAM (Selvaraju et al., 2017) for the study's classifier.

Which pixels made the model say "A"? Grad-CAM takes the last convolutional
feature map of the backbone, weights each channel by the mean gradient of the
class score with respect to it, sums, keeps the positive part and scales to
[0, 1]. The classifier is split at the backbone's output (its last conv
feature map): ``image -> [preprocessing] -> backbone -> head``; the gradient is
taken with ``tf.GradientTape`` (analysis code, TensorFlow backend only).

At 128 px the ResNet50 feature map is 4x4, so the maps are coarse: they say
which region, not which finger.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError


def _parts(model):
    """``(layers before the backbone, the backbone, layers after it)`` of a classifier."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    idx = [i for i, layer in enumerate(layers) if isinstance(layer, keras.Model)]
    if not idx:
        raise ModelError("Grad-CAM needs a classifier built by aslnb (a nested backbone model); none found")
    i = idx[0]
    return layers[:i], layers[i], layers[i + 1:]


def gradcam(model, images: np.ndarray, class_ids: np.ndarray | list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps for ``images`` (N, H, W, 3 raw RGB 0..255).

    ``class_ids``: the class to explain per image (default: the predicted one).
    Returns ``(maps, probs)``: maps (N, H, W) in [0, 1] upsampled to the image
    size, and the model's probabilities (N, K).
    """
    import tensorflow as tf

    pre, backbone, head = _parts(model)
    x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    for layer in pre:
        x = layer(x)
    fmap = backbone(x, training=False)
    with tf.GradientTape() as tape:
        tape.watch(fmap)
        y = fmap
        for layer in head:
            y = layer(y, training=False) if "dropout" in layer.name else layer(y)
        probs = y
        ids = tf.argmax(probs, axis=1) if class_ids is None else tf.constant(np.asarray(class_ids), dtype=tf.int64)
        score = tf.gather(probs, ids, axis=1, batch_dims=1)
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))
    cam = cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + 1e-8)
    h, w = images.shape[1:3]
    up = tf.image.resize(cam[..., None], (h, w), method="bilinear")[..., 0]
    return np.clip(up.numpy(), 0, 1), probs.numpy()

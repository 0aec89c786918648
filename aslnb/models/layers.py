"""Small serialisable layers used inside saved models (no Lambda: safe-mode loading)."""
from __future__ import annotations

import keras
from keras import ops

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="aslnb")
class CaffePreprocess(keras.layers.Layer):
    """``keras.applications.resnet50.preprocess_input`` as a layer ("caffe" mode).

    RGB 0..255 in, BGR minus the ImageNet channel means out; no scaling to
    [0, 1] (rescaling by 1/255 instead is the classic "accuracy stuck" bug).
    Being a layer, it runs inside the model, so callers pass raw pixels and the
    caller's array is never modified in place.
    """

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        x = ops.flip(x, axis=-1)
        return x - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

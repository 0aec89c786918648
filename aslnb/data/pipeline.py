"""tf.data input pipelines: parallel decode, resize, batch, prefetch.

Two decoders (``decoder=``):

* ``'pil'`` (the default, what every committed number was measured with):
  :func:`aslnb.data.images.load_image` (Pillow), wrapped in
  ``tf.numpy_function`` and mapped in parallel, so training, evaluation and
  ``predict`` convert every file (JPEG/PNG, grayscale, RGBA, CMYK) identically.
* ``'tf'``: files that :func:`aslnb.data.images.tf_decodable` accepts (header
  check: JPEG/PNG/BMP, RGB or L, no EXIF rotation, no transparency) are decoded
  by ``tf.io`` ops (no Python, no GIL): ``decode_jpeg`` with
  ``dct_method='INTEGER_ACCURATE'`` (Pillow's IDCT: identical pixels on all
  5,800 sample JPEGs; TensorFlow's default ``INTEGER_FAST`` differs by up to 19
  levels) and ``tf.image.resize(bilinear, antialias=True)`` rounded to uint8.
  Pillow resizes in two fixed-point passes rounded to uint8 in between, so the
  resized pixels differ from ``'pil'`` by at most 1 level (on 13-15 % of the
  values of the sample at 128 and 224 px; ``benchmarks/datapath.json``). Every
  other file (TIFF, WebP, GIF, CMYK, RGBA, rotated, unreadable) still goes to
  Pillow, which names a bad file in its error.

Images come out as float32 RGB in 0..255; each model applies its own
preprocessing inside itself.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import ParameterError
from .images import load_image, tf_decodable
from .scan import ImageFolder

DECODERS = ("pil", "tf")


def tf_routes(files, size: int, workers: int | None = None) -> np.ndarray:
    """Per file: True where :func:`tf_decodable` (header reads, in threads), False where Pillow decodes."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        return np.fromiter(pool.map(lambda f: tf_decodable(f, size), files), dtype=bool, count=len(files))


def decode_tf(path, size: int):
    """``tf.io`` decode of one JPEG/PNG/BMP file to a (size, size, 3) uint8 tensor (see the module docstring)."""
    import tensorflow as tf

    data = tf.io.read_file(path)
    img = tf.cond(tf.io.is_jpeg(data),
                  lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                  lambda: tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8))
    img.set_shape((None, None, 3))
    out = tf.image.resize(img, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def make_dataset(
    folder: ImageFolder | tuple[np.ndarray, np.ndarray],
    image_size: int,
    batch_size: int = 32,
    *,
    num_classes: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool | str = False,
    one_hot: bool = True,
    with_labels: bool = True,
    drop_remainder: bool = False,
    decoder: str = "pil",
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``.

    ``cache=True`` keeps decoded images (uint8) in memory after the first epoch
    (the 5,800-image sample at 128 px needs ~285 MB); a string caches to that file. Labels are
    one-hot (for categorical cross-entropy) unless ``one_hot=False``.
    ``decoder``: ``'pil'`` or ``'tf'`` (see the module docstring).
    """
    import tensorflow as tf

    if decoder not in DECODERS:
        raise ParameterError(f"decoder={decoder!r}: use one of {', '.join(DECODERS)}")

    if isinstance(folder, ImageFolder):
        files, labels = folder.files, folder.labels
        num_classes = num_classes or len(folder.class_names)
    else:
        files, labels = folder
    files = np.asarray(files, dtype=str)
    labels = np.asarray(labels, dtype=np.int64)
    size = int(image_size)

    def decode(path):
        return load_image(path.decode() if isinstance(path, bytes) else str(path), size)

    def pil(path):
        return tf.numpy_function(decode, [path], tf.uint8, stateful=False)

    def load(path, label, use_tf):
        img = pil(path) if decoder == "pil" else tf.cond(use_tf, lambda: decode_tf(path, size), lambda: pil(path))
        return tf.ensure_shape(img, (size, size, 3)), label

    routes = tf_routes(files, size) if decoder == "tf" else np.zeros(len(files), dtype=bool)
    ds = tf.data.Dataset.from_tensor_slices((files, labels, routes))
    if shuffle and not cache:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if with_labels and one_hot and not num_classes:
        raise ValueError("num_classes is needed for one-hot labels")

    def finish(x, y):  # images stay uint8 through the cache and the batching (4x less memory)
        x = tf.cast(x, tf.float32)
        if not with_labels:
            return x
        return x, (tf.one_hot(y, num_classes) if one_hot else y)

    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

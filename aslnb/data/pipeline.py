"""tf.data input pipelines: parallel decode, resize, batch, prefetch.

Two decoders (``decoder=``; :data:`DECODER` is the default everywhere: training,
feature extraction, evaluation, ``predict``, the notebooks):

* ``'tf'`` (the default): files that :func:`aslnb.data.images.tf_decodable`
  accepts (header check: JPEG/PNG/BMP, RGB or L, no EXIF rotation, no
  transparency) are decoded by ``tf.io`` ops (no Python, no GIL; the same ops
  on a TPU host): ``decode_jpeg`` with ``dct_method='INTEGER_ACCURATE'``
  (Pillow's IDCT: identical pixels on all 5,800 sample JPEGs; TensorFlow's
  default ``INTEGER_FAST`` differs by up to 19 levels) and
  ``tf.image.resize(bilinear, antialias=True)`` rounded to uint8. Pillow
  resizes in two fixed-point passes rounded to uint8 in between, so the resized
  pixels differ from ``'pil'`` by at most 1 level (on 13-15 % of the values of
  the sample at 128 and 224 px; ``benchmarks/datapath.json``). Every other file
  (TIFF, WebP, GIF, CMYK, RGBA, rotated) goes to Pillow, the fallback for what
  TensorFlow cannot decode.
* ``'pil'`` (``--decoder pil``): :func:`aslnb.data.images.load_image` (Pillow)
  for every file, wrapped in ``tf.numpy_function`` and mapped in parallel. Runs
  trained before the ``decoder`` setting existed used it (their ``config.json``
  has no ``decoder``: evaluation and ``predict`` read them with Pillow).

:func:`decode_files` decodes a list of files outside ``tf.data`` (evaluation,
``predict``, augmented training) with the same ops, so a file gives the same
pixels on every path. There a file TensorFlow fails on goes to Pillow, which
decodes it or raises :class:`~aslnb.errors.DataError` naming it. Inside
``make_dataset`` a graph cannot fall back: training checks every file with
Pillow first (``drop_bad_images``), so only readable files reach it.

Images come out as float32 RGB in 0..255; each model applies its own
preprocessing inside itself.

Every dataset here runs without tf.data's autotuning thread
(:func:`without_autotune`): with it, a ``predict`` over a dataset sometimes
ended only on the next step of that thread's doubling wait (10 ms, 20 ms, ...:
at 5.11, 10.23 or 20.47 s), which made whole benchmark rounds run at half
speed (``benchmarks/README.md``, "Data path").
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import ParameterError
from .images import bombs_as_errors, decode_parallel, decode_workers, load_image, load_images, tf_decodable
from .scan import ImageFolder

DECODERS = ("pil", "tf")
DECODER = "tf"  # the one default; TrainConfig.decoder and every decoding function take it from here


def check_decoder(decoder: str) -> str:
    """``decoder`` when it is one of :data:`DECODERS`, else a :class:`ParameterError` naming the choices."""
    if decoder not in DECODERS:
        raise ParameterError(f"decoder={decoder!r}: use one of {', '.join(DECODERS)}")
    return decoder


def tf_routes(files, size: int, workers: int | None = None) -> np.ndarray:
    """Per file: True where :func:`tf_decodable` (header reads, in threads), False where Pillow decodes.

    A file over Pillow's pixel limit (a possible decompression bomb) goes to Pillow, which refuses it.
    """
    with bombs_as_errors(), ThreadPoolExecutor(max_workers=workers or decode_workers()) as pool:
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


def without_autotune(ds):
    """``ds`` with tf.data's autotuning thread off (see the module docstring); ``AUTOTUNE`` then means one call
    per core in a parallel map, and tf.data's own buffer sizing in ``prefetch``.

    Measured (Keras ``predict``, 256 images at 224 px, 10 alternating rounds): with the thread, 5 rounds took
    5.5-5.8 s, ending when its doubling wait ran out (5.11 s), not when the data did; without it, 3.4-3.8 s each.
    """
    import tensorflow as tf

    opts = tf.data.Options()
    opts.autotune.enabled = False
    return ds.with_options(opts)


@functools.lru_cache(maxsize=None)
def _traced_decode_tf(size: int):
    """:func:`decode_tf` at ``size`` as one traced function (eager ops would re-dispatch every call)."""
    import tensorflow as tf

    return tf.function(lambda path: decode_tf(path, size), input_signature=[tf.TensorSpec([], tf.string)])


def decode_file(path: str | os.PathLike, size: int, use_tf: bool) -> np.ndarray:
    """One file as :func:`make_dataset` decodes it: ``tf.io`` where ``use_tf``, else Pillow.

    A file TensorFlow fails on (say a JPEG cut short after a good header) goes
    to Pillow too, which decodes it or raises :class:`DataError` naming it.
    """
    if use_tf:
        import tensorflow as tf

        try:
            return _traced_decode_tf(int(size))(tf.constant(str(path))).numpy()
        except tf.errors.OpError:
            pass
    return load_image(path, size)


def decode_files(files, size: int, decoder: str = DECODER, *, routes: np.ndarray | None = None,
                 workers: int | None = None) -> np.ndarray:
    """Decode ``files`` in parallel threads into one ``uint8`` array (N, size, size, 3), in order.

    The same pixels as :func:`make_dataset` with the same ``decoder``. ``routes``:
    :func:`tf_routes` of ``files`` when the caller has them already (decoder ``tf``).
    """
    if check_decoder(decoder) == "pil":
        return load_images(files, size, workers)
    files = [str(f) for f in files]
    use_tf = np.asarray(tf_routes(files, size, workers) if routes is None else routes, dtype=bool)
    return decode_parallel(len(files), size, lambda i: decode_file(files[i], size, bool(use_tf[i])), workers)


def _file_loader(size: int, decoder: str):
    """``(path, label, use_tf) -> (uint8 image, label)``, :func:`make_dataset`'s decoding step:
    ``tf.io`` where ``use_tf`` (decoder ``tf``), Pillow (:func:`load_image`) otherwise."""
    import tensorflow as tf

    def decode(path):
        return load_image(path.decode() if isinstance(path, bytes) else str(path), size)

    def pil(path):
        return tf.numpy_function(decode, [path], tf.uint8, stateful=False)

    def load(path, label, use_tf):
        img = pil(path) if decoder == "pil" else tf.cond(use_tf, lambda: decode_tf(path, size), lambda: pil(path))
        return tf.ensure_shape(img, (size, size, 3)), label

    return load


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
    decoder: str = DECODER,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``.

    ``cache=True`` keeps decoded images (uint8) in memory after the first epoch
    (the 5,800-image sample at 128 px needs ~285 MB); a string caches to that file. Labels are
    one-hot (for categorical cross-entropy) unless ``one_hot=False``.
    ``decoder``: ``'tf'`` or ``'pil'`` (see the module docstring).
    """
    import tensorflow as tf

    check_decoder(decoder)
    if isinstance(folder, ImageFolder):
        files, labels = folder.files, folder.labels
        num_classes = num_classes or len(folder.class_names)
    else:
        files, labels = folder
    files = np.asarray(files, dtype=str)
    labels = np.asarray(labels, dtype=np.int64)
    size = int(image_size)
    routes = tf_routes(files, size) if decoder == "tf" else np.zeros(len(files), dtype=bool)
    ds = tf.data.Dataset.from_tensor_slices((files, labels, routes))
    if shuffle and not cache:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_file_loader(size, decoder), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
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
    return without_autotune(ds.prefetch(tf.data.AUTOTUNE))

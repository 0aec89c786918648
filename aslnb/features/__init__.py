"""Freeze-boundary feature cache.

When the backbone is frozen up to stage S and nothing random (augmentation)
runs before it, the activations at S are the same every epoch. They are
computed once per image (batched, through the model's own preprocessing) and
the trainable part is trained on them, which is what the original recognizer
did with its "bottlenecks". The key of a cache file hashes everything the
activations depend on: the data (file names, sizes and modification times),
the image size, the frozen weights themselves, the boundary layer and the
precision, so a stale cache is never reused.

On disk a cache is a folder of ``.npy`` shards (:mod:`aslnb.features.store`),
written once and atomically. Sets up to :func:`in_memory_limit` (a quarter of the
machine's memory; 1 GiB where it is unknown) come
back as one numpy array, as before; larger ones as a :class:`FeatureStore`,
which indexes like an array (``store[idx]``) and reads the rows of each batch
from the shard files (training reads validation the same way). ``freeze_until='conv4'``
at 224 px is ~0.8 MB per image for ResNet50 (~70 GB for the 87,000-image set) and
37.6 KB for EfficientNet-Lite0 (3.3 GB); ``benchmarks/scale.py`` measures the memory.

Precision: ``float32`` runs the frozen part as built. ``bfloat16`` runs a copy
of it under the Keras dtype policy ``mixed_bfloat16`` (bf16 matmuls and
convolutions, float32 weights and BatchNormalization statistics) and returns
float32 features; the trainable head and its softmax are never touched and stay
float32. ``auto`` picks bfloat16 only where it is fast: on a GPU, or on a CPU
whose ``/proc/cpuinfo`` flags show native bf16 arithmetic (``avx512_bf16`` or
``amx_bf16``); everywhere else float32 (bf16 is then emulated and gains nothing).
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path

import keras
import numpy as np

from ..config import PRECISIONS
from ..data.pipeline import DECODER, check_decoder, make_dataset
from ..data.scan import ImageFolder
from ..errors import ParameterError
from ..keras_private import flatten_layers
from ..provenance import gpu_visible, memory_bytes
from .store import SHARD_ROWS, FeatureStore, open_store, write_store

#: The in-memory limit where the machine's memory is unknown (see :func:`in_memory_limit`).
IN_MEMORY_MAX_BYTES = 1 << 30
#: The share of the machine's memory (:func:`aslnb.provenance.memory_bytes`) features may take as one array.
IN_MEMORY_FRACTION = 0.25

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (or of the given text); empty when unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512_BF16 or AMX-BF16)."""
    return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))


def resolve_precision(precision: str = "auto", *, cpuinfo: str | None = None, gpu: bool | None = None) -> str:
    """``'float32'`` or ``'bfloat16'`` for ``precision`` in ``auto|float32|bfloat16``.

    ``auto``: bfloat16 on a GPU or on a CPU with native bf16 (see the module
    docstring), else float32. ``cpuinfo``/``gpu`` override the detection (tests).
    """
    p = str(precision).lower().replace("bf16", "bfloat16").replace("fp32", "float32")
    if p not in PRECISIONS:
        raise ParameterError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if p != "auto":
        return p
    if gpu is None:
        gpu = gpu_visible()
    return "bfloat16" if gpu or cpu_has_native_bf16(cpuinfo) else "float32"


def weights_digest(model: keras.Model) -> str:
    """sha256 (16 hex) over every weight of ``model``, in order."""
    h = hashlib.sha256()
    for w in model.weights:
        arr = keras.ops.convert_to_numpy(w)
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _files_digest(folder: ImageFolder) -> str:
    """sha256 over every file's path, size and modification time (content edits of the same size too)."""
    h = hashlib.sha256()
    for f in folder.files:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0missing\n".encode())
    return h.hexdigest()[:16]


def structure_digest(model: keras.Model) -> str:
    """sha256 (16 hex) of ``model``'s layer classes, nested models flattened, in order.

    Layer and tensor names are left out on purpose: Keras numbers them per process
    (``keras_tensor_161``, ``dense_3``), so the same frozen part built by notebook 03,
    notebook 04 and ``aslnb train`` must give the same key. Together with the weights
    digest and the output shape this identifies what the frozen part computes.
    """
    classes = [type(layer).__name__ for layer in flatten_layers(model)]
    return hashlib.sha256(json.dumps(classes).encode()).hexdigest()[:16]


def cache_key(folder: ImageFolder, image_size: int, frozen: keras.Model, precision: str = "float32",
              decoder: str = DECODER) -> str:
    """Key of the features of ``folder`` decoded by ``decoder`` through ``frozen`` at ``image_size`` in ``precision``.

    ``precision`` is resolved first, so ``auto`` shares the file of what it resolves to.
    """
    parts = {
        "data": folder.fingerprint(),
        "files": _files_digest(folder),
        "labels": hashlib.sha256(np.asarray(folder.labels, dtype=np.int64).tobytes()).hexdigest()[:16],
        "image_size": int(image_size),
        "weights": weights_digest(frozen),
        "structure": structure_digest(frozen),
        "output_shape": list(frozen.output_shape[1:]),
        "precision": resolve_precision(precision),
        "decoder": check_decoder(decoder),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


# bf16 copies of frozen models, reused across calls (train extracts train and
# val with the same frozen part); weights are re-copied on every use.
_BF16_COPIES: "weakref.WeakKeyDictionary[keras.Model, keras.Model]" = weakref.WeakKeyDictionary()


def _bf16_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    cfg = layer.get_config()
    # a trailing global pooling (see split_at_boundary) averages the bf16 activations in float32
    pooling = isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D))
    cfg["dtype"] = keras.DTypePolicy("float32" if pooling else "mixed_bfloat16")
    return layer.__class__.from_config(cfg)


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """``model`` itself for float32; for bfloat16 a copy under ``mixed_bfloat16`` holding its current weights.

    The copy (every layer, nested models too, cloned with the policy
    ``mixed_bfloat16``) computes in bf16 and keeps float32 variables; its output
    is bf16 (float32 after a global pooling), so callers cast to float32 (:func:`extract_features` does).
    """
    precision = resolve_precision(precision)
    if precision == "float32":
        return model
    copy = _BF16_COPIES.get(model)
    if copy is None:
        try:
            copy = keras.models.clone_model(model, clone_function=_bf16_layer, recursive=True)
        except Exception as exc:  # noqa: BLE001 - subclassed models cannot be cloned
            raise ParameterError(
                f"precision='bfloat16': cannot copy model {model.name!r} under mixed_bfloat16 "
                f"({exc.__class__.__name__}: {exc}); use precision='float32'"
            ) from None
        _BF16_COPIES[model] = copy
    copy.set_weights(model.get_weights())
    return copy


def _compute(model: keras.Model, folder, image_size: int, batch_size: int, verbose: int,
             decoder: str = DECODER) -> np.ndarray:
    """Features of ``folder`` (an ImageFolder or a ``(files, labels)`` pair) in one ``predict``."""
    ds = make_dataset(folder, image_size, batch_size, with_labels=False, decoder=decoder)
    return np.asarray(model.predict(ds, verbose=verbose), dtype=np.float32)


def in_memory_limit(max_bytes: int | None = None) -> int:
    """The largest feature set loaded as one array: ``max_bytes`` (``features_in_memory_max_bytes``,
    ``--features-in-memory-max-bytes``), else :data:`IN_MEMORY_FRACTION` of the machine's memory (cgroup
    limit included), else :data:`IN_MEMORY_MAX_BYTES` where the memory is unknown."""
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ParameterError(f"features_in_memory_max_bytes={max_bytes!r}: give a number of bytes >= 0 "
                                 "(0: always read features from disk a batch at a time)")
        return int(max_bytes)
    total = memory_bytes()
    return IN_MEMORY_MAX_BYTES if not total else int(total * IN_MEMORY_FRACTION)


def feature_bytes(frozen: keras.Model, n: int) -> int:
    """Bytes of the float32 features of ``n`` images at the output of ``frozen``."""
    return int(n) * int(np.prod(frozen.output_shape[1:], dtype=np.int64)) * 4


def shard_rows(batch_size: int, rows: int | None = None) -> int:
    """Rows per shard: ``rows`` rounded up to whole batches, so every shard sees the batches one ``predict`` would."""
    rows = SHARD_ROWS if rows is None else rows
    return -(-rows // batch_size) * batch_size


def check_cache_dir(cache_dir: str | os.PathLike) -> Path:
    """``cache_dir`` as a Path, refused with one line when it is a file or cannot be created/written."""
    path = Path(cache_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if existing.exists() and not existing.is_dir():
        raise ParameterError(f"{existing}: is a file, not a folder; point --feature-cache-dir at a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ParameterError(f"{existing}: folder is not writable; point --feature-cache-dir at a writable folder")
    return path


def extract_features(
    frozen: keras.Model,
    folder: ImageFolder,
    image_size: int,
    *,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    precision: str = "float32",
    verbose: int = 0,
    in_memory_max_bytes: int | None = None,
    decoder: str = DECODER,
) -> np.ndarray | FeatureStore:
    """float32 activations of ``frozen`` for every image of ``folder`` (file order kept).

    ``precision``: ``float32``, ``bfloat16`` or ``auto`` (see the module
    docstring). With ``cache_dir`` the features are stored as the shard folder
    ``features-<key>/`` (computed one shard at a time, so memory holds one shard)
    and reused when the key matches; it is written atomically, so an interrupted
    run leaves nothing, and an unreadable store is recomputed. A store larger than
    ``in_memory_max_bytes`` (default ``IN_MEMORY_MAX_BYTES``) is returned as a
    :class:`FeatureStore`, a smaller one as an array. Without ``cache_dir`` the
    array is computed in memory. ``decoder``: how image files are decoded
    (:mod:`aslnb.data.pipeline`); part of the cache key.
    """
    precision = resolve_precision(precision)  # the decoder is checked by cache_key or make_dataset
    if cache_dir is None:
        return _compute(with_precision(frozen, precision), folder, image_size, batch_size, verbose, decoder)
    path = check_cache_dir(cache_dir) / f"features-{cache_key(folder, image_size, frozen, precision, decoder)}"
    store = open_store(path, len(folder))
    if store is None:
        model, rows = with_precision(frozen, precision), shard_rows(batch_size)
        files, labels = np.asarray(folder.files), np.asarray(folder.labels)
        chunks = (_compute(model, (files[a:a + rows], labels[a:a + rows]), image_size, batch_size, verbose, decoder)
                  for a in range(0, len(folder), rows))
        store = write_store(path, chunks, rows)
    return store if store.nbytes > in_memory_limit(in_memory_max_bytes) else np.asarray(store)

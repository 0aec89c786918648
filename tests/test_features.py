"""The freeze-boundary feature cache (aslnb.features): values, reuse, invalidation, bf16.

Fast: one ResNet50 (random weights) frozen up to conv3, 32 px images, 9 real
images of the sample (3 classes x 3). Tolerances:

* cached features vs the frozen part's own output on the same images: max abs
  difference <= 1e-5 x max |output| (float32, different batch sizes);
* bfloat16 vs float32 features: relative Frobenius error ||bf16 - fp32|| / ||fp32||
  <= 3e-2 and per-image cosine similarity >= 0.999 (bf16 keeps 8 significant bits;
  measured ~0.7e-2).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from aslnb import features as F  # noqa: E402
from aslnb.data.pipeline import decode_files  # noqa: E402
from aslnb.data.scan import scan_folder  # noqa: E402
from aslnb.errors import ParameterError  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def frozen():
    from aslnb.models import build_classifier, split_at_boundary

    keras.utils.set_random_seed(0)
    clf = build_classifier(3, SIZE, weights="none", freeze_until="conv3", head_units=[8])
    part, _ = split_at_boundary(clf)
    return part


@pytest.fixture
def folder(tmp_dataset):
    return scan_folder(tmp_dataset({"A": 3, "B": 3, "C": 3}))


@pytest.fixture
def computes(monkeypatch):
    """Counts the real feature computations (a cache hit makes none)."""
    calls = []
    real = F._compute

    def counting(*args, **kwargs):
        calls.append(args[3] if len(args) > 3 else kwargs.get("batch_size"))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "_compute", counting)
    return calls


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_resolve_precision():
    assert F.resolve_precision("float32") == "float32"
    assert F.resolve_precision("bfloat16") == "bfloat16"
    assert F.resolve_precision("bf16") == "bfloat16"
    plain = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    native = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    amx = "flags\t\t: avx2 amx_tile amx_bf16\n"
    assert F.resolve_precision("auto", cpuinfo=plain, gpu=False) == "float32"
    assert F.resolve_precision("auto", cpuinfo=native, gpu=False) == "bfloat16"
    assert F.resolve_precision("auto", cpuinfo=amx, gpu=False) == "bfloat16"
    assert F.resolve_precision("auto", cpuinfo=plain, gpu=True) == "bfloat16"
    # this machine: bfloat16 exactly when a GPU is visible or /proc/cpuinfo lists a native bf16 flag
    from aslnb.provenance import gpu_visible

    native_here = bool(F.cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert F.resolve_precision("auto") == ("bfloat16" if gpu_visible() or native_here else "float32")
    with pytest.raises(ParameterError, match="precision='float16'"):
        F.resolve_precision("float16")


def test_features_equal_frozen_output(frozen, folder):
    feats = F.extract_features(frozen, folder, SIZE, batch_size=4)
    batch = decode_files(folder.files, SIZE).astype(np.float32)  # what make_dataset decodes (the default decoder)
    ref = keras.ops.convert_to_numpy(frozen(batch, training=False))
    assert feats.dtype == np.float32
    assert feats.shape == ref.shape == (len(folder), 4, 4, 512)
    assert np.abs(feats - ref).max() <= 1e-5 * np.abs(ref).max()


def test_disk_cache_reused_not_rewritten(frozen, folder, tmp_path, computes):
    cache = tmp_path / "cache"
    first = F.extract_features(frozen, folder, SIZE, batch_size=4, cache_dir=cache)
    assert len(computes) == 1
    (path,) = cache.iterdir()
    assert path.name.startswith("features-") and path.is_dir()
    assert _files(path) == ["manifest.json", "shard-00000.npy"]
    shard = path / "shard-00000.npy"
    before = shard.stat()
    second = F.extract_features(frozen, folder, SIZE, batch_size=8, cache_dir=cache)
    assert len(computes) == 1, "same key: the cache must be read, not recomputed"
    np.testing.assert_array_equal(first, second)
    after = shard.stat()
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (before.st_mtime_ns, before.st_ino, before.st_size)
    assert _files(cache) == [path.name]


def test_cache_invalidated_by_image_size(frozen, folder, tmp_path, computes):
    cache = tmp_path / "cache"
    a = F.extract_features(frozen, folder, SIZE, cache_dir=cache)
    b = F.extract_features(frozen, folder, 64, cache_dir=cache)
    assert len(computes) == 2 and len(_files(cache)) == 2
    assert a.shape[1:] == (4, 4, 512) and b.shape[1:] == (8, 8, 512)


def test_cache_invalidated_by_weights(frozen, folder, tmp_path, computes):
    cache = tmp_path / "cache"
    a = F.extract_features(frozen, folder, SIZE, cache_dir=cache)
    var = next(w for w in frozen.weights if len(w.shape) == 4)  # the first conv kernel
    old = keras.ops.convert_to_numpy(var)
    try:
        new = old.copy()
        new.flat[0] += 0.5
        var.assign(new)
        b = F.extract_features(frozen, folder, SIZE, cache_dir=cache)
        assert len(computes) == 2 and len(_files(cache)) == 2
        assert not np.array_equal(a, b)
    finally:
        var.assign(old)
    c = F.extract_features(frozen, folder, SIZE, cache_dir=cache)  # weights back: the first file again
    assert len(computes) == 2
    np.testing.assert_array_equal(a, c)


def test_cache_is_shared_by_the_same_frozen_part_built_twice(folder, tmp_path, computes):
    """Keras numbers tensors and layers per process (keras_tensor_161, dense_3): the key must not see that,
    so notebook 03, notebook 04 and aslnb.train find each other's features."""
    from aslnb.course.transfer import embedding_model
    from aslnb.models import build_classifier, split_at_boundary

    keras.utils.set_random_seed(0)
    a = split_at_boundary(build_classifier(3, SIZE, weights="none", freeze_until="all", head_units=[8]))[0]
    keras.utils.set_random_seed(0)
    b = embedding_model("resnet50", SIZE, "none")  # another model object, other names, the same layers and weights
    assert F.structure_digest(a) == F.structure_digest(b)
    fa = F.extract_features(a, folder, SIZE, cache_dir=tmp_path)
    fb = F.extract_features(b, folder, SIZE, cache_dir=tmp_path)
    assert len(computes) == 1  # the second is a cache hit
    np.testing.assert_array_equal(fa, fb)
    inp = keras.Input((SIZE, SIZE, 3))
    other = keras.Model(inp, keras.layers.GlobalMaxPooling2D()(b.layers[-2](b.layers[-3](inp) if len(b.layers) > 3
                                                                               else inp)))
    assert F.structure_digest(other) != F.structure_digest(b)  # another pooling: another key


def test_weights_digest_depends_on_seed():
    def small(seed):
        keras.utils.set_random_seed(seed)
        inp = keras.Input((8, 8, 3))
        return keras.Model(inp, keras.layers.Conv2D(4, 3)(inp))

    assert F.weights_digest(small(0)) == F.weights_digest(small(0))
    assert F.weights_digest(small(0)) != F.weights_digest(small(1))


def test_cache_invalidated_by_data(frozen, tmp_dataset, tmp_path, computes, sample_dir):
    root = tmp_dataset({"A": 3, "B": 3, "C": 3})
    cache = tmp_path / "cache"
    a = F.extract_features(frozen, scan_folder(root), SIZE, cache_dir=cache)
    # 1. one image replaced by another picture (different content and size)
    victim = sorted((root / "A").iterdir())[0]
    donor = sorted((sample_dir / "B").iterdir())[-1]
    shutil.copyfile(donor, victim)
    b = F.extract_features(frozen, scan_folder(root), SIZE, cache_dir=cache)
    assert len(computes) == 2
    assert not np.array_equal(a[0], b[0]) and np.array_equal(a[1:], b[1:])
    # 2. same size, new modification time (an in-place edit the size does not show)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    F.extract_features(frozen, scan_folder(root), SIZE, cache_dir=cache)
    assert len(computes) == 3
    # 3. one more image
    shutil.copyfile(donor, root / "C" / "extra.jpg")
    d = F.extract_features(frozen, scan_folder(root), SIZE, cache_dir=cache)
    assert len(computes) == 4 and d.shape[0] == 10
    assert len(_files(cache)) == 4


def test_interrupted_write_leaves_no_file(frozen, folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real_save = np.save

    def half_then_interrupt(fh, arr, **kwargs):
        fh.write(b"\x93NUMPY" + b"\0" * 100)  # a partial file on disk ...
        fh.flush()
        raise KeyboardInterrupt  # ... then Ctrl-C

    monkeypatch.setattr(np, "save", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        F.extract_features(frozen, folder, SIZE, cache_dir=cache)
    assert _files(cache) == [], "no partial or temporary file may remain"
    monkeypatch.setattr(np, "save", real_save)
    feats = F.extract_features(frozen, folder, SIZE, cache_dir=cache)
    (path,) = cache.iterdir()
    np.testing.assert_array_equal(np.asarray(F.FeatureStore(path)), feats)


def test_truncated_cache_file_is_recomputed(frozen, folder, tmp_path, computes):
    cache = tmp_path / "cache"
    a = F.extract_features(frozen, folder, SIZE, cache_dir=cache)
    (path,) = cache.iterdir()
    shard = path / "shard-00000.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # e.g. a copy cut short by a full disk
    b = F.extract_features(frozen, folder, SIZE, cache_dir=cache)
    assert len(computes) == 2
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.load(shard), a)
    assert _files(cache) == [path.name]


def test_bf16_close_to_fp32(frozen, folder, tmp_path, computes):
    cache = tmp_path / "cache"
    fp32 = F.extract_features(frozen, folder, SIZE, cache_dir=cache, precision="float32")
    bf16 = F.extract_features(frozen, folder, SIZE, cache_dir=cache, precision="bfloat16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert len(computes) == 2 and len(_files(cache)) == 2, "precision is part of the key"
    assert not np.array_equal(fp32, bf16), "bf16 must really have run"
    rel = np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32)
    assert rel <= 3e-2, rel
    a, b = fp32.reshape(len(fp32), -1), bf16.reshape(len(bf16), -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= 0.999, cos
    # 'auto' shares the file of what it resolves to: no new computation
    F.extract_features(frozen, folder, SIZE, cache_dir=cache, precision="auto")
    assert len(computes) == 2
    # the original model is untouched: still float32, and float32 features unchanged
    assert {layer.dtype_policy.name for layer in frozen.layers} == {"float32"}
    np.testing.assert_array_equal(F.extract_features(frozen, folder, SIZE, precision="float32"), fp32)


def test_bf16_copy_follows_weight_changes(frozen, folder):
    a = F.extract_features(frozen, folder, SIZE, precision="bfloat16")
    var = next(w for w in frozen.weights if len(w.shape) == 4)
    old = keras.ops.convert_to_numpy(var)
    try:
        var.assign(old * 2.0)
        b = F.extract_features(frozen, folder, SIZE, precision="bfloat16")
    finally:
        var.assign(old)
    assert not np.allclose(a, b)


def test_whole_backbone_frozen_caches_pooled_vectors():
    """freeze_until='all': the head's global pooling joins the frozen part; the two parts still equal the model."""
    from aslnb.models import build_classifier, split_at_boundary

    keras.utils.set_random_seed(0)
    clf = build_classifier(3, SIZE, weights="none", freeze_until="all", head_units=[8])
    frozen, trainable = split_at_boundary(clf)
    assert frozen.output_shape == (None, 2048)
    assert not any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in trainable.layers)
    x = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    whole = keras.ops.convert_to_numpy(clf.model(x, training=False))
    parts = keras.ops.convert_to_numpy(trainable(frozen(x, training=False), training=False))
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    # bfloat16 extraction: the pooled output comes back in float32, close to the float32 features
    bf = F.with_precision(frozen, "bfloat16")(x, training=False)
    assert keras.backend.standardize_dtype(bf.dtype) == "float32"
    ref = keras.ops.convert_to_numpy(frozen(x, training=False))
    assert np.abs(keras.ops.convert_to_numpy(bf) - ref).mean() <= 0.02 * np.abs(ref).mean()


def test_cache_dir_must_be_a_writable_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(ParameterError, match=f"{tmp_path / 'afile'}: is a file, not a folder"):
            F.check_cache_dir(bad)
    assert F.check_cache_dir(tmp_path / "new" / "cache") == tmp_path / "new" / "cache"
    assert not (tmp_path / "new").exists()  # checking creates nothing

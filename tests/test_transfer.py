"""aslnb.course.transfer: linear probes, data-efficiency sizes, projections, helpers."""
from __future__ import annotations

import numpy as np
import pytest

from aslnb.course import transfer
from aslnb.data.scan import ImageFolder
from aslnb.errors import ParameterError


def _blobs(n_per_class=40, k=4, dim=16, sep=6.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (k, dim))
    y = np.repeat(np.arange(k), n_per_class)
    x = centres[y] + rng.normal(0, 1, (len(y), dim))
    return x, y


def test_linear_probe_separable_high_and_shuffled_near_chance():
    x, y = _blobs()
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    tr, te = perm[:120], perm[120:]
    assert transfer.linear_probe(x[tr], y[tr], x[te], y[te]) > 0.95
    shuffled = rng.permutation(y)
    acc = transfer.linear_probe(x[tr], shuffled[tr], x[te], shuffled[te])
    assert acc < 0.5  # chance is 0.25


def test_linear_probe_returns_model():
    x, y = _blobs()
    acc, model = transfer.linear_probe(x, y, x, y, return_model=True)
    assert acc > 0.95 and model.predict_proba(x).shape == (len(x), 4)


def test_linear_probe_needs_two_classes():
    with pytest.raises(ParameterError):
        transfer.linear_probe(np.ones((4, 2)), np.zeros(4), np.ones((2, 2)), np.zeros(2))


def test_efficiency_sizes_monotone_and_capped():
    y = np.repeat(np.arange(3), [30, 28, 31])
    sizes = transfer.efficiency_sizes(y, [5, 10, 25, 50])
    assert sizes == [5, 10, 25, 31]
    assert all(a < b for a, b in zip(sizes, sizes[1:]))
    assert transfer.efficiency_sizes(y, [50, 100]) == [31]


def test_subsample_per_class_and_data_efficiency_rows():
    x, y = _blobs(n_per_class=30)
    keep = transfer.subsample_per_class(y, 5, seed=0)
    assert np.bincount(y[keep]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(keep, np.sort(keep))
    assert np.array_equal(keep, transfer.subsample_per_class(y, 5, seed=0))
    rows = transfer.data_efficiency(x, y, x, y, [2, 5, 30])
    assert [r["train_images"] for r in rows] == [8, 20, 120]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    reused = transfer.data_efficiency(x, y, x, y, [2, 30], full_accuracy=0.123)
    assert reused[-1]["accuracy"] == 0.123 and reused[0]["accuracy"] != 0.123


def test_project_2d_shapes():
    x, _ = _blobs(n_per_class=10)
    assert transfer.project_2d(x).shape == (40, 2)
    with pytest.raises(ParameterError):
        transfer.project_2d(x, method="umap")


def test_external_accuracy_takes_the_argmax_over_all_outputs():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.1, 0.4], [0.2, 0.2, 0.6]])
    assert transfer.external_accuracy(probs, np.array([1, 2, 2])) == pytest.approx(2 / 3)  # row 2 predicts 0: wrong
    assert transfer.external_accuracy(probs, np.array([1, 0, 2])) == 1.0


def test_positions_in():
    folder = ImageFolder(".", ["a", "b"], np.array(["x1", "x2", "x3"]), np.array([0, 1, 0]))
    sub = folder.subset(np.array([2, 0]))
    assert transfer.positions_in(folder, sub).tolist() == [2, 0]
    other = ImageFolder(".", ["a"], np.array(["zz"]), np.array([0]))
    with pytest.raises(ParameterError):
        transfer.positions_in(folder, other)


def test_compared_models_are_one_backbone_with_two_weight_sets():
    models = transfer.compared_models("efficientnet_lite0")
    assert sorted(models.values()) == [("efficientnet_lite0", "imagenet"), ("efficientnet_lite0", "none")]
    assert transfer.compared_models("resnet50", "auto") == transfer.compared_models("resnet50", None)
    desc = transfer.describe_weights(models)
    assert {"random" in d for d in desc.values()} == {True, False}


def test_folder_features_equal_whole_folder_extraction_and_fill_the_gaps(tmp_dataset, tmp_path):
    from aslnb.data.scan import scan_folder
    from aslnb.features import extract_features

    folder = scan_folder(tmp_dataset({"A": 4, "B": 4}))
    emb = transfer.embedding_model("resnet50", 32, "none")
    parts = [folder.subset(np.array([5, 0, 2])), folder.subset(np.array([7, 1]))]  # 3, 4, 6 in no part
    got = transfer.folder_features(emb, folder, parts, 32, cache_dir=tmp_path / "cache")
    want = np.asarray(extract_features(emb, folder, 32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    cache = tmp_path / "cache"
    transfer.folder_features(emb, folder, parts, 32, cache_dir=cache)
    assert len([p for p in cache.iterdir() if p.name.startswith("features-")]) == 3  # two parts + the rest


def test_embedding_model_and_scratch_cnn_shapes():
    import keras

    emb = transfer.embedding_model("resnet50", 32, "none")
    assert emb.output_shape == (None, 2048)
    assert not emb.trainable_weights
    cnn = transfer.build_scratch_cnn(32, 7)
    assert cnn.output_shape == (None, 7)
    x = np.zeros((2, 32, 32, 3), dtype="float32")
    assert keras.ops.convert_to_numpy(cnn(x)).shape == (2, 7)

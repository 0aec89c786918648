"""The ``gpu`` profile's whole code path on a CPU: ResNet50 with ImageNet weights (a stand-in file where
Keras caches the real one), 224 px, the feature cache at conv4, the second phase; tiny data, one epoch each."""
from __future__ import annotations

import json

import pytest

from aslnb.config import TrainConfig, profile, train_params


def test_gpu_profile_has_the_cpu_profiles_regularisation():
    gpu, cpu = profile("gpu"), profile("cpu")
    assert gpu["dropout"] == cpu["dropout"]
    assert gpu["early_stopping_patience"] == cpu["early_stopping_patience"] is not None
    assert (gpu["image_size"], gpu["weights"], gpu["freeze_until"]) == (224, "imagenet", "conv4")
    assert gpu["fine_tune_epochs"] > 0


def _stand_in_resnet50_weights(keras_home):
    """A random ResNet50 (no top) saved in Keras's legacy .h5 layout under the file name Keras downloads."""
    import h5py
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    from aslnb.models.resnet50 import RESNET50_NOTOP

    (keras_home / "models").mkdir(parents=True)
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
    with h5py.File(keras_home / "models" / RESNET50_NOTOP, "w") as f:
        save_weights_to_hdf5_group(f, model)
    return model


@pytest.mark.slow
def test_the_gpu_profile_runs_its_whole_path(tmp_path, monkeypatch, sample_dir):
    from aslnb.models.registry import resolve_weights
    from aslnb.train import train

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    _stand_in_resnet50_weights(tmp_path / "keras")
    assert resolve_weights("resnet50", "imagenet")[0] == "imagenet"
    settings = {**profile("gpu"), "limit_per_class": 4, "epochs": 1, "fine_tune_epochs": 1}
    params = train_params(settings)
    assert (params["backbone"], params["weights"], params["image_size"]) == ("resnet50", "imagenet", 224)
    cache = tmp_path / "features"
    res = train(sample_dir, tmp_path / "run", feature_cache_dir=cache, verbose=2, **params)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["params"]["weights"] == "imagenet" and config["params"]["dropout"] == TrainConfig().dropout == 0.0
    assert config["params"]["early_stopping_patience"] == 3  # the cpu profile's head settings (notebook 04)
    assert config["params"]["freeze_until"] == "conv4" and config["params"]["fine_tune_epochs"] == 1
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    marks = {m["phase"]: m for m in history["phase_marks"]}
    assert len(history["phases"]) == 2 and len(history["epochs"]) == 2, history["phase_marks"]  # 1 epoch each
    first, second = (marks[p] for p in history["phases"])
    assert first["freeze_until"] == "conv4" and first["learning_rate"] == params["learning_rate"]
    assert second["freeze_until"] == "conv3" and second["learning_rate"] == params["fine_tune_lr"]  # conv4 unfrozen too
    assert history["feature_extraction_seconds"] > 0 and any(cache.rglob("*")), "conv1-conv4 features were cached"
    assert res.model.input_shape[1:3] == (224, 224)

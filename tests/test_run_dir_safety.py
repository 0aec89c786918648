"""Issue 14: the run directory is never damaged by bad input, a full disk, --overwrite or a diverging run.

Each test reproduces one case; all are refused before any training (except the
full-disk and divergence cases, which train one tiny epoch).
"""
from __future__ import annotations

import errno
import json
import shutil
from dataclasses import asdict

import keras
import numpy as np
import pytest

from aslnb.config import TrainConfig
from aslnb.errors import DataError, ModelError, ParameterError, RunDirError
from aslnb.train import train
from aslnb.train.fit import EpochBatches

ONE_EPOCH = dict(epochs=1, batch_size=16, image_size=32, weights="none", freeze_until="all", limit_per_class=4,
                 seed=0)


@pytest.fixture(autouse=True)
def _no_external(monkeypatch):
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(tiny_run, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(tiny_run.run_dir, run)
    return run


@pytest.mark.parametrize("case", ["empty class", "external without shared classes", "missing weights file",
                                  "bad parameter", "feature cache dir is a file"])
def test_overwrite_checks_everything_before_touching_the_old_run(case, finished_run, tmp_dataset, tmp_path):
    before = _snapshot(finished_run)
    data = tmp_dataset({"A": 4, "B": 4, "C": 4})
    kwargs: dict = {}
    params = dict(ONE_EPOCH)
    expected: type[Exception] = DataError
    if case == "empty class":
        data = tmp_dataset({"A": 4, "B": 0})
    elif case == "external without shared classes":
        kwargs["external"] = tmp_dataset({"0": ("A", 3), "1": ("B", 3)})
    elif case == "missing weights file":
        params["weights"], expected = str(tmp_path / "nothing.weights.h5"), ModelError
    elif case == "bad parameter":
        params["epochs"], expected = 0, ParameterError
    else:
        (tmp_path / "afile").write_text("x")
        kwargs["feature_cache_dir"], expected = tmp_path / "afile", ParameterError
    with pytest.raises(expected) as err:
        train(data, finished_run, overwrite=True, verbose=0, **params, **kwargs)
    assert "\n" not in str(err.value)
    assert _snapshot(finished_run) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial folder


def test_external_set_without_shared_classes_is_refused_before_training(tmp_dataset, tmp_path):
    ext = tmp_dataset({"0": ("A", 3), "1": ("B", 3)})
    out = tmp_path / "run"
    with pytest.raises(DataError, match="match the training classes"):
        train(tmp_dataset({"A": 4, "B": 4}), out, external=ext, verbose=0, **ONE_EPOCH)
    assert not out.exists()


def test_overwrite_never_deletes_a_foreign_folder(tmp_path, tmp_dataset):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("keep me")
    (folder / "model.keras").write_text("not ours either")
    with pytest.raises(RunDirError, match="not a run directory"):
        train(tmp_dataset({"A": 4, "B": 4}), folder, overwrite=True, verbose=0, **ONE_EPOCH)
    assert (folder / "chapter1.tex").read_text() == "keep me" and (folder / "model.keras").exists()


@pytest.mark.parametrize("where", ["out inside data", "data inside out", "same folder"])
def test_out_and_data_must_not_overlap(where, tmp_dataset):
    data = tmp_dataset({"A": 4, "B": 4})
    out = {"out inside data": data / "runs" / "r1", "data inside out": data.parent,
           "same folder": data}[where]
    before = _snapshot(data)
    with pytest.raises(RunDirError, match="overlap"):
        train(data, out, verbose=0, **ONE_EPOCH)
    assert _snapshot(data) == before and not (data / "runs").exists()


def test_resume_refuses_other_data(tmp_dataset, tmp_path):
    """An interrupted run (no ``finished``) with the same parameters but another data fingerprint."""
    out = tmp_path / "run"
    out.mkdir()
    params = asdict(TrainConfig.from_params(**ONE_EPOCH))
    config = {"format_version": 1, "params": params, "data": {"fingerprint": "0123456789abcdef"}}
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunDirError, match="other data .*--overwrite"):
        train(tmp_dataset({"A": 4, "B": 4}), out, verbose=0, **ONE_EPOCH)
    assert json.loads((out / "config.json").read_text()) == config


def test_read_only_out_gives_a_run_dir_error(tmp_dataset, tmp_path, monkeypatch):
    import aslnb.runs

    data = tmp_dataset({"A": 4, "B": 4})
    locked = tmp_path / "locked"
    locked.mkdir()
    real = aslnb.runs.os.access
    # the tests run as root, for whom chmod does not lock anything: the check itself is simulated
    monkeypatch.setattr(aslnb.runs.os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    with pytest.raises(RunDirError, match=f"{locked}: folder is not writable"):
        train(data, locked / "run", verbose=0, **ONE_EPOCH)

    real_mkdir = aslnb.runs.Path.mkdir

    def refuse(self, *a, **k):
        if self.name == "run2":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(aslnb.runs.Path, "mkdir", refuse)
    with pytest.raises(RunDirError, match=f"{tmp_path / 'run2'}: cannot be written .Permission denied"):
        train(data, tmp_path / "run2", verbose=0, **ONE_EPOCH)


def test_feature_cache_dir_that_is_a_file_is_refused(tmp_dataset, tmp_path):
    (tmp_path / "cache").write_text("x")
    with pytest.raises(ParameterError, match=f"{tmp_path / 'cache'}: is a file"):
        train(tmp_dataset({"A": 4, "B": 4}), tmp_path / "run", feature_cache_dir=tmp_path / "cache" / "sub",
              verbose=0, **ONE_EPOCH)
    assert not (tmp_path / "run").exists()


def test_full_disk_while_checkpointing_leaves_no_partial_file(tmp_dataset, tmp_path, monkeypatch):
    real = keras.Model.save_weights

    def full_disk(self, filepath, *a, **k):
        real(self, filepath, *a, **k)  # a file gets written, then the disk is "full"
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    out = tmp_path / "run"
    with pytest.raises(RunDirError) as err:
        train(tmp_dataset({"A": 4, "B": 4}), out, verbose=0, **ONE_EPOCH)
    msg = str(err.value)
    assert "state-1.weights.h5: could not write the checkpoint (No space left on device)" in msg
    assert "free some disk space" in msg and "\n" not in msg
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert left == ["checkpoints", "checkpoints/head", "config.json", "labels.json"], left


@pytest.mark.parametrize("lr", ["inf", "1e30"])
def test_a_diverging_run_stops_with_a_clear_error(lr, tmp_dataset, tmp_path, capsys):
    from aslnb.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", str(tmp_dataset({"A": 4, "B": 4, "C": 4})), "--out", str(out), "--epochs", "2",
            "--batch-size", "4", "--image-size", "32", "--weights", "none", "--freeze-until", "all",
            "--learning-rate", lr]
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == ParameterError.exit_code, err
    assert len(err.splitlines()) == 1 and ("lower --learning-rate" in err or "learning" in err), err
    assert not out.exists()  # nothing half-trained is left to resume


def test_epoch_order_depends_only_on_seed_phase_and_epoch():
    a = EpochBatches(10, 4, seed=1, phase_index=0, take=lambda idx: (idx, idx))
    b = EpochBatches(10, 4, seed=1, phase_index=0, take=lambda idx: (idx, idx))
    b.epoch = 2
    _ = [b[i] for i in range(len(b))]  # b has been through another epoch first
    b.epoch, a.epoch = 1, 1
    got = np.concatenate([a[i][0] for i in range(len(a))])
    assert np.array_equal(got, np.concatenate([b[i][0] for i in range(len(b))]))
    assert sorted(got.tolist()) == list(range(10)) and len(a) == 3
    a.epoch = 0
    assert not np.array_equal(np.concatenate([a[i][0] for i in range(len(a))]), got)
    c = EpochBatches(10, 4, seed=1, phase_index=1, take=lambda idx: (idx, idx))
    c.epoch = 1
    assert not np.array_equal(np.concatenate([c[i][0] for i in range(len(c))]), got)


def test_user_callbacks_and_early_stopping(tmp_dataset, tmp_path):
    seen = []

    class WorseEveryEpoch(keras.callbacks.Callback):
        """Makes val_loss rise every epoch, so early stopping (patience 1) stops after epoch 2."""

        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)
            logs["val_loss"] = float(epoch)

    res = train(tmp_dataset({"A": 4, "B": 4}), tmp_path / "run", verbose=0, callbacks=[WorseEveryEpoch()],
                **{**ONE_EPOCH, "epochs": 6, "early_stopping_patience": 1})
    assert seen == [0, 1]
    assert [e["epoch"] for e in res.history["epochs"]] == [1, 2]
    assert res.history["phase_marks"][0]["last_epoch"] == 2 and res.config["params"]["early_stopping_patience"] == 1
    with pytest.raises(ParameterError, match="early_stopping_patience"):
        TrainConfig.from_params(early_stopping_patience=0)


@pytest.mark.slow
def test_run_interrupted_in_its_second_phase_resumes_to_the_same_numbers(tmp_dataset, tmp_path, capsys):
    """The finished head phase is restored (not retrained), the fine-tuning phase continues at its epoch 2."""
    data = tmp_dataset({"A": 8, "B": 8, "L": 8, "Y": 8})
    params = dict(epochs=1, fine_tune_epochs=2, fine_tune_lr=1e-3, batch_size=16, image_size=32, weights="none",
                  freeze_until="all", seed=3)

    class Interrupt(keras.callbacks.Callback):
        fits = 0

        def on_train_begin(self, logs=None):
            Interrupt.fits += 1

        def on_epoch_begin(self, epoch, logs=None):
            if Interrupt.fits == 2 and epoch == 1:  # the second phase's second epoch
                raise KeyboardInterrupt

    whole = train(data, tmp_path / "whole", verbose=0, **params)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train(data, out, verbose=0, callbacks=[Interrupt()], **params)
    assert "finished" not in json.loads((out / "config.json").read_text())
    capsys.readouterr()
    again = train(data, out, verbose=2, **params)
    log = capsys.readouterr().out
    assert "[head] resuming after epoch 1" in log and "[fine_tune] resuming after epoch 1" in log

    def strip(h):
        return [{k: v for k, v in e.items() if k not in ("seconds", "images_per_second")} for e in h["epochs"]]

    assert strip(again.history) == strip(whole.history) and len(again.history["epochs"]) == 3
    assert again.history["phase_marks"] == whole.history["phase_marks"]
    for a, b in zip(again.model.weights, whole.model.weights):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)), a.path

"""Reliability: resume after SIGKILL, no silent overwrite, atomic model save, refusing bad models,
determinism of metrics.json."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import pytest

from aslnb.errors import ModelError, RunDirError
from aslnb.evaluate import evaluate
from aslnb.runs import load_model, load_run
from aslnb.train import train
from conftest import train_cli_args

HISTORY_TIMING = ("seconds", "images_per_second")


def _history_without_timing(run_dir) -> dict:
    h = json.loads((run_dir / "history.json").read_text())
    h.pop("feature_extraction_seconds")
    h.pop("train_seconds")
    for e in h["epochs"]:
        for k in HISTORY_TIMING:
            e.pop(k)
    return h


def _metrics_without_location(run_dir) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m.pop("run") == str(run_dir)
    return m


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tiny_run, tiny_train, sample_dir, tmp_path, capsys):
    """SIGKILL after the first epoch's checkpoint, rerun the same command: the same numbers as
    the uninterrupted ``tiny_run`` (same parameters, another directory), exactly."""
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "aslnb", "train", "--data", str(sample_dir), "--out", str(out),
            *train_cli_args(tiny_train)]
    env = {k: v for k, v in os.environ.items() if k != "ASLNB_EXTERNAL_DATA"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    marker = out / "checkpoints" / "head" / "epochs.json"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not marker.exists() and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=120)
    assert marker.exists(), f"the run ended before its first checkpoint: {err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    cfg = json.loads((out / "config.json").read_text())
    assert "finished" not in cfg and not (out / "metrics.json").exists()
    done = len(json.loads(marker.read_text()))
    assert 1 <= done < tiny_train["epochs"], "kill came too late to test resuming"

    # an interrupted run is resumed only by the same parameters (in-process: no second TF start-up)
    from aslnb.cli import main

    rc = main(args[3:] + ["--seed", "1"])
    err = capsys.readouterr().err
    assert rc == RunDirError.exit_code
    assert "interrupted run with other parameters" in err and len(err.strip().splitlines()) == 1

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming after epoch {done}" in again.stdout
    assert _history_without_timing(out) == _history_without_timing(tiny_run.run_dir)
    assert _metrics_without_location(out) == _metrics_without_location(tiny_run.run_dir)


@pytest.mark.slow
def test_finished_run_is_refused_then_overwritten_with_identical_metrics(tiny_run, tiny_train, sample_dir, tmp_path,
                                                                         monkeypatch, capsys):
    """No silent overwrite; and with --overwrite the same command + seed gives the same metrics.json."""
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("model.keras", "checkpoints"))
    shutil.copyfile(tiny_run.run_dir / "model.keras", run / "model.keras")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    with pytest.raises(RunDirError, match="finished run"):
        train(sample_dir, run, verbose=0, **tiny_train)
    from aslnb.cli import main

    rc = main(["train", "--data", str(sample_dir), "--out", str(run), *train_cli_args(tiny_train)])
    err = capsys.readouterr().err
    assert rc == RunDirError.exit_code and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

    res = train(sample_dir, run, overwrite=True, verbose=0, **tiny_train)
    assert (run / "model.keras").read_bytes() != b"" and res.config["finished"]
    assert not (run / "metrics.json").exists()  # the old run was replaced as a whole
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no partial or old folder left beside it
    evaluate(run, sample_dir, verbose=0, model=res.model)
    # Determinism: metrics.json has no timing, so it is equal byte for byte once the path is the same
    ours = (run / "metrics.json").read_text()
    theirs = (tiny_run.run_dir / "metrics.json").read_text().replace(str(tiny_run.run_dir), str(run))
    assert ours == theirs
    assert _history_without_timing(run) == _history_without_timing(tiny_run.run_dir)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, sample_dir, tiny_train):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    with pytest.raises(RunDirError, match="not a run directory"):
        train(sample_dir, folder, verbose=0, **tiny_train)
    assert (folder / "thesis.tex").read_text() == "keep me"


ATOMIC_SCRIPT = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    import keras
    from aslnb.runs import save_model_atomic
    from aslnb.errors import RunDirError
    path = Path(sys.argv[1]) / "model.keras"
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    save_model_atomic(small, path)
    before = path.read_bytes()
    big = keras.Sequential([keras.Input((512,)), keras.layers.Dense(2048), keras.layers.Dense(3)])  # ~4 MB
    # "disk full" for real: the kernel refuses writes past 200 kB (EFBIG) from now on
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        save_model_atomic(big, path)
        outcome = "saved"
    except RunDirError as exc:
        outcome = "RunDirError: " + str(exc)
    print(json.dumps({"outcome": outcome, "unchanged": path.read_bytes() == before,
                      "files": sorted(os.listdir(path.parent)), "size": len(before)}))
""")


def test_a_failed_model_write_leaves_the_previous_model_intact(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run([sys.executable, "-c", ATOMIC_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["outcome"].startswith("RunDirError: ") and "could not save the model" in res["outcome"]
    assert "File too large" in res["outcome"] and "\n" not in res["outcome"]
    assert res["unchanged"] and res["files"] == ["model.keras"]  # byte-identical, no temp file left


def test_truncated_model_file_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        load_model(path)
    path.write_bytes(b"PK\x03\x04" + data[4 : len(data) - 30])  # a zip whose end is cut off
    with pytest.raises(ModelError, match=str(path)):
        load_model(path)


def test_model_of_another_class_set_is_refused(tiny_run, tmp_path):
    run = tmp_path / "mixed"
    run.mkdir()
    shutil.copyfile(tiny_run.run_dir / "config.json", run / "config.json")
    os.symlink(tiny_run.run_dir / "model.keras", run / "model.keras")
    (run / "labels.json").write_text(json.dumps({"class_names": list("ABCDEFGHIJ")}))
    with pytest.raises(ModelError, match="predicts 29 classes but labels.json lists 10"):
        load_run(run)


def test_model_crafted_to_run_code_is_refused_by_safe_mode(tmp_path):
    marker = tmp_path / "code-ran"
    ns: dict = {}
    # a Python lambda is stored in the .keras file as bytecode: loading it would run it
    exec(f"payload = lambda x: (open({str(marker)!r}, 'w').close(), x)[1]", ns)  # noqa: S102
    evil = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(ns["payload"]), keras.layers.Dense(2)])
    path = tmp_path / "evil.keras"
    evil.save(path)
    marker.unlink(missing_ok=True)  # building the model above ran it once, in this test
    with pytest.raises(ModelError, match="safe mode") as err:
        load_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists(), "loading must not run the file's code"
    with pytest.raises(Exception):  # it is Keras's safe mode that refuses it, not only aslnb's check
        keras.saving.load_model(path, safe_mode=True)
    assert not marker.exists()
    # the file really is dangerous: loading it unsafely runs the payload
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()

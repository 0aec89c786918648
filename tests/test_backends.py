"""Training and prediction on the other Keras 3 backends (JAX, PyTorch), each in a subprocess.

Tiny runs: 32 px, 6 classes x 8 images, random weights, fully frozen backbone
(head on cached features; the ResNet50's CaffePreprocess layer runs in the
feature extraction), 2 epochs. TensorFlow is the backend of the rest of the suite. JAX comes with the ``jax``
extra and torch with ``lite0`` (the Makefile's venv installs both).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BACKENDS = ("jax", "torch")
ARGS = ["--image-size", "32", "--weights", "none", "--freeze-until", "all", "--epochs", "2", "--batch-size", "16",
        "--head-units", "16", "--no-evaluate"]


def _run(backend: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ASLNB_EXTERNAL_DATA", "TF_CONFIG")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_and_predict_on_backend(backend, tmp_dataset, tmp_path):
    data, out = tmp_dataset({c: 8 for c in "ABCDEF"}), tmp_path / "run"
    proc = _run(backend, "-m", "aslnb", "train", "--data", str(data), "--out", str(out), *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["versions"]["backend"] == backend and config["finished"]
    assert any("op determinism is a TensorFlow switch" in n for n in config["notes"])
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 2 and history["epochs"][-1]["loss"] > 0
    image = next((data / "C").iterdir())
    pred = _run(backend, "-m", "aslnb", "predict", str(out), str(image), "--json")
    assert pred.returncode == 0, pred.stderr[-3000:]
    (result,) = json.loads(pred.stdout)
    probs = [p for _, p in result["top_k"]]
    assert result["label"] == result["top_k"][0][0] and result["label"] in "ABCDEF", result
    assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-5 and probs == sorted(probs, reverse=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_import_keras_and_one_line_refusals_on_backend(backend, tmp_dataset, tmp_path):
    code = ("from aslnb.backend import import_keras; keras = import_keras(); print(keras.backend.backend())")
    proc = _run(backend, "-c", code, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == [backend], proc.stderr[-2000:]
    data = tmp_dataset({c: 8 for c in "AB"})
    bad = _run(backend, "-m", "aslnb", "train", "--data", str(data), "--out", str(tmp_path / "r"), *ARGS,
               "--distribute", "mirrored", timeout=120)
    err = [line for line in bad.stderr.splitlines() if line.startswith("aslnb: error")]
    assert bad.returncode != 0 and len(err) == 1 and f"not supported on the {backend} backend" in err[0], bad.stderr
    assert not (tmp_path / "r").exists()

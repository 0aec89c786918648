"""Distribution strategies and mixed-precision training (aslnb.train.distribute), on CPU.

Several devices are TensorFlow logical CPU devices (configured before TensorFlow
starts, so in a subprocess); several machines are two local worker processes.
Real GPUs and TPUs are not tested here (see the README's "Bigger than one machine").
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from aslnb.errors import ParameterError

# 6 classes x 8 images: 30 training images, batches of 16 and 14, each split evenly over 2 replicas.
TINY = dict(image_size=32, weights="none", freeze_until="all", epochs=1, batch_size=16, head_units=[16], seed=0)
CLASSES = {c: 8 for c in "ABCDEF"}

TWO_DEVICES = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from aslnb.train import train
    data, out, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    for distribute in ("none", "mirrored"):
        res = train(data, f"{out}/{distribute}", verbose=0, distribute=distribute, **params)
        np.savez(f"{out}/{distribute}.npz", *[np.asarray(w) for w in res.model.get_weights()])
    print("logical CPUs:", len(tf.config.list_logical_devices("CPU")))
""")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ASLNB_EXTERNAL_DATA", "TF_CONFIG", "KERAS_BACKEND")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def test_mirrored_on_two_logical_cpus_trains_the_single_device_weights(tmp_dataset, tmp_path):
    data = tmp_dataset(CLASSES)
    proc = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(data), str(tmp_path), json.dumps(TINY)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "logical CPUs: 2" in proc.stdout
    one = json.loads((tmp_path / "none" / "config.json").read_text())["distribution"]
    two = json.loads((tmp_path / "mirrored" / "config.json").read_text())["distribution"]
    assert (one["strategy"], one["replicas"]) == ("none", 1)
    assert two == {**two, "strategy": "mirrored", "replicas": 2, "global_batch_size": 16,
                   "per_replica_batch_size": 8, "learning_rate": TINY.get("learning_rate", 1e-3)}
    a, b = np.load(tmp_path / "none.npz"), np.load(tmp_path / "mirrored.npz")
    diffs = [float(np.max(np.abs(a[k] - b[k]))) for k in a.files]
    print(f"max |single - mirrored| over {len(diffs)} weight arrays: {max(diffs):.3g}")
    assert any(d == 0 for d in diffs) and any(
        not np.array_equal(a[k], a[k] * 0) for k in a.files)  # frozen weights bit-equal; the arrays are not all 0
    # The replicas sum their gradients (and BatchNormalization moments) in another order than one
    # device does: float32 rounding of ~1e-7 relative per sum, grown by 4 Adam steps (whose update
    # lr * m / sqrt(v) magnifies differences in small gradients); measured max abs diff ~1e-5 on
    # moving variances of magnitude ~3. Without synchronized BatchNormalization it is 0.7.
    for k in a.files:
        np.testing.assert_allclose(b[k], a[k], rtol=2e-4, atol=1e-5, err_msg=k)
    h1 = json.loads((tmp_path / "none" / "history.json").read_text())["epochs"][0]
    h2 = json.loads((tmp_path / "mirrored" / "history.json").read_text())["epochs"][0]
    assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_local_workers_finish_and_the_chief_writes_the_run(tmp_dataset, tmp_path):
    data, out = tmp_dataset(CLASSES), tmp_path / "run"
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    args = [sys.executable, "-m", "aslnb", "train", "--data", str(data), "--out", str(out), "--distribute",
            "multiworker", "--image-size", "32", "--weights", "none", "--freeze-until", "all", "--epochs", "1",
            "--batch-size", "16", "--head-units", "16"]
    procs = []
    for i in range(2):
        tmp = tmp_path / f"tmp{i}"
        tmp.mkdir()
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=_env(TF_CONFIG=tf_config, TMPDIR=str(tmp))))
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert f"run written to {out}" in outs[0][0] and "worker finished" in outs[1][0]
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] and config["distribution"]["replicas"] == 2 and config["distribution"]["chief"]
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()  # evaluated by the chief
    # the worker's own copy of the run is deleted (TensorFlow's autograph may leave its own __pycache__ there)
    assert not list((tmp_path / "tmp1").glob("aslnb-worker-*"))


def test_multiworker_without_tf_config_and_tpu_without_a_tpu_are_one_line_errors(tmp_dataset, tmp_path,
                                                                                 monkeypatch):
    from aslnb.train import train

    monkeypatch.delenv("TF_CONFIG", raising=False)
    data = tmp_dataset(CLASSES)
    for distribute, words in (("multiworker", "set TF_CONFIG"), ("tpu", "no TPU found")):
        with pytest.raises(ParameterError) as err:
            train(data, tmp_path / distribute, verbose=0, distribute=distribute, **TINY)
        assert words in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / distribute).exists()  # refused before anything is written


def test_mixed_bfloat16_trains_with_float32_outputs_and_restores_the_policy(tmp_dataset, tmp_path):
    import keras

    from aslnb.train import train

    before = keras.config.dtype_policy().name
    res = train(tmp_dataset(CLASSES), tmp_path / "bf16", verbose=0, mixed_precision="bfloat16", **TINY)
    assert keras.config.dtype_policy().name == before == "float32"  # nothing leaks into the caller
    assert res.config["precision"]["training"] == "mixed_bfloat16"
    dense = res.model.get_layer("head_dense_1")
    assert (dense.compute_dtype, dense.variable_dtype) == ("bfloat16", "float32")
    probs = res.model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert all(np.isfinite(e["loss"]) for e in res.history["epochs"])


def test_float16_on_a_cpu_is_refused_in_one_line(tmp_dataset, tmp_path):
    import keras

    from aslnb.train import train

    with pytest.raises(ParameterError, match="float16.*needs a GPU") as err:
        train(tmp_dataset(CLASSES), tmp_path / "f16", verbose=0, mixed_precision="float16", **TINY)
    assert "\n" not in str(err.value) and not (tmp_path / "f16").exists()
    assert keras.config.dtype_policy().name == "float32"


def test_distribute_and_mixed_precision_values_are_checked():
    from aslnb.config import TrainConfig

    for name in ("distribute", "mixed_precision"):
        with pytest.raises(ParameterError, match=name):
            TrainConfig.from_params(**{name: "sideways"})

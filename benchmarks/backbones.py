"""Feature throughput of registered backbones at their native size (images/s, CPU or GPU).

    python -m benchmarks.backbones [--backbones efficientnet_lite0,efficientnet_lite2] [--rounds 5]

For each backbone: the frozen ``raw RGB -> preprocessing -> backbone -> global
average pool`` model (what the feature cache and the linear probes run), random
weights (throughput does not depend on them), batch 32 of in-memory random
images at the backbone's ``native_size``, compiled once with ``predict_on_batch``
and warmed up; then ``rounds`` timed rounds of ``batches`` batches each, the
backbones alternating round by round. Reports the median and best round in
images/s, plus a float32 1024x1024 matmul speed probe (GFLOP/s) before and after
each backbone's rounds, and the load average: the machine may be shared, and a
busy machine makes every number lower. Writes ``benchmarks/backbones.json``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from aslnb.io import write_json
from aslnb.provenance import device_name, versions

from .bench import speed_probe


def embedding(backbone: str):
    """The frozen feature model of ``backbone`` at its native size (random weights)."""
    from aslnb.course.transfer import embedding_model
    from aslnb.models import get_backbone

    spec = get_backbone(backbone)
    return embedding_model(backbone, spec.native_size, "none"), spec.native_size


def measure(backbones: list[str], rounds: int, batches: int, batch_size: int) -> dict[str, Any]:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    models, inputs, runs = {}, {}, {}
    for name in backbones:
        model, size = embedding(name)
        x = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
        model.predict_on_batch(x)  # compile + warm up
        model.predict_on_batch(x)
        models[name], inputs[name] = model, x
        runs[name] = {"image_size": size, "params": int(model.count_params()), "rounds_img_per_s": [],
                      "probe_gflops": []}
    for _ in range(rounds):
        for name in backbones:
            runs[name]["probe_gflops"].append(speed_probe())
            t0 = time.perf_counter()
            for _b in range(batches):
                models[name].predict_on_batch(inputs[name])
            dt = time.perf_counter() - t0
            runs[name]["rounds_img_per_s"].append(round(batches * batch_size / dt, 2))
    for r in runs.values():
        r["median_img_per_s"] = round(statistics.median(r["rounds_img_per_s"]), 2)
        r["best_img_per_s"] = max(r["rounds_img_per_s"])
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default=None, help="comma-separated registered names (default: every Lite)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(Path(__file__).with_name("backbones.json")))
    a = ap.parse_args(argv)
    from aslnb.models import backbone_names

    names = a.backbones.split(",") if a.backbones else [n for n in backbone_names() if n != backbone_names()[0]]
    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    runs = measure(names, a.rounds, a.batches, a.batch_size)
    result = {
        "what": "frozen backbone + global average pool, in-memory random images at the native size, batch "
                f"{a.batch_size}, {a.batches} batches per round, {a.rounds} rounds alternating; images/s",
        "started": started, "device": device_name(), "cpu_count": os.cpu_count(),
        "loadavg_start": [round(v, 2) for v in load0], "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "probe": "float32 1024x1024 matmul GFLOP/s (benchmarks.bench.speed_probe) before each round",
        "versions": {k: v for k, v in versions().items() if k in ("python", "keras", "tensorflow", "numpy")},
        "backbones": runs,
    }
    write_json(a.out, result)
    for name, r in runs.items():
        print(f"{name:22s} {r['image_size']} px  median {r['median_img_per_s']:7.2f} img/s  "
              f"best {r['best_img_per_s']:7.2f} img/s  probe {statistics.median(r['probe_gflops']):.1f} GFLOP/s")
    print(f"load average {result['loadavg_start']} -> {result['loadavg_end']}; wrote {a.out}")
    return result


if __name__ == "__main__":
    main()

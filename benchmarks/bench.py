"""Benchmarks: model and input-pipeline throughput, the feature-cache speed-up, latency.

``run_bench(data, out, quick)`` (and ``aslnb bench`` / ``python -m benchmarks.run``)
measures, in one process and in this order (the sections live in ``machine``,
``timing``, ``throughput`` and ``recipe``; ``summary`` renders and reads the results):

1. ``machine``: CPU model, cores, the CPU flags that matter (bf16), library
   versions, TensorFlow's thread settings, load average before and after.
2. ``matmul``: a 2048x2048 matmul in float32 and bfloat16 (GFLOP/s, 2 flops per
   multiply-add): the ceiling the model is compared with.
3. ``model_only``: the frozen ResNet50 (the study's preprocessing + the whole
   convolutional body, as the feature cache runs it) on in-memory float32
   tensors, at 224 px and at 128 px (the ``cpu`` profile's size), in float32 and
   bfloat16 (img/s, and GFLOP/s from the nominal 4.1 GFLOP/image at 224 scaled
   by (s/224)^2, next to the multiply-adds counted from the model's layers).
4. ``pipeline``: the same forward fed from the JPEG files through
   :func:`aslnb.data.pipeline.make_dataset`, on the same images; the ratio
   pipeline / model-only (goal >= 0.9), and the pipeline alone (decode only).
5. ``latency``: the ``cpu`` profile's full classifier: one image (warm, median
   of N calls) and batches of 32.
6. ``recipe``: the study's head-only recipe with the ``cpu`` profile's settings
   (128 px, 20 epochs, the profile's weights, ``freeze_until='all'``, the whole
   5,800-image sample; :data:`BENCH_RECIPE` leaves out the profile's fine-tuning
   phase and early stopping, so both paths train the same head for all epochs) through :func:`aslnb.train.train`, once with ``cache_features='on'``
   (all 20 epochs measured, feature extraction included) and once with
   ``'off'`` (plain ``model.fit`` over the decoded images: only the first
   ``naive_epochs`` (3) are measured and scaled to 20 epochs, and the output says so); wall
   times of ``train()`` (the test evaluation is timed apart), their ratio
   (goal >= 15x), the cached path's final val/test accuracy, and both paths'
   val accuracy after the same (measured) epochs.
7. ``bf16_recipe``: bfloat16 feature extraction against float32. ``inference``:
   the cached run's trained model, its frozen part run in both precisions on the
   held-out split, the same float32 head on both (accuracy difference: the goal is
   within 0.5 points; prediction agreement; feature difference; extraction speed).
   ``trained_on_bf16``: the cached recipe again with ``train(precision='bfloat16')``.
8. ``gpu``: what ran on a GPU (nothing, when none is visible).

The throughput sections run before any training, because training switches on
TensorFlow's op determinism for the rest of the process. Throughputs are the
best of ``rounds`` short alternating rounds (every value is kept, with a matmul speed probe
before each round: shared machines slow down for tens of seconds at a time), which makes them
less sensitive to other processes on a shared machine; the load average is
recorded so a busy machine shows. ``quick=True`` runs every section on tiny
sizes (32 px) and a 40-image subset (5 classes x 8, symlinked), without the
test-split evaluation, in about a minute of CPU: it checks the script, not the
machine. ``section_seconds`` and ``section_cpu_seconds`` say where the time went.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from aslnb.config import profile, train_params
from aslnb.io import write_json, write_text

from .machine import gpu_info, machine_info
from .recipe import recipe
from .summary import headline, load_results, to_markdown
from .throughput import latency, throughput
from .timing import log, matmul_ceiling, rounded

__all__ = ["FULL", "QUICK", "run_bench", "headline", "load_results", "to_markdown"]


_CPU = profile("cpu")
BENCH_RECIPE = {"fine_tune_epochs": 0, "early_stopping_patience": None}
FULL = {  # the cpu profile's settings (aslnb.config), measured at its size and at the study's 224 px
    "profile": "cpu",
    "model_sizes": [224, _CPU["image_size"]],
    "precisions": ["float32", "bfloat16"],
    "batch_size": _CPU["batch_size"],
    "seconds": 40.0,  # per throughput measurement, split over the rounds
    "rounds": 8,
    "matmul_n": 2048,
    "matmul_seconds": 3.0,
    "pipeline_sizes": [224, _CPU["image_size"]],
    "latency_calls": 50,
    # the study's head-only recipe, the part the feature cache serves: no fine-tuning phase (it trains the backbone
    # over images, cached or not) and no early stopping (both paths run all epochs), whatever the profile adds
    "recipe": {**train_params(_CPU, "resnet50", seed=0), **BENCH_RECIPE},
    "naive_epochs": 3,
    "evaluate_test": True,
    "data_subset": None,
}
QUICK = {
    "profile": "quick",
    "model_sizes": [32],
    "precisions": ["float32", "bfloat16"],
    "batch_size": 8,
    "seconds": 0.3,
    "rounds": 1,
    "matmul_n": 256,
    "matmul_seconds": 0.2,
    "pipeline_sizes": [32],
    "latency_calls": 3,
    "recipe": {"image_size": 32, "epochs": 3, "batch_size": 8, "weights": "none", "freeze_until": "all",
               "head_units": [16], "limit_per_class": None, "backbone": "resnet50", "seed": 0},
    "naive_epochs": 1,
    "evaluate_test": False,  # saves two model loads; accuracies are then validation only
    "data_subset": {"classes": 5, "per_class": 8},
}


def _subset_dir(data_dir: Path, spec: dict, dest: Path) -> Path:
    """A small class-per-folder tree of symlinks into ``data_dir`` (quick mode)."""
    from aslnb.data.scan import scan_folder

    folder = scan_folder(data_dir)
    for name in folder.class_names[: spec["classes"]]:
        lab = folder.class_names.index(name)
        files = folder.files[folder.labels == lab]
        idx = np.linspace(0, len(files) - 1, min(spec["per_class"], len(files))).round().astype(int)
        (dest / name).mkdir(parents=True)
        for f in files[idx]:
            (dest / name / Path(f).name).symlink_to(Path(f).resolve())
    return dest


def run_bench(data: str | os.PathLike | None = None, out: str | os.PathLike = "benchmarks/results.json",
              quick: bool = False, *, naive_epochs: int | None = None, verbose: bool = True) -> Path:
    """Run every section and write ``out`` (JSON) and ``out`` with suffix ``.md`` (tables). Returns ``out``.

    ``naive_epochs``: epochs of the plain-fit path to measure before scaling
    (default 3 in a full run, ~70 s each on 2 cores; 1 in quick mode).
    """
    from aslnb.data.scan import scan_folder
    from aslnb.errors import ParameterError
    from aslnb.settings import resolve_data_dir

    cfg = dict(QUICK if quick else FULL)
    if naive_epochs is not None:
        if not 1 <= int(naive_epochs) <= cfg["recipe"]["epochs"]:
            raise ParameterError(f"naive_epochs={naive_epochs}: use 1 .. {cfg['recipe']['epochs']}")
        cfg["naive_epochs"] = int(naive_epochs)
    t_start = time.perf_counter()
    out = Path(out)
    data_dir = resolve_data_dir(data)
    work = Path(tempfile.mkdtemp(prefix="aslnb-bench-"))
    try:
        if cfg["data_subset"]:
            data_dir = _subset_dir(data_dir, cfg["data_subset"], work / "data")
        folder = scan_folder(data_dir)
        results: dict[str, Any] = {
            "format_version": 1, "quick": quick,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": {"root": str(data_dir), "images": len(folder), "classes": len(folder.class_names),
                     "subset": cfg["data_subset"]},
            "settings": {k: v for k, v in cfg.items() if k != "recipe"},
        }
        sections: dict[str, float] = {}
        cpu_sections: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], Any]) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            value = fn()
            sections[name] = rounded(time.perf_counter() - t0, 1)
            cpu_sections[name] = rounded(time.process_time() - c0, 1)
            return value

        log("machine", verbose)
        results["machine"] = timed("machine", machine_info)
        log("matmul ceiling", verbose)
        results["matmul"] = timed("matmul", lambda: matmul_ceiling(cfg["matmul_n"], cfg["matmul_seconds"]))
        built: dict = {}  # classifiers by image size, shared by throughput and latency
        results["model_only"], results["pipeline"] = timed(
            "throughput", lambda: throughput(folder, cfg, verbose, built))
        results["latency"] = timed("latency", lambda: latency(folder, cfg, verbose, built))
        built.clear()
        results["recipe"], results["bf16_recipe"] = timed(
            "recipe", lambda: recipe(data_dir, cfg, work / "runs", verbose))
        results["gpu"] = gpu_info()
        results["section_seconds"] = sections
        results["section_cpu_seconds"] = cpu_sections  # CPU time of this process: less sensitive to other load
        results["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        results["total_seconds"] = rounded(time.perf_counter() - t_start, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if out.exists():  # benchmarks.scale's section is written by that benchmark: kept
        previous = load_results(out)
        if "scale" in previous:
            results["scale"] = previous["scale"]
    write_json(out, results)
    write_text(out.with_suffix(".md"), to_markdown(results))
    log(f"done in {results['total_seconds']:.0f}s: {out}, {out.with_suffix('.md')}", verbose)
    return out

"""Benchmarks: model and input-pipeline throughput, the feature-cache speed-up, latency.

``run_bench(data, out, quick)`` (and ``aslnb bench`` / ``python -m benchmarks.run``)
measures, in one process and in this order:

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
6. ``recipe``: the study's recipe with the ``cpu`` profile's settings (128 px,
   20 epochs, weights ``none``, ``freeze_until='all'``, the whole 5,800-image
   sample) through :func:`aslnb.train.train`, once with ``cache_features='on'``
   (all 20 epochs measured, feature extraction included) and once with
   ``'off'`` (plain ``model.fit`` over the decoded images: only the first
   epoch is measured and scaled to 20 epochs, and the output says so); wall
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

import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from aslnb.config import profile, train_params
from aslnb.provenance import cpu_model, versions
from aslnb.io import read_json, write_json

NOMINAL_GFLOP_224 = 4.1  # the usual ResNet50 figure at 224 px (it counts multiply-adds)
PIPELINE_GOAL = 0.9
SPEEDUP_GOAL = 15.0
BF16_ACC_GOAL_POINTS = 0.5
NO_GPU = "not measured: no GPU lent in this session"

_CPU = profile("cpu")
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
    "recipe": train_params(_CPU, "resnet50", seed=0),
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


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _r(x: float, nd: int = 2) -> float:
    return float(round(float(x), nd))


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """CPU, cores, bf16 flags, versions and TensorFlow's thread settings."""
    from aslnb.features import BF16_CPU_FLAGS, cpu_flags, resolve_precision

    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "flags": {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_tile")},
        "native_bf16": bool(flags & set(BF16_CPU_FLAGS)),
        "precision_auto": resolve_precision("auto"),
        "versions": versions(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import tensorflow as tf

        intra = tf.config.threading.get_intra_op_parallelism_threads()
        inter = tf.config.threading.get_inter_op_parallelism_threads()
        info["threads"] = {
            "intra_op": intra, "inter_op": inter,
            "meaning": "0 = TensorFlow's default (one thread per usable core)",
            "intra_op_effective": intra or info["cores_usable"],
            "tf_data_autotune": True,
        }
        info["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux builds)")
    except ImportError:  # pragma: no cover - TF is a dependency
        pass
    return info


def gpu_info() -> dict[str, Any]:
    try:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # noqa: BLE001
        gpus = []
    if not gpus:
        return {"status": NO_GPU, "visible_gpus": []}
    return {"status": f"GPU visible ({', '.join(gpus)}): TensorFlow placed the model sections above on it",
            "visible_gpus": gpus}


# --------------------------------------------------------------------------- timing helpers


def _time_calls(fn: Callable[[], Any], seconds: float, min_calls: int = 2) -> list[float]:
    """Seconds of each call of ``fn`` until ``seconds`` have passed (at least ``min_calls``)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


_MATMULS: dict[tuple[int, str], Callable[[], Any]] = {}


def _matmul_times(n: int, dtype: str, seconds: float, min_calls: int) -> list[float]:
    """Seconds of each ``n x n`` matmul in ``dtype`` over about ``seconds`` (compiled and warmed once)."""
    import tensorflow as tf

    if (n, dtype) not in _MATMULS:
        a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype)
        b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dtype)
        f = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
        f(a, b).numpy()  # trace + warm-up
        _MATMULS[(n, dtype)] = lambda: f(a, b).numpy()
    return _time_calls(_MATMULS[(n, dtype)], seconds, min_calls=min_calls)


def speed_probe(n: int = 1024, seconds: float = 0.25) -> float:
    """GFLOP/s of a float32 ``n x n`` matmul for about ``seconds``: how fast the machine is right now.

    Shared machines change speed for tens of seconds at a time (seen here: 205 GFLOP/s, then 161);
    the probe before each throughput round shows which rounds ran in a slow phase.
    """
    return _r(2 * n**3 / min(_matmul_times(n, "float32", seconds, 2)) / 1e9, 1)


def matmul_ceiling(n: int, seconds: float) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` matmul (2 n^3 flops) in float32 and bfloat16."""
    out: dict[str, Any] = {"n": n, "flops_per_matmul": 2 * n**3}
    for dt in ("float32", "bfloat16"):
        times = _matmul_times(n, dt, seconds, 3)
        out[dt] = {"gflops": _r(2 * n**3 / min(times) / 1e9, 1),
                   "gflops_median": _r(2 * n**3 / statistics.median(times) / 1e9, 1), "calls": len(times)}
    return out


def count_macs(model) -> int:
    """Multiply-adds of one forward pass of ``model`` (Conv2D, DepthwiseConv2D, Dense; nested models too)."""
    import keras

    total = 0

    def walk(m):
        nonlocal total
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
                continue
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                _, h, w, c = layer.output.shape
                kh, kw = layer.kernel_size
                total += h * w * c * kh * kw
            elif isinstance(layer, keras.layers.Conv2D):
                _, h, w, cout = layer.output.shape
                kh, kw = layer.kernel_size
                cin = layer.input.shape[-1]
                total += h * w * cout * kh * kw * cin // layer.groups
            elif isinstance(layer, keras.layers.Dense):
                total += int(np.prod(layer.input.shape[1:])) * layer.units

    walk(model)
    return int(total)


def _classifier(cache: dict, image_size: int, rc: dict):
    """The ``cpu`` profile's classifier at ``image_size`` (random weights, all frozen), built once per size."""
    if image_size not in cache:
        import keras

        from aslnb.models import build_classifier

        keras.utils.set_random_seed(rc["seed"])
        cache[image_size] = build_classifier(29, image_size, backbone=rc["backbone"], weights=rc["weights"],
                                             freeze_until=rc["freeze_until"], head_units=rc["head_units"])
    return cache[image_size]


def _memory_ds(x: np.ndarray, batch_size: int):
    """In-memory float32 tensors, batched and prefetched: the model-only input."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(tf.constant(x)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _pick_files(folder, n: int) -> np.ndarray:
    idx = np.linspace(0, len(folder) - 1, min(n, len(folder))).round().astype(int)
    return folder.files[idx]


# --------------------------------------------------------------------------- throughput


def throughput(folder, cfg: dict, verbose: bool, models_cache: dict | None = None) -> tuple[list[dict], list[dict]]:
    """``(model_only, pipeline)`` rows; see the module docstring."""
    from aslnb.data.images import load_images
    from aslnb.data.pipeline import make_dataset
    from aslnb.features import with_precision
    from aslnb.models import split_at_boundary

    bs, seconds, rounds = cfg["batch_size"], cfg["seconds"], cfg["rounds"]
    model_rows: list[dict] = []
    pipe_rows: list[dict] = []
    for size in cfg["model_sizes"]:
        _log(f"model-only / pipeline at {size} px", verbose)
        frozen, _ = split_at_boundary(_classifier(models_cache if models_cache is not None else {}, size,
                                                  cfg["recipe"]))
        macs = count_macs(frozen)
        nominal = NOMINAL_GFLOP_224 * (size / 224) ** 2
        models = {p: with_precision(frozen, p) for p in cfg["precisions"]}
        # size the measurement from one warm batch, so each call lasts ~seconds/rounds. Every predict
        # gets a tf.data.Dataset with the same element spec, so each model is traced once.
        x1 = np.random.default_rng(0).uniform(0, 255, (bs, size, size, 3)).astype(np.float32)
        per_img = {}
        for p, m in models.items():
            m.predict(_memory_ds(x1, bs), verbose=0)  # trace + warm-up
            t0 = time.perf_counter()
            m.predict(_memory_ds(x1, bs), verbose=0)
            per_img[p] = (time.perf_counter() - t0) / bs
        n_batches = max(4, int(seconds / rounds / max(per_img["float32"] * bs, 1e-6)))
        n_img = min(n_batches * bs, len(folder))
        files = _pick_files(folder, n_img)
        n_img = len(files)
        images = load_images(files, size).astype(np.float32)  # the same images for both, in memory
        pipe_here = size in cfg["pipeline_sizes"]

        def pipeline_ds(_files=files, _size=size):
            return make_dataset((_files, np.zeros(len(_files), dtype=np.int64)), _size, bs, with_labels=False)

        results: dict[str, list[float]] = {p: [] for p in models}
        used: dict[str, int] = {}
        pipe_times: list[float] = []
        decode_times: list[float] = []
        probe_rounds: list[float] = []
        for _ in range(rounds):  # short alternating rounds: a slow phase of the machine hits both alike
            probe_rounds.append(speed_probe())
            for p, m in models.items():
                n = n_img if p == "float32" else max(bs, min(n_img, int(seconds / rounds / max(per_img[p], 1e-6))))
                used[p] = n
                ds = _memory_ds(images[:n], bs)
                t0 = time.perf_counter()
                m.predict(ds, verbose=0)
                results[p].append(n / (time.perf_counter() - t0))
                if p == "float32" and pipe_here:  # the pipeline right after the model-only run it is compared with
                    ds = pipeline_ds()
                    t0 = time.perf_counter()
                    m.predict(ds, verbose=0)
                    pipe_times.append(n_img / (time.perf_counter() - t0))
            if pipe_here:
                ds = pipeline_ds()
                t0 = time.perf_counter()
                for _b in ds:
                    pass
                decode_times.append(n_img / (time.perf_counter() - t0))
        for p, vals in results.items():
            best = max(vals)
            model_rows.append({
                "image_size": size, "precision": p, "batch_size": bs, "images": used[p],
                "img_per_s": _r(best), "img_per_s_rounds": [_r(v) for v in vals],
                "machine_probe_gflops_rounds": probe_rounds,
                "nominal_gflop_per_image": _r(nominal, 3), "gflops_nominal": _r(best * nominal, 1),
                "counted_gmacs_per_image": _r(macs / 1e9, 3),
                "gflops_counted_2_per_mac": _r(best * 2 * macs / 1e9, 1),
            })
        if pipe_here:
            model_best = max(results["float32"])
            pipe_rows.append({
                "image_size": size, "precision": "float32", "batch_size": bs, "images": n_img,
                "img_per_s": _r(max(pipe_times)), "img_per_s_rounds": [_r(v) for v in pipe_times],
                "model_only_img_per_s": _r(model_best),
                "ratio": _r(max(pipe_times) / model_best, 3), "goal": PIPELINE_GOAL,
                "ratio_rounds": [_r(pt / mt, 3) for pt, mt in zip(pipe_times, results["float32"])],
                "ratio_median_of_rounds": _r(statistics.median(pt / mt for pt, mt in zip(pipe_times,
                                                                                         results["float32"])), 3),
                "meets_goal": bool(max(pipe_times) / model_best >= PIPELINE_GOAL),
                "decode_only_img_per_s": _r(max(decode_times)),
                "decode_headroom": _r(max(decode_times) / model_best, 1),
            })
    return model_rows, pipe_rows


def latency(folder, cfg: dict, verbose: bool, models_cache: dict | None = None) -> dict[str, Any]:
    """Single-image latency and batch throughput of the ``cpu`` profile's classifier (float32)."""
    from aslnb.data.images import load_image

    rc = cfg["recipe"]
    size, n = rc["image_size"], cfg["latency_calls"]
    _log(f"latency at {size} px", verbose)
    model = _classifier(models_cache if models_cache is not None else {}, size, rc).model
    files = _pick_files(folder, n)
    x1 = load_image(files[0], size)[None].astype(np.float32)
    for _ in range(2):
        model.predict_on_batch(x1)
        model.predict(x1, verbose=0)
    direct = [_timed(lambda: model.predict_on_batch(x1)) for _ in range(n)]
    keras_predict = [_timed(lambda: model.predict(x1, verbose=0)) for _ in range(n)]
    decode = [_timed(lambda f=f: load_image(f, size)) for f in files]
    bs = 32
    xb = np.repeat(x1, bs, axis=0)
    model.predict_on_batch(xb)
    batch_times = _time_calls(lambda: model.predict_on_batch(xb), cfg["seconds"], min_calls=3)
    ms = lambda v: _r(1000 * v, 2)  # noqa: E731
    return {
        "image_size": size, "calls": n, "model": "cpu-profile classifier (ResNet50 + head), float32",
        "predict_on_batch_ms": {"median": ms(statistics.median(direct)), "p90": ms(np.percentile(direct, 90)),
                                "min": ms(min(direct))},
        "keras_predict_ms": {"median": ms(statistics.median(keras_predict)),
                             "p90": ms(np.percentile(keras_predict, 90))},
        "decode_ms": {"median": ms(statistics.median(decode))},
        "end_to_end_ms_median": ms(statistics.median(decode) + statistics.median(direct)),
        "batch": {"batch_size": bs, "img_per_s": _r(bs / statistics.median(batch_times)),
                  "img_per_s_best": _r(bs / min(batch_times)), "calls": len(batch_times)},
    }


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- recipe


@contextlib.contextmanager
def _no_external():
    """Evaluate on the held-out split only (an external set would add its own time)."""
    old = os.environ.pop("ASLNB_EXTERNAL_DATA", None)
    try:
        yield
    finally:
        if old is not None:
            os.environ["ASLNB_EXTERNAL_DATA"] = old


def _run_recipe(data_dir: Path, out: Path, params: dict, verbose: bool, *, test: bool = True) -> tuple[dict, Any]:
    from aslnb.evaluate import evaluate
    from aslnb.train import train

    probe_before = speed_probe()
    t0 = time.perf_counter()
    res = train(data_dir, out, verbose=0, overwrite=True, **params)
    wall = time.perf_counter() - t0
    probe_after = speed_probe()
    metrics, eval_s = {"held_out": {"accuracy": float("nan"), "n_images": None}}, None
    if test:
        t1 = time.perf_counter()
        metrics = evaluate(out, data_dir, verbose=0, write=False, model=res.model)
        eval_s = _r(time.perf_counter() - t1)
    ep = res.history["epochs"]
    return {
        "wall_seconds": _r(wall), "feature_extraction_seconds": res.history["feature_extraction_seconds"],
        "epoch_seconds": [e["seconds"] for e in ep],
        "setup_seconds": _r(wall - res.history["feature_extraction_seconds"] - sum(e["seconds"] for e in ep)),
        "epochs": len(ep), "split": res.config["split"], "feature_cache_used": res.config["feature_cache"]["used"],
        "val_accuracy_per_epoch": [_r(e.get("val_accuracy", float("nan")), 4) for e in ep],
        "val_accuracy": _r(ep[-1].get("val_accuracy", float("nan")), 4),
        "test_accuracy": _r(metrics["held_out"]["accuracy"], 4) if test else None,
        "test_images": metrics["held_out"]["n_images"], "evaluate_seconds": eval_s,
        "machine_probe_gflops_before_after": [probe_before, probe_after],
    }, res


def precision_inference(res, data_dir: Path, params: dict, part: str) -> dict[str, Any]:
    """One float32-trained model, its frozen part run in float32 and in bfloat16 on the ``part`` split.

    The head is the same for both, so the accuracy difference is what bfloat16
    feature extraction itself changes.
    """
    from aslnb.features import extract_features
    from aslnb.models import split_at_boundary
    from aslnb.config import TrainConfig
    from aslnb.runs import prepare_split

    cfg = TrainConfig.from_params(**params)
    folder = getattr(prepare_split(Path(data_dir), cfg), part)
    frozen, head = split_at_boundary(res.classifier)
    out: dict[str, Any] = {"split": part, "images": len(folder)}
    preds, feats, acc = {}, {}, {}
    for p in ("float32", "bfloat16"):
        t0 = time.perf_counter()
        feats[p] = extract_features(frozen, folder, cfg.image_size, batch_size=cfg.batch_size, precision=p)
        seconds = time.perf_counter() - t0
        preds[p] = head.predict(feats[p], batch_size=256, verbose=0).argmax(axis=1)
        acc[p] = float(np.mean(preds[p] == folder.labels))
        out[p] = {"accuracy": _r(acc[p], 4), "extraction_seconds": _r(seconds), "img_per_s": _r(len(folder) / seconds)}
    out["accuracy_diff_points"] = _r(100 * (acc["bfloat16"] - acc["float32"]), 2)
    out["prediction_agreement"] = _r(np.mean(preds["bfloat16"] == preds["float32"]), 4)
    scale = float(np.abs(feats["float32"]).mean()) or 1.0
    out["feature_mean_abs_rel_diff"] = _r(float(np.abs(feats["bfloat16"] - feats["float32"]).mean()) / scale, 5)
    return out


def recipe(data_dir: Path, cfg: dict, work: Path, verbose: bool) -> tuple[dict, dict]:
    """``(recipe, bf16_recipe)`` sections; see the module docstring."""
    params = dict(cfg["recipe"])
    epochs, naive_epochs = params["epochs"], cfg["naive_epochs"]
    with _no_external():
        _log(f"recipe, feature cache on: {epochs} epochs at {params['image_size']} px", verbose)
        test = cfg["evaluate_test"]
        cached, cached_res = _run_recipe(data_dir, work / "cached", {**params, "cache_features": "on"}, verbose,
                                         test=test)
        _log("bfloat16 vs float32 features through the same trained model", verbose)
        inference = precision_inference(cached_res, data_dir, params, "test" if test else "val")
        del cached_res
        _log(f"recipe, plain fit over images: {naive_epochs} epoch(s) measured", verbose)
        naive, _ = _run_recipe(data_dir, work / "naive",
                               {**params, "epochs": naive_epochs, "cache_features": "off"}, verbose, test=False)
        _log("recipe, feature cache on, head trained on bfloat16 features", verbose)
        bf16, _ = _run_recipe(data_dir, work / "cached_bf16", {**params, "precision": "bfloat16",
                                                               "cache_features": "on"}, verbose, test=test)
    ep = naive["epoch_seconds"]
    # conservative: every later epoch as fast as the fastest measured one (the machine's speed varies)
    naive_est = naive["setup_seconds"] + ep[0] + (epochs - 1) * min(ep)
    speedup = naive_est / cached["wall_seconds"]
    k = naive_epochs - 1
    rec = {
        "settings": {**params, "profile": cfg["profile"],
                     "evaluation": "held-out test split, timed separately (not in the wall times)"},
        "cached": cached,
        "naive": {**naive, "measured_epochs": naive_epochs,
                  "estimated_wall_seconds_for_all_epochs": _r(naive_est),
                  "estimate_method": (f"measured {naive_epochs} epoch(s) of plain model.fit over the images, "
                                      f"scaled to {epochs}: setup + first epoch + {epochs - 1} x "
                                      + ("the fastest measured epoch (conservative: the speed-up is not "
                                         "inflated by a slow phase of the machine)" if len(ep) > 1 else
                                         "first epoch (which includes the one-time tf.function tracing, "
                                         "seconds: a slight overestimate)")),
                  "accuracy_label": f"after {naive_epochs} measured epoch(s), not {epochs}",
                  "test_note": "not evaluated on the test split: compare the two paths after equal epochs "
                               "(equal_epochs) and the cached path's final accuracies"},
        "speedup": _r(speedup, 1), "goal": SPEEDUP_GOAL, "meets_goal": bool(speedup >= SPEEDUP_GOAL),
        "equal_epochs": {
            "epochs": naive_epochs,
            "cached_val_accuracy": cached["val_accuracy_per_epoch"][k],
            "naive_val_accuracy": naive["val_accuracy_per_epoch"][k],
            "note": "same data order, same initial weights: the two paths train the same model, up to float rounding",
        },
    }
    vdiff = 100 * (bf16["val_accuracy"] - cached["val_accuracy"])
    diff = 100 * (bf16["test_accuracy"] - cached["test_accuracy"]) if test else None
    bf = {
        "inference": inference,
        "judged_on": (f"the same float32-trained model, {inference['split']} split, frozen part run in float32 vs "
                      "bfloat16 (the head and softmax in float32)"),
        "goal_points": BF16_ACC_GOAL_POINTS,
        "meets_goal": bool(abs(inference["accuracy_diff_points"]) <= BF16_ACC_GOAL_POINTS),
        "trained_on_bf16": {
            "how": "train(precision='bfloat16'): features extracted in bfloat16, head trained on them in float32",
            "float32": {k2: cached[k2] for k2 in ("test_accuracy", "val_accuracy", "feature_extraction_seconds",
                                                   "wall_seconds")},
            "bfloat16": {k2: bf16[k2] for k2 in ("test_accuracy", "val_accuracy", "feature_extraction_seconds",
                                                  "wall_seconds")},
            "test_accuracy_diff_points": _r(diff, 2) if test else None, "val_accuracy_diff_points": _r(vdiff, 2),
            "note": ("a second training run on slightly different inputs: its difference mixes the precision with "
                     "the training trajectory; val accuracy is on bf16 features, test accuracy is the saved model "
                     "run in float32, as deployed"),
        },
    }
    return rec, bf


# --------------------------------------------------------------------------- main


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
            sections[name] = _r(time.perf_counter() - t0, 1)
            cpu_sections[name] = _r(time.process_time() - c0, 1)
            return value

        _log("machine", verbose)
        results["machine"] = timed("machine", machine_info)
        _log("matmul ceiling", verbose)
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
        results["total_seconds"] = _r(time.perf_counter() - t_start, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(out, results)
    out.with_suffix(".md").write_text(to_markdown(results))
    _log(f"done in {results['total_seconds']:.0f}s: {out}, {out.with_suffix('.md')}", verbose)
    return out


# --------------------------------------------------------------------------- markdown


def _acc(v: Any) -> str:
    return "not evaluated" if v is None else f"{v:.4f}"


def _pts(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.2f} points"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(r: dict[str, Any]) -> str:
    """The results as markdown tables (what ``results.md`` holds)."""
    m = r["machine"]
    mm = r["matmul"]
    s: list[str] = [f"# aslnb benchmark{' (quick: tiny sizes, NOT representative)' if r['quick'] else ''}", ""]
    s.append(f"Started {r['started']}, {r['total_seconds']:.0f} s in all. Data: {r['data']['images']} images, "
             f"{r['data']['classes']} classes ({r['data']['root']}).")
    s += ["", "## Machine", "",
          _table(["CPU", "cores (usable)", "native bf16", "precision auto", "TF", "Keras", "intra/inter threads",
                  "load avg start → end (1 min)"],
                 [[m["cpu_model"], f"{m['logical_cores']} ({m['cores_usable']})", m["native_bf16"],
                   m["precision_auto"], m["versions"].get("tensorflow"), m["versions"].get("keras"),
                   f"{m['threads']['intra_op']}/{m['threads']['inter_op']} (0 = default)",
                   f"{m['loadavg_start'][0]:.2f} → {m['loadavg_end'][0]:.2f}"]]),
          "", "CPU flags: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items()) + ".",
          "", f"## Model-only throughput (in-memory tensors) vs the {mm['n']}x{mm['n']} matmul ceiling", "",
          f"Matmul: float32 {mm['float32']['gflops']} GFLOP/s, bfloat16 {mm['bfloat16']['gflops']} GFLOP/s "
          "(2 flops per multiply-add).", ""]
    s.append(_table(
        ["size", "precision", "img/s", "GFLOP/s (nominal 4.1 GFLOP@224)", "GFLOP/s (counted, 2/MAC)",
         "% of matmul ceiling (counted)"],
        [[row["image_size"], row["precision"], row["img_per_s"], row["gflops_nominal"], row["gflops_counted_2_per_mac"],
          f"{100 * row['gflops_counted_2_per_mac'] / max(mm[row['precision']]['gflops'], 1e-9):.0f}%"]
         for row in r["model_only"]]))
    s += ["", "The nominal 4.1 GFLOP/image is the usual ResNet50 figure; it counts multiply-adds, so it is about "
          "half the flops the matmul ceiling counts. The 'counted' column counts the model's multiply-adds "
          "(convolutions and dense layers) and doubles them.", "",
          "## Input pipeline (JPEG files → make_dataset → same forward, float32)", ""]
    s.append(_table(["size", "pipeline img/s (best)", "model-only img/s (best)", "ratio of bests",
                     "ratio, median of paired rounds", f"goal ≥ {PIPELINE_GOAL}", "decode-only img/s",
                     "decode headroom"],
                    [[p["image_size"], p["img_per_s"], p["model_only_img_per_s"], p["ratio"],
                      p.get("ratio_median_of_rounds", "–"), "met" if p["meets_goal"] else "NOT met",
                      p["decode_only_img_per_s"], f"{p['decode_headroom']}x"] for p in r["pipeline"]]))
    probes = [v for row in r["model_only"] for v in row.get("machine_probe_gflops_rounds", [])]
    if probes:
        s += ["", f"Machine speed probe (1024x1024 float32 matmul) before each round: {min(probes)} to "
              f"{max(probes)} GFLOP/s: rounds that ran in a slow phase of this shared machine show in the "
              "`*_rounds` values of results.json; the best rounds compare the paths at the same machine speed."]
    lat = r["latency"]
    s += ["", f"## Prediction latency ({lat['model']}, {lat['image_size']} px)", "",
          _table(["single image: predict_on_batch median (p90)", "keras predict() median", "decode median",
                  "end to end", f"batch {lat['batch']['batch_size']} throughput"],
                 [[f"{lat['predict_on_batch_ms']['median']} ms ({lat['predict_on_batch_ms']['p90']} ms)",
                   f"{lat['keras_predict_ms']['median']} ms", f"{lat['decode_ms']['median']} ms",
                   f"{lat['end_to_end_ms_median']} ms", f"{lat['batch']['img_per_s']} img/s"]])]
    rc = r["recipe"]
    c, n = rc["cached"], rc["naive"]
    st = rc["settings"]
    s += ["", f"## The recipe: {st['epochs']} epochs, {st['image_size']} px, weights {st['weights']}, "
          f"freeze_until {st['freeze_until']} (train split {c['split']['train']}, val {c['split']['val']}, "
          f"test {c['split']['test']})", "",
          _table(["path", "wall time", "of which features", "per epoch", "val acc", "test acc"],
                 [["feature cache (cache_features='on')", f"{c['wall_seconds']:.1f} s (measured)",
                   f"{c['feature_extraction_seconds']:.1f} s", f"{statistics.mean(c['epoch_seconds']):.2f} s",
                   _acc(c["val_accuracy"]), _acc(c["test_accuracy"])],
                  ["plain fit over images (cache_features='off')",
                   f"{n['estimated_wall_seconds_for_all_epochs']:.1f} s (ESTIMATED from {n['measured_epochs']} "
                   f"measured epoch(s))", "–", f"{statistics.mean(n['epoch_seconds']):.2f} s",
                   f"{n['val_accuracy']:.4f} ({n['accuracy_label']})", "not evaluated"]]),
          "", f"Speed-up: **{rc['speedup']}x** (goal ≥ {SPEEDUP_GOAL:g}x: {'met' if rc['meets_goal'] else 'NOT met'}). "
          f"{n['estimate_method']}.",
          f"After {rc['equal_epochs']['epochs']} epoch(s) both paths: val accuracy "
          f"{rc['equal_epochs']['cached_val_accuracy']} (cache) vs {rc['equal_epochs']['naive_val_accuracy']} "
          f"(images) — {rc['equal_epochs']['note']}.", "Evaluation on the test split is timed separately "
          + (f"({c['evaluate_seconds']:.1f} s) and not in the wall times." if c["evaluate_seconds"] is not None
             else "(skipped here) and not in the wall times.")]
    bf = r["bf16_recipe"]
    inf, tr = bf["inference"], bf["trained_on_bf16"]
    s += ["", "## bfloat16 vs float32 feature extraction", "",
          f"Same float32-trained model, {inf['split']} split ({inf['images']} images), frozen part in each "
          "precision, the head and softmax in float32:", "",
          _table(["features", "extraction", "img/s", "accuracy"],
                 [[p, f"{inf[p]['extraction_seconds']:.1f} s", inf[p]["img_per_s"], _acc(inf[p]["accuracy"])]
                  for p in ("float32", "bfloat16")]),
          "", f"Difference bf16 - fp32: **{_pts(inf['accuracy_diff_points'])}** (goal within "
          f"±{BF16_ACC_GOAL_POINTS} points: {'met' if bf['meets_goal'] else 'NOT met'}); the two precisions "
          f"predict the same class for {100 * inf['prediction_agreement']:.1f}% of the images; mean relative "
          f"feature difference {inf['feature_mean_abs_rel_diff']}.", "",
          "A head trained on bfloat16 features (a second run of the recipe):", "",
          _table(["features the head trained on", "extraction", "val acc", "test acc"],
                 [[p, f"{tr[p]['feature_extraction_seconds']:.1f} s", _acc(tr[p]["val_accuracy"]),
                   _acc(tr[p]["test_accuracy"])] for p in ("float32", "bfloat16")]),
          "", f"Difference: test {_pts(tr['test_accuracy_diff_points'])}, val {_pts(tr['val_accuracy_diff_points'])}"
          f"; {tr['note']}."]
    s += ["", "## GPU", "", f"{r['gpu']['status']}.", ""]
    return "\n".join(s)


def load_results(path: str | os.PathLike = "benchmarks/results.json") -> dict[str, Any]:
    """The JSON written by :func:`run_bench`."""
    return read_json(path)


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's key numbers, labelled, with the machine and date that produced them."""
    m, rc, bf = r["machine"], r["recipe"], r["bf16_recipe"]
    out: dict[str, Any] = {
        "measured on": f"{m['cpu_model']}, {m['cores_usable']} cores, {r['started'][:10]}"
                       + (" (QUICK mode: not representative)" if r["quick"] else ""),
        "recipe": f"{rc['settings']['epochs']} epochs, {rc['settings']['image_size']} px, "
                  f"freeze_until {rc['settings']['freeze_until']}",
        "feature cache: wall seconds (measured)": rc["cached"]["wall_seconds"],
        "plain fit over images: wall seconds (estimated from "
        f"{rc['naive']['measured_epochs']} epochs)": rc["naive"]["estimated_wall_seconds_for_all_epochs"],
        f"speed-up (goal >= {rc['goal']:g}x)": rc["speedup"],
        "cached recipe: test accuracy": rc["cached"]["test_accuracy"],
        f"bf16 features, same model: accuracy change in points (goal within {bf['goal_points']})":
            bf["inference"]["accuracy_diff_points"],
        "head trained on bf16 features: test accuracy change (points)":
            bf["trained_on_bf16"]["test_accuracy_diff_points"],
    }
    for row in r["model_only"]:
        out[f"ResNet50 forward {row['image_size']} px {row['precision']}: img/s"] = row["img_per_s"]
    for p in r["pipeline"]:
        out[f"pipeline / model-only at {p['image_size']} px (goal >= {p['goal']})"] = p["ratio"]
    out["GPU"] = r["gpu"]["status"]
    return out

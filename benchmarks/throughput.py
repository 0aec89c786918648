"""Throughput and latency: the frozen model on in-memory tensors vs fed by the JPEG pipeline; one-image latency."""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from .timing import log, rounded, speed_probe, time_calls, timed_call

NOMINAL_GFLOP_224 = 4.1  # the usual ResNet50 figure at 224 px (it counts multiply-adds)
PIPELINE_GOAL = 0.9


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

    from aslnb.data.pipeline import without_autotune

    # as make_dataset: without tf.data's autotuning thread, whose doubling wait could hold a round to 5.11/10.23 s
    return without_autotune(tf.data.Dataset.from_tensor_slices(tf.constant(x)).batch(batch_size)
                            .prefetch(tf.data.AUTOTUNE))


def _pick_files(folder, n: int) -> np.ndarray:
    idx = np.linspace(0, len(folder) - 1, min(n, len(folder))).round().astype(int)
    return folder.files[idx]


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
        log(f"model-only / pipeline at {size} px", verbose)
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
                "img_per_s": rounded(best), "img_per_s_rounds": [rounded(v) for v in vals],
                "machine_probe_gflops_rounds": probe_rounds,
                "nominal_gflop_per_image": rounded(nominal, 3), "gflops_nominal": rounded(best * nominal, 1),
                "counted_gmacs_per_image": rounded(macs / 1e9, 3),
                "gflops_counted_2_per_mac": rounded(best * 2 * macs / 1e9, 1),
            })
        if pipe_here:
            model_best = max(results["float32"])
            paired = statistics.median(pt / mt for pt, mt in zip(pipe_times, results["float32"]))
            pipe_rows.append({
                "image_size": size, "precision": "float32", "batch_size": bs, "images": n_img,
                "img_per_s": rounded(max(pipe_times)), "img_per_s_rounds": [rounded(v) for v in pipe_times],
                "model_only_img_per_s": rounded(model_best),
                "ratio": rounded(max(pipe_times) / model_best, 3), "goal": PIPELINE_GOAL,
                "ratio_rounds": [rounded(pt / mt, 3) for pt, mt in zip(pipe_times, results["float32"])],
                "ratio_median_of_rounds": rounded(paired, 3),
                "meets_goal": bool(paired >= PIPELINE_GOAL),  # the median of rounds: a best round alone does not count
                "decode_only_img_per_s": rounded(max(decode_times)),
                "decode_headroom": rounded(max(decode_times) / model_best, 1),
            })
    return model_rows, pipe_rows


def latency(folder, cfg: dict, verbose: bool, models_cache: dict | None = None) -> dict[str, Any]:
    """Single-image latency and batch throughput of the ``cpu`` profile's classifier (float32)."""
    from aslnb.data.images import load_image

    rc = cfg["recipe"]
    size, n = rc["image_size"], cfg["latency_calls"]
    log(f"latency at {size} px", verbose)
    model = _classifier(models_cache if models_cache is not None else {}, size, rc).model
    files = _pick_files(folder, n)
    x1 = load_image(files[0], size)[None].astype(np.float32)
    for _ in range(2):
        model.predict_on_batch(x1)
        model.predict(x1, verbose=0)
    direct = [timed_call(lambda: model.predict_on_batch(x1)) for _ in range(n)]
    keras_predict = [timed_call(lambda: model.predict(x1, verbose=0)) for _ in range(n)]
    decode = [timed_call(lambda f=f: load_image(f, size)) for f in files]
    bs = 32
    xb = np.repeat(x1, bs, axis=0)
    model.predict_on_batch(xb)
    batch_times = time_calls(lambda: model.predict_on_batch(xb), cfg["seconds"], min_calls=3)
    ms = lambda v: rounded(1000 * v, 2)  # noqa: E731
    return {
        "image_size": size, "calls": n, "model": "cpu-profile classifier (ResNet50 + head), float32",
        "predict_on_batch_ms": {"median": ms(statistics.median(direct)), "p90": ms(np.percentile(direct, 90)),
                                "min": ms(min(direct))},
        "keras_predict_ms": {"median": ms(statistics.median(keras_predict)),
                             "p90": ms(np.percentile(keras_predict, 90))},
        "decode_ms": {"median": ms(statistics.median(decode))},
        "end_to_end_ms_median": ms(statistics.median(decode) + statistics.median(direct)),
        "batch": {"batch_size": bs, "img_per_s": rounded(bs / statistics.median(batch_times)),
                  "img_per_s_best": rounded(bs / min(batch_times)), "calls": len(batch_times)},
    }

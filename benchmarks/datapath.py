"""Data path measurements: Pillow vs tf.io pixels, and why the JPEG pipeline lags the model at 224 px.

    ASLNB_DATA=/path/to/asl-alphabet-sample python -m benchmarks.datapath [--images 96] [--rounds 3]

Writes ``benchmarks/datapath.json``:

* ``pixels``: max |Pillow - tf.io| over every image of the folder at 128 and 224 px
  (``make_dataset(decoder='pil')`` vs ``decoder='tf'``), and the fraction of values that differ;
* ``rounds``: img/s of the frozen ``cpu``-profile ResNet50 (random weights) at 224 px, per
  round, fed (a) from in-memory tensors, (b) by ``make_dataset`` with each variant below, and
  decode-only rates (iterating the dataset without the model). Variants alternate inside
  every round, so a slow phase of the machine hits them alike; the median and the best
  round are reported, and each round's wall time (``seconds_rounds``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def pixel_diff(folder, sizes=(128, 224), batch_size: int = 64) -> list[dict]:
    from aslnb.data.pipeline import make_dataset

    rows = []
    for size in sizes:
        kw = dict(folder=folder, image_size=size, batch_size=batch_size, with_labels=False)
        mx, differ, total = 0, 0, 0
        for a, b in zip(make_dataset(**kw, decoder="pil"), make_dataset(**kw, decoder="tf")):
            d = np.abs(a.numpy().astype(np.int16) - b.numpy().astype(np.int16))
            mx, differ, total = max(mx, int(d.max())), differ + int((d > 0).sum()), total + d.size
        rows.append({"image_size": size, "images": len(folder), "max_abs_diff": mx,
                     "fraction_differing": round(differ / total, 4)})
        print(rows[-1], flush=True)
    return rows


def _with_threads(ds, private: int | None, intra: int | None):
    import tensorflow as tf

    opts = tf.data.Options()
    if private is not None:
        opts.threading.private_threadpool_size = private
    if intra is not None:
        opts.threading.max_intra_op_parallelism = intra
    return ds.with_options(opts)


def rounds(folder, size: int, n: int, n_rounds: int, batch_size: int = 32, only: list[str] | None = None) -> dict:
    import keras
    import tensorflow as tf

    from aslnb.data.images import load_images
    from aslnb.data.pipeline import make_dataset, without_autotune
    from aslnb.models import build_classifier, split_at_boundary

    keras.utils.set_random_seed(0)
    clf = build_classifier(29, size, weights="none", freeze_until="all", head_units=[256])
    frozen, _ = split_at_boundary(clf)
    idx = np.linspace(0, len(folder) - 1, n).round().astype(int)
    files, labels = folder.files[idx], np.zeros(n, dtype=np.int64)
    images = load_images(files, size).astype(np.float32)

    def pipe(decoder="pil", private=None, intra=None, prefetch=None):
        ds = make_dataset((files, labels), size, batch_size, with_labels=False, decoder=decoder)
        if prefetch is not None:
            ds = ds.prefetch(prefetch)
        return _with_threads(ds, private, intra)

    variants = {
        "model_only": lambda: without_autotune(tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
                                               .prefetch(tf.data.AUTOTUNE)),
        "pipe_pil": lambda: pipe("pil"),
        "pipe_tf": lambda: pipe("tf"),
        "pipe_pil_threads1": lambda: pipe("pil", private=1, intra=1),
        "pipe_tf_threads1": lambda: pipe("tf", private=1, intra=1),
        "pipe_tf_prefetch4": lambda: pipe("tf", prefetch=4),
    }
    if only:
        variants = {k: v for k, v in variants.items() if k == "model_only" or k in only}
    decode_only = {"decode_pil": lambda: pipe("pil"), "decode_tf": lambda: pipe("tf")}
    frozen.predict(variants["model_only"](), verbose=0)  # trace + warm-up
    out: dict[str, list[float]] = {k: [] for k in [*variants, *decode_only]}
    for r in range(n_rounds):
        for name, make in variants.items():
            ds = make()
            t0 = time.perf_counter()
            frozen.predict(ds, verbose=0)
            out[name].append(n / (time.perf_counter() - t0))
        for name, make in decode_only.items():
            ds = make()
            t0 = time.perf_counter()
            for _ in ds:
                pass
            out[name].append(n / (time.perf_counter() - t0))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in out.items()), flush=True)
    res = {k: {"median": round(statistics.median(v), 2), "best": round(max(v), 2),
               "rounds": [round(x, 2) for x in v], "seconds_rounds": [round(n / x, 2) for x in v]}
           for k, v in out.items()}
    for k in variants:  # each pipeline round against the model-only round of the same round
        if k != "model_only":
            paired = [p / m for p, m in zip(out[k], out["model_only"])]
            res[k]["ratio_rounds"] = [round(x, 3) for x in paired]
            res[k]["ratio_median_of_rounds"] = round(statistics.median(paired), 3)
            res[k]["ratio_of_bests"] = round(max(out[k]) / max(out["model_only"]), 3)
    return res


def main(argv: list[str] | None = None) -> dict:
    from aslnb.data.scan import scan_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("ASLNB_DATA"))
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="224", help="image sizes, comma-separated (default 224)")
    ap.add_argument("--variants", help="pipeline variants to run, comma-separated (default: all)")
    ap.add_argument("--skip-pixels", action="store_true")
    ap.add_argument("--out", default=str(HERE / "datapath.json"))
    args = ap.parse_args(argv)
    folder = scan_folder(args.data)
    load = os.getloadavg()
    result = {"data": str(args.data), "cpu_count": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load]}
    if not args.skip_pixels:
        result["pixels"] = pixel_diff(folder)
    only = args.variants.split(",") if args.variants else None
    result["throughput"] = [{"image_size": int(size), "images_per_round": args.images, "batch_size": 32,
                             **rounds(folder, int(size), args.images, args.rounds, only=only)}
                            for size in args.size.split(",")]
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

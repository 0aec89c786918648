"""The whole set from disk: peak memory and throughput as the set grows to 87,000 images.

    ASLNB_DATA=/path/to/asl-alphabet-sample python -m benchmarks.scale [--copies 1,5,15] [--quick]

The benchmark builds a synthetic set in a temporary folder: the 5,800-image sample
repeated ``copies`` times under new names (hard links, else copies; copy ``c`` of
frame ``f`` of letter A is ``A<c*FRAME_SPAN + f>.jpg``, so the chunk split holds
out the highest frames as usual): 1, 5 and 15 copies are 5,800, 29,000 and 87,000
images. For each size a fresh process runs :func:`aslnb.train.train` as a user
would at the study's 224 px with the conv4 boundary (``freeze_until='conv4'``:
EfficientNet-Lite0, the backbone whose ImageNet weights are at hand offline,
frozen up to its block6; block7, its head conv and the classifier head train)
for one epoch, with the features written to a disk cache and read back a batch
at a time (``features_in_memory_max_bytes=0``). A thread samples the process's
memory every 0.2 s; ``peak_rss_gib`` is the kernel's high-water mark
(``VmHWM``), split into anonymous and file-backed pages at the end.

``compare`` (5,800 images, the cache already written) trains ``rounds`` times
alternately from memory (the features loaded as one array, today's path for a
small set) and from the disk cache, 3 epochs each, and compares the images per
second of the epochs after the first (the first compiles). Writes
``benchmarks/scale.json`` and ``scale.md``, and the summary into the ``scale``
section of ``benchmarks/results.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
FRAME_SPAN = 10_000  # new frame numbers: copy c of frame f is c * FRAME_SPAN + f (the originals run to 3,000)
GOAL_RSS_GIB = 8.0
GOAL_THROUGHPUT = 0.9  # streaming img/s at least 90 % of the in-memory path's
FULL = {"image_size": 224, "freeze_until": "conv4", "backbone": "efficientnet_lite0", "weights": "imagenet",
        "epochs": 1, "batch_size": 32, "head_units": [256], "seed": 0}
QUICK = {**FULL, "image_size": 32, "freeze_until": "conv3", "weights": "none", "backbone": "resnet50",
         "head_units": [16]}


def synthetic_set(sample: Path, copies: int, dest: Path) -> int:
    """``dest``: every image of ``sample`` ``copies`` times under new frame numbers; returns the image count."""
    from aslnb.data import frame_number, scan_folder

    folder = scan_folder(sample)
    n = 0
    for path, label in zip(folder.files, folder.labels):
        cls = folder.class_names[label]
        path = Path(path)
        frame = frame_number(path.name)
        if frame is None or frame >= FRAME_SPAN:
            raise ValueError(f"{path}: no frame number below {FRAME_SPAN} in the name")
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for c in range(copies):
            target = dest / cls / f"{cls}{c * FRAME_SPAN + frame}{path.suffix}"
            try:
                os.link(path, target)
            except OSError:  # another file system, or links not allowed: a real copy
                shutil.copyfile(path, target)
            n += 1
    return n


def _memory() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process, in bytes (Linux ``/proc/self/status``)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


class MemorySampler(threading.Thread):
    """Samples :func:`_memory` every ``interval`` seconds; ``series`` holds ``(seconds, VmRSS)``."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.series, self._halt = interval, [], threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.series.append((round(time.perf_counter() - self.t0, 1), _memory()["VmRSS"]))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def seed_cache(sample: Path, data: Path, cache: Path, params: dict) -> None:
    """Write the feature stores ``train`` will look up for the synthetic set ``data`` from the sample's features.

    Every synthetic image is a byte-identical copy of a sample image, and the frozen
    part is the same, so its features are the sample image's: they are extracted
    once for the 5,800 sample images and written in the synthetic set's order under
    the keys ``train`` computes (the feature extraction of the large set is skipped;
    its memory and speed are measured at the sizes that extract).
    """
    import keras

    from aslnb.config import TrainConfig
    from aslnb.data import frame_number, scan_folder
    from aslnb.features import cache_key, extract_features, resolve_precision, shard_rows
    from aslnb.features.store import write_store
    from aslnb.models import build_classifier, split_at_boundary
    from aslnb.runs import prepare_split
    from aslnb.settings import resolve_data_dir

    cfg = TrainConfig.from_params(**params)
    split = prepare_split(resolve_data_dir(data), cfg)
    names = split.train.class_names
    keras.utils.set_random_seed(cfg.seed)
    clf = build_classifier(len(names), cfg.image_size, backbone=cfg.backbone, weights=cfg.weights,
                           freeze_until=cfg.freeze_until, head_units=cfg.head_units, dropout=cfg.dropout,
                           augment=cfg.augment, seed=cfg.seed)
    frozen, _ = split_at_boundary(clf)
    precision = resolve_precision(cfg.precision)
    originals = scan_folder(sample)
    feats = extract_features(frozen, originals, cfg.image_size, batch_size=cfg.batch_size,
                             cache_dir=cache.parent / f"{cache.name}-sample", precision=precision,
                             in_memory_max_bytes=0, decoder=cfg.decoder)
    row_of = {(originals.class_names[lab], frame_number(Path(f).name)): i
              for i, (f, lab) in enumerate(zip(originals.files, originals.labels))}
    rows = shard_rows(cfg.batch_size)
    for part in (split.train, split.val):
        idx = np.array([row_of[(names[lab], frame_number(Path(f).name) % FRAME_SPAN)]
                        for f, lab in zip(part.files, part.labels)])
        key = cache_key(part, cfg.image_size, frozen, precision, cfg.decoder)
        write_store(cache / f"features-{key}", (feats[idx[a:a + rows]] for a in range(0, len(idx), rows)), rows)


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One training run in this (fresh) process; the measurements as a dict."""
    from aslnb.backend import import_keras

    import_keras()
    from aslnb.train import train

    params = json.loads(args.params)
    if args.seed_from:  # its own process: the measured run's memory starts clean
        seed_cache(Path(args.seed_from), Path(args.data), Path(args.cache), params)
        return {}
    seeded = args.seeded
    sampler = MemorySampler()
    before = _memory()
    sampler.start()
    t0 = time.perf_counter()
    res = train(args.data, args.run_out, overwrite=True, verbose=2, feature_cache_dir=args.cache,
                features_in_memory_max_bytes=args.in_memory_max_bytes, **params)
    wall = time.perf_counter() - t0
    sampler.stop()
    end = _memory()
    h, cfg = res.history, res.config
    n_train, n_val = cfg["split"]["train"], cfg["split"]["val"]
    epochs = h["epochs"]
    rss = [r for _, r in sampler.series]
    return {
        "train_images": n_train, "val_images": n_val,
        "features_from": "disk" if args.in_memory_max_bytes == 0 else "memory",
        "feature_extraction_seconds": h["feature_extraction_seconds"],
        "extraction_img_per_s": None if seeded else round((n_train + n_val) / h["feature_extraction_seconds"], 2),
        "epoch_seconds": [e["seconds"] for e in epochs],
        "epoch_img_per_s": [e["images_per_second"] for e in epochs],
        "train_seconds": h["train_seconds"], "wall_seconds": round(wall, 1),
        "rss_before_gib": round(before["VmRSS"] / 2**30, 3),
        "peak_rss_gib": round(end["VmHWM"] / 2**30, 3),
        "rss_end_gib": {"total": round(end["VmRSS"] / 2**30, 3), "anonymous": round(end["RssAnon"] / 2**30, 3),
                        "file_backed": round(end["RssFile"] / 2**30, 3)},
        "rss_samples": len(rss), "rss_max_sampled_gib": round(max(rss) / 2**30, 3) if rss else None,
        "rss_series_gib": [(t, round(r / 2**30, 3)) for t, r in sampler.series[:: max(1, len(rss) // 200)]],
        "val_accuracy": epochs[-1].get("val_accuracy"),
        "features": "seeded from the sample's features (extraction not run)" if seeded else "extracted",
    }


def _run_child(data: Path, out: Path, cache: Path, params: dict, in_memory_max_bytes: int | None,
               log_path: Path, seed_from: Path | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.scale", "--child", "--data", str(data), "--run-out", str(out),
           "--cache", str(cache), "--params", json.dumps(params)]
    if in_memory_max_bytes is not None:
        cmd += ["--in-memory-max-bytes", str(in_memory_max_bytes)]
    for extra in ([["--seed-from", str(seed_from)], ["--seeded"]] if seed_from else [[]]):
        with open(log_path, "a") as log:
            proc = subprocess.run(cmd + extra, stdout=subprocess.PIPE, stderr=log, text=True, cwd=HERE.parent)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark child failed (exit {proc.returncode}); see {log_path}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cache_bytes(cache: Path) -> int:
    return sum(f.stat().st_size for f in cache.rglob("*.npy"))


def run(sample: Path, copies: list[int], rounds: int, params: dict, work: Path, log_path: Path,
        verbose: bool = True, seed_above: int | None = None) -> dict[str, Any]:
    """Every size, then the memory-vs-disk comparison at the smallest; the results dict."""
    sizes = []
    compare: dict[str, Any] = {}
    for c in copies:
        data = work / f"set-{c}"
        n = synthetic_set(sample, c, data)
        cache = work / f"cache-{c}"
        if verbose:
            print(f"[scale {time.strftime('%H:%M:%S')}] {n} images ({c} copies): train from disk", flush=True)
        seed = sample if seed_above is not None and c > seed_above else None
        row = {"copies": c, "images": n, **_run_child(data, work / f"run-{c}", cache, params, 0, log_path, seed)}
        row["cache_gib"] = round(_cache_bytes(cache) / 2**30, 3)
        sizes.append(row)
        if verbose:
            print(f"  peak RSS {row['peak_rss_gib']} GiB, extraction {row['extraction_img_per_s']} img/s, "
                  f"epoch {row['epoch_img_per_s']} img/s, cache {row['cache_gib']} GiB", flush=True)
        if c == copies[0] and rounds:
            ep = {"memory": [], "disk": []}
            for r in range(rounds):
                for mode, limit in (("memory", 1 << 62), ("disk", 0)):
                    res = _run_child(data, work / f"cmp-{mode}", cache, {**params, "epochs": 3}, limit, log_path)
                    ep[mode] += res["epoch_img_per_s"][1:]
                    compare.setdefault(f"peak_rss_gib_{mode}", []).append(res["peak_rss_gib"])
                if verbose:
                    print(f"  compare round {r + 1}: memory {ep['memory'][-2:]}, disk {ep['disk'][-2:]} img/s",
                          flush=True)
            med = {m: statistics.median(v) for m, v in ep.items()}
            compare.update({"images": n, "epochs_compared": "2nd and 3rd of each run", "rounds": rounds,
                            "epoch_img_per_s": ep, "median_img_per_s": med,
                            "ratio_disk_to_memory": round(med["disk"] / med["memory"], 3)})
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    return {"sizes": sizes, "compare": compare}


def summary(result: dict) -> dict[str, Any]:
    """The numbers the README and ``results.json`` quote."""
    sizes, cmp = result["sizes"], result["compare"]
    first = sizes[0]
    out: dict[str, Any] = {
        "settings": result["settings"],
        "peak_rss_gib": {str(s["images"]): s["peak_rss_gib"] for s in sizes},
        "epoch_img_per_s": {str(s["images"]): s["epoch_img_per_s"][-1] for s in sizes},
        "extraction_img_per_s": {str(s["images"]): s["extraction_img_per_s"] for s in sizes},
        "cache_gib": {str(s["images"]): s["cache_gib"] for s in sizes},
        "goal_peak_rss_gib": GOAL_RSS_GIB,
        "peak_rss_below_goal": all(s["peak_rss_gib"] < GOAL_RSS_GIB for s in sizes),
        "peak_rss_growth_gib": round(sizes[-1]["peak_rss_gib"] - first["peak_rss_gib"], 3),
    }
    if cmp:
        out.update({"memory_vs_disk_at": cmp["images"], "median_img_per_s": cmp["median_img_per_s"],
                    "ratio_disk_to_memory": cmp["ratio_disk_to_memory"], "goal_ratio": GOAL_THROUGHPUT,
                    "largest_vs_memory_at_smallest": round(sizes[-1]["epoch_img_per_s"][-1]
                                                           / cmp["median_img_per_s"]["memory"], 3)})
    return out


def to_markdown(result: dict) -> str:
    s = result["summary"]
    lines = [f"# Scale: the set from disk ({result['started']}, {result['machine']['cpu_model']}, "
             f"{result['machine']['logical_cores']} cores)", "",
             f"`python -m benchmarks.scale`; {json.dumps(result['settings'])}; one epoch per size, features "
             "on disk, read a batch at a time.", "",
             "| images | train + val | peak RSS (GiB) | RSS at end: anon / file (GiB) | feature cache (GiB) | "
             "extraction img/s | epoch img/s | wall s |", "|---|---|---|---|---|---|---|---|"]
    for r in result["sizes"]:
        e = r["rss_end_gib"]
        lines.append(f"| {r['images']:,} | {r['train_images'] + r['val_images']:,} | {r['peak_rss_gib']} | "
                     f"{e['anonymous']} / {e['file_backed']} | {r['cache_gib']} | {r['extraction_img_per_s']} | "
                     f"{r['epoch_img_per_s'][-1]} | {r['wall_seconds']} |")
    if s.get("median_img_per_s"):
        m = s["median_img_per_s"]
        lines += ["", f"Training from memory vs from the disk cache at {s['memory_vs_disk_at']:,} images "
                      f"(median of the 2nd and 3rd epochs over {result['compare']['rounds']} alternating rounds): "
                      f"memory {m['memory']:.1f} img/s, disk {m['disk']:.1f} img/s, ratio "
                      f"**{s['ratio_disk_to_memory']}** (goal >= {GOAL_THROUGHPUT}); the largest set's epoch vs "
                      f"memory at the smallest: {s['largest_vs_memory_at_smallest']}."]
    lines += ["", f"Load average at start / end: {result['machine']['loadavg_start']} / "
                  f"{result['machine']['loadavg_end']} (2 cores: above 2 means other work shared them)."]
    for run in result.get("runs", []):  # sizes measured by separate invocations, merged
        lines.append(f"- {run['started']}: {run.get('what', '')}; load average at start / end "
                     f"{run['loadavg'][0]} / {run['loadavg'][1]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("ASLNB_DATA"), help="the sample (default: $ASLNB_DATA)")
    ap.add_argument("--copies", default="1,5,15", help="set sizes as copies of the sample (default: 1,5,15)")
    ap.add_argument("--rounds", type=int, default=2, help="memory-vs-disk rounds at the smallest size (default 2)")
    ap.add_argument("--quick", action="store_true", help="32 px, random weights: checks the script, not the machine")
    ap.add_argument("--out", default=str(HERE / "scale.json"))
    ap.add_argument("--work", help="folder for the synthetic sets and caches (default: a temporary folder)")
    ap.add_argument("--no-results", action="store_true", help="do not write the summary into results.json")
    ap.add_argument("--seed-above", type=int, help="for sets of more copies than this, write the feature cache "
                    "from the sample's features instead of extracting (see seed_cache; default: extract all)")
    ap.add_argument("--seed-from", help=argparse.SUPPRESS)
    ap.add_argument("--seeded", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--run-out", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--in-memory-max-bytes", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return None
    from aslnb.provenance import cpu_model, versions

    if not args.data or not Path(args.data).is_dir():
        ap.error(f"--data {args.data!r}: not a folder; set ASLNB_DATA or pass --data (the 5,800-image sample)")
    params = QUICK if args.quick else FULL
    copies = [int(c) for c in args.copies.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="aslnb-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "settings": params,
        "copies": copies, "machine": {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(),
                                      "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                                      "versions": versions()}}
    t0 = time.perf_counter()
    try:
        result.update(run(Path(args.data), copies, args.rounds, params, work, out.with_suffix(".log"),
                          seed_above=args.seed_above))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    result["summary"] = summary(result)
    from aslnb.io import write_json, write_text

    write_json(out, result)
    write_text(out.with_suffix(".md"), to_markdown(result))
    results = HERE / "results.json"
    if not args.no_results and not args.quick and results.exists():
        data = json.loads(results.read_text())
        data["scale"] = {"from": out.name, **result["summary"]}
        write_json(results, data)
    print(to_markdown(result))
    return result


if __name__ == "__main__":
    main()

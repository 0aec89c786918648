"""Reading benchmark results: the markdown tables of ``results.md`` and the headline numbers."""
from __future__ import annotations

import statistics
from typing import Any

from aslnb.course.bench_results import headline, load_results  # noqa: F401 - re-exported

from .recipe import BF16_ACC_GOAL_POINTS, SPEEDUP_GOAL
from .throughput import PIPELINE_GOAL


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
    sc = r.get("scale")
    if sc:  # written by benchmarks.scale (its own run; details in scale.json / scale.md)
        st = sc["settings"]
        s += ["", f"## The set from disk (`python -m benchmarks.scale`: {st['backbone']}, {st['image_size']} px, "
              f"freeze_until {st['freeze_until']}, features read from the disk cache a batch at a time)", "",
              _table(["images", "peak RSS (GiB)", "extraction img/s", "epoch img/s", "feature cache (GiB)"],
                     [[f"{int(n):,}", sc["peak_rss_gib"][n], sc["extraction_img_per_s"][n], sc["epoch_img_per_s"][n],
                       sc["cache_gib"][n]] for n in sc["peak_rss_gib"]])]
        if sc.get("median_img_per_s"):
            m = sc["median_img_per_s"]
            s += ["", f"Training epochs from memory vs from the disk cache at {sc['memory_vs_disk_at']:,} images: "
                  f"{m['memory']:.1f} vs {m['disk']:.1f} img/s, ratio **{sc['ratio_disk_to_memory']}** "
                  f"(goal ≥ {sc['goal_ratio']}). Peak RSS under {sc['goal_peak_rss_gib']:g} GiB: "
                  f"{'met' if sc['peak_rss_below_goal'] else 'NOT met'}."]
    s += ["", "## GPU", "", f"{r['gpu']['status']}.", ""]
    return "\n".join(s)

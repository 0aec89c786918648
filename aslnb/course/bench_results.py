"""The benchmark's results as notebook 04 shows them (the benchmarks themselves are in ``benchmarks/``)."""
from __future__ import annotations

import os
from typing import Any

from ..io import read_json


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

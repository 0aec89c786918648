"""The study's recipe timed with and without the feature cache; bfloat16 against float32 features."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .timing import log, rounded, speed_probe

SPEEDUP_GOAL = 15.0
BF16_ACC_GOAL_POINTS = 0.5


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
        eval_s = rounded(time.perf_counter() - t1)
    ep = res.history["epochs"]
    return {
        "wall_seconds": rounded(wall), "feature_extraction_seconds": res.history["feature_extraction_seconds"],
        "epoch_seconds": [e["seconds"] for e in ep],
        "setup_seconds": rounded(wall - res.history["feature_extraction_seconds"] - sum(e["seconds"] for e in ep)),
        "epochs": len(ep), "split": res.config["split"], "feature_cache_used": res.config["feature_cache"]["used"],
        "val_accuracy_per_epoch": [rounded(e.get("val_accuracy", float("nan")), 4) for e in ep],
        "val_accuracy": rounded(ep[-1].get("val_accuracy", float("nan")), 4),
        "test_accuracy": rounded(metrics["held_out"]["accuracy"], 4) if test else None,
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
        out[p] = {"accuracy": rounded(acc[p], 4), "extraction_seconds": rounded(seconds), "img_per_s": rounded(len(folder) / seconds)}
    out["accuracy_diff_points"] = rounded(100 * (acc["bfloat16"] - acc["float32"]), 2)
    out["prediction_agreement"] = rounded(np.mean(preds["bfloat16"] == preds["float32"]), 4)
    scale = float(np.abs(feats["float32"]).mean()) or 1.0
    out["feature_mean_abs_rel_diff"] = rounded(float(np.abs(feats["bfloat16"] - feats["float32"]).mean()) / scale, 5)
    return out


def recipe(data_dir: Path, cfg: dict, work: Path, verbose: bool) -> tuple[dict, dict]:
    """``(recipe, bf16_recipe)`` sections; see the module docstring."""
    params = dict(cfg["recipe"])
    epochs, naive_epochs = params["epochs"], cfg["naive_epochs"]
    with _no_external():
        log(f"recipe, feature cache on: {epochs} epochs at {params['image_size']} px", verbose)
        test = cfg["evaluate_test"]
        cached, cached_res = _run_recipe(data_dir, work / "cached", {**params, "cache_features": "on"}, verbose,
                                         test=test)
        log("bfloat16 vs float32 features through the same trained model", verbose)
        inference = precision_inference(cached_res, data_dir, params, "test" if test else "val")
        del cached_res
        log(f"recipe, plain fit over images: {naive_epochs} epoch(s) measured", verbose)
        naive, _ = _run_recipe(data_dir, work / "naive",
                               {**params, "epochs": naive_epochs, "cache_features": "off"}, verbose, test=False)
        log("recipe, feature cache on, head trained on bfloat16 features", verbose)
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
                  "estimated_wall_seconds_for_all_epochs": rounded(naive_est),
                  "estimate_method": (f"measured {naive_epochs} epoch(s) of plain model.fit over the images, "
                                      f"scaled to {epochs}: setup + first epoch + {epochs - 1} x "
                                      + ("the fastest measured epoch (conservative: the speed-up is not "
                                         "inflated by a slow phase of the machine)" if len(ep) > 1 else
                                         "first epoch (which includes the one-time tf.function tracing, "
                                         "seconds: a slight overestimate)")),
                  "accuracy_label": f"after {naive_epochs} measured epoch(s), not {epochs}",
                  "test_note": "not evaluated on the test split: compare the two paths after equal epochs "
                               "(equal_epochs) and the cached path's final accuracies"},
        "speedup": rounded(speedup, 1), "goal": SPEEDUP_GOAL, "meets_goal": bool(speedup >= SPEEDUP_GOAL),
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
            "test_accuracy_diff_points": rounded(diff, 2) if test else None, "val_accuracy_diff_points": rounded(vdiff, 2),
            "note": ("a second training run on slightly different inputs: its difference mixes the precision with "
                     "the training trajectory; val accuracy is on bf16 features, test accuracy is the saved model "
                     "run in float32, as deployed"),
        },
    }
    return rec, bf

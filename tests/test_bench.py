"""benchmarks.bench: the quick run writes every field (no timing assertions), and its helpers.

The quick run (tiny sizes, a 40-image subset of the ``tiny_images`` set) takes about a
minute of CPU (marked ``slow``); it checks the script, not the machine.
"""
from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from benchmarks import bench, machine, summary, throughput, timing


@pytest.fixture(scope="module")
def quick(tiny_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    path = bench.run_bench(data=tiny_images, out=out, quick=True, verbose=False)
    assert path == out
    return json.loads(out.read_text()), out.with_suffix(".md").read_text()


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.mark.slow
def test_quick_run_has_every_section(quick):
    r, _ = quick
    for key in ("machine", "matmul", "model_only", "pipeline", "latency", "recipe", "bf16_recipe", "gpu",
                "section_seconds", "total_seconds", "data", "settings"):
        assert key in r, key
    assert r["quick"] is True
    assert r["gpu"]["status"] == machine.NO_GPU or r["gpu"]["visible_gpus"]


@pytest.mark.slow
def test_machine_fields(quick):
    m = quick[0]["machine"]
    assert m["cpu_model"] and m["logical_cores"] >= 1 and m["cores_usable"] >= 1
    assert set(m["flags"]) >= {"avx512_bf16", "amx_bf16"} and isinstance(m["native_bf16"], bool)
    assert m["precision_auto"] in ("float32", "bfloat16")
    assert m["versions"]["tensorflow"] and m["versions"]["keras"]
    assert {"intra_op", "inter_op", "intra_op_effective"} <= set(m["threads"])
    assert len(m["loadavg_start"]) == 3 and len(m["loadavg_end"]) == 3


@pytest.mark.slow
def test_throughput_fields(quick):
    r = quick[0]
    for dt in ("float32", "bfloat16"):
        assert _num(r["matmul"][dt]["gflops"]) and r["matmul"][dt]["gflops"] > 0
    rows = r["model_only"]
    assert {(row["precision"]) for row in rows} == {"float32", "bfloat16"}
    for row in rows:
        for k in ("img_per_s", "gflops_nominal", "gflops_counted_2_per_mac", "nominal_gflop_per_image",
                  "counted_gmacs_per_image"):
            assert _num(row[k]) and row[k] > 0, (k, row)
        assert row["nominal_gflop_per_image"] == pytest.approx(4.1 * (row["image_size"] / 224) ** 2, abs=1e-3)
    (pipe,) = r["pipeline"]
    for k in ("img_per_s", "model_only_img_per_s", "ratio", "decode_only_img_per_s", "decode_headroom"):
        assert _num(pipe[k]) and pipe[k] > 0, k
    assert pipe["goal"] == 0.9 and isinstance(pipe["meets_goal"], bool)
    assert len(pipe["ratio_rounds"]) == r["settings"]["rounds"] and _num(pipe["ratio_median_of_rounds"])
    med = pipe["ratio_median_of_rounds"]  # the goal is judged on the median of rounds, not the best round
    assert pipe["meets_goal"] == (med >= 0.9) or abs(med - 0.9) <= 1e-3
    for row in r["model_only"]:
        assert len(row["machine_probe_gflops_rounds"]) == r["settings"]["rounds"]
        assert all(_num(v) and v > 0 for v in row["machine_probe_gflops_rounds"])
    lat = r["latency"]
    assert _num(lat["predict_on_batch_ms"]["median"]) and _num(lat["keras_predict_ms"]["median"])
    assert _num(lat["batch"]["img_per_s"]) and lat["calls"] >= 1


@pytest.mark.slow
def test_recipe_fields(quick):
    rc = quick[0]["recipe"]
    c, n = rc["cached"], rc["naive"]
    assert c["feature_cache_used"] is True and n["feature_cache_used"] is False
    assert c["epochs"] == rc["settings"]["epochs"] and n["epochs"] == n["measured_epochs"] == 1
    assert _num(c["wall_seconds"]) and _num(c["feature_extraction_seconds"]) and len(c["epoch_seconds"]) == c["epochs"]
    assert _num(n["estimated_wall_seconds_for_all_epochs"]) and "scaled" in n["estimate_method"]
    assert "measured epoch" in n["accuracy_label"]
    assert _num(rc["speedup"]) and rc["goal"] == 15 and isinstance(rc["meets_goal"], bool)
    eq = rc["equal_epochs"]
    assert 0 <= eq["cached_val_accuracy"] <= 1 and 0 <= eq["naive_val_accuracy"] <= 1
    bf = quick[0]["bf16_recipe"]
    inf, tr = bf["inference"], bf["trained_on_bf16"]
    assert inf["split"] == "val" and inf["images"] == c["split"]["val"]  # quick mode has no test evaluation
    for p in ("float32", "bfloat16"):
        assert 0 <= inf[p]["accuracy"] <= 1 and _num(inf[p]["img_per_s"])
        assert 0 <= tr[p]["val_accuracy"] <= 1 and _num(tr[p]["feature_extraction_seconds"])
    # the float32 row runs the trained model exactly as training validated it
    assert inf["float32"]["accuracy"] == pytest.approx(c["val_accuracy"], abs=1e-4)
    assert inf["accuracy_diff_points"] == pytest.approx(
        100 * (inf["bfloat16"]["accuracy"] - inf["float32"]["accuracy"]), abs=0.02)
    assert 0 <= inf["prediction_agreement"] <= 1 and 0 <= inf["feature_mean_abs_rel_diff"] < 0.1
    assert isinstance(bf["meets_goal"], bool) and bf["meets_goal"] == (abs(inf["accuracy_diff_points"]) <= 0.5)
    assert _num(tr["val_accuracy_diff_points"]) and "precision='bfloat16'" in tr["how"]


@pytest.mark.slow
def test_markdown(quick):
    _, md = quick
    for heading in ("## Machine", "## Model-only throughput", "## Input pipeline", "## Prediction latency",
                    "## The recipe", "## bfloat16 vs float32", "## GPU"):
        assert heading in md
    assert "ESTIMATED" in md and "quick" in md and "|---|" in md


def test_count_macs_small_model():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)  # 8*8*4*3*3*3 = 6912
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 8*8*4*9 = 2304
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5)(x)  # 4*5 = 20
    inner = keras.Model(inp, out)
    outer_in = keras.Input((8, 8, 3))
    outer = keras.Model(outer_in, inner(outer_in))
    assert throughput.count_macs(inner) == throughput.count_macs(outer) == 6912 + 2304 + 20


def test_time_calls_runs_at_least_min_calls():
    calls = []
    times = timing.time_calls(lambda: calls.append(1), 0.0, min_calls=3)
    assert len(times) == len(calls) == 3 and all(t >= 0 for t in times)
    assert np.isfinite(times).all()


@pytest.mark.slow
def test_headline_names_machine_and_flags_quick(quick):
    r, _ = quick
    h = bench.headline(r)
    assert "QUICK" in h["measured on"] and r["machine"]["cpu_model"] in h["measured on"]
    assert h["speed-up (goal >= 15x)"] == r["recipe"]["speedup"]
    assert any(k.startswith("pipeline / model-only at 32 px") for k in h)
    assert h["GPU"] == r["gpu"]["status"]


def test_committed_results_are_a_full_run():
    """The committed benchmarks/results.json is a full (not quick) run with every section."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `python -m benchmarks.run` and commit its output")
    r = bench.load_results(path)
    assert r["quick"] is False and r["data"]["images"] >= 1000
    assert {row["image_size"] for row in r["model_only"]} >= {224, 128}
    assert {row["precision"] for row in r["model_only"]} == {"float32", "bfloat16"}
    assert r["recipe"]["settings"]["epochs"] == 20 and r["recipe"]["cached"]["epochs"] == 20
    assert r["recipe"]["settings"].get("fine_tune_epochs", 0) == 0  # head-only: what the cache serves
    h = bench.headline(r)
    assert "QUICK" not in h["measured on"]
    md = summary.to_markdown(r)
    assert f"**{r['recipe']['speedup']}x**" in md and "QUICK" not in md.upper().split("\n")[0]
    assert path.with_suffix(".md").read_text() == md  # results.md is what to_markdown renders


def test_full_recipe_is_head_only_whatever_the_profile_adds():
    """The cached-vs-plain timing trains the head only, for all its epochs.

    The cpu profile has a fine-tuning phase (over images, cached or not) and early
    stopping; picked up by the benchmark they made both paths 10x slower and the
    epoch counts unequal.
    """
    from aslnb.config import TrainConfig, profile

    assert profile("cpu")["fine_tune_epochs"] > 0  # else this test checks nothing
    cfg = TrainConfig.from_params(**bench.FULL["recipe"])
    assert cfg.fine_tune_epochs == 0 and cfg.early_stopping_patience is None
    assert cfg.epochs == 20 and cfg.freeze_until == "all"


def test_bench_keeps_its_entry_points():
    """aslnb/cli.py and notebook 04 import these from benchmarks.bench."""
    assert bench.run_bench and bench.headline is summary.headline and bench.load_results is summary.load_results


def test_decoder_features_compares_the_two_decoders(sample_dir, tmp_path):
    """benchmarks.decoder_features: pixels at most 1 level apart, features close but not equal, JSON written."""
    import json as _json

    from benchmarks import decoder_features

    out = tmp_path / "df.json"
    assert decoder_features.main(["--data", str(sample_dir), "--images", "6", "--out", str(out)]) == 0
    r = _json.loads(out.read_text())
    assert r["images"] == 6 and r["backbone"] == "efficientnet_lite0"
    assert r["pixel_max_abs_diff"] <= 1.0 and 0 < r["pixel_fraction_differing"] < 0.5
    assert 0 < r["feature_mean_rel_diff"] < 0.5 and 0.9 < r["feature_cosine_min"] <= r["feature_cosine_median"] <= 1.0

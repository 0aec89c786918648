"""The fusion recipe: the landmarks part where a hand is found, the image part elsewhere; its run round trip
(train -> evaluate -> predict), a frame without a hand answered by the image part, and that training reads
nothing of the external set."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aslnb.errors import ParameterError, RunDirError
from conftest import grey_frame

ROOT = Path(__file__).resolve().parents[1]
ENV_RUN = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _rule_cfg(with_hand: str) -> dict:
    return {"params": {"features": "fusion", "image_size": 32, "batch_size": 4}, "fusion": {"with_hand": with_hand}}


@pytest.mark.parametrize("with_hand", ["landmarks", "average"])
def test_fusion_rule_takes_each_part_where_it_should(monkeypatch, with_hand):
    """Hand found: the landmarks part (or the mean of both); no hand: the image part, run only where needed."""
    import importlib

    ev = importlib.import_module("aslnb.evaluate")
    from aslnb.runs import FusionParts

    rng = np.random.default_rng(0)
    files = [f"f{i}.jpg" for i in range(5)]
    found = np.array([True, False, True, False, True])
    lm, im = rng.dirichlet(np.ones(3), 5), rng.dirichlet(np.ones(3), 5)
    seen: list[list[str]] = []

    def fake(model, fs, cfg, names, **kw):
        idx = [files.index(f) for f in fs]
        if model == "lm":
            return lm[idx], found[idx]
        seen.append(list(fs))
        return im[idx], None

    monkeypatch.setattr(ev, "run_probabilities", lambda m, fs, cfg, *a, **k: (
        ev._fusion_probabilities(m, fs, cfg, *a, source="r", batch_size=None) if cfg["params"]["features"] == "fusion"
        else fake(m, fs, cfg, *a, **k)))
    parts = FusionParts(("lm", [], {"params": {"features": "landmarks"}}), ("im", [], {"params": {"features": "x"}}))
    probs, got = ev.run_probabilities(parts, files, _rule_cfg(with_hand), ["A", "B", "nothing"])
    want = np.where(found[:, None], (lm + im) / 2 if with_hand == "average" else lm, im)
    np.testing.assert_allclose(probs, want)
    assert got.tolist() == found.tolist()
    assert seen == [files if with_hand == "average" else ["f1.jpg", "f3.jpg"]]
    parts_named = ev.answered_by(_rule_cfg(with_hand), found)
    assert parts_named == [("landmarks+image" if with_hand == "average" else "landmarks") if f else "image"
                           for f in found]
    assert ev.answered_by({"params": {"features": "landmarks"}}, found) is None


def test_fusion_parts_share_the_split_and_seed_and_take_the_landmarks_recipe():
    from aslnb.config import LANDMARKS_RECIPE, TrainConfig
    from aslnb.train.fusion import SHARED, part_params

    cfg = TrainConfig.from_params(features="fusion", backbone="efficientnet_lite0", image_size=64, seed=7,
                                  limit_per_class=9, epochs=3, head_units=[16])
    p = part_params(cfg)
    assert p["image"]["features"] == "image" and p["image"]["epochs"] == 3 and p["image"]["head_units"] == [16]
    assert p["landmarks"]["features"] == "landmarks" and p["landmarks"]["epochs"] == LANDMARKS_RECIPE["epochs"]
    for k in SHARED:
        assert p["landmarks"][k] == p["image"][k] == getattr(cfg, k)
    with pytest.raises(ParameterError, match="fusion"):
        TrainConfig.from_params(features="fusion", distribute="multiworker")


def test_fusion_prediction_line_names_the_part():
    from aslnb.predict import format_result

    r = {"file": "a.jpg", "label": "B", "prob": 0.5, "top_k": [["B", 0.5]], "hand": False, "answered_by": "image"}
    assert format_result(r) == "a.jpg: B (0.500)  by the image part (no hand found)"
    assert format_result({**r, "hand": True, "answered_by": "landmarks"}) == "a.jpg: B (0.500)  by the landmarks part"




def _small_massey(external_dir: Path, dest: Path) -> Path:
    """Symlinks to two Massey images of each of hand1-hand3, letters a and b."""
    for letter in "ab":
        (dest / letter).mkdir(parents=True)
        for signer in ("hand1", "hand2", "hand3"):
            for f in sorted((external_dir / letter).glob(f"{signer}_*"))[:2]:
                (dest / letter / f.name).symlink_to(f)
    return dest


def _train_tiny_fusion(sample_dir: Path, out: Path, ext: Path, monkeypatch) -> tuple:
    """A tiny fusion run on real frames; the files its two parts read (landmarks, image features)."""
    import aslnb.features as feats
    import aslnb.features.landmarks as fl
    from aslnb.config import LANDMARKS_RECIPE
    from aslnb.train import train

    seen: list[str] = []
    real_lm, real_feats = fl.hand_landmarks, feats.extract_features
    monkeypatch.setattr(fl, "hand_landmarks", lambda files, *a, **k: (seen.extend(map(str, files)),
                                                                      real_lm(files, *a, **k))[1])
    monkeypatch.setattr(feats, "extract_features", lambda frozen, folder, *a, **k: (
        seen.extend(map(str, folder.files)), real_feats(frozen, folder, *a, **k))[1])
    monkeypatch.setitem(LANDMARKS_RECIPE, "epochs", 2)
    monkeypatch.setitem(LANDMARKS_RECIPE, "head_units", [16])
    res = train(sample_dir, out, external=ext, verbose=0, features="fusion", backbone="efficientnet_lite0",
                weights="none", image_size=64, freeze_until="all", limit_per_class=8, epochs=1, head_units=[16])
    monkeypatch.setattr(fl, "hand_landmarks", real_lm)
    monkeypatch.setattr(feats, "extract_features", real_feats)
    return res, seen


@pytest.mark.slow
def test_fusion_run_round_trip(landmarker, sample_dir, external_dir, tmp_path, monkeypatch):
    """train --features fusion -> evaluate --external -> predict: predict agrees with evaluate's inference on a
    real frame, a grey frame (no hand) is answered by the image part; training reads only ASL frames."""
    from aslnb.evaluate import evaluate, run_probabilities
    from aslnb.runs import load_run
    from aslnb.train.fusion import WITH_HAND

    ext = _small_massey(external_dir, tmp_path / "massey")
    res, seen = _train_tiny_fusion(sample_dir, tmp_path / "run", ext, monkeypatch)
    assert seen and all(Path(f).is_relative_to(sample_dir) for f in seen)  # nothing of the external set
    run = res.run_dir
    assert {p.name for p in (run / "parts").iterdir()} == {"landmarks", "image"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["fusion"]["with_hand"] == WITH_HAND and cfg["landmarks"]["no_hand"]["train"]["n"] > 0
    parts_cfg = {n: json.loads((run / "parts" / n / "config.json").read_text()) for n in ("landmarks", "image")}
    assert parts_cfg["landmarks"]["data"]["fingerprint"] == parts_cfg["image"]["data"]["fingerprint"] \
        == cfg["data"]["fingerprint"]
    m = evaluate(run, sample_dir, external=ext, verbose=0)
    assert m["fusion"] == {"with_hand": WITH_HAND, "no_hand": "image"}
    assert m["held_out"]["no_hand"]["n"] == m["held_out"]["n_images"]
    assert set(m["external"]["signers"]["per_signer"]) == {"hand1", "hand2", "hand3"}
    model, names, cfg = load_run(run)
    files = [sorted((sample_dir / "B").glob("*.jpg"))[-1], grey_frame(tmp_path / "g.png")]
    probs, found = run_probabilities(model, files, cfg, names)
    image_probs, _ = run_probabilities(*model.image[:1], files[1:], model.image[2], names)
    assert not found[1]
    np.testing.assert_allclose(probs[1], image_probs[0], rtol=1e-5)  # no hand: the image part's answer, not 'nothing'
    r = subprocess.run([sys.executable, "-m", "aslnb", "predict", str(run), *map(str, files), "--json"],
                       capture_output=True, text=True, timeout=300, env=ENV_RUN, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [o["label"] for o in out] == [names[i] for i in probs.argmax(1)]
    np.testing.assert_allclose([o["prob"] for o in out], probs.max(1), rtol=1e-5)
    assert [o["hand"] for o in out] == found.tolist()
    with_hand = "landmarks+image" if WITH_HAND == "average" else "landmarks"
    assert [o["answered_by"] for o in out] == [with_hand if f else "image" for f in found]
    (run / "parts" / "image" / "model.keras").write_bytes((run / "parts" / "landmarks" / "model.keras").read_bytes())
    with pytest.raises(RunDirError, match="image part"):
        load_run(run)


def test_benchmark_fusion_choices_read_only_validation_and_hand1():
    """benchmarks/landmarks: the with_hand rule and the adoption of fusion are decided on the ASL validation split
    and hand1 only; changing any held-out or test-signer number changes neither."""
    import benchmarks.landmarks as bench

    def val(lm, fl, fa):
        return {"landmarks": {"asl_val": lm, "hand1": 0.7}, "fusion:landmarks": {"asl_val": fl, "hand1": 0.7},
                "fusion:average": {"asl_val": fa, "hand1": 0.7}}

    assert bench.choose_with_hand([val(0.8, 0.85, 0.9)]) == "average"
    assert bench.choose_with_hand([val(0.8, 0.85, 0.85)]) == "landmarks"  # a tie keeps the simpler rule
    assert bench.choose_with_hand([val(0.8, 0.85, 0.9), val(0.8, 0.85, 0.7)]) == "landmarks"  # the mean over seeds
    seeds = [{"validation": val(0.80 + d, 0.86 + d, 0.0), "test": {"accuracy": t}, "asl_held_out": {"accuracy": t}}
             for d, t in ((0.0, 0.1), (0.01, 0.9), (0.02, 0.5))]
    v = bench.fusion_verdict(seeds, "landmarks")
    assert v["adopt"] and v["gap"] == pytest.approx(0.03) and v["spread"] == pytest.approx(0.005)
    for s in seeds:
        s["test"]["accuracy"] = s["asl_held_out"]["accuracy"] = 0.0
    assert bench.fusion_verdict(seeds, "landmarks") == v
    seeds[0]["validation"]["fusion:landmarks"]["asl_val"] = 0.70  # a seed that disagrees widens the spread
    assert not bench.fusion_verdict(seeds, "landmarks")["adopt"]


def test_fusion_rule_and_hands_profile_follow_the_benchmark():
    """aslnb's with_hand rule is the one benchmarks/landmarks.json chose, and the hands profile is the fusion recipe
    exactly when the benchmark's verdict (validation + hand1 over seeds) adopted it."""
    from aslnb.config import HANDS_RECIPE, profile
    from aslnb.train.fusion import WITH_HAND

    result = json.loads((ROOT / "benchmarks" / "landmarks.json").read_text())
    assert result["fusion"]["with_hand"] == WITH_HAND
    adopted = result["fusion"]["verdict"]["adopt"]
    assert (HANDS_RECIPE["features"] == "fusion") == adopted
    if adopted:
        hands = profile("hands")
        assert {k: hands[k] for k in result["fusion"]["params"]} == result["fusion"]["params"]

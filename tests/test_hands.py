"""Hands without their room (aslnb.data.hands), cached hand views (aslnb.features.views), augmentation layers."""
from __future__ import annotations

import numpy as np
import pytest

from aslnb.data import hands
from aslnb.data.images import load_images
from aslnb.data.scan import scan_folder
from aslnb.errors import DataError


def _synthetic(seed: int = 0):
    """A grey-wall room and the same room with a skin-coloured 'hand' rectangle coming up from the bottom."""
    rng = np.random.default_rng(seed)
    room = np.clip(200 + rng.normal(0, 3, (hands.WORK, hands.WORK, 3)), 0, 255).astype(np.uint8)
    frame = room.copy()
    frame[60:, 50:80] = (200, 140, 110)  # skin-like: high Cr - Cb
    truth = np.zeros((hands.WORK, hands.WORK), bool)
    truth[60:, 50:80] = True
    return room, frame, truth


def test_hand_mask_finds_the_hand_not_the_room():
    room, frame, truth = _synthetic()
    bg = hands.Background.from_images([room])
    m = hands.hand_mask(frame, bg)
    iou = (m & truth).sum() / (m | truth).sum()
    assert iou > 0.9
    assert not hands.hand_mask(room, bg).any()  # the empty room has no hand


def test_compose_pastes_the_hand_on_a_black_background_and_crops_it():
    room, frame, truth = _synthetic()
    out = hands.compose(frame, truth, "black", np.random.default_rng(0), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # cropped around the hand: it fills most of the width; the corners are (near) black
    skin = hands.chroma(out) > 30
    assert skin.mean() > 0.3
    assert out[0, 0].max() < 30 and out[0, -1].max() < 30


@pytest.mark.parametrize("kind", hands.BACKGROUNDS)
def test_backgrounds(kind):
    b = hands.background(kind, 32, np.random.default_rng(1))
    assert b.shape == (32, 32, 3) and 0 <= b.min() and b.max() <= 255


def test_unknown_background_and_no_room_frames_are_refused():
    with pytest.raises(DataError, match="background kind"):
        hands.background("jungle", 8, np.random.default_rng(0))
    with pytest.raises(DataError, match="nothing"):
        hands.Background.from_images([], source="somewhere")


def test_augmenter_keeps_shape_and_range_and_strength_zero_only_flips():
    from aslnb.models.augment import augment_batch, augmenter

    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    y = augment_batch(augmenter(1.0, seed=1), x)
    assert y.shape == x.shape and y.dtype == np.uint8 and not np.array_equal(x, y)
    z = augment_batch(augmenter(0.0, seed=1), x)
    assert all(np.array_equal(a, b) or np.array_equal(a[:, ::-1], b) for a, b in zip(x, z))


def test_hand_views_are_made_once_then_reused(sample_dir, tmp_path):
    from aslnb.data.splits import limit_folder
    from aslnb.features.views import hand_views

    train = limit_folder(scan_folder(sample_dir), 4)
    v = hand_views(train, tmp_path, n_views=2, strength=0.5, size=32, seed=0)
    assert len(v) == 2 * len(train) and (v.labels[: len(train)] == train.labels).all()
    imgs = load_images(v.files, 32)
    assert imgs.shape == (len(v), 32, 32, 3)
    mtimes = [p.stat().st_mtime_ns for p in map(__import__("pathlib").Path, v.files)]
    again = hand_views(train, tmp_path, n_views=2, strength=0.5, size=32, seed=0)
    assert list(again.files) == list(v.files)
    assert [p.stat().st_mtime_ns for p in map(__import__("pathlib").Path, again.files)] == mtimes
    assert len(list(tmp_path.iterdir())) == 1  # no partial folder left behind


def test_hand_views_need_the_empty_room(sample_dir, tmp_path):
    from aslnb.data.splits import limit_folder
    from aslnb.features.views import hand_views

    train = limit_folder(scan_folder(sample_dir), 4)
    no_room = train.subset(train.labels != train.class_names.index("nothing"))
    with pytest.raises(DataError, match="nothing"):
        hand_views(no_room, tmp_path, n_views=1, size=32)


def test_train_with_hand_views_adds_training_views_only(sample_dir, tmp_path):
    """hand_views adds views of the training split only; the held-out split and prediction are unchanged."""
    from aslnb.io import read_json
    from aslnb.predict import predict
    from aslnb.train import train

    common = dict(image_size=32, epochs=1, limit_per_class=8, weights="none", freeze_until="all", head_units=[8],
                  backbone="efficientnet_lite0")
    plain = train(sample_dir, tmp_path / "plain", verbose=0, feature_cache_dir=tmp_path / "cache", **common)
    views = train(sample_dir, tmp_path / "views", verbose=0, feature_cache_dir=tmp_path / "cache", hand_views=1,
                  **common)
    sp, sv = plain.config["split"], views.config["split"]
    assert sv["train"] == 2 * sp["train"] and sv["val"] == sp["val"] and sv["test"] == sp["test"]
    assert read_json(tmp_path / "views" / "config.json")["params"]["hand_views"] == 1
    assert len(list((tmp_path / "cache").glob("views-*"))) == 1
    # prediction needs no hand views (they are training-only): a file is resized and classified
    out = predict(tmp_path / "views", [next((sample_dir / "A").iterdir())], model=views.model)
    assert out[0]["label"] in views.config["data"]["class_names"]


def test_kept_recipe_is_the_benchmarks_choice_on_the_validation_signer():
    """The recipe notebook 06 and the README use is the lever benchmarks/other_hands.json chose on hand1."""
    from pathlib import Path

    from aslnb.course.hands import KEPT, LEVERS, RECIPE
    from aslnb.io import read_json

    r = read_json(Path(__file__).resolve().parent.parent / "benchmarks" / "other_hands.json")
    assert r["protocol"]["validation_signer"] == "hand1" and "hand1" not in r["protocol"]["test_signers"]
    floor = next(row["asl_held_out"]["accuracy"] for row in r["rows"] if row["lever"] == "baseline")
    best = max((row for row in r["rows"] if row["asl_held_out"]["accuracy"] >= floor),
               key=lambda row: row["validation"]["accuracy"])
    assert best["lever"] == r["best"] == KEPT and RECIPE == LEVERS[KEPT][1]
    assert {row["lever"] for row in r["rows"]} <= set(LEVERS)


@pytest.mark.parametrize("params, match", [({"hand_views": -1}, "hand_views"), ({"hand_views": 1.5}, "hand_views"),
                                           ({"view_augment": 3.0}, "view_augment")])
def test_bad_hand_view_settings_are_refused(params, match):
    from aslnb.config import TrainConfig
    from aslnb.errors import ParameterError

    with pytest.raises(ParameterError, match=match):
        TrainConfig.from_params(backbone="efficientnet_lite0", image_size=32, **params)

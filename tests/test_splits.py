"""Chunk, blocked and random train/val/test splits."""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from aslnb.data import DEFAULT_GAP, ImageFolder, Split, scan_folder, split_folder
from aslnb.errors import ParameterError


def frame_of(path) -> int:
    """The frame number, parsed independently of the package."""
    return int(re.search(r"(\d+)$", Path(path).stem).group(1))


def parts(split: Split) -> dict[str, ImageFolder]:
    return {"train": split.train, "val": split.val, "test": split.test}


def per_class(folder: ImageFolder, lab: int) -> list[str]:
    return folder.files[folder.labels == lab].tolist()


def check_partition(split: Split, full: ImageFolder, *, everything: bool) -> None:
    """Disjoint parts, labels carried over, union within (or equal to) the full set."""
    label_of = dict(zip(full.files.tolist(), full.labels.tolist()))
    sets = {k: set(v.files.tolist()) for k, v in parts(split).items()}
    for k, v in parts(split).items():
        assert v.class_names == full.class_names
        assert len(sets[k]) == len(v)  # no duplicates
        for f, lab in zip(v.files.tolist(), v.labels.tolist()):
            assert label_of[f] == lab
    assert not sets["train"] & sets["val"]
    assert not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    union = sets["train"] | sets["val"] | sets["test"]
    assert union <= set(label_of)
    assert len(full) - len(union) == split.dropped
    assert split.sizes() == {"train": len(split.train), "val": len(split.val), "test": len(split.test),
                             "dropped": split.dropped}
    if everything:
        assert union == set(label_of)


@pytest.fixture(scope="module")
def sample(tiny_images):
    return scan_folder(tiny_images)


@pytest.fixture(scope="module")
def blocked(sample):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every sample file has a frame number: no fallback warning
        return split_folder(sample, "blocked", seed=0)


# --------------------------------------------------------------------------- blocked


@pytest.mark.parametrize("gap", [DEFAULT_GAP, 60])
def test_blocked_guard_band(sample, gap):
    split = split_folder(sample, "blocked", seed=0, gap=gap)
    assert split.method == "blocked"
    for lab, name in enumerate(sample.class_names):
        train = np.array([frame_of(f) for f in per_class(split.train, lab)])
        held = np.array([frame_of(f) for f in per_class(split.val, lab) + per_class(split.test, lab)])
        assert len(train) and len(held)
        nearest = np.abs(train[:, None] - held[None, :]).min(axis=1)
        assert nearest.min() > gap, f"class {name}: a training frame is within {gap} of a held-out frame"
    # sample frames lie ~15 apart, so a guard band of >= 20 must drop some
    assert split.dropped > 0
    check_partition(split, sample, everything=False)


def test_blocked_gap_zero_drops_nothing(sample):
    split = split_folder(sample, "blocked", seed=0, gap=0)
    assert split.dropped == 0
    check_partition(split, sample, everything=True)


def test_default_is_chunk(sample):
    from aslnb.config import TrainConfig

    default = split_folder(sample, seed=0)
    chunk = split_folder(sample, "chunk", seed=0)
    assert default.method == "chunk" == TrainConfig().split
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(parts(default)[k].files, parts(chunk)[k].files)


# --------------------------------------------------------------------------- chunk


@pytest.mark.parametrize("gap", [0, DEFAULT_GAP, 100])
@pytest.mark.parametrize("val_fraction, test_fraction", [(0.1, 0.2), (0.0, 0.25), (0.2, 0.1)])
def test_chunk_holds_out_the_highest_frames(sample, gap, val_fraction, test_fraction):
    split = split_folder(sample, "chunk", val_fraction=val_fraction, test_fraction=test_fraction, gap=gap)
    assert split.method == "chunk"
    check_partition(split, sample, everything=gap == 0)
    dropped = 0
    for lab, name in enumerate(sample.class_names):
        frames = sorted(frame_of(f) for f in per_class(sample, lab))
        n = len(frames)
        n_test, n_val = round(test_fraction * n), round(val_fraction * n)
        test = sorted(frame_of(f) for f in per_class(split.test, lab))
        val = sorted(frame_of(f) for f in per_class(split.val, lab))
        train = np.array([frame_of(f) for f in per_class(split.train, lab)])
        assert test == frames[n - n_test:], name  # the top frames, one contiguous chunk
        assert val == frames[n - n_test - n_val:n - n_test], name  # the chunk right below it
        held_min = min(val + test)
        assert train.max() < held_min - gap, f"class {name}: a training frame inside the guard band"
        # exactly the frames in the guard band are dropped, no more
        expected_train = [f for f in frames[:n - n_test - n_val] if f < held_min - gap]
        assert sorted(train.tolist()) == expected_train, name
        dropped += n - n_test - n_val - len(expected_train)
    assert split.dropped == dropped
    if gap >= DEFAULT_GAP:  # sample frames lie ~15 apart: a guard of 20 frame numbers drops some
        assert split.dropped > 0


def test_chunk_is_deterministic_and_ignores_the_seed(sample):
    a, b, c = (split_folder(sample, "chunk", seed=s) for s in (0, 0, 7))
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(parts(a)[k].files, parts(b)[k].files)
        np.testing.assert_array_equal(parts(a)[k].files, parts(c)[k].files)
    assert a.describe()["method"] == "chunk"


def test_chunk_test_frames_far_from_training(sample):
    """Every test frame lies further from training than the validation chunk is wide."""
    split = split_folder(sample, "chunk")
    for lab in range(len(sample.class_names)):
        train = np.array([frame_of(f) for f in per_class(split.train, lab)])
        test = np.array([frame_of(f) for f in per_class(split.test, lab)])
        val = np.array([frame_of(f) for f in per_class(split.val, lab)])
        assert np.abs(test[:, None] - train[None, :]).min() > val.max() - val.min() + DEFAULT_GAP


def test_chunk_class_too_small(tmp_dataset):
    folder = scan_folder(tmp_dataset({"A": 2, "B": 5}))
    with pytest.raises(ParameterError, match="random") as err:
        split_folder(folder, "chunk", val_fraction=0.1, test_fraction=0.2)
    assert "\n" not in str(err.value)


def test_blocked_partition(sample, blocked):
    check_partition(blocked, sample, everything=False)
    assert blocked.describe() == {"method": "blocked", "seed": 0, **blocked.sizes()}


@pytest.mark.parametrize(
    "val_fraction, test_fraction, n_blocks",
    [(0.1, 0.2, 20), (0.1, 0.3, 10), (0.0, 0.25, 8), (0.2, 0.0, 5)],
)
def test_blocked_sizes_are_whole_blocks(sample, val_fraction, test_fraction, n_blocks):
    split = split_folder(sample, "blocked", val_fraction=val_fraction, test_fraction=test_fraction,
                         seed=3, n_blocks=n_blocks)
    for lab, name in enumerate(sample.class_names):
        frames = sorted(frame_of(f) for f in per_class(sample, lab))
        n = len(frames)
        block = math.ceil(n / n_blocks)
        position = {fr: i for i, fr in enumerate(frames)}
        for part, fraction in (("val", val_fraction), ("test", test_fraction)):
            held = [frame_of(f) for f in per_class(parts(split)[part], lab)]
            assert abs(len(held) - fraction * n) <= block, (name, part, len(held))
            if n % n_blocks == 0:  # equal blocks: held-out frames fill whole blocks
                blocks_hit = {position[fr] // block for fr in held}
                assert len(blocks_hit) == round(fraction * n_blocks), (name, part)
                assert len(held) == len(blocks_hit) * block, (name, part)


def test_blocked_same_seed_same_split(sample, blocked):
    again = split_folder(sample, "blocked", seed=0)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(parts(again)[k].files, parts(blocked)[k].files)
        np.testing.assert_array_equal(parts(again)[k].labels, parts(blocked)[k].labels)
    assert again.dropped == blocked.dropped


def test_blocked_other_seed_other_blocks(sample, blocked):
    other = split_folder(sample, "blocked", seed=1)
    assert other.seed == 1
    differ = 0
    for lab in range(len(sample.class_names)):
        h0 = set(per_class(blocked.val, lab) + per_class(blocked.test, lab))
        h1 = set(per_class(other.val, lab) + per_class(other.test, lab))
        differ += h0 != h1
    # ~1 in 580,000 that one class gets the same blocks back; demand most differ
    assert differ >= len(sample.class_names) - 2
    check_partition(other, sample, everything=False)


def test_blocked_falls_back_to_random_without_frame_numbers(tmp_dataset, caplog):
    root = tmp_dataset({"A": 10, "B": 10})
    for cls in ("A", "B"):
        for i, p in enumerate(sorted((root / cls).iterdir())):
            p.rename(p.with_name(f"img_{'abcdefghij'[i]}.jpg"))
    folder = scan_folder(root)
    assert len(folder) == 20
    with caplog.at_level("WARNING", logger="aslnb.data"):
        split = split_folder(folder, "blocked", val_fraction=0.1, test_fraction=0.2, seed=0)
    (message,) = [r.getMessage() for r in caplog.records if "no frame number" in r.getMessage()]
    assert "img_" in message and "20 files" in message and "\n" not in message
    check_partition(split, folder, everything=True)  # random fallback drops nothing
    assert split.dropped == 0
    for lab in range(2):
        assert len(per_class(split.val, lab)) == 1
        assert len(per_class(split.test, lab)) == 2


def test_blocked_class_too_small(tmp_dataset):
    folder = scan_folder(tmp_dataset({"A": 2, "B": 5}))
    with pytest.raises(ParameterError, match="random") as err:
        split_folder(folder, "blocked", val_fraction=0.1, test_fraction=0.2)
    assert "\n" not in str(err.value)
    split = split_folder(folder, "random", val_fraction=0.1, test_fraction=0.2)
    check_partition(split, folder, everything=True)


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("method", ["chunk", "blocked", "random"])
@pytest.mark.parametrize(
    "val_fraction, test_fraction",
    [(-0.1, 0.2), (0.1, -0.01), (1.0, 0.0), (0.1, 1.5), (0.5, 0.5), (0.6, 0.6), ("0.1", 0.2), (None, 0.2),
     (float("nan"), 0.2)],
)
def test_bad_fractions(sample, method, val_fraction, test_fraction):
    with pytest.raises(ParameterError, match="fraction") as err:
        split_folder(sample, method, val_fraction=val_fraction, test_fraction=test_fraction)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method", ["kfold", "Blocked", "", None])
def test_unknown_method(sample, method):
    with pytest.raises(ParameterError) as err:
        split_folder(sample, method)
    msg = str(err.value)
    assert "blocked" in msg and "random" in msg and "chunk" in msg and "\n" not in msg


# --------------------------------------------------------------------------- random


@pytest.mark.parametrize("val_fraction, test_fraction", [(0.1, 0.2), (0.15, 0.15), (0.0, 0.3), (0.33, 0.0)])
def test_random_is_stratified(sample, val_fraction, test_fraction):
    split = split_folder(sample, "random", val_fraction=val_fraction, test_fraction=test_fraction, seed=5)
    assert split.method == "random"
    assert split.dropped == 0
    check_partition(split, sample, everything=True)
    for lab, name in enumerate(sample.class_names):
        n = int((sample.labels == lab).sum())
        for part, fraction in (("val", val_fraction), ("test", test_fraction)):
            got = len(per_class(parts(split)[part], lab))
            assert abs(got - fraction * n) <= 1, (name, part, got)


def test_random_is_seeded(sample):
    a = split_folder(sample, "random", seed=11)
    b = split_folder(sample, "random", seed=11)
    c = split_folder(sample, "random", seed=12)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(parts(a)[k].files, parts(b)[k].files)
    assert set(a.test.files.tolist()) != set(c.test.files.tolist())
    assert set(a.val.files.tolist()) != set(c.val.files.tolist())


def test_random_mixes_frames(sample):
    """A random split does hold out near neighbours of training frames (why blocked exists)."""
    split = split_folder(sample, "random", seed=0)
    lab = 0
    train = np.array([frame_of(f) for f in per_class(split.train, lab)])
    test = np.array([frame_of(f) for f in per_class(split.test, lab)])
    assert np.abs(train[:, None] - test[None, :]).min() <= DEFAULT_GAP


@pytest.mark.parametrize("method", ["chunk", "blocked"])
def test_class_too_small_names_the_class_and_its_folder(tmp_dataset, method):
    """Issue 25, case 20: "only 2 images in a class" did not say which class, nor where."""
    root = tmp_dataset({"A": 5, "B": 2, "C": 5})
    folder = scan_folder(root)
    with pytest.raises(ParameterError) as err:
        split_folder(folder, method, val_fraction=0.1, test_fraction=0.2)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{root / 'B'}: ")
    assert "only 2 images in class 'B'" in msg and "--split random" in msg
    assert "'A'" not in msg and "'C'" not in msg

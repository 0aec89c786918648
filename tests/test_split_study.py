"""Notebook 01's split study: frame gaps, equal training sizes, the probe per split, the choice rule."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from aslnb.course import split_study
from aslnb.course.split_study import SplitCase, SplitResult, choose_split, even_subset, run_study, frame_gaps
from aslnb.data import scan_folder
from aslnb.errors import ParameterError
from aslnb.intervals import Interval


@pytest.fixture(scope="module")
def folder(tiny_images):
    return scan_folder(tiny_images)


@pytest.fixture(scope="module")
def features(folder):
    """A weak class signal plus a large, class-specific drift over the frames: nearer frames look more alike."""
    rng = np.random.default_rng(0)
    frames = split_study.frame_array(folder).astype(float)
    k, dim = len(folder.class_names), 16
    centre = rng.normal(0, 0.6, (k, dim))
    phase, speed = rng.uniform(0, 6.3, (k, dim)), rng.uniform(1, 4, (k, dim))
    y = folder.labels
    drift = 2.0 * np.sin(frames[:, None] / 3000.0 * speed[y] + phase[y])
    return (centre[y] + drift + rng.normal(0, 0.5, (len(folder), dim))).astype(np.float32)


def test_frame_gaps_match_brute_force():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 60)
    frames = rng.choice(3000, 60, replace=False)
    train, test = np.arange(0, 40), np.arange(40, 60)
    got = frame_gaps(labels, frames, train, test)
    for i, t in enumerate(test):
        same = train[labels[train] == labels[t]]
        want = np.abs(frames[same] - frames[t]).min() if len(same) else np.inf
        assert got[i] == want


def test_even_subset_caps_per_class_spread_over_frames(folder):
    frames = split_study.frame_array(folder)
    pos = np.arange(len(folder))
    keep = even_subset(folder.labels, frames, pos, 10)
    counts = np.bincount(folder.labels[keep], minlength=len(folder.class_names))
    assert (counts == 10).all()
    a = keep[folder.labels[keep] == 0]
    all_a = np.sort(frames[folder.labels == 0])
    assert frames[a].min() == all_a[0] and frames[a].max() == all_a[-1]  # spread end to end
    assert len(even_subset(folder.labels, frames, pos, 10_000)) == len(folder)


def test_run_study_gaps_sizes_and_intervals(folder, features):
    cases = split_study.study_cases((20, 100))
    assert [c.method for c in cases] == ["random", "blocked", "blocked", "chunk"]
    results = run_study(folder, features, cases, seed=0, n_boot=200, max_iter=200)
    by = {r.case.label: r for r in results}
    assert by["random"].gap_min <= 20  # random: test frames next to training frames
    assert by["blocked, guard 20"].gap_min > 20
    assert by["blocked, guard 100"].gap_min > 100
    assert by["chunk (top 20 %)"].gap_median > by["blocked, guard 20"].gap_median
    for r in results:
        iv = r.interval
        assert iv.low <= iv.accuracy <= iv.high
        assert r.n_train == len(r.split.train) and iv.n == len(r.split.test)
        assert set(r.row()) >= {"split", "gap median", "accuracy", "95% low", "95% high"}
        assert r.metrics()["accuracy"] == round(iv.accuracy, 4)
    # the drift makes far test frames harder: random beats the chunk
    assert by["random"].interval.accuracy > by["chunk (top 20 %)"].interval.accuracy
    capped = run_study(folder, features, cases[:1], train_per_class=20, n_boot=200, max_iter=200)[0]
    assert capped.n_train == 20 * len(folder.class_names)
    again = run_study(folder, features, cases[:1], train_per_class=20, n_boot=200, max_iter=200)[0]
    assert again.interval == capped.interval  # deterministic


def test_run_study_refuses_mismatched_features(folder, features):
    with pytest.raises(ParameterError, match="rows"):
        run_study(folder, features[:10], split_study.study_cases((20,)))


def _result(label: str, method: str, acc: float, half: float, gap: float, n_train: int = 100) -> SplitResult:
    iv = Interval(acc, acc - half, acc + half, 0.95, 100, 10, 100)
    split = SimpleNamespace(train=[None] * n_train)  # choose_split reads only len(split.train)
    return SplitResult(SplitCase(label, method), split=split, n_train=40, gap_median=gap, gap_min=0.0,
                       interval=iv)


def test_choose_split_first_plateau_then_most_training():
    results = [_result("random", "random", 0.95, 0.01, 8), _result("g20", "blocked", 0.80, 0.04, 70, 3700),
               _result("chunk", "chunk", 0.50, 0.07, 600, 4000), _result("g50", "blocked", 0.70, 0.05, 100, 3200),
               _result("g200", "blocked", 0.45, 0.06, 360, 1500)]
    # ordered by gap: g20, g50 (later splits score below their intervals), g200 (chunk is within it)
    assert split_study.plateau_start(results).case.label == "g200"
    assert choose_split(results).case.label == "chunk"  # beyond g200, the chunk keeps more training images
    flat = [_result("random", "random", 0.95, 0.01, 8), _result("g20", "blocked", 0.60, 0.05, 70, 3700),
            _result("g50", "blocked", 0.58, 0.05, 100, 3200), _result("chunk", "chunk", 0.57, 0.05, 600, 3600)]
    assert split_study.plateau_start(flat).case.label == "g20"
    assert choose_split(flat).case.label == "g20"
    falling = [_result("g20", "blocked", 0.8, 0.01, 70), _result("g50", "blocked", 0.6, 0.01, 100)]
    assert split_study.plateau_start(falling).case.label == "g50"  # none qualifies: the furthest out
    with pytest.raises(ParameterError):
        choose_split(flat[:1])

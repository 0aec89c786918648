"""Block-bootstrap confidence intervals (aslnb.intervals)."""
import numpy as np
import pytest

from aslnb.intervals import bootstrap_accuracy, frame_runs


def test_interval_contains_accuracy_and_is_reproducible():
    rng = np.random.default_rng(1)
    correct = rng.random(500) < 0.7
    a, b = bootstrap_accuracy(correct, seed=3), bootstrap_accuracy(correct, seed=3)
    assert a == b
    assert a.low < a.accuracy < a.high and a.accuracy == pytest.approx(correct.mean())
    assert a.groups == a.n == 500
    # binomial standard error ~0.0205: a 95 % interval about 0.08 wide
    assert 0.06 < a.high - a.low < 0.10


def test_correlated_groups_widen_the_interval():
    # 20 groups of 50 identical outcomes: worth 20 trials, not 1,000
    per_group = np.repeat(np.random.default_rng(0).random(20) < 0.6, 50)
    groups = np.repeat(np.arange(20), 50)
    naive = bootstrap_accuracy(per_group)
    blocked = bootstrap_accuracy(per_group, groups)
    assert blocked.groups == 20
    assert (blocked.high - blocked.low) > 3 * (naive.high - naive.low)


def test_frame_runs_split_on_gaps_and_classes():
    labels = [0, 0, 0, 0, 1, 1, 1]
    frames = [10, 25, 300, 320, 10, 11, None]
    g = frame_runs(labels, frames, max_gap=30)
    assert g[0] == g[1] and g[2] == g[3] and g[0] != g[2]
    assert g[4] == g[5] and g[4] != g[0]  # same frames, other class: another run
    assert g[6] not in set(g[:6])  # no frame number: its own group


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no items"):
        bootstrap_accuracy([])
    with pytest.raises(ValueError, match="entries"):
        bootstrap_accuracy([1, 0, 1], groups=[0, 1])
    with pytest.raises(ValueError, match="level"):
        bootstrap_accuracy([1, 0], level=95)

"""aslnb.io: the atomic writer leaves either the old file or the new one, never a temporary."""
from __future__ import annotations

import numpy as np
import pytest

from aslnb.io import atomic_path, read_json, write_json, write_text


def test_atomic_path_replaces_and_keeps_suffixes(tmp_path):
    target = tmp_path / "sub" / "m.weights.npy"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".part.weights.npy") and tmp != target
        np.save(tmp, np.arange(3))  # NumPy would append .npy to a name without it
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.weights.npy"]


def test_atomic_path_error_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_json_round_trips_numpy(tmp_path):
    write_json(tmp_path / "x.json", {"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(2), "p": tmp_path})
    assert read_json(tmp_path / "x.json") == {"a": 3, "b": 0.5, "c": [0, 1], "p": str(tmp_path)}
    assert (tmp_path / "x.json").read_text().endswith("}\n")

"""Training from the disk cache a batch at a time (issue 16): same numbers as from memory, nothing left behind.

Also the scale benchmark's own parts (the synthetic set, the summary); the
benchmark itself (``python -m benchmarks.scale``) runs for an hour and is not a test.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from aslnb.features.store import FeatureStore
from aslnb.train import train

# 4 classes x 10 images, conv3 boundary: spatial features, validation batches of 32
TINY = dict(image_size=32, weights="none", freeze_until="conv3", epochs=2, batch_size=8, head_units=[8], seed=0,
            fine_tune_epochs=1)


def _history(run):
    return [{k: v for k, v in e.items() if k not in ("seconds", "images_per_second")} for e in run.history["epochs"]]


@pytest.mark.slow
def test_training_from_the_disk_cache_equals_training_from_memory(tmp_dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    data = tmp_dataset({c: 10 for c in "ABCD"})
    cache = tmp_path / "cache"
    memory = train(data, tmp_path / "memory", verbose=0, feature_cache_dir=cache, **TINY)

    def no_loading(self, dtype=None, copy=None):
        raise AssertionError("the store was loaded whole")

    monkeypatch.setattr(FeatureStore, "__array__", no_loading)
    reads = []
    real = FeatureStore.__getitem__
    monkeypatch.setattr(FeatureStore, "__getitem__", lambda self, idx: reads.append(len(idx)) or real(self, idx))
    disk = train(data, tmp_path / "disk", verbose=0, feature_cache_dir=cache, features_in_memory_max_bytes=0, **TINY)
    assert reads and max(reads) <= TINY["batch_size"] * 4  # batches (validation: whole batches of the val split)
    assert _history(disk) == _history(memory)
    for a, b in zip(memory.model.get_weights(), disk.model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_large_set_without_a_cache_folder_streams_from_a_temporary_one(tmp_dataset, tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    data = tmp_dataset({c: 10 for c in "ABCD"})
    res = train(data, tmp_path / "run", verbose=2, features_in_memory_max_bytes=0, **{**TINY, "fine_tune_epochs": 0})
    out = capsys.readouterr().out
    assert "exceed the in-memory limit (0.00 GiB, features_in_memory_max_bytes; --features-in-memory-max-bytes" in out
    assert f"cached in {res.run_dir / 'checkpoints' / 'features'} (the run's partial state" in out
    assert "--feature-cache-dir keeps them" in out
    assert json.loads((res.run_dir / "config.json").read_text())["finished"]
    assert list(tmp.rglob("*features-*")) == [] and not (res.run_dir / "checkpoints" / "features").exists(), \
        "the temporary cache is deleted with the run"


def test_synthetic_set_repeats_the_sample_under_new_frame_numbers(tmp_dataset, tmp_path):
    from aslnb.data import frame_number, scan_folder
    from benchmarks.scale import FRAME_SPAN, synthetic_set

    sample = tmp_dataset({"A": 3, "B": 2})
    n = synthetic_set(sample, 3, tmp_path / "set")
    folder = scan_folder(tmp_path / "set")
    assert n == len(folder) == 15 and folder.class_names == ["A", "B"]
    frames = sorted(frame_number(Path(f).name) for f in folder.files[folder.labels == 0])
    originals = sorted(frame_number(p.name) for p in (sample / "A").iterdir())
    assert frames == sorted(c * FRAME_SPAN + f for c in range(3) for f in originals)
    first = sorted((tmp_path / "set" / "A").iterdir())[0]
    assert os.stat(first).st_nlink == 4  # hard links (the original and its 3 copies): no image data copied


def test_scale_summary_and_table():
    from benchmarks.scale import summary, to_markdown

    row = dict(train_images=70, val_images=10, peak_rss_gib=2.0, epoch_img_per_s=[90.0, 100.0],
               extraction_img_per_s=30.0, cache_gib=0.1, wall_seconds=9.0,
               rss_end_gib={"anonymous": 1.5, "file_backed": 0.2})
    result = {"settings": {"image_size": 224}, "started": "now", "compare": {},
              "machine": {"cpu_model": "cpu", "logical_cores": 2, "loadavg_start": [0], "loadavg_end": [0]},
              "sizes": [{**row, "images": 100, "copies": 1}, {**row, "images": 500, "copies": 5, "peak_rss_gib": 9.1}]}
    s = summary(result)
    assert s["peak_rss_gib"] == {"100": 2.0, "500": 9.1} and not s["peak_rss_below_goal"]
    assert s["peak_rss_growth_gib"] == pytest.approx(7.1)
    result["summary"] = s
    assert "| 500 | 80 | 9.1 |" in to_markdown(result)

"""The data path: tf.io vs Pillow decoding, the Pillow fallback, the sharded feature store.

Tolerance: ``decoder='tf'`` resizes in float and rounds once, Pillow in two
fixed-point passes rounded in between, so resized pixels may differ by 1 level
(measured max 1 on all 5,800 sample images at 128 and 224 px); decoding itself
(no resize) must be identical.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from aslnb import features as F  # noqa: E402
from aslnb.data.images import load_image, tf_decodable  # noqa: E402
from aslnb.data.pipeline import DECODER, DECODERS, decode_files, decode_tf, make_dataset, tf_routes  # noqa: E402
from aslnb.errors import DataError, ParameterError  # noqa: E402
from aslnb.features.store import FeatureStore, open_store, write_store  # noqa: E402


def _decode_all(files, size, decoder):
    ds = make_dataset((np.asarray(files), np.zeros(len(files), np.int64)), size, 4, with_labels=False, decoder=decoder)
    return np.concatenate([b.numpy() for b in ds])


@pytest.fixture(scope="module")
def sample_files(sample_dir):
    files = sorted(str(p) for p in sample_dir.glob("*/*.jpg"))
    return files[:: max(1, len(files) // 6)][:6]


def test_tf_decoding_matches_pillow(sample_files):
    assert all(tf_decodable(f) for f in sample_files)
    native = Image.open(sample_files[0]).size[0]
    assert all(Image.open(f).size == (native, native) for f in sample_files)
    # no resize: tf.io's JPEG decode (INTEGER_ACCURATE) gives Pillow's pixels exactly
    pil, tfio = _decode_all(sample_files, native, "pil"), _decode_all(sample_files, native, "tf")
    np.testing.assert_array_equal(pil, tfio)
    for size in (48, 256):  # down and up: the resize differs by at most one level
        pil, tfio = _decode_all(sample_files, size, "pil"), _decode_all(sample_files, size, "tf")
        assert pil.shape == tfio.shape == (len(sample_files), size, size, 3)
        d = np.abs(pil - tfio)
        assert d.max() <= 1, d.max()
        assert (d > 0).mean() < 0.5


def test_pillow_default_is_load_image(sample_files):
    ref = np.stack([load_image(f, 40) for f in sample_files]).astype(np.float32)
    np.testing.assert_array_equal(_decode_all(sample_files, 40, "pil"), ref)


def test_other_files_fall_back_to_pillow(tmp_path, sample_files):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    made = {}
    for name, img, kw in [("a.tiff", rgb, {}), ("b.webp", rgb, {"lossless": True}),
                          ("c.png", rgb.convert("RGBA"), {}), ("d.jpg", rgb.convert("CMYK"), {}),
                          ("e.gif", rgb.convert("P"), {})]:
        made[name] = tmp_path / name
        img.save(made[name], **kw)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: Pillow turns it, tf.io would not
    made["f.jpg"] = tmp_path / "f.jpg"
    rgb.save(made["f.jpg"], exif=exif)
    plain = tmp_path / "g.jpg"
    rgb.save(plain)
    big = tmp_path / "h.jpg"  # Pillow would `reduce` it first at 16 px
    rgb.resize((120, 120)).save(big)
    gray, bmp = tmp_path / "i.png", tmp_path / "j.bmp"  # tf.io decodes these as Pillow does
    square = rgb.crop((0, 0, 20, 20))
    square.convert("L").save(gray)
    square.save(bmp)
    for f in (gray, bmp):
        assert tf_decodable(f)
        np.testing.assert_array_equal(_decode_all([str(f)], 20, "tf")[0], load_image(f, 20))  # no resize: exact
    files = [*map(str, made.values()), str(plain), str(big)]
    assert tf_routes(files, 16).tolist() == [False] * len(made) + [True, False]
    assert tf_decodable(big, 32) and not tf_decodable(tmp_path / "missing.jpg")
    out = _decode_all(files, 16, "tf")
    for i, f in enumerate(files[:len(made)]):  # Pillow's own pixels, EXIF rotation and alpha handling included
        np.testing.assert_array_equal(out[i], load_image(f, 16))
    assert np.abs(out[-2] - load_image(plain, 16)).max() <= 1


def test_unknown_decoder_refused(sample_files):
    with pytest.raises(ParameterError, match="decoder='cv2'"):
        make_dataset((np.asarray(sample_files), np.zeros(len(sample_files), np.int64)), 32, decoder="cv2")


def test_decode_files_gives_the_pipelines_pixels(tmp_path, sample_files):
    """Evaluation, predict and augmented training (decode_files) see what feature extraction (make_dataset) sees."""
    other = tmp_path / "cmyk.jpg"  # a Pillow-only file among the tf.io ones
    Image.open(sample_files[0]).convert("CMYK").save(other)
    files = [*sample_files, str(other)]
    for decoder in DECODERS:
        for size in (48, 224):
            np.testing.assert_array_equal(decode_files(files, size, decoder), _decode_all(files, size, decoder))
    assert decode_files([], 8).shape == (0, 8, 8, 3)
    with pytest.raises(ParameterError, match="decoder='cv2'"):
        decode_files(files, 8, "cv2")


def test_datasets_run_without_the_autotuning_thread(sample_files):
    """Its doubling wait held whole predict calls to 5.11/10.23 s (benchmarks/README.md, "Data path")."""
    ds = make_dataset((np.asarray(sample_files), np.zeros(len(sample_files), np.int64)), 16, 4, with_labels=False)
    assert ds.options().autotune.enabled is False
    assert sum(len(b) for b in ds) == len(sample_files)  # AUTOTUNE parallelism and prefetch still work


def test_a_file_tensorflow_fails_on_goes_to_pillow(tmp_path, sample_files):
    """A JPEG cut short after a good header passes the header check; tf.io fails on it, Pillow names it."""
    data = Path(sample_files[0]).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 3])
    assert tf_decodable(cut)
    with pytest.raises(tf.errors.OpError):  # the tf.io route alone cannot read it ...
        decode_tf(tf.constant(str(cut)), 32).numpy()
    with pytest.raises(DataError, match="cut.jpg: not a readable image"):  # ... and the error names the file
        decode_files([sample_files[1], str(cut)], 32, "tf")


def test_the_decoder_is_part_of_the_feature_cache_key(sample_dir):
    import keras

    from aslnb.data.scan import scan_folder

    folder = scan_folder(sample_dir).subset(np.arange(4))
    frozen = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D()])
    keys = {d: F.cache_key(folder, 8, frozen, "float32", d) for d in DECODERS}
    assert keys["tf"] != keys["pil"]
    assert F.cache_key(folder, 8, frozen) == keys[DECODER]


def test_the_decoder_is_a_training_setting_and_a_run_must_name_it(tmp_path):
    import json
    import re

    from aslnb.config import TrainConfig
    from aslnb.errors import RunDirError
    from aslnb.provenance import FORMAT_VERSION
    from aslnb.runs import load_config

    assert TrainConfig().decoder == DECODER
    assert TrainConfig.from_params(decoder="tf").decoder == "tf"
    with pytest.raises(ParameterError, match="decoder='cv2': use one of pil, tf"):
        TrainConfig.from_params(decoder="cv2")
    path = tmp_path / "config.json"
    for params, found in (({"image_size": 224}, "missing"), ({"image_size": 224, "decoder": "cv2"}, "'cv2'")):
        path.write_text(json.dumps({"format_version": FORMAT_VERSION, "params": params}))
        want = rf"^{re.escape(str(path))}: params.decoder is {found}, expected .* \(pil or tf\)"
        with pytest.raises(RunDirError, match=want):
            load_config(tmp_path)
    path.write_text(json.dumps({"format_version": FORMAT_VERSION, "params": {"image_size": 224, "decoder": "pil"}}))
    assert load_config(tmp_path)["params"]["decoder"] == "pil"


def _chunks(a, rows):
    return (a[i:i + rows] for i in range(0, len(a), rows))


def test_store_reads_like_the_array(tmp_path, monkeypatch):
    a = np.random.default_rng(1).normal(size=(10, 3, 2)).astype(np.float32)
    loads = []
    real_load = np.load

    def recording(*args, **kwargs):
        loads.append(kwargs.get("mmap_mode"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", recording)
    store = write_store(tmp_path / "features-k", _chunks(a, 4), rows=4)
    assert sorted(p.name for p in (tmp_path / "features-k").iterdir()) == [
        "manifest.json", "shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    assert len(store) == 10 and store.shape == a.shape and store.ndim == 3 and store.nbytes == a.nbytes
    assert store.shards == [4, 4, 2]
    assert loads == [], "shards are read row by row, never loaded whole nor memory-mapped"
    for seed in range(3):  # an epoch in shuffled order, batch by batch
        perm = np.random.default_rng(seed).permutation(10)
        for i in range(0, 10, 3):
            got = store[perm[i:i + 3]]
            assert isinstance(got, np.ndarray) and not isinstance(got, np.memmap)
            np.testing.assert_array_equal(got, a[perm[i:i + 3]])
    np.testing.assert_array_equal(store[[9, 0, 9, 4]], a[[9, 0, 9, 4]])
    np.testing.assert_array_equal(store[2:9:3], a[2:9:3])
    np.testing.assert_array_equal(store[-1], a[-1])
    np.testing.assert_array_equal(store[a[:, 0, 0] > 0], a[a[:, 0, 0] > 0])
    assert store[np.array([], dtype=np.int64)].shape == (0, 3, 2)
    with pytest.raises(IndexError):
        store[[10]]
    np.testing.assert_array_equal(np.asarray(store), a)
    assert open_store(tmp_path / "features-k", 10) is not None and open_store(tmp_path / "features-k", 11) is None


def _rss_file() -> int:
    """File-backed resident memory of this process (bytes): where memory-mapped pages are counted."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc/self/status")
def test_an_epoch_over_the_store_does_not_grow_the_process_memory(tmp_path):
    """A shuffled epoch over a 64 MiB store leaves the resident memory flat; memory maps would not (control)."""
    rows, width = 1024, 16384  # 64 KiB a row
    chunks = (np.full((256, width), i, np.float32) for i in range(4))
    store = write_store(tmp_path / "features-k", chunks, rows=256)
    perm = np.random.default_rng(0).permutation(rows)
    before = _rss_file()
    for i in range(0, rows, 32):
        batch = store[perm[i:i + 32]]
        assert (batch[:, 0] == perm[i:i + 32] // 256).all()
    grown = _rss_file() - before
    assert grown < 8 * 2**20, f"an epoch over the store grew file-backed RSS by {grown / 2**20:.0f} MiB"
    # the control: the same epoch through memory maps counts every page it touched
    maps = [np.load(tmp_path / "features-k" / f"shard-{i:05d}.npy", mmap_mode="r") for i in range(4)]
    before = _rss_file()
    for i in range(0, rows, 32):
        for r in perm[i:i + 32]:
            float(maps[r // 256][r % 256].sum())
    assert _rss_file() - before > 32 * 2**20, "the measurement should see memory-mapped pages"


def test_a_store_whose_shard_was_cut_short_is_not_used(tmp_path):
    a = np.ones((10, 4), np.float32)
    write_store(tmp_path / "features-k", _chunks(a, 4), rows=4)
    shard = tmp_path / "features-k" / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-8])
    assert open_store(tmp_path / "features-k", 10) is None


def test_store_write_is_all_or_nothing(tmp_path):
    a = np.ones((10, 2), np.float32)

    def interrupted():
        yield a[:4]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path / "features-k", interrupted(), rows=4)
    assert list(tmp_path.iterdir()) == [], "no partial or temporary folder may remain"
    write_store(tmp_path / "features-k", _chunks(a, 4), rows=4)
    with pytest.raises(KeyboardInterrupt):  # a failed rewrite leaves the complete store in place
        write_store(tmp_path / "features-k", interrupted(), rows=4)
    assert [p.name for p in tmp_path.iterdir()] == ["features-k"]
    np.testing.assert_array_equal(np.asarray(FeatureStore(tmp_path / "features-k")), a)
    (tmp_path / "features-k" / "manifest.json").unlink()  # incomplete: not used
    assert open_store(tmp_path / "features-k", 10) is None


@pytest.fixture(scope="module")
def frozen():
    import keras

    from aslnb.models import build_classifier, split_at_boundary

    keras.utils.set_random_seed(0)
    return split_at_boundary(build_classifier(3, 32, weights="none", freeze_until="conv3", head_units=[8]))[0]


def test_extract_features_sharded_and_reused(frozen, tmp_dataset, tmp_path, monkeypatch):
    from aslnb.data.scan import scan_folder

    folder = scan_folder(tmp_dataset({"A": 3, "B": 3, "C": 3}))
    ref = F.extract_features(frozen, folder, 32, batch_size=2)  # in memory, no cache
    monkeypatch.setattr(F, "SHARD_ROWS", 3)  # 3 rows -> 4 (whole batches of 2): shards of 4, 4, 1
    calls = []
    real = F._compute
    monkeypatch.setattr(F, "_compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = tmp_path / "cache"
    store = F.extract_features(frozen, folder, 32, batch_size=2, cache_dir=cache, in_memory_max_bytes=0)
    assert isinstance(store, FeatureStore) and len(calls) == 3
    assert store.shards == [4, 4, 1]
    np.testing.assert_array_equal(store[np.arange(9)[::-1]], ref[::-1])
    again = F.extract_features(frozen, folder, 32, batch_size=2, cache_dir=cache)  # small: one array
    assert len(calls) == 3 and type(again) is np.ndarray
    np.testing.assert_array_equal(again, ref)


def test_store_reads_without_positional_reads(tmp_path, monkeypatch):
    """Where ``os.pread`` is missing (Windows) the store seeks and reads: the same rows."""
    a = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    store = write_store(tmp_path / "features-k", _chunks(a, 4), rows=4)
    monkeypatch.delattr("os.pread")
    np.testing.assert_array_equal(store[[9, 0, 1, 2, 5]], a[[9, 0, 1, 2, 5]])
    np.testing.assert_array_equal(np.asarray(store), a)

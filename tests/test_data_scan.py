"""Scanning the sample, dataset_info, fingerprints, and the tf.data pipeline."""
from __future__ import annotations

import os
import re
import shutil
import string
from pathlib import Path

import numpy as np
import pytest

from aslnb.data import dataset_info, decode_files, frame_number, make_dataset, scan_folder
from aslnb.data.images import IMAGE_EXTENSIONS
from aslnb.errors import DataError


def disk_classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def disk_images(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


@pytest.fixture(scope="module")
def sample(tiny_images):
    return scan_folder(tiny_images)


# --------------------------------------------------------------------------- scan


def test_classes_in_sorted_order(sample, tiny_images):
    expected = disk_classes(tiny_images)
    assert sample.class_names == expected
    # sorted(): upper-case letters sort before lower-case names, as in Keras.
    assert sample.class_names == list(string.ascii_uppercase) + ["del", "nothing", "space"]
    assert len(sample.class_names) == 29


def test_counts_match_disk(sample, tiny_images):
    on_disk = {c: len(disk_images(tiny_images / c)) for c in disk_classes(tiny_images)}
    assert sample.counts() == on_disk
    assert set(on_disk.values()) == {200}
    assert len(sample) == sum(on_disk.values()) == 29 * 200


def test_labels_match_folder_names(sample, tiny_images):
    assert sample.labels.dtype == np.int64
    assert len(sample.files) == len(sample.labels)
    for f, lab in zip(sample.files, sample.labels):
        assert Path(f).parent.name == sample.class_names[lab]
    all_on_disk = {str(p) for c in disk_classes(tiny_images) for p in disk_images(tiny_images / c)}
    assert len(set(sample.files.tolist())) == len(sample.files)  # no duplicates
    assert set(sample.files.tolist()) == all_on_disk
    assert sample.problems == []


def test_frame_numbers_from_names(sample):
    assert frame_number("A1008.jpg") == 1008
    assert frame_number("/x/del/del101.jpg") == 101
    assert frame_number("space17.jpeg") == 17
    assert frame_number("img_a.jpg") is None
    assert frame_number("hand1_a_bot_seg_1_cropped.jpeg") is None
    for f in sample.files:
        stem = Path(f).stem
        digits = re.search(r"(\d+)$", stem)
        assert digits is not None, f
        assert frame_number(f) == int(digits.group(1))


def test_subset_keeps_classes(sample):
    idx = np.flatnonzero(sample.labels == 3)[:5]
    sub = sample.subset(idx)
    assert sub.class_names == sample.class_names
    assert len(sub) == 5
    assert (sub.labels == 3).all()
    assert sub.counts()["D"] == 5 and sum(sub.counts().values()) == 5


def test_fingerprint_tracks_file_changes(tmp_dataset):
    root = tmp_dataset({"A": 4, "B": 4})
    fp0 = scan_folder(root).fingerprint()
    assert scan_folder(root).fingerprint() == fp0  # deterministic
    a_files = sorted((root / "A").iterdir())

    added = root / "A" / "A99999.jpg"
    shutil.copyfile(a_files[0], added)
    fp_added = scan_folder(root).fingerprint()
    assert fp_added != fp0

    added.unlink()
    assert scan_folder(root).fingerprint() == fp0  # back to the same data

    a_files[1].unlink()
    fp_removed = scan_folder(root).fingerprint()
    assert fp_removed not in (fp0, fp_added)

    # same names, different content size
    with open(a_files[2], "ab") as fh:
        fh.write(b"\0" * 10)
    assert scan_folder(root).fingerprint() != fp_removed


def test_symlinked_dataset_scans_like_copy(tmp_dataset):
    copied = scan_folder(tmp_dataset({"A": 3, "nothing": 3}))
    linked = scan_folder(tmp_dataset({"A": 3, "nothing": 3}, link=True))
    assert [Path(f).name for f in copied.files] == [Path(f).name for f in linked.files]
    assert linked.fingerprint() == copied.fingerprint()


# --------------------------------------------------------------------------- dataset_info


def test_dataset_info_sample(sample_dir):
    info = dataset_info(sample_dir)
    n = sum(len(disk_images(sample_dir / c)) for c in disk_classes(sample_dir))
    assert n == 5800
    assert info.n_images == n
    assert info.class_names == disk_classes(sample_dir)
    assert info.counts == {c: 200 for c in info.class_names}
    assert info.sizes == {"200x200": n}
    assert info.modes == {"RGB": n}
    assert info.formats == {"JPEG": n}
    assert info.problems == []
    d = info.as_dict()
    assert d["n_images"] == n and d["root"] == str(sample_dir)


def test_dataset_info_sampled_headers(tiny_images):
    info = dataset_info(tiny_images, sample=100)
    assert info.n_images == 5800  # counts are never sampled
    looked_at = sum(info.sizes.values())
    assert 100 <= looked_at < 200
    assert sum(info.modes.values()) == sum(info.formats.values()) == looked_at


# --------------------------------------------------------------------------- pipeline

S = 32


@pytest.fixture(scope="module")
def small_folder(tiny_images, tmp_path_factory):
    """4 classes x 10 images = 40 files, symlinked into a tmp tree."""
    root = tmp_path_factory.mktemp("pipe")
    for c in ("B", "K", "del", "space"):
        (root / c).mkdir()
        files = sorted(disk_images(tiny_images / c))
        for p in files[::20][:10]:
            (root / c / p.name).symlink_to(p)
    folder = scan_folder(root)
    assert len(folder) == 40
    return folder


def collect(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return xs, ys


def test_make_dataset_batches(small_folder):
    ds = make_dataset(small_folder, S, batch_size=16)
    xs, ys = collect(ds)
    assert [x.shape for x in xs] == [(16, S, S, 3), (16, S, S, 3), (8, S, S, 3)]
    images = np.concatenate(xs)
    labels = np.concatenate(ys)
    assert images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    assert images.max() > 1.5  # 0..255, not rescaled to 0..1
    # one-hot, in file order
    assert labels.shape == (40, len(small_folder.class_names))
    assert np.array_equal(labels.sum(axis=1), np.ones(40))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    assert np.array_equal(labels.argmax(axis=1), small_folder.labels)
    # pixels are exactly what decode_files (evaluation, predict) gives, in file order
    np.testing.assert_array_equal(images, decode_files(small_folder.files, S).astype(np.float32))


def test_make_dataset_order_is_deterministic_without_shuffle(small_folder):
    ds = make_dataset(small_folder, S, batch_size=7)
    a, la = collect(ds)
    b, lb = collect(ds)  # second epoch
    c, lc = collect(make_dataset(small_folder, S, batch_size=7))
    for x1, x2, x3 in zip(a, b, c):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(x1, x3)
    np.testing.assert_array_equal(np.concatenate(la), np.concatenate(lc))


def test_make_dataset_shuffle_is_seeded(small_folder):
    files = small_folder.files
    ids = np.arange(len(files))

    def order(seed, cache=False):
        ds = make_dataset((files, ids), S, batch_size=40, shuffle=True, seed=seed, one_hot=False, cache=cache)
        (x,), (y,) = collect(ds)
        return x, y

    x0, y0 = order(0)
    _, y0b = order(0)
    _, y1 = order(1)
    assert sorted(y0.tolist()) == ids.tolist()  # a permutation, nothing lost or repeated
    assert not np.array_equal(y0, ids)  # actually shuffled
    np.testing.assert_array_equal(y0, y0b)  # same seed, same order
    assert not np.array_equal(y0, y1)  # other seed, other order
    np.testing.assert_array_equal(x0, decode_files(files[y0], S).astype(np.float32))  # labels travel with images
    _, yc = order(0, cache=True)
    assert sorted(yc.tolist()) == ids.tolist()


def test_make_dataset_without_labels(small_folder):
    ds = make_dataset(small_folder, S, batch_size=40, with_labels=False)
    batches = [b.numpy() for b in ds]
    assert len(batches) == 1 and batches[0].shape == (40, S, S, 3)


def test_make_dataset_one_hot_needs_num_classes(small_folder):
    with pytest.raises(ValueError):
        make_dataset((small_folder.files, small_folder.labels), S)
    ds = make_dataset((small_folder.files, small_folder.labels), S, batch_size=40, num_classes=29)
    (_,), (y,) = collect(ds)
    assert y.shape == (40, 29)
    np.testing.assert_array_equal(y.argmax(axis=1), small_folder.labels)


def test_drop_bad_images_decodes_each_unchanged_file_once(tmp_dataset, monkeypatch, caplog):
    """A second call (train, then evaluate) reuses the first one's checks; a file changed since is decoded again."""
    import aslnb.data.scan as S

    root = tmp_dataset({"A": 3, "B": 3})
    decoded: list[str] = []
    real = S.check_image_in_thread
    monkeypatch.setattr(S, "check_image_in_thread", lambda p: (decoded.append(p), real(p))[1])
    monkeypatch.setattr(S, "_CHECKED", {})
    assert len(S.drop_bad_images(S.scan_folder(root))) == 6 and len(decoded) == 6
    assert len(S.drop_bad_images(S.scan_folder(root))) == 6 and len(decoded) == 6
    victim = sorted((root / "B").iterdir())[0]
    victim.write_bytes(b"not an image at all")
    with caplog.at_level("WARNING", logger="aslnb.data"):
        kept = S.drop_bad_images(S.scan_folder(root))
        assert len(kept) == 5 and decoded[6:] == [str(victim)]
        assert len(S.drop_bad_images(S.scan_folder(root))) == 5  # still bad, still reported, not decoded again
    assert len(decoded) == 7
    skips = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skips) == 2 and all(victim.name in m and "\n" not in m for m in skips)


# --------------------------------------------------------------------------- issue 14: data-layer errors


def test_unreadable_data_or_class_folder_is_a_data_error(tmp_dataset, monkeypatch):
    """Tests run as root (permissions are not enforced), so the PermissionError is simulated."""
    from aslnb.errors import DataError

    root = tmp_dataset({"A": 2, "B": 2})
    real = Path.iterdir
    for locked in (root, root / "B"):
        def iterdir(self, locked=locked):
            if self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "iterdir", iterdir)
        with pytest.raises(DataError) as err:
            scan_folder(root)
        msg = str(err.value)
        assert msg.startswith(f"{locked}: cannot read") and "permission denied" in msg and "\n" not in msg
    monkeypatch.setattr(Path, "iterdir", real)
    assert len(scan_folder(root)) == 4


def test_data_pointing_at_a_file_says_so(tmp_path, monkeypatch):
    from aslnb.errors import DataError
    from aslnb.settings import resolve_data_dir, resolve_external_dir

    f = tmp_path / "images.zip"
    f.write_bytes(b"PK")
    with pytest.raises(DataError, match="is a file, not a folder") as err:
        resolve_data_dir(f)
    assert "does not exist" not in str(err.value) and str(f) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")
    monkeypatch.setenv("ASLNB_EXTERNAL_DATA", str(f))
    with pytest.raises(DataError, match="is a file, not a folder"):
        resolve_external_dir()


def test_one_class_only_is_refused_for_training(tmp_dataset):
    from aslnb.data import split_folder
    from aslnb.errors import DataError

    root = tmp_dataset({"A": 6})
    with pytest.raises(DataError) as err:
        scan_folder(root, min_classes=2)
    assert str(root) in str(err.value) and "(A)" in str(err.value) and "at least 2 classes" in str(err.value)
    folder = scan_folder(root)  # listing one class is fine (data info)
    with pytest.raises(DataError, match="at least 2 classes") as err:
        split_folder(folder, "random")
    assert str(root) in str(err.value) and "\n" not in str(err.value)


def test_decompression_bomb_is_one_line_naming_the_file(tmp_path, monkeypatch, caplog):
    """Pillow's DecompressionBombWarning becomes a skip / DataError naming the file, not a warning."""
    import warnings

    from PIL import Image

    from aslnb.data import check_image, drop_bad_images, find_bad_images, load_image, load_images
    from aslnb.errors import DataError

    for cls in ("A", "B"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / cls / f"{cls}1.jpg")
    bomb = tmp_path / "A" / "A2.png"
    Image.new("RGB", (40, 40)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 px: Pillow warns (it refuses above 2000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "decompression bomb" in check_image(bomb)
        assert set(find_bad_images([bomb, tmp_path / "B" / "B1.jpg"])) == {str(bomb)}
        with pytest.raises(DataError) as err:
            load_image(bomb, 8)
        with pytest.raises(DataError):
            load_images([str(bomb)], 8)
        for decoder in ("tf", "pil"):  # evaluation and predict: tf.io must not decode what Pillow refuses
            with pytest.raises(DataError, match="refused, too many pixels"):
                decode_files([str(bomb)], 8, decoder)
        with caplog.at_level("WARNING", logger="aslnb.data"):
            kept = drop_bad_images(scan_folder(tmp_path))
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    msg = str(err.value)
    assert msg.startswith(f"{bomb}: refused, too many pixels") and "\n" not in msg
    assert str(bomb) not in kept.files.tolist() and len(kept) == 2
    (line,) = [r.getMessage() for r in caplog.records]
    assert str(bomb) in line and "skipped" in line and "\n" not in line


# ---------------------------------------------------------------- issue 25: one rule for nested folders
def test_images_in_nested_folders_are_skipped_with_one_warning_naming_them(tmp_dataset, caplog):
    """Case 13: files below a class folder's sub-folders are left out by every command, and said so."""
    from aslnb.data.scan import dataset_info

    root = tmp_dataset({"A": 3, "B": 3})
    src = sorted((root / "A").iterdir())[0]
    nested = []
    for i, sub in enumerate(("sub", "sub", "sub/deeper", "x", "y")):
        (root / "A" / sub).mkdir(parents=True, exist_ok=True)
        nested.append(root / "A" / sub / f"A{900 + i}.jpg")
        nested[-1].write_bytes(src.read_bytes())
    with caplog.at_level("WARNING", logger="aslnb.data"):
        folder = scan_folder(root)
    assert len(folder) == 6 and not any("/sub/" in f for f in folder.files.tolist())
    warned = [r.getMessage() for r in caplog.records if "sub-folder" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0], caplog.text
    assert "5 image files in sub-folders of class folders are not read" in warned[0]
    assert sum(str(p) in warned[0] for p in nested) == 3 and "and 2 more" in warned[0]
    assert warned[0] in folder.problems
    info = dataset_info(root)
    assert info.n_images == 6 and any("5 image files in sub-folders" in p for p in info.problems)


def test_predict_folder_follows_the_same_rule(tmp_dataset, caplog):
    from aslnb.predict import collect_images

    root = tmp_dataset({"A": 3})
    src = sorted((root / "A").iterdir())[0]
    (root / "A" / "sub").mkdir()
    nested = root / "A" / "sub" / "A999.jpg"
    nested.write_bytes(src.read_bytes())
    with caplog.at_level("WARNING", logger="aslnb.data"):
        files = collect_images([root / "A"])
    assert len(files) == 3 and nested not in files
    assert len(caplog.records) == 1 and str(nested) in caplog.records[0].getMessage()
    with pytest.raises(DataError, match=r"holds no image files directly \(its sub-folders hold 4\)") as err:
        collect_images([root])  # a class-per-folder root: name its folders instead
    assert str(root) in str(err.value) and "\n" not in str(err.value)


def test_a_file_name_that_is_not_utf8_is_skipped_naming_it(tmp_dataset, caplog):
    """Case 16: training ended with "unexpected UnicodeEncodeError" without naming the file."""
    root = tmp_dataset({"A": 3, "B": 3})
    src = sorted((root / "A").iterdir())[0]
    odd = os.path.join(os.fsencode(root), b"A", b"bad\xff\xfename.jpg")
    with open(odd, "wb") as f:
        f.write(src.read_bytes())
    with caplog.at_level("WARNING", logger="aslnb.data"):
        folder = scan_folder(root)
    assert len(folder) == 6
    folder.fingerprint()  # no UnicodeEncodeError
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "bad\\udcff\\udcfename.jpg" in msgs[0] and "not valid UTF-8" in msgs[0]
    assert "rename it" in msgs[0] and "\n" not in msgs[0]
    msgs[0].encode("utf-8")  # printable on any terminal


def test_fingerprint_of_a_non_utf8_name_does_not_raise(tmp_path):
    from aslnb.data.scan import ImageFolder

    name = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"A", b"A1\xff.jpg"))
    folder = ImageFolder(tmp_path, ["A"], np.array([name]), np.array([0]))
    assert len(folder.fingerprint()) == 16

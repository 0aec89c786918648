"""Bad input: missing/odd folders, empty classes, corrupt files, unusual image formats."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aslnb.data import (
    check_image, dataset_info, drop_bad_images, find_bad_images, load_image, load_images, scan_folder,
)
from aslnb.errors import AslnbError, DataError

S = 48


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    assert isinstance(err.value, AslnbError)
    return msg


# --------------------------------------------------------------------------- folders


def test_missing_path(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(DataError, match="does not exist") as err:
        scan_folder(missing)
    assert str(missing) in one_line(err)


def test_file_instead_of_folder(tmp_dataset):
    root = tmp_dataset({"A": 1})
    a_file = next((root / "A").iterdir())
    with pytest.raises(DataError, match="is a file") as err:
        scan_folder(a_file)
    assert str(a_file) in one_line(err)


def test_folder_without_class_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no class sub-folders") as err:
        scan_folder(tmp_path)
    msg = one_line(err)
    assert str(tmp_path) in msg and "move" not in msg


def test_folder_with_loose_images(tmp_path, tmp_dataset):
    src = tmp_dataset({"A": 3})
    loose = tmp_path / "loose"
    loose.mkdir()
    for p in (src / "A").iterdir():
        shutil.copyfile(p, loose / p.name)
    with pytest.raises(DataError, match="no class sub-folders") as err:
        scan_folder(loose)
    msg = one_line(err)
    assert str(loose) in msg and "move them" in msg and "3 loose images" in msg


def test_hidden_folders_are_not_classes(tmp_dataset):
    root = tmp_dataset({"A": 2, "B": 2})
    (root / ".ipynb_checkpoints").mkdir()
    folder = scan_folder(root)
    assert folder.class_names == ["A", "B"]


def test_empty_class_folder(tmp_dataset):
    root = tmp_dataset({"A": 3, "B": 0, "C": 3})
    with pytest.raises(DataError, match="holds no images") as err:
        scan_folder(root)
    assert str(root / "B") in one_line(err)

    folder = scan_folder(root, allow_empty_classes=True)
    assert folder.class_names == ["A", "B", "C"]
    assert folder.counts() == {"A": 3, "B": 0, "C": 3}
    assert set(folder.labels.tolist()) == {0, 2}  # C keeps its id even though B is empty
    assert any(str(root / "B") in p for p in folder.problems)


def test_several_empty_class_folders_counted(tmp_dataset):
    root = tmp_dataset({"A": 2, "B": 0, "C": 0, "D": 0})
    with pytest.raises(DataError) as err:
        scan_folder(root)
    msg = one_line(err)
    assert str(root / "B") in msg and "2 more" in msg


def test_all_class_folders_empty(tmp_dataset):
    root = tmp_dataset({"A": 0, "B": 0})
    with pytest.raises(DataError):
        scan_folder(root, allow_empty_classes=True)


def test_non_image_file_is_a_problem_not_an_error(tmp_dataset):
    root = tmp_dataset({"A": 3, "B": 3})
    notes = root / "A" / "notes.txt"
    notes.write_text("shot on a Tuesday")
    folder = scan_folder(root)
    assert len(folder) == 6
    assert str(notes) not in folder.files.tolist()
    assert len(folder.problems) == 1 and str(notes) in folder.problems[0]
    assert find_bad_images(folder.files) == {}


# --------------------------------------------------------------------------- corrupt files


@pytest.fixture
def corrupt_dataset(tmp_dataset):
    root = tmp_dataset({"A": 5, "B": 5})
    truncated = sorted((root / "A").iterdir())[2]
    data = truncated.read_bytes()
    assert len(data) > 300
    truncated.write_bytes(data[:300])
    text = root / "B" / "x.jpg"
    text.write_text("this is not a JPEG\n")
    return root, truncated, text


def test_find_bad_images_lists_exactly_the_bad(corrupt_dataset):
    root, truncated, text = corrupt_dataset
    folder = scan_folder(root)
    assert len(folder) == 11  # both have image names: scanning does not decode
    bad = find_bad_images(folder.files)
    assert set(bad) == {str(truncated), str(text)}
    assert all(isinstance(r, str) and r for r in bad.values())
    assert check_image(truncated) is not None and check_image(text) is not None


def test_drop_bad_images_warns_and_keeps_the_rest(corrupt_dataset, caplog):
    root, truncated, text = corrupt_dataset
    folder = scan_folder(root)
    with caplog.at_level("WARNING", logger="aslnb.data"):  # one log line per file, not a UserWarning
        kept = drop_bad_images(folder)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and not any("\n" in m for m in messages)
    for bad in (truncated, text):
        assert any(str(bad) in m for m in messages), bad
    assert len(kept) == len(folder) - 2
    expected = [f for f in folder.files.tolist() if f not in (str(truncated), str(text))]
    assert kept.files.tolist() == expected
    label_of = dict(zip(folder.files.tolist(), folder.labels.tolist()))
    assert [label_of[f] for f in kept.files.tolist()] == kept.labels.tolist()
    assert kept.counts() == {"A": 4, "B": 5}
    assert sum(str(truncated) in p for p in kept.problems) == 1
    assert sum(str(text) in p for p in kept.problems) == 1


def test_drop_bad_images_without_bad_returns_all(tmp_dataset):
    folder = scan_folder(tmp_dataset({"A": 3}))
    assert len(drop_bad_images(folder)) == 3


def test_drop_bad_images_all_bad_is_an_error(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "1.jpg").write_text("no")
    (tmp_path / "A" / "2.png").write_bytes(b"\x89PNG\r\n")
    folder = scan_folder(tmp_path)
    with pytest.raises(DataError) as err:
        drop_bad_images(folder)
    assert str(tmp_path) in one_line(err)


def test_find_bad_images_leaves_warnings_working(tiny_images):
    """Verifying in worker threads must not leave the process's warning filters changed.

    (catch_warnings entered concurrently from the workers used to leave everything
    ignored, so drop_bad_images's "skipped" warnings were silently lost.)
    """
    files = sorted(str(p) for p in (tiny_images / "C").iterdir())[:100]
    for _ in range(5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            before = list(warnings.filters)
            assert find_bad_images(files, workers=8) == {}
            assert warnings.filters == before
            warnings.warn("probe", UserWarning)
        assert [str(w.message) for w in caught] == ["probe"]


@pytest.mark.parametrize("which", ["truncated", "text"])
def test_load_image_names_the_bad_file(corrupt_dataset, which):
    root, truncated, text = corrupt_dataset
    path = truncated if which == "truncated" else text
    with pytest.raises(DataError) as err:
        load_image(path, S)
    assert str(path) in one_line(err)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file") as err:
        load_image(tmp_path / "gone.jpg", S)
    assert str(tmp_path / "gone.jpg") in one_line(err)


def test_load_images_names_the_bad_file(corrupt_dataset):
    root, truncated, text = corrupt_dataset
    good = sorted(str(p) for p in (root / "B").iterdir() if p != text)
    assert load_images(good, S).shape == (len(good), S, S, 3)
    with pytest.raises(DataError) as err:
        load_images(good + [str(text)], S)
    assert str(text) in one_line(err)


def test_dataset_info_reports_unopenable_files(corrupt_dataset):
    root, truncated, text = corrupt_dataset
    info = dataset_info(root)
    assert info.n_images == 11
    assert any(str(text) in p for p in info.problems)


# --------------------------------------------------------------------------- image formats


@pytest.fixture(scope="module")
def source_image(tiny_images):
    path = sorted((tiny_images / "B").iterdir())[0]
    with Image.open(path) as im:
        return im.convert("RGB")


def _rgba(img: Image.Image) -> Image.Image:
    out = img.convert("RGBA")
    alpha = np.full(img.size[::-1], 255, dtype=np.uint8)
    alpha[:, : img.size[0] // 2] = 0  # left half transparent
    out.putalpha(Image.fromarray(alpha))
    return out


def _p_transparent(img: Image.Image) -> Image.Image:
    p = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p.info["transparency"] = 0
    return p


def _i16(img: Image.Image) -> Image.Image:
    arr = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return Image.fromarray(arr)


FORMATS = {
    # name: (file name, make(img) -> image, save kwargs, mode Pillow should report on reopening)
    "png": ("rgb.png", lambda im: im, {}, "RGB"),
    "grayscale": ("gray.jpg", lambda im: im.convert("L"), {}, "L"),
    "grayscale-png": ("gray.png", lambda im: im.convert("L"), {}, "L"),
    "rgba": ("rgba.png", _rgba, {}, "RGBA"),
    "palette": ("pal.png", lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE, colors=32), {}, "P"),
    "palette-transparent": ("palt.png", _p_transparent, {"transparency": 0}, "P"),
    "gif": ("anim.gif", lambda im: im.convert("P"), {}, "P"),
    "cmyk": ("cmyk.jpg", lambda im: im.convert("CMYK"), {}, "CMYK"),
    "16bit": ("g16.png", _i16, {}, None),
    "bmp": ("img.bmp", lambda im: im, {}, "RGB"),
    "webp": ("img.webp", lambda im: im, {}, "RGB"),
    "tiny": ("tiny.png", lambda im: im.resize((1, 1)), {}, "RGB"),
    "huge": ("huge.jpg", lambda im: im.resize((6000, 4000), Image.Resampling.NEAREST), {"quality": 70}, "RGB"),
}


@pytest.mark.parametrize("kind", list(FORMATS))
def test_formats_decode_to_rgb_uint8(tmp_path, source_image, kind):
    name, make, kwargs, mode = FORMATS[kind]
    path = tmp_path / name
    img = make(source_image)
    img.save(path, **kwargs)  # the project's Pillow writes every one of these formats
    with Image.open(path) as reopened:
        if mode is not None:
            assert reopened.mode == mode
        else:
            assert reopened.mode.startswith("I")  # 16-bit grayscale
        original_size = reopened.size
    assert check_image(path) is None

    arr = load_image(path, S)
    assert arr.shape == (S, S, 3) and arr.dtype == np.uint8

    full = load_image(path)  # no resize: full size, still RGB
    assert full.shape == (original_size[1], original_size[0], 3) and full.dtype == np.uint8

    if kind in ("grayscale", "grayscale-png", "16bit"):
        assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    if kind == "16bit":
        # 16-bit values are scaled down to 0..255, not clipped to white or truncated to black
        assert 0 < arr.mean() < 255 and arr.std() > 5
    if kind == "png":  # lossless copy of the decoded JPEG: identical to loading the JPEG pixels
        np.testing.assert_array_equal(full, np.asarray(source_image))
    if kind == "tiny":  # a constant image stays constant when upscaled
        assert (arr == full[0, 0]).all()
    if kind == "rgba":  # transparent half becomes black, opaque half keeps the picture
        assert full[:, : full.shape[1] // 2].max() == 0
        np.testing.assert_array_equal(full[:, full.shape[1] // 2:], np.asarray(source_image)[:, full.shape[1] // 2:])
    if kind == "cmyk":  # colours survive the round trip roughly
        diff = np.abs(full.astype(int) - np.asarray(source_image).astype(int))
        assert diff.mean() < 20


def test_mixed_formats_in_one_dataset(tmp_path, source_image):
    root = tmp_path / "mixed"
    (root / "A").mkdir(parents=True)
    source_image.save(root / "A" / "a1.png")
    source_image.convert("L").save(root / "A" / "a2.jpg")
    _rgba(source_image).save(root / "A" / "a3.PNG")  # upper-case extension
    source_image.convert("CMYK").save(root / "A" / "a4.jpeg")
    folder = scan_folder(root)
    assert len(folder) == 4 and folder.problems == []
    assert find_bad_images(folder.files) == {}
    assert load_images(folder.files, S).shape == (4, S, S, 3)


# --------------------------------------------------------------------------- class mismatch


def test_evaluation_classes_differ_from_training(tmp_dataset):
    root = tmp_dataset({"A": 3, "B": 3, "extra": ("C", 2)})
    model_classes = ["A", "B", "C"]
    folder = scan_folder(root, class_names=model_classes)
    assert folder.class_names == model_classes
    assert folder.counts() == {"A": 3, "B": 3, "C": 0}
    assert not any("/extra/" in f for f in folder.files.tolist())
    extra = [p for p in folder.problems if str(root / "extra") in p]
    missing = [p for p in folder.problems if str(root / "C") in p]
    assert len(extra) == 1 and "extra" in extra[0]
    assert len(missing) == 1 and "'C'" in missing[0]
    assert len(folder.problems) == 2


def test_given_class_order_fixes_label_ids(tmp_dataset):
    root = tmp_dataset({"A": 2, "B": 3})
    folder = scan_folder(root, class_names=["B", "A"])
    for f, lab in zip(folder.files.tolist(), folder.labels.tolist()):
        assert Path(f).parent.name == ["B", "A"][lab]
    assert folder.counts() == {"B": 3, "A": 2}
    assert folder.problems == []

"""External test sets (Massey ASL): class mapping onto the training classes."""
from __future__ import annotations

import string
from pathlib import Path

import pytest

from aslnb.data import load_external, map_class, scan_folder
from aslnb.data.images import IMAGE_EXTENSIONS
from aslnb.errors import DataError

TRAIN = list(string.ascii_uppercase) + ["del", "nothing", "space"]


def disk_counts(root: Path) -> dict[str, int]:
    return {
        d.name: sum(1 for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }


@pytest.fixture(scope="module")
def train_classes(sample_dir):
    return scan_folder(sample_dir).class_names


@pytest.fixture(scope="module")
def massey(external_dir, train_classes):
    return load_external(external_dir, train_classes)


# --------------------------------------------------------------------------- map_class


@pytest.mark.parametrize("name, expected", [
    ("a", "A"), ("z", "Z"), ("A", "A"), ("del", "del"), ("SPACE", "space"), ("Nothing", "nothing"),
    ("0", None), ("9", None), ("aa", None), ("delete", None), ("", None),
])
def test_map_class(name, expected):
    assert map_class(name, TRAIN) == expected


def test_map_class_multi_letter_does_not_upper_case_into_a_letter():
    # 'del' upper-cased is 'DEL', not a training class; it must map to 'del', not fail or pick a letter
    assert map_class("DEL", TRAIN) == "del"


# --------------------------------------------------------------------------- Massey


def test_massey_layout_on_disk(external_dir):
    counts = disk_counts(external_dir)
    assert sorted(counts) == sorted(list(string.digits) + list(string.ascii_lowercase))
    assert sum(counts.values()) == 2515


def test_massey_letters_map_to_upper_case(massey, external_dir, train_classes):
    letters = [c for c in disk_counts(external_dir) if c.isalpha()]
    assert len(letters) == 26
    assert massey.mapping == {c: c.upper() for c in letters}
    assert all(v in train_classes for v in massey.mapping.values())
    assert massey.shared_classes == list(string.ascii_uppercase)


def test_massey_digits_reported_unmapped(massey, external_dir):
    counts = disk_counts(external_dir)
    digits = {c: n for c, n in counts.items() if c.isdigit()}
    assert massey.unmapped == digits
    assert sorted(massey.unmapped) == list(string.digits)
    assert set(massey.unmapped.values()) == {70}


def test_massey_missing_training_classes(massey):
    assert massey.missing == ["del", "nothing", "space"]


def test_massey_labels_are_training_ids(massey, external_dir, train_classes):
    counts = disk_counts(external_dir)
    folder = massey.folder
    assert folder.class_names == train_classes
    assert len(folder) == sum(counts.values()) - sum(n for c, n in counts.items() if c.isdigit())
    assert len(folder) == 2515 - 700
    for f, lab in zip(folder.files.tolist(), folder.labels.tolist()):
        assert Path(f).parent.name.upper() == train_classes[lab]
        assert lab == train_classes.index(Path(f).parent.name.upper())
    per_class = folder.counts()
    for c, n in counts.items():
        if c.isalpha():
            assert per_class[c.upper()] == n
    assert per_class["T"] == 65
    assert per_class["del"] == per_class["nothing"] == per_class["space"] == 0


def test_massey_describe(massey, external_dir):
    d = massey.describe()
    assert d["n_images"] == len(massey.folder)
    assert d["unmapped"] == massey.unmapped
    assert d["missing_training_classes"] == ["del", "nothing", "space"]
    assert Path(d["root"]) == Path(external_dir)


def test_external_with_no_shared_class_is_an_error(tmp_dataset, external_dir, train_classes):
    root = tmp_dataset({"0": 2, "7": 2}, source=external_dir)
    with pytest.raises(DataError, match="match the training classes") as err:
        load_external(root, train_classes)
    assert str(root) in str(err.value) and "\n" not in str(err.value)


def test_external_partial_overlap(tmp_dataset, external_dir, train_classes):
    root = tmp_dataset({"b": 3, "3": 2, "space": ("a", 2)}, source=external_dir)
    ext = load_external(root, train_classes)
    assert ext.mapping == {"b": "B", "space": "space"}
    assert ext.unmapped == {"3": 2}
    assert ext.missing == [c for c in train_classes if c not in ("B", "space")]
    assert ext.folder.counts()["B"] == 3 and ext.folder.counts()["space"] == 2

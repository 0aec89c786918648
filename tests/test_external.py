"""External test sets (Massey ASL): class mapping onto the training classes."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest

from aslnb.errors import EXIT_BAD_IMAGES, EXIT_FETCH_INCOMPLETE

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


# --------------------------------------------------------------------------- Massey layout, manifest


def test_data_info_recognises_the_massey_layout(external_dir, sample_dir, capsys):
    from aslnb.cli import main
    from aslnb.data import dataset_info

    ext = dataset_info(external_dir, sample=50).external
    names = [p.name for p in external_dir.glob("*/*") if p.is_file()]
    per_signer = {s: sum(n.startswith(s + "_") for n in names) for s in {n.split("_")[0] for n in names}}
    assert ext["layout"] == "massey" and ext["signers"] == per_signer and sum(per_signer.values()) == len(names)
    assert ext["mapping"]["a"] == "A" and len(ext["mapping"]) == 26
    assert set(ext["unmapped"]) == set("0123456789") and ext["missing_training_classes"] == ["del", "nothing", "space"]
    assert dataset_info(sample_dir, sample=50).external is None  # the training layout is not Massey
    assert main(["data", "info", str(external_dir)]) == 0
    out = capsys.readouterr().out
    assert "signers: hand1 (" in out and "a->A" in out and "training classes absent: del, nothing, space" in out


def test_massey_manifest_verifies_a_copy(external_dir, tmp_path):
    import shutil

    from aslnb.data.external import check_external
    from aslnb.data.manifest import load_manifest, verify_folder
    from aslnb.errors import DownloadError, ParameterError

    m = load_manifest("massey-asl")
    assert len(m.files) == sum(disk_counts(external_dir).values())
    assert verify_folder(external_dir, m).ok
    copy = tmp_path / "massey"
    for cls in ("a", "b"):
        shutil.copytree(external_dir / cls, copy / cls)
    first_a, first_b = sorted((copy / "a").iterdir())[0], sorted((copy / "b").iterdir())[0]
    first_a.write_bytes(first_a.read_bytes()[:-1] + b"\0")  # same size, one byte changed
    first_b.unlink()
    rep = check_external(copy)
    assert not rep.ok and [r for r, _ in rep.bad] == [f"a/{first_a.name}"] and "sha256" in rep.bad[0][1]
    assert f"b/{first_b.name}" in rep.missing and len(rep.good) == 70 + 69 - 1
    assert "differ" in rep.summary() and "\n" not in rep.summary()
    with pytest.raises(DownloadError) as err:
        check_external(tmp_path / "empty")
    msg = str(err.value)
    assert "ayuraj/asl-dataset" in msg and "kaggle datasets download" in msg and "\n" not in msg
    with pytest.raises(ParameterError, match="massey-asl"):
        load_manifest("no-such-set")


def test_cli_fetch_external_and_verify_manifest(external_dir, tmp_path, capsys):
    import shutil

    from aslnb.cli import main

    copy = tmp_path / "massey"
    shutil.copytree(external_dir / "c", copy / "c")
    assert main(["data", "fetch", "--external", "--dest", str(copy)]) == EXIT_FETCH_INCOMPLETE  # 35 classes missing
    out = capsys.readouterr().out
    assert "70 of 2515 files match manifest massey-asl; 2445 missing, 0 differ" in out
    assert main(["data", "verify", "--manifest", "massey-asl", str(copy)]) == EXIT_BAD_IMAGES
    assert "2445 missing" in capsys.readouterr().out
    assert main(["data", "fetch", "--external", "--dest", str(tmp_path / "none")]) != 0
    err = capsys.readouterr().err
    assert "ayuraj/asl-dataset" in err and "kaggle" in err.lower()


# --------------------------------------------------------------------------- signers: validation vs test


def test_massey_signers_and_their_roles(massey):
    from aslnb.data.external import TEST_SIGNERS, VALIDATION_SIGNER, signer_role, signers_of

    who = signers_of(massey.folder.files)
    assert sorted(set(who.tolist())) == ["hand1", "hand2", "hand3", "hand4", "hand5"]
    assert VALIDATION_SIGNER not in TEST_SIGNERS
    assert [signer_role(s) for s in ("hand1", "hand2", "hand5", "hand9")] == ["validation", "test", "test", "other"]


def test_signer_scores_per_signer_and_pooled_over_test_signers():
    from aslnb.data.external import format_signer_scores, signer_scores

    files = [f"hand{s}_{c}_bot_seg_{i}_cropped.jpeg" for s in (1, 2, 3) for c in "ab" for i in range(4)]
    labels = np.array([0 if "_a_" in f else 1 for f in files])
    correct = np.array([f.startswith("hand1") or (f.startswith("hand2") and "_a_" in f) for f in files])
    out = signer_scores(correct, files, labels)
    assert out["groups"] == "signer x letter"
    assert out["per_signer"]["hand1"]["accuracy"] == 1.0 and out["per_signer"]["hand1"]["role"] == "validation"
    assert out["per_signer"]["hand2"]["accuracy"] == 0.5 and out["per_signer"]["hand2"]["groups"] == 2
    assert out["per_signer"]["hand3"]["accuracy"] == 0.0
    # the test pool holds hand2 and hand3 only (hand1 chooses settings, never counts as a test signer)
    assert out["test"]["n"] == 16 and out["test"]["accuracy"] == 0.25 and out["test"]["groups"] == 4
    assert out["test"]["low"] <= 0.25 <= out["test"]["high"]
    lines = format_signer_scores(out)
    assert lines[0].startswith("  hand1 (validation): 1.000") and "test signers" in lines[-1]


def test_signer_scores_none_without_signer_names():
    from aslnb.data.external import signer_scores

    assert signer_scores([True, False], ["a1.jpg", "b2.jpg"], [0, 1]) is None

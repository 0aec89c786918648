"""``aslnb predict`` on real images of several formats, ``aslnb evaluate --external``."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from PIL import Image

from aslnb.cli import main
from aslnb.errors import DataError, ModelError, RunDirError


def _first_jpeg(sample_dir, cls="B"):
    return sorted((sample_dir / cls).glob("*.jpg"))[0]


@pytest.fixture
def image_files(tmp_path, sample_dir):
    """One real JPEG, and the same picture as RGB PNG, grayscale PNG and RGBA PNG."""
    src = _first_jpeg(sample_dir)
    folder = tmp_path / "imgs"
    folder.mkdir()
    jpg = folder / src.name
    shutil.copyfile(src, jpg)
    img = Image.open(src).convert("RGB")
    png = folder / "rgb.png"
    img.save(png)
    gray = folder / "gray.png"
    img.convert("L").save(gray)
    rgba = folder / "rgba.png"
    im = img.convert("RGBA")
    im.putalpha(200)
    im.save(rgba)
    assert Image.open(gray).mode == "L" and Image.open(rgba).mode == "RGBA"
    return [jpg, png, gray, rgba]


def test_predict_json_for_jpeg_png_grayscale_rgba(tiny_run, image_files, capsys):
    rc = main(["predict", str(tiny_run.run_dir), *map(str, image_files), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    results = json.loads(out)
    names = json.loads((tiny_run.run_dir / "labels.json").read_text())["class_names"]
    assert [r["file"] for r in results] == [str(f) for f in image_files]
    for r in results:
        assert set(r) == {"file", "label", "prob", "top_k"}
        assert r["label"] in names and 0 <= r["prob"] <= 1
        assert len(r["top_k"]) == 3 and r["top_k"][0] == [r["label"], r["prob"]]
        probs = [p for _, p in r["top_k"]]
        assert probs == sorted(probs, reverse=True)
    # the same picture as JPEG and as lossless PNG gives nearly the same answer
    assert results[0]["label"] == results[1]["label"]


@pytest.mark.parametrize("kind", ["text_as_jpg", "empty_png"])
def test_predict_on_a_non_image_is_one_line_naming_it(tiny_run, tmp_path, capsys, kind):
    bad = {"text_as_jpg": tmp_path / "notes.jpg", "empty_png": tmp_path / "e.png"}[kind]
    bad.write_text("" if kind == "empty_png" else "this is not an image\n")
    rc = main(["predict", str(tiny_run.run_dir), str(bad)])
    err = capsys.readouterr().err
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslnb: error: ") and str(bad) in lines[0], err
    assert "Traceback" not in err


def test_evaluate_external_scores_only_shared_classes(tiny_run, tmp_dataset, external_dir, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    ext = tmp_dataset({"a": 3, "b": 3, "y": 2, "5": 3}, source=external_dir)
    run = tmp_path / "run"  # a copy: the shared tiny run stays as it is
    run.mkdir()
    for name in ("config.json", "labels.json", "history.json"):
        shutil.copyfile(tiny_run.run_dir / name, run / name)
    os.symlink(tiny_run.run_dir / "model.keras", run / "model.keras")
    rc = main(["evaluate", str(run), "--external", str(ext)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    m = json.loads((run / "metrics.json").read_text())
    e = m["external"]
    # per signer (file names hand1_..): hand1 chooses settings, the others are the test signers
    sig = e["signers"]
    assert sig["groups"] == "signer x letter" and sig["validation_signer"] == "hand1"
    assert sum(v["n"] for v in sig["per_signer"].values()) == e["n_images"]
    assert "hand1 (validation)" in out
    if "test" in sig:
        assert "test signers hand2+hand3+hand4+hand5" in out
    assert e["shared_classes"] == ["A", "B", "Y"]
    assert e["confusion_labels"] == ["A", "B", "Y"] and set(e["per_class"]) == {"A", "B", "Y"}
    assert e["n_images"] == 8  # the 3 images of class 5 are not scored
    assert "5" in e["unmapped"] and {"del", "nothing", "space"} <= set(e["missing_training_classes"])
    rows = [sum(row) + other for row, other in zip(e["confusion_matrix"], e["predicted_outside_labels"])]
    assert rows == [3, 3, 2]
    # the held-out part is the same as at training time
    assert m["held_out"] == tiny_run.metrics["held_out"]


# ---------------------------------------------------------------- issue 14: clear errors, nothing lost
def _copy_run(tiny_run, dest, *, link_model=True):
    """A modifiable copy of the tiny run (the model is symlinked unless ``link_model`` is False)."""
    dest.mkdir()
    for name in ("config.json", "labels.json", "history.json", "metrics.json"):
        shutil.copyfile(tiny_run.run_dir / name, dest / name)
    if link_model:
        os.symlink(tiny_run.run_dir / "model.keras", dest / "model.keras")
    else:
        shutil.copyfile(tiny_run.run_dir / "model.keras", dest / "model.keras")
    return dest


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslnb: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("names, pattern", [
    ("ABC", r"must be a non-empty list of class names.*found str"),
    (["A", 3, "C"], r"holds 3, not a class name"),
    (["A", ""], r"holds '', not a class name"),
    (["A", "B", "A"], r"lists 'A' more than once"),
    ([], r"must be a non-empty list"),
])
def test_bad_labels_json_is_refused_naming_the_file(tmp_path, names, pattern):
    from aslnb.errors import RunDirError
    from aslnb.runs import load_labels

    (tmp_path / "labels.json").write_text(json.dumps({"class_names": names}))
    with pytest.raises(RunDirError, match=pattern) as err:
        load_labels(tmp_path)
    assert str(tmp_path / "labels.json") in str(err.value) and "retrain" in str(err.value)


def test_labels_json_as_a_string_is_one_cli_line(tiny_run, tmp_path, aslnb_cli, image_files):
    run = _copy_run(tiny_run, tmp_path / "run")
    (run / "labels.json").write_text(json.dumps({"class_names": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}))
    r = aslnb_cli("predict", run, image_files[0])
    assert r.returncode == RunDirError.exit_code
    line = _one_error_line(r.stderr)
    assert str(run / "labels.json") in line and "list of class names" in line


def test_config_without_image_size_or_with_another_size_is_refused(tiny_run, tmp_path):
    from aslnb.errors import RunDirError
    from aslnb.runs import load_config, load_run

    run = _copy_run(tiny_run, tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    del cfg["params"]["image_size"]
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunDirError, match=r"config.json: params.image_size is missing"):
        load_config(run)
    cfg["params"]["image_size"] = 64  # the model takes 32 px
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunDirError, match=r"params.image_size is 64 but the model takes 32x32 images"):
        load_run(run)


def test_model_file_unreadable_not_a_zip_or_truncated_get_their_own_message(tiny_run, tmp_path, monkeypatch):
    from aslnb import runs
    from aslnb.errors import ModelError

    path = tmp_path / "model.keras"
    data = (tiny_run.run_dir / "model.keras").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated .*copy it again or retrain"):
        runs.load_model(path)
    path.write_text("<html>not found</html>")
    with pytest.raises(ModelError, match=r"not a Keras model file \(not a zip archive"):
        runs.load_model(path)
    path.write_bytes(b"")
    with pytest.raises(ModelError, match=r"an empty file"):
        runs.load_model(path)
    path.write_bytes(data)

    def denied(file, *args, **kwargs):  # tests run as root here, where chmod 000 does not stop a read
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(runs, "open", denied, raising=False)
    with pytest.raises(ModelError, match=r"cannot be read \(Permission denied\); fix its permissions") as err:
        runs.load_model(path)
    assert "corrupt" not in str(err.value) and "truncated" not in str(err.value)


def test_predict_escapes_a_newline_in_a_file_name(tiny_run, tmp_path, sample_dir, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    odd = folder / "two\nlines.jpg"
    shutil.copyfile(_first_jpeg(sample_dir), odd)
    shutil.copyfile(_first_jpeg(sample_dir), folder / "plain.jpg")
    rc = main(["predict", str(tiny_run.run_dir), str(folder)])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2, out  # one line per image, the newline does not split it
    assert any(line.startswith(repr(str(odd)) + ": ") for line in lines), out
    # --json keeps the real name (JSON escapes it)
    rc = main(["predict", str(tiny_run.run_dir), str(odd), "--json"])
    assert json.loads(capsys.readouterr().out)[0]["file"] == str(odd)


def test_a_bad_image_with_a_newline_in_its_name_is_still_one_error_line(tiny_run, tmp_path, capsys):
    bad = tmp_path / "bad\nname.jpg"
    bad.write_text("this is not an image\n")
    rc = main(["predict", str(tiny_run.run_dir), str(bad)])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == DataError.exit_code and "bad\\nname.jpg" in line and "not a readable image" in line


@pytest.fixture(scope="module")
def nan_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run whose classifier weights are NaN (a diverged training)."""
    import numpy as np

    from aslnb.runs import load_model

    run = _copy_run(tiny_run, tmp_path_factory.mktemp("nan") / "run", link_model=False)
    model = load_model(run / "model.keras")
    last = model.layers[-1]
    last.set_weights([np.full_like(w, np.nan) for w in last.get_weights()])
    model.save(run / "model.keras")
    from aslnb.data.manifest import sha256_file

    cfg = json.loads((run / "config.json").read_text())  # as training records the model it saved
    cfg["model_sha256"] = sha256_file(run / "model.keras")
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def test_predict_json_refuses_nan_probabilities(nan_run, image_files, aslnb_cli):
    r = aslnb_cli("predict", nan_run, image_files[0], "--json")
    assert r.returncode == ModelError.exit_code and "NaN" not in r.stdout and r.stdout.strip() == ""
    line = _one_error_line(r.stderr)
    assert str(nan_run) in line and "outputs NaN" in line and "retrain with a lower learning rate" in line


def test_evaluate_refuses_nan_probabilities(nan_run, sample_dir):
    from aslnb.errors import ModelError
    from aslnb.evaluate import evaluate

    before = (nan_run / "metrics.json").read_text()
    with pytest.raises(ModelError, match="outputs NaN"):
        evaluate(nan_run, sample_dir, verbose=0)
    assert (nan_run / "metrics.json").read_text() == before


def test_evaluate_on_other_data_keeps_metrics_json_and_warns_of_missing_classes(tiny_run, tmp_path, tmp_dataset,
                                                                                aslnb_cli):
    run = _copy_run(tiny_run, tmp_path / "run")
    before = (run / "metrics.json").read_text()
    other = tmp_dataset({"A": 6, "B": 6, "C": 6, "extra": ("D", 2)})
    r = aslnb_cli("evaluate", run, "--data", other, "--other-data")  # not the run's data: refused without it
    assert r.returncode == 0, r.stderr
    written = run / f"metrics-{other.name}.json"
    assert (run / "metrics.json").read_text() == before  # the run's own numbers are kept
    m = json.loads(written.read_text())
    assert m["data"] == str(other) and "trained on" in m["note"]
    assert len(m["missing_classes"]) == 26 and {"D", "del", "space"} <= set(m["missing_classes"])
    said = r.stdout.strip().splitlines()[-1]
    assert f"written to {written}" in said and "other data than the run's training data" in said
    assert "metrics.json is unchanged" in said
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("aslnb: warning: ")]
    assert len(warn) == 2 and "26 of the model's 29 classes" in warn[0] and "del, nothing, space" in warn[0]
    assert "1 folder(s) are not classes of the model (extra): ignored" in warn[1]
    assert m["ignored_folders"] == ["extra"]


def test_evaluate_on_the_massey_folder_names_the_missing_classes(tiny_run, tmp_path, tmp_dataset, external_dir,
                                                                 aslnb_cli):
    run = _copy_run(tiny_run, tmp_path / "run")
    massey_like = tmp_dataset({"0": 2, "1": 2, "a": 2, "b": 2}, source=external_dir)
    r = aslnb_cli("evaluate", run, "--data", massey_like)
    assert r.returncode == DataError.exit_code
    line = _one_error_line(r.stderr)
    assert "the model's classes (A, B, C" in line and f"are missing in {massey_like} (found 0, 1, a, b)" in line
    assert "--external" in line and "no image files found" not in line
    assert not list(run.glob("metrics-*.json"))


def test_predict_and_evaluate_agree_on_the_held_out_images(tiny_run, sample_dir):
    """One inference path: predict's labels on the test files give evaluate's test accuracy."""
    from aslnb.data.scan import scan_folder
    from aslnb.data.splits import limit_folder, split_folder
    from aslnb.predict import predict

    p = json.loads((tiny_run.run_dir / "config.json").read_text())["params"]
    folder = limit_folder(scan_folder(sample_dir), p["limit_per_class"])
    test = split_folder(folder, p["split"], val_fraction=p["val_fraction"], test_fraction=p["test_fraction"],
                        seed=p["seed"]).test
    results = predict(tiny_run.run_dir, list(test.files), model=tiny_run.model)
    names = folder.class_names
    acc = sum(r["label"] == names[y] for r, y in zip(results, test.labels)) / len(test)
    assert [r["file"] for r in results] == list(test.files)
    assert acc == pytest.approx(tiny_run.metrics["held_out"]["accuracy"], abs=1e-12)


# ---------------------------------------------------------------- issue 25: never silently wrong
def _linked_copy(src, dest):
    """``src`` as a tree of symlinks (the same files, so the same data fingerprint)."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        (dest / cls.name).mkdir(parents=True)
        for f in cls.iterdir():
            (dest / cls.name / f.name).symlink_to(f)
    return dest


def test_evaluate_refuses_data_that_differs_from_the_runs(tiny_run, tmp_path, sample_dir, capsys):
    """Case 9: a few frames removed from the run's data: the rebuilt test split held training frames and
    metrics.json was overwritten as "the run's training data"."""
    data = _linked_copy(sample_dir, tmp_path / "data")
    run = _copy_run(tiny_run, tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["root"] = str(data)
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["evaluate", str(run), "--data", str(data)]) == 0  # the same files: accepted
    assert json.loads((run / "metrics.json").read_text())["held_out"] == tiny_run.metrics["held_out"]
    before = (run / "metrics.json").read_text()
    capsys.readouterr()
    for f in sorted((data / "A").iterdir())[:3]:
        f.unlink()
    rc = main(["evaluate", str(run), "--data", str(data)])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == DataError.exit_code and str(data) in line
    assert "not the data this run was trained on" in line and "--other-data" in line
    assert (run / "metrics.json").read_text() == before and not list(run.glob("metrics-*.json"))
    # asked for explicitly: every image scored as another data set, under its own name
    rc = main(["evaluate", str(run), "--data", str(data), "--other-data"])
    out = capsys.readouterr().out
    assert rc == 0 and (run / "metrics.json").read_text() == before
    m = json.loads((run / "metrics-data.json").read_text())
    n_images = sum(1 for c in data.iterdir() for _ in c.iterdir())
    assert m["split"]["evaluated"] == "all" and m["held_out"]["n_images"] == n_images
    assert "not the run's training data" in m["note"] and "metrics.json is unchanged" in out


def test_evaluate_external_warns_of_classes_the_model_does_not_know(tiny_run, tmp_dataset, external_dir,
                                                                    tmp_path, capsys, monkeypatch):
    """Case 14: --external dropped the images of an unknown class without a word (--data warns)."""
    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)
    ext = tmp_dataset({"a": 2, "b": 2, "5": 3}, source=external_dir)
    run = _copy_run(tiny_run, tmp_path / "run")
    rc = main(["evaluate", str(run), "--external", str(ext)])
    err = capsys.readouterr().err
    assert rc == 0, err
    warn = [ln for ln in err.splitlines() if ln.startswith("aslnb: warning: ")]
    assert len(warn) == 1, err
    assert warn[0] == (f"aslnb: warning: {ext}: 1 folder(s) are not classes of the model (5): "
                       "ignored (3 images not scored)")


def test_predict_answers_the_good_images_and_lists_the_bad(tiny_run, tmp_path, sample_dir, capsys):
    """Case 19: one bad image stopped predict before it printed anything."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted((sample_dir / "B").glob("*.jpg"))[:5]
    for f in good:
        shutil.copyfile(f, folder / f.name)
    bad = [folder / "x1.jpg", folder / "x2.png", folder / "x3.jpg"]
    for f in bad:
        f.write_text("not an image")
    rc = main(["predict", str(tiny_run.run_dir), str(folder)])
    out, err = capsys.readouterr()
    assert rc == DataError.exit_code
    lines = out.strip().splitlines()
    assert len(lines) == 5 and sorted(ln.split(": ")[0] for ln in lines) == [str(folder / f.name) for f in good]
    errs = err.strip().splitlines()
    assert len(errs) == 3 and "Traceback" not in err
    for f, line in zip(bad, errs):
        assert line.startswith(f"aslnb: error: {f}: not a readable image") and "aslnb data verify" in line
    rc = main(["predict", str(tiny_run.run_dir), str(folder), "--json"])
    out, err = capsys.readouterr()
    assert rc == DataError.exit_code and len(json.loads(out)) == 5 and len(err.strip().splitlines()) == 3


def test_check_trained_on_compares_the_recorded_fingerprint(tmp_dataset):
    """The data check of case 9 without a model: which runs it refuses, and which it cannot check."""
    from aslnb.data.scan import scan_folder
    from aslnb.data.splits import split_folder
    from aslnb.evaluate import check_trained_on
    from aslnb.runs import data_fingerprint

    root = tmp_dataset({"A": 8, "B": 8})
    split = split_folder(scan_folder(root), "chunk")
    cfg = {"params": {"hand_views": 0}, "data": {"root": str(root), "fingerprint": data_fingerprint(split)}}
    check_trained_on(cfg, split, root)  # the same files
    sorted((root / "B").iterdir())[0].unlink()
    changed = split_folder(scan_folder(root), "chunk")
    with pytest.raises(DataError, match=r"not the data this run was trained on .*--other-data") as err:
        check_trained_on(cfg, changed, root)
    assert str(err.value).startswith(f"{root}: ") and "\n" not in str(err.value)
    check_trained_on({**cfg, "data": {"root": str(root)}}, changed, root)  # a run from before fingerprints
    check_trained_on({**cfg, "params": {"hand_views": 2}}, changed, root)  # views are in its fingerprint


def test_evaluate_through_the_feature_cache_gives_the_same_numbers_and_reuses_them(tiny_run, sample_dir, tmp_path,
                                                                                   monkeypatch):
    import aslnb.features as features
    from aslnb.evaluate import evaluate

    monkeypatch.delenv("ASLNB_EXTERNAL_DATA", raising=False)  # the held-out split only: one feature set
    plain = evaluate(tiny_run.run_dir, sample_dir, verbose=0, write=False, model=tiny_run.model)
    cache = tmp_path / "cache"
    first = evaluate(tiny_run.run_dir, sample_dir, verbose=0, write=False, model=tiny_run.model,
                     feature_cache_dir=cache)
    assert [p.name.startswith("features-") for p in cache.iterdir()] == [True]
    monkeypatch.setattr(features, "_compute", lambda *a, **k: pytest.fail("features computed again"))
    again = evaluate(tiny_run.run_dir, sample_dir, verbose=0, write=False, model=tiny_run.model,
                     feature_cache_dir=cache)
    assert first["held_out"] == plain["held_out"] == again["held_out"]


def test_the_cached_path_cuts_a_fine_tuned_run_below_its_second_phase(tiny_run, sample_dir, tmp_path):
    from aslnb.data import scan_folder
    from aslnb.evaluate import cached_class_probabilities, class_probabilities
    from aslnb.io import read_json

    cfg = read_json(tiny_run.run_dir / "config.json")
    cfg["params"].update(fine_tune_epochs=1, fine_tune_until="conv4")  # as if conv5 had been trained again
    folder = scan_folder(sample_dir).subset(slice(0, 20))
    p = cfg["params"]
    full = class_probabilities(tiny_run.model, folder.files, p["image_size"], 8, decoder=p["decoder"])
    cut = cached_class_probabilities(tiny_run.model, folder, cfg, tmp_path, 8)
    stored = next(tmp_path.glob("features-*"))
    assert len(read_json(stored / "manifest.json")["shape"]) == 4  # (images, h, w, channels): conv4's map, not pooled
    assert abs(cut - full).max() < 1e-6
    cfg["params"].update(fine_tune_epochs=0, freeze_until="none")
    assert cached_class_probabilities(tiny_run.model, folder, cfg, tmp_path, 8) is None  # nothing frozen

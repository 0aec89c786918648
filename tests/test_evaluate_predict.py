"""``aslnb predict`` on real images of several formats, ``aslnb evaluate --external``."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from PIL import Image

from aslnb.cli import main


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
    assert rc == 0, capsys.readouterr().err
    m = json.loads((run / "metrics.json").read_text())
    e = m["external"]
    assert e["shared_classes"] == ["A", "B", "Y"]
    assert e["confusion_labels"] == ["A", "B", "Y"] and set(e["per_class"]) == {"A", "B", "Y"}
    assert e["n_images"] == 8  # the 3 images of class 5 are not scored
    assert "5" in e["unmapped"] and {"del", "nothing", "space"} <= set(e["missing_training_classes"])
    rows = [sum(row) + other for row, other in zip(e["confusion_matrix"], e["predicted_outside_labels"])]
    assert rows == [3, 3, 2]
    # the held-out part is the same as at training time
    assert m["held_out"] == tiny_run.metrics["held_out"]

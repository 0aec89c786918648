"""Fast tests of the notebook helpers: parameter checks, profiles, the speller, analysis helpers, plots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from aslnb.errors import AslnbError, DataError, ParameterError
from aslnb.config import PROFILES, freeze_for, profile, train_params
from aslnb.course.speller import Speller, decode, signs_for


# ---------------------------------------------------------------- speller
def test_letter_typed_after_n_identical_predictions():
    assert decode(["A", "A"], n=3) == ""
    assert decode(["A", "A", "A"], n=3) == "A"


def test_holding_a_sign_types_it_once():
    assert decode(["A"] * 10, n=3) == "A"


def test_a_flicker_restarts_the_count():
    assert decode(["A", "A", "B", "A", "A"], n=3) == ""
    assert decode(["A", "A", "B", "A", "A", "A"], n=3) == "A"


def test_double_letter_needs_a_change_in_between():
    assert decode(["L"] * 6, n=3) == "L"
    assert decode(["L"] * 3 + ["nothing"] + ["L"] * 3, n=3) == "LL"


def test_space_and_del():
    seq = ["H"] * 3 + ["I"] * 3 + ["space"] * 3 + ["X"] * 3 + ["del"] * 3 + ["A"] * 3
    assert decode(seq, n=3) == "HI A"


def test_del_on_empty_text_does_nothing():
    assert decode(["del"] * 5, n=2) == ""


def test_nothing_resets_the_streak():
    assert decode(["A", "A", "nothing", "A"], n=3) == ""
    assert decode(["A", "A", "nothing", "A", "A", "A"], n=3) == "A"


def test_low_confidence_counts_as_nothing():
    assert decode(["A", "A", "A"], n=3, probs=[0.9, 0.2, 0.9], min_prob=0.5) == ""
    assert decode(["A", "A", "A"], n=3, probs=[0.9, 0.6, 0.9], min_prob=0.5) == "A"


def test_speller_events_and_n_1():
    sp = Speller(n=1)
    assert [sp.feed(x) for x in ["A", "A", "B", "del", "space"]] == ["A", None, "B", "<del>", " "]
    assert sp.text == "A "
    assert [frame for frame, _ in sp.events] == [0, 2, 3, 4]


def test_speller_refuses_bad_n():
    with pytest.raises(ValueError):
        Speller(n=0)


@pytest.mark.parametrize("word", ["HELLO ASL", "AAB", "A", "", "LL  L"])
def test_signs_for_round_trips(word):
    for n in (1, 3):
        assert decode(signs_for(word, n=n, hold=n + 1), n=n) == word.upper()


# ---------------------------------------------------------------- profiles
def test_profiles_have_the_same_keys():
    keys = {name: set(profile(name)) for name in PROFILES}
    assert keys["smoke"] == keys["cpu"] == keys["gpu"]


@pytest.mark.parametrize("name", list(PROFILES))
def test_train_params_are_valid_training_parameters(name):
    from aslnb.config import TrainConfig

    for backbone in ("resnet50", "efficientnet_lite0"):
        params = train_params(profile(name), backbone)
        TrainConfig.from_params(**params)  # refuses unknown names and bad values
        assert params["backbone"] == backbone
    assert train_params(profile("cpu"), "efficientnet_lite0")["weights"] == "imagenet"
    assert train_params(profile("cpu"), "resnet50")["weights"] == profile("cpu")["weights"]
    assert train_params(profile("cpu"), "efficientnet_lite0", weights="none")["weights"] == "none"


def test_freeze_points_map_to_lite0_stages():
    from aslnb.models.efficientnet_lite import EFFICIENTNET_LITE0_STAGES

    for until in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        assert freeze_for("efficientnet_lite0", until) in EFFICIENTNET_LITE0_STAGES
        assert freeze_for("resnet50", until) == until
    assert freeze_for("efficientnet_lite0", "all") == "all"


# ---------------------------------------------------------------- setup()
def _params(tmp_path, **over):
    ns = {"PROFILE": "smoke", "DATA_DIR": str(tmp_path), "EXTERNAL_DIR": None, "REPORT_DIR": str(tmp_path / "rep"),
          "SEED": 0, "WEIGHTS": None, "IMAGE_SIZE": None, "EPOCHS": None}
    ns.update(over)
    return ns


def test_setup_resolves_and_prints_banner(tmp_path, capsys):
    from aslnb.course.notebook import default_run_dir, setup

    run = setup("01", _params(tmp_path, EPOCHS=3))
    out = capsys.readouterr().out
    assert "profile smoke" in out and "WITHOUT ImageNet" in out
    assert run["epochs"] == 3 and run["image_size"] == profile("smoke")["image_size"]
    assert run.fig_dir == tmp_path / "rep" / "figures"
    assert default_run_dir(run, "efficientnet_lite0") == tmp_path / "rep" / "runs" / "smoke-efficientnet_lite0"


def test_setup_refuses_unknown_parameter(tmp_path):
    from aslnb.course.notebook import setup

    with pytest.raises(ParameterError, match="unknown parameter.*EPOCHZ"):
        setup("01", _params(tmp_path, EPOCHZ=3))


def test_setup_refuses_wrong_type(tmp_path):
    from aslnb.course.notebook import setup

    with pytest.raises(ParameterError, match=r"EPOCHS='3': expected int or None, got str"):
        setup("01", _params(tmp_path, EPOCHS="3"))
    with pytest.raises(ParameterError, match="SEED"):
        setup("01", _params(tmp_path, SEED=True))


def test_setup_resolves_backbone_auto_and_says_why(tmp_path, capsys, monkeypatch):
    import dataclasses

    from aslnb.course.notebook import setup, train_kwargs
    from aslnb.models import get_backbone, registry

    spec = get_backbone("resnet50")
    monkeypatch.setitem(registry._REGISTRY, "resnet50", dataclasses.replace(spec, imagenet_status=lambda: (False, "offline")))
    run = setup("04", _params(tmp_path, RUN_DIR=None, BACKBONE="auto", FINE_TUNE_EPOCHS=None))
    out = capsys.readouterr().out
    assert run.params["BACKBONE"] == "efficientnet_lite0" and run.backbone_why in out
    assert run.backbone_why.startswith("BACKBONE 'auto' -> efficientnet_lite0") and "offline" in run.backbone_why
    assert "WITHOUT ImageNet" not in out  # the NOTE is about ResNet50, which this run does not train
    assert train_kwargs(run, run.params["BACKBONE"])["backbone"] == "efficientnet_lite0"
    assert "32px" in run.stamp()
    assert "lite0 ImageNet · 32px" in run.stamp("lite0 ImageNet · 32px")


def test_setup_refuses_bad_backbone_and_profile(tmp_path):
    from aslnb.course.notebook import setup

    with pytest.raises(ParameterError, match="BACKBONE"):
        setup("04", _params(tmp_path, RUN_DIR=None, BACKBONE="vgg16", FINE_TUNE_EPOCHS=None))
    with pytest.raises(ParameterError, match="profile"):
        setup("01", _params(tmp_path, PROFILE="fast"))


def test_setup_refuses_missing_data(tmp_path):
    from aslnb.course.notebook import setup

    with pytest.raises(DataError, match="does not exist"):
        setup("01", _params(tmp_path, DATA_DIR=str(tmp_path / "nope")))


def test_errors_render_as_one_line_in_ipython():
    err = ParameterError("unknown parameter(s) X")
    assert err._render_traceback_() == ["ParameterError: unknown parameter(s) X"]
    assert issubclass(ParameterError, AslnbError)


def test_record_writes_metrics(tmp_path, capsys):
    from aslnb.course.notebook import record, setup

    run = setup("01", _params(tmp_path))
    assert record(run, "acc", 0.123456) == 0.123456
    record(run, "sizes", {"train": 3})
    assert "acc = 0.1235" in capsys.readouterr().out
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert data["nb01"] == {"acc": 0.123456, "sizes": {"train": 3}}
    assert data["_produced_by"]["nb01"]["profile"] == "smoke"


def test_record_keeps_every_key_when_two_notebooks_write_at_once(tmp_path):
    """A report runs notebook 02 beside the others: both kernels add to the same metrics.json."""
    import threading

    from aslnb.course.notebook import record, setup

    runs = [setup(nb, _params(tmp_path)) for nb in ("01", "02")]

    def write(run):
        for i in range(40):
            record(run, f"k{i}", i, show=False)

    threads = [threading.Thread(target=write, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert data["nb01"] == data["nb02"] == {f"k{i}": i for i in range(40)}


# ---------------------------------------------------------------- analysis helpers
@pytest.fixture
def small_folder(tmp_dataset):
    from aslnb.data import scan_folder

    return scan_folder(tmp_dataset({"A": 8, "B": 8, "nothing": 8}))


def test_split_assignment_and_table(small_folder):
    from aslnb.data import split_folder
    from aslnb.course.analysis import split_assignment, split_indices, split_table

    sp = split_folder(small_folder, "blocked", seed=0)
    a = split_assignment(small_folder, sp)
    assert len(a) == len(small_folder)
    assert (a == "test").sum() == len(sp.test) and (a == "train").sum() == len(sp.train)
    idx = split_indices(small_folder, sp)
    assert sorted(small_folder.files[idx["val"]]) == sorted(sp.val.files)
    table = split_table(small_folder, {"blocked": sp})
    assert int(table.loc["blocked", "test"]) == len(sp.test)


def test_closest_frames_and_distances(small_folder):
    from aslnb.data import frame_number
    from aslnb.course.analysis import closest_frames, neighbour_vs_random, one_per_class

    a, b = closest_frames(small_folder, "A")
    assert frame_number(a) < frame_number(b)
    d = neighbour_vs_random(small_folder, size=16, pairs=5)
    assert set(d) == {"neighbouring frames", "random frames, same class", "random frames, different classes"}
    assert [c for c, _ in one_per_class(small_folder)] == ["A", "B", "nothing"]


def test_spell_sequence_cycles_through_frames(small_folder):
    from aslnb.course.analysis import spell_sequence

    files = spell_sequence(small_folder, ["A"] * 10 + ["nothing"])
    assert len(files) == 11 and len(set(files[:8])) == 8 and files[8] == files[0]
    with pytest.raises(ValueError):
        spell_sequence(small_folder, ["Z"])


def test_plots_have_titles_and_labels():
    import matplotlib

    matplotlib.use("Agg")
    import aslnb.course.plots as plots

    epochs = [{"phase": "head", "loss": 3.0, "accuracy": 0.1, "val_loss": 3.1, "val_accuracy": 0.1},
              {"phase": "fine_tune", "loss": 2.0, "accuracy": 0.3, "val_loss": 2.5, "val_accuracy": 0.2}]
    fig = plots.training_curves(epochs, title="t")
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() for ax in fig.axes)
    assert any("fine-tuning" in t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts())
    fig = plots.confusion_heatmap(np.eye(3), ["a", "b", "c"], title="cm")
    assert fig.axes[0].get_xlabel() == "predicted class" and fig.axes[0].get_title() == "cm"
    fig = plots.bars({"x": 0.5, "y": 0.25}, title="b", ylabel="accuracy", chance=0.1)
    assert fig.axes[0].get_ylabel() == "accuracy"


def test_weights_parameter_applies_to_the_notebooks_own_backbone(tmp_path):
    from aslnb.course.notebook import setup, train_kwargs

    run = setup("05", _params(tmp_path, WEIGHTS="imagenet", RUN_DIR=None))
    assert train_kwargs(run, "resnet50")["weights"] == "imagenet"
    assert train_kwargs(run, "efficientnet_lite0")["weights"] == "imagenet"
    run = setup("05", _params(tmp_path, WEIGHTS="none", RUN_DIR=None))
    assert train_kwargs(run, "efficientnet_lite0")["weights"] == "imagenet"  # 04's lite0 run is still found
    run = setup("04", _params(tmp_path, WEIGHTS="none", RUN_DIR=None, BACKBONE="efficientnet_lite0",
                              FINE_TUNE_EPOCHS=None))
    assert train_kwargs(run, "efficientnet_lite0")["weights"] == "none"


@pytest.mark.parametrize("method", ["chunk", "blocked"])
def test_random_vs_split_uses_the_course_probe(tiny_images, method):
    """Notebook 05's random-vs-headline probe is transfer.linear_probe on the two splits' indices."""
    from aslnb.course.analysis import random_vs_split, split_indices
    from aslnb.course.transfer import linear_probe
    from aslnb.data import load_images, scan_folder, split_folder
    from aslnb.data.splits import limit_folder

    full = scan_folder(tiny_images)
    folder = limit_folder(full.subset(np.flatnonzero(full.labels < 4)), 40)
    feats = load_images(folder.files, 8).reshape(len(folder), -1).astype(np.float32)
    probe = random_vs_split(folder, feats, method, seed=0)
    assert set(probe) == {"random", method}
    assert probe["random"] > 0.9  # one colour per class: a linear probe separates them
    idx = split_indices(folder, split_folder(folder, method, val_fraction=0.1, test_fraction=0.2, seed=0))
    tr, te = idx["train"], idx["test"]
    assert probe[method] == linear_probe(feats[tr], folder.labels[tr], feats[te], folder.labels[te])


def test_tiny_images_neighbouring_frames_look_alike(tiny_images):
    """The generated set keeps the property notebook 01 shows: neighbours are closer than random frames."""
    from aslnb.course.analysis import neighbour_vs_random
    from aslnb.data import scan_folder

    d = neighbour_vs_random(scan_folder(tiny_images), size=16, pairs=40)
    assert d["neighbouring frames"] < d["random frames, same class"] < d["random frames, different classes"]


def test_recipe_epoch_timer_and_weight_difference():
    import keras
    import numpy as np

    from aslnb.course import recipe

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(inp))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = np.zeros((40, 4), "float32"), recipe.one_hot(np.arange(40) % 3, 3)
    assert y.shape == (40, 3) and y.sum() == 40
    timer = recipe.EpochTimer(8)
    before = model.get_weights()
    model.fit(x + 1, y, batch_size=8, epochs=2, verbose=0, callbacks=[timer])
    assert len(timer.per_image) == 2 and timer.seconds_per_image > 0
    assert recipe.max_weight_difference(model, before) > 0
    assert recipe.max_weight_difference(model, model.get_weights()) == 0
    assert recipe.STUDY["seconds_per_epoch"] == 132 and recipe.STUDY["gpu"].endswith("K80")

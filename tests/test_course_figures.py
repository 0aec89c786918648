"""Small course figures and tables: what they show matches the cells and the code (issue 26, items 5 and 11)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def test_confusion_colour_bar_runs_over_the_percent_the_cells_show():
    from aslnb.course.plots import confusion_heatmap

    m = np.array([[0.75, 0.25], [0.1, 0.9]])
    fig = confusion_heatmap(m, ["A", "B"], title="t", annot=True)
    mesh = fig.axes[0].collections[0]
    assert mesh.get_clim() == (0, 100)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["10", "25", "75", "90"]
    assert "%" in fig.axes[1].get_ylabel()


@pytest.mark.parametrize("n_epochs", [3, 7])
def test_epoch_ticks_are_whole_numbers(n_epochs):
    from aslnb.course.plots import training_curves
    from aslnb.course.residual import DepthRun
    from aslnb.course.residual_figures import plot_training_curves

    epochs = [{"loss": 1.0 / (i + 1), "accuracy": i / 10, "phase": "head"} for i in range(n_epochs)]
    runs = [DepthRun(f"{k}_4", 4, k == "residual", 10, list(np.linspace(3, 1, n_epochs))) for k in ("plain", "residual")]
    for fig in (training_curves(epochs, title="t"), plot_training_curves(runs)):
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_residual_block_diagram_has_the_batch_normalization_of_the_code():
    from aslnb.course.residual import build_conv_net
    from aslnb.course.residual_figures import draw_residual_block

    labels = [t.get_text() for t in draw_residual_block().axes[0].texts]
    assert labels.count("BatchNormalization") == 2 and labels.count("ReLU") == 2
    net = build_conv_net(2, residual=True, input_size=16, width=8, num_classes=3, batch_norm=True)
    assert sum("batch_normalization" in layer.name or layer.__class__.__name__ == "BatchNormalization"
               for layer in net.layers) >= 2  # the code the diagram draws has them


def test_depth_verdict_counts_a_difference_only_when_every_seed_agrees():
    from aslnb.course.residual import depth_verdict

    assert depth_verdict([1.0, 1.1, 0.9], [1.2, 1.3, 1.1], 0.05).startswith("higher in every seed")
    assert depth_verdict([1.0, 1.1, 0.9], [0.8, 0.9, 0.7], 0.05).startswith("lower in every seed")
    assert depth_verdict([1.0, 1.1, 0.9], [1.2, 1.0, 1.1], 0.05) == "no difference that holds in every seed"
    assert depth_verdict([1.0, 1.0, 1.0], [1.03, 1.04, 1.02], 0.05) == "no difference that holds in every seed"


def test_notebook_tables_show_whole_row_labels():
    import pandas as pd

    from aslnb.course.notebook import _display_options

    with pd.option_context("display.max_colwidth", 50):
        _display_options()
        label = "head phase through the images (efficientnet_lite0, 128 px, frozen)"
        assert label in repr(pd.DataFrame({"seconds": [1.0]}, index=[label]))
        assert label in pd.DataFrame({"what": [label]})._repr_html_()


def test_light_by_split_counts_classes_and_subsets(tiny_images):
    from aslnb.course.analysis import image_stats, light_by_split, split_assignment
    from aslnb.course.plots import light_by_split as light_figure
    from aslnb.data import scan_folder, split_folder
    from aslnb.data.splits import limit_folder

    folder = limit_folder(scan_folder(tiny_images), 40)
    stats = image_stats(folder, size=16)
    split = split_folder(folder, "chunk", seed=0)
    table = light_by_split(stats, folder, split)
    assert list(table.index) == ["train", "val", "test"]
    assert table.loc["test", "images"] == len(split.test) and table.loc["train", "images"] == len(split.train)
    assert table.loc["train", "classes with more contrast than train"] == 0  # never above itself
    where = split_assignment(folder, split)
    assert table.loc["test", "contrast"] == round(float(stats["contrast"][where == "test"].mean()), 1)
    fig = light_figure(stats, where, title="light")
    assert fig._suptitle.get_text() == "light" and all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_readme_counts_six_notebooks():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "all five" not in readme and "five notebooks" not in readme


def test_provenance_names_no_path_of_this_machine(monkeypatch, tmp_path):
    """Item 9 without a report: data as $ASLNB_DATA with its fingerprint, the repository relative, stamps pathless."""
    from pathlib import Path

    from aslnb.course.notebook import NotebookRun
    from aslnb.provenance import data_label, folder_fingerprint, portable, repo_root

    data = tmp_path / "asl"
    (data / "A").mkdir(parents=True)
    (data / "A" / "A1.jpg").write_bytes(b"x")
    monkeypatch.setenv("ASLNB_DATA", str(data))
    fp = folder_fingerprint(data)
    assert data_label(data) == f"$ASLNB_DATA (fingerprint {fp})" and len(fp) == 12
    assert folder_fingerprint(tmp_path / "asl") == fp
    assert portable({"r": [str(repo_root() / "reports" / "cpu")], "h": str(Path.home() / "x")}) == {
        "r": ["./reports/cpu"], "h": "~/x"}
    assert str(tmp_path) not in portable(f"copied to {tmp_path / 'other'}")
    run = NotebookRun("01", {"PROFILE": "cpu", "SEED": 0}, {"image_size": 128, "weights": "auto"}, data, None,
                      tmp_path / "rep", tmp_path / "rep" / "figures")
    assert "/" not in run.stamp() and "/" not in run.stamp("efficientnet_lite0 ImageNet · 128px")

"""The stamp under a figure never overlaps its tick labels, axis labels or legends."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from aslnb.course import plots  # noqa: E402

STAMP = "aslnb nb02 · profile cpu · 128px · weights imagenet · seed 0 · a long line to reach the labels"


def _labels(fig, renderer):
    """Window extents of every tick label, axis label and legend of ``fig``."""
    out = []
    for ax in fig.axes:
        drawn = ax.get_tightbbox(renderer)  # tick labels outside the view limits are not drawn
        for t in ax.get_xticklabels() + ax.get_yticklabels() + [ax.xaxis.label, ax.yaxis.label, ax.title]:
            box = t.get_window_extent(renderer)
            inside = drawn.x0 - 1 <= box.x0 and box.x1 <= drawn.x1 + 1 and drawn.y0 - 1 <= box.y0
            if t.get_visible() and t.get_text() and inside:
                out.append((t.get_text(), box))
        if ax.get_legend() is not None:
            out.append(("legend", ax.get_legend().get_window_extent(renderer)))
    return out


def _two_panels():
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for ax in axes:
        ax.plot([1, 10, 100], [0.1, 0.5, 0.9], label="curve")
        ax.set_xlabel("weighted layer (1 = stem conv, last = dense classifier)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _no_layout():
    """A figure saved without tight_layout (as notebook 02's gradient norms were): labels near the edge."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.semilogy([1, 2, 3], [1e-5, 1e-3, 1e-1], label="plain_24")
    ax.set_xlabel("weighted layer (1 = stem conv, last = dense classifier)")
    ax.set_ylabel("gradient norm")
    return fig


@pytest.mark.parametrize("make", [
    _two_panels,
    _no_layout,
    lambda: plots.bars({"a": 0.5, "random split": 0.9, "blocked split": 0.4}, title="t", ylabel="accuracy"),
    lambda: plots.accuracy_vs_gap([{"split": "random", "gap median": 8, "a": 0.9, "l": 0.8, "h": 0.95},
                                   {"split": "chunk", "gap median": 600, "a": 0.5, "l": 0.4, "h": 0.6}],
                                  title="t", series={"all": ("a", "l", "h")}, chosen="chunk"),
])
def test_stamp_below_every_label(make, tmp_path):
    fig = make()
    text = plots.stamp(fig, STAMP)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = text.get_window_extent(renderer)
    labels = _labels(fig, renderer)
    assert any(name.startswith("weighted") or name in ("accuracy", "evaluation", "legend") for name, _ in labels)
    for name, other in labels:
        assert not box.overlaps(other), f"stamp overlaps {name!r}"
        assert box.y1 <= other.y0 + 0.5, f"stamp not below {name!r}"
    # the saved image includes it: a tight bounding box grows to contain the stamp
    tight = fig.get_tightbbox(renderer)
    assert tight.y0 * fig.dpi <= box.y0 + 0.5
    fig.savefig(tmp_path / "f.png", bbox_inches="tight")
    plt.close(fig)

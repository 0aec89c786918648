"""Figures of the notebooks: every one has a title and labelled axes, and returns the Figure.

Save them with :func:`aslnb.course.notebook.save_fig` (which stamps what produced them).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..data.images import frame_number

GOOD, BAD = "tab:green", "tab:red"
SUBSET_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:red", "dropped": "0.8"}


def _plt():
    import matplotlib.pyplot as plt

    return plt


def finish(fig, title: str, **kw):
    """Give ``fig`` its overall ``title`` (``kw``: :meth:`~matplotlib.figure.Figure.suptitle`'s), lay it out, return it."""
    fig.suptitle(title, **kw)
    fig.tight_layout()
    return fig


def _tiles(n: int, ncols: int, width: float, height: float):
    """``(fig, axes)``: ``n`` axes (one at least) in rows of at most ``ncols``, each ``width`` x ``height`` inches
    (0.6 more for the title), every axis off."""
    n = max(1, n)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _plt().subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes.flat


def stamp(fig, text: str, *, fontsize: float = 6, pad_points: float = 3):
    """Write ``text`` (what produced the figure) in one line below everything already drawn in ``fig``.

    The line goes under the lowest artist (tick labels, x labels, legends), right-aligned with the
    rightmost one, so it never overlaps a label; ``savefig(..., bbox_inches="tight")`` (and the
    notebook's inline display) then grows the image to include it. Call it last, after the layout.
    """
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)  # inches
    w, h = fig.get_figwidth(), fig.get_figheight()
    y = (box.y0 - pad_points / 72) / h
    return fig.text(min(box.x1 / w, 1.0), y, text, ha="right", va="top", fontsize=fontsize, color="0.4")


def accuracy_vs_gap(rows: Sequence[dict], *, title: str, series: dict[str, tuple[str, str, str]],
                    chosen: str | None = None):
    """Accuracy with its interval against the median frame gap, one labelled point per split.

    ``rows``: one dict per split with ``split`` and ``gap median``; ``series`` maps a name to the
    keys ``(accuracy, low, high)`` in the rows (one line each). ``chosen`` circles that split.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    x = np.array([r["gap median"] for r in rows], dtype=float)
    for (name, (acc, lo, hi)), marker in zip(series.items(), "os^D"):
        y = np.array([r[acc] for r in rows], dtype=float)
        err = np.array([y - [r[lo] for r in rows], [r[hi] for r in rows] - y])
        ax.errorbar(x, y, yerr=err, fmt=marker + "-", ms=5, capsize=3, lw=1, label=name)
    first = next(iter(series.values()))[0]
    for r, xi in zip(rows, x):
        ax.annotate(r["split"], (xi, r[first]), textcoords="offset points", xytext=(4, 6), fontsize=7)
        if r["split"] == chosen:
            ax.plot([xi], [r[first]], "o", ms=14, mfc="none", mec="tab:red", mew=1.5, label=f"headline: {chosen}")
    ax.set_xscale("log")
    ax.set_xlabel("median distance from a test frame to the nearest training frame (frame numbers, log)")
    ax.set_ylabel("test accuracy (95% block-bootstrap interval)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], *, title: str, ncols: int = 8,
               colors: Sequence[str] | None = None, size: float = 1.5):
    """A grid of images with a title each (coloured when ``colors`` is given: green right, red wrong).

    Drawn as one mosaic in a single axes (fast even for 40 images), titles above each tile.
    """
    plt = _plt()
    n = max(1, len(images))
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    h = max(int(im.shape[0]) for im in images) if len(images) else 8
    w = max(int(im.shape[1]) for im in images) if len(images) else 8
    pad_x, pad_top = max(2, w // 16), max(6, h // 4)  # room between tiles and for the titles
    cell_w, cell_h = w + pad_x, h + pad_top
    canvas = np.full((nrows * cell_h, ncols * cell_w, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = r * cell_h + pad_top, c * cell_w
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = img[..., :3]
    fig, ax = plt.subplots(figsize=(size * ncols, size * nrows * cell_h / cell_w + 0.5))
    ax.imshow(canvas, interpolation="nearest")
    for i, t in enumerate(titles):
        r, c = divmod(i, ncols)
        ax.text(c * cell_w + w / 2, r * cell_h + pad_top - 1, t, ha="center", va="bottom", fontsize=7,
                color=colors[i] if colors else "black", clip_on=True)
    ax.set_axis_off()
    ax.set_title(title)
    fig.tight_layout()
    return fig


def histograms(df, columns: Sequence[str], *, title: str, xlabels: Sequence[str]):
    """One histogram per column of ``df`` side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.2), squeeze=False)
    for ax, col, xl in zip(axes.flat, columns, xlabels):
        ax.hist(df[col], bins=30, color="tab:blue", alpha=0.8)
        ax.set_xlabel(xl)
        ax.set_ylabel("number of images")
        ax.set_title(col)
    return finish(fig, title)


def light_by_split(stats, where: np.ndarray, *, title: str):
    """Brightness and contrast histograms (share of each subset's images) of the train, val and test frames;
    ``where``: each row's subset (:func:`aslnb.course.analysis.split_assignment`)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for ax, col, xl in zip(axes, ("brightness", "contrast"), ("mean grey level (0-255)", "std of grey levels")):
        bins = np.linspace(stats[col].min(), stats[col].max(), 31)
        for name, color in (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:red")):
            values = stats[col][where == name]
            ax.hist(values, bins=bins, weights=np.full(len(values), 1 / max(len(values), 1)), histtype="step",
                    linewidth=1.6, color=color, label=f"{name} ({len(values)})")
        ax.set_xlabel(xl)
        ax.set_ylabel("share of the subset's images")
        ax.set_title(col)
        ax.legend(fontsize=8)
    return finish(fig, title)


def frame_pair(a: np.ndarray, b: np.ndarray, titles: tuple[str, str], *, title: str):
    """Two neighbouring frames and their absolute pixel difference."""
    plt = _plt()
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, img, t in zip(axes, (a, b), titles):
        ax.imshow(img)
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    im = axes[2].imshow(diff, cmap="magma", vmin=0, vmax=255)
    axes[2].set_title(f"|difference| (mean {diff.mean():.1f} grey levels)", fontsize=9)
    axes[2].axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="grey levels")
    return finish(fig, title)


def split_map(folder, assignments: dict[str, np.ndarray], *, title: str):
    """Per split method: which frame numbers of each class went to train/val/test/dropped."""
    plt = _plt()
    frames = np.array([frame_number(f) or 0 for f in folder.files])
    k = len(folder.class_names)
    fig, axes = plt.subplots(1, len(assignments), figsize=(6.5 * len(assignments), 0.22 * k + 1.8), squeeze=False,
                             sharey=True)
    for ax, (method, a) in zip(axes.flat, assignments.items()):
        for subset, color in SUBSET_COLORS.items():
            sel = a == subset
            ax.scatter(frames[sel], folder.labels[sel], s=6, marker="s", color=color, label=subset)
        ax.set_title(f"{method} split")
        ax.set_xlabel("video frame number")
        ax.set_yticks(range(k))
        ax.set_yticklabels(folder.class_names, fontsize=6)
    axes.flat[0].invert_yaxis()  # shared y axis: invert once, A at the top
    axes.flat[0].set_ylabel("class")
    axes.flat[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, markerscale=2)
    return finish(fig, title)


def integer_epochs(ax) -> None:
    """Whole-number ticks on ``ax``'s x axis (epochs)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def training_curves(epochs: list[dict], *, title: str, switch_label: str = "fine-tuning starts"):
    """Loss and accuracy per epoch (train and validation); a dashed line where the phase changes."""
    plt = _plt()
    x = np.arange(1, len(epochs) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, name in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        ax.plot(x, [e[key] for e in epochs], "o-", label="train")
        if all(f"val_{key}" in e for e in epochs):
            ax.plot(x, [e[f"val_{key}"] for e in epochs], "s--", label="validation")
        phases = [e.get("phase") for e in epochs]
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(i + 0.5, color="0.4", ls=":", label=switch_label)
        integer_epochs(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.legend(fontsize=8)
    return finish(fig, title)


def confusion_heatmap(matrix, labels: Sequence[str], *, title: str, annot: bool | None = None):
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    import seaborn as sns

    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    annot = len(labels) <= 30 if annot is None else annot
    side = max(5.0, 0.33 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    pct = m * 100  # the cells show percent: so does the colour bar
    sns.heatmap(pct, ax=ax, vmin=0, vmax=100, cmap="Blues", square=True, xticklabels=labels, yticklabels=labels,
                annot=np.where(m > 0, np.round(pct).astype(int).astype(str), "") if annot else False,
                fmt="", annot_kws={"fontsize": 6}, cbar_kws={"label": "% of the true class"})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def bars(values: dict[str, float], *, title: str, ylabel: str, colors: Sequence[str] | None = None,
         chance: float | None = None):
    """A bar per entry, its value written on it; an optional dotted chance line."""
    plt = _plt()
    names = list(values)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2.5, 3.8))
    ax.bar(range(len(names)), [values[n] for n in names], color=colors or "tab:blue")
    for i, n in enumerate(names):
        ax.text(i, values[n] + 0.01, f"{values[n]:.2f}", ha="center", va="bottom", fontsize=9)
    if chance is not None:
        ax.axhline(chance, color="0.3", ls=":", label=f"chance ({chance:.3f})")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8, rotation=15, ha="right")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("evaluation")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def heatmap_overlays(images: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], titles: Sequence[str],
                     colors: Sequence[str], *, title: str, ncols: int = 4):
    """Images with a Grad-CAM heat map on top (jet colours, semi-transparent)."""
    fig, axes = _tiles(len(images), ncols, 2.4, 2.5)
    for ax, img, hm, t, c in zip(axes, images, heatmaps, titles, colors):
        ax.imshow(img)
        ax.imshow(hm, cmap="jet", alpha=0.4, vmin=0, vmax=1, extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
        ax.set_title(t, fontsize=8, color=c)
    return finish(fig, title)


#: MediaPipe's 21 hand points joined as bones: wrist to each finger's tip, and across the palm.
HAND_BONES = ([(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
               (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20), (5, 9), (9, 13), (13, 17)])


def landmark_grid(images: Sequence[np.ndarray], points: Sequence[np.ndarray | None], titles: Sequence[str], *,
                  title: str, ncols: int = 7, size: float = 1.6):
    """Images with their hand points (x, y in the image's pixels; None or NaN: no hand, titled so) drawn on them."""
    fig, axes = _tiles(len(images), ncols, size, size)
    for ax, img, pts, t in zip(axes, images, points, titles):
        ax.imshow(img)
        found = pts is not None and np.isfinite(pts).all()
        if found:
            for a, b in HAND_BONES:
                ax.plot(pts[[a, b], 0], pts[[a, b], 1], color="lime", lw=0.8)
            ax.scatter(pts[:, 0], pts[:, 1], s=3, color="red", zorder=3)
        ax.set_title(t if found else f"{t} (no hand)", fontsize=7, color="black" if found else "red")
    return finish(fig, title, fontsize=9)

"""The figures of notebook 02: training curves of the depth study, gradient norms, a residual block drawn."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .plots import finish, integer_epochs

if TYPE_CHECKING:
    from .residual import DepthRun


DEPTH_STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", (0, (5, 1, 1, 1)))]


def plot_training_curves(runs: list[DepthRun], *, chance: float | None = None, title: str | None = None):
    """Training loss per epoch: plain nets on the left, residual nets on the right (same y axis).

    Every depth has its own marker, line style and colour, so curves lying on top of each other
    stay visible; ``chance`` draws the loss of a uniform guess (ln of the number of classes).
    """
    import matplotlib.pyplot as plt

    depths = sorted({r.depth for r in runs})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, residual in zip(axes, (False, True)):
        for r in (r for r in runs if r.residual == residual):
            i = depths.index(r.depth)
            marker, ls = DEPTH_STYLES[i % len(DEPTH_STYLES)]
            colour = plt.cm.viridis(0.85 * i / max(1, len(depths) - 1))
            ax.plot(range(1, len(r.loss) + 1), r.loss, linestyle=ls, marker=marker, ms=6 - i, mfc="none",
                    color=colour, lw=1.6, label=f"{r.depth} layers")
        if chance is not None:
            ax.axhline(chance, color="0.5", lw=0.8, ls=":", label=f"chance (ln {round(np.exp(chance))})")
        ax.set_title(f"{'residual' if residual else 'plain'} nets")
        integer_epochs(ax)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (cross-entropy)")
    return finish(fig, title or "Training loss of plain and residual nets of the same depths and sizes")


def plot_gradient_norms(norms: dict[str, dict[str, float]], ax=None):
    """Gradient norm per weighted layer (log scale), one line per net, input layer on the left."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2)) if ax is None else (ax.figure, ax)
    for name, per_layer in norms.items():
        vals = np.maximum(np.array(list(per_layer.values())), 1e-12)
        ax.semilogy(range(1, len(vals) + 1), vals, marker="o", ms=3, label=name,
                    linestyle="--" if name.startswith("plain") else "-")
    ax.set_xlabel("weighted layer (1 = stem conv, last = dense classifier)")
    ax.set_ylabel("gradient norm ||dL/dW|| (log scale)")
    ax.set_title("Gradient reaching each layer at initialisation")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def draw_residual_block(ax=None):
    """Draw ``x -> [conv3x3 -> BN -> ReLU -> conv3x3 -> BN] -> (+) -> ReLU`` with the identity shortcut (the block
    :func:`aslnb.course.residual.build_conv_net` builds); returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(5.2, 6.2)) if ax is None else (ax.figure, ax)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 12)
    ax.axis("off")
    boxes = [  # (y, label, colour): F(x) = BN(conv(relu(BN(conv(x))))), as residual.build_conv_net builds it
        (10.6, "conv 3x3, 16 ch", "#cfe2f3"),
        (9.4, "BatchNormalization", "#d9ead3"),
        (8.2, "ReLU", "#fde9c9"),
        (7.0, "conv 3x3, 16 ch", "#cfe2f3"),
        (5.8, "BatchNormalization", "#d9ead3"),
    ]
    cx = 4.0

    def arrow(xy0, xy1, **kw):
        ax.add_patch(FancyArrowPatch(xy0, xy1, arrowstyle="-|>", mutation_scale=14, lw=1.4, color="0.2", **kw))

    ax.text(cx, 11.7, "x", ha="center", va="center", fontsize=13, style="italic")
    arrow((cx, 11.45), (cx, 11.08))
    for i, (y, label, colour) in enumerate(boxes):
        ax.add_patch(FancyBboxPatch((cx - 2.0, y - 0.35), 4.0, 0.7, boxstyle="round,pad=0.05", fc=colour, ec="0.3"))
        ax.text(cx, y, label, ha="center", va="center", fontsize=10)
        nxt = boxes[i + 1][0] + 0.42 if i + 1 < len(boxes) else 4.75
        arrow((cx, y - 0.42), (cx, nxt))
    ax.add_patch(plt.Circle((cx, 4.3), 0.42, fc="white", ec="0.2", lw=1.4))
    ax.text(cx, 4.3, "+", ha="center", va="center", fontsize=16)
    arrow((cx, 3.85), (cx, 3.05))
    ax.add_patch(FancyBboxPatch((cx - 2.0, 2.1), 4.0, 0.9, boxstyle="round,pad=0.05", fc="#fde9c9", ec="0.3"))
    ax.text(cx, 2.55, "ReLU", ha="center", va="center", fontsize=10)
    arrow((cx, 2.05), (cx, 1.2))
    ax.text(cx, 0.8, "relu(F(x) + x)", ha="center", va="center", fontsize=12, style="italic")
    # identity shortcut
    ax.plot([cx, 8.3, 8.3], [11.3, 11.3, 4.3], color="#c0392b", lw=1.8)
    arrow((8.3, 4.3), (cx + 0.45, 4.3), linestyle="-")
    ax.text(8.5, 7.7, "identity\nshortcut: x", ha="left", va="center", fontsize=10, color="#c0392b")
    ax.text(1.1, 8.2, "F(x)", ha="center", va="center", fontsize=13, style="italic", color="#1f4e79")
    ax.plot([1.8, 1.8], [5.5, 10.9], color="#1f4e79", lw=1)
    ax.set_title("A residual block: the layers learn only the change F(x)")
    return fig

"""Notebook 05's numbers: accuracies with intervals, the two external accuracies, the examples it explains.

* :func:`external_accuracies`: both external accuracies with block-bootstrap intervals
  resampling signers (the test split's: :func:`aslnb.evaluate.accuracy_interval`).
* :func:`letters_to_explain`, :func:`representative_examples`: which images Grad-CAM shows.
* :func:`confusion_sentence`, :func:`heat_focus`: sentences and numbers the prose refers to.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..data.external import signers_of
from ..data.scan import ImageFolder
from ..intervals import Interval, bootstrap_accuracy
from .notebook import save_fig

#: Classes that are not hand shapes of letters: Grad-CAM examples and confusion letters skip them.
NON_LETTERS = ("del", "nothing", "space")
#: The two definitions of "external accuracy", named once (notebooks 03-05 use these words).
EXTERNAL_DEFINITIONS = {
    "all_outputs": "argmax over all outputs (a del/nothing/space answer counts as wrong)",
    "shared_argmax": "argmax over the shared letters only (the other outputs are ignored)",
}


def signers(files: Sequence[str | os.PathLike]) -> np.ndarray:
    """The signer of each file (``hand1_a_...`` -> ``hand1``, :func:`~aslnb.data.external.signers_of`); a file
    without one is its own group."""
    who = signers_of(files)
    return np.array([w if w != "unknown" else f"file:{os.path.basename(str(f))}" for w, f in zip(who, files)])


def external_correct(labels: np.ndarray, probs: np.ndarray, shared: Sequence[int]) -> dict[str, np.ndarray]:
    """Per image, right or wrong under both :data:`EXTERNAL_DEFINITIONS` (``shared``: class ids)."""
    shared = np.asarray(sorted(shared))
    restricted = shared[probs[:, shared].argmax(1)]
    return {"all_outputs": probs.argmax(1) == labels, "shared_argmax": restricted == labels}


def external_accuracies(folder: ImageFolder, probs: np.ndarray, shared: Sequence[int], *,
                        seed: int = 0) -> dict[str, Interval]:
    """Both external accuracies of ``probs`` on ``folder``, each with an interval resampling signers."""
    groups = signers(folder.files)
    return {k: bootstrap_accuracy(c, groups, seed=seed)
            for k, c in external_correct(folder.labels, probs, shared).items()}


def per_signer(folder: ImageFolder, probs: np.ndarray, shared: Sequence[int]):
    """A DataFrame: images and both external accuracies per signer."""
    import pandas as pd

    who = signers(folder.files)
    correct = external_correct(folder.labels, probs, shared)
    rows = {s: {"images": int((who == s).sum()), **{k: float(c[who == s].mean()) for k, c in correct.items()}}
            for s in sorted(set(who), key=lambda s: (len(s), s))}
    return pd.DataFrame(rows).T.astype({"images": int})


def top_pairs(most_confused: list[dict], k: int = 6) -> list[dict]:
    """The first ``k`` of :func:`aslnb.evaluate.score`'s ``most_confused`` (largest off-diagonal counts)."""
    return [dict(p) for p in most_confused[:k]]


def confusion_sentence(pairs: list[dict], n_images: int) -> str:
    """One sentence naming exactly ``pairs`` (true -> predicted, count), for the notebook to print."""
    if not pairs:
        return f"No test image of the {n_images} was confused with another class."
    items = [f"{p['true']} taken for {p['predicted']} ({p['count']} image{'s' if p['count'] != 1 else ''})"
             for p in pairs]
    return (f"The most frequent confusions among the {n_images} test images: " + ", ".join(items[:-1])
            + (" and " if len(items) > 1 else "") + items[-1] + ".")


def letters_to_explain(pairs: list[dict], recall: dict[str, float], k: int = 4,
                       skip: Sequence[str] = NON_LETTERS) -> list[str]:
    """Up to ``k`` letters to explain: the true letters of the top confusion ``pairs``, then the
    letters of lowest ``recall``; the non-letter classes in ``skip`` are left out."""
    out: list[str] = []
    ranked = [p["true"] for p in pairs] + sorted(recall, key=lambda c: (recall[c], c))
    for c in ranked:
        if c not in skip and c not in out:
            out.append(c)
        if len(out) == k:
            break
    return out


def representative_examples(probs: np.ndarray, labels: np.ndarray, class_names: list[str],
                            letters: Sequence[str]) -> list[dict[str, Any]]:
    """For each letter: its typical right answer (the correct test image of median confidence)
    and its most confident mistake (the wrong image with the highest predicted probability).

    Returns dicts ``{index, letter, kind ('typical right'|'confident mistake'), predicted, prob}``;
    a letter without right answers (or without mistakes) gets only the other kind.
    """
    pred, conf = probs.argmax(1), probs.max(1)
    out = []
    for letter in letters:
        c = class_names.index(letter)
        right = np.flatnonzero((labels == c) & (pred == c))
        wrong = np.flatnonzero((labels == c) & (pred != c))
        picks = []
        if len(right):
            order = right[np.argsort(conf[right], kind="stable")]
            picks.append(("typical right", int(order[(len(order) - 1) // 2])))
        if len(wrong):
            picks.append(("confident mistake", int(wrong[np.argmax(conf[wrong])])))
        for kind, i in picks:
            out.append({"index": i, "letter": letter, "kind": kind, "predicted": class_names[pred[i]],
                        "prob": float(conf[i])})
    return out


def heat_focus(heatmap: np.ndarray, mass: float = 0.5) -> float:
    """The smallest share of the image's pixels that holds ``mass`` of the heat map's total
    (small: a focused map; about ``mass``: heat spread evenly)."""
    h = np.sort(np.clip(np.asarray(heatmap, dtype=float).ravel(), 0, None))[::-1]
    total = h.sum()
    if total <= 0:
        return 1.0
    k = int(np.searchsorted(np.cumsum(h), mass * total)) + 1
    return min(k, h.size) / h.size


def model_stamp(config: dict[str, Any]) -> str:
    """What produced a figure of a run: backbone, its weights, image size, phases (from ``config.json``)."""
    p = config["params"]
    ft = f" + {p['fine_tune_epochs']} fine-tuning" if p.get("fine_tune_epochs") else ""
    return (f"model: {p['backbone']} · weights {config.get('weights_source', p['weights'])} · "
            f"{p['image_size']}px · {p['epochs']} epochs{ft}")


def save_model_fig(run, config: dict[str, Any], fig, name: str):
    """:func:`aslnb.course.notebook.save_fig` with a stamp naming the notebook run *and* the model
    (the profile's generic ``weights`` setting would misname a backbone with weights of its own)."""
    text = f"aslnb nb{run.notebook} · profile {run.params['PROFILE']} · seed {run.params['SEED']} · {model_stamp(config)}"
    fig.text(0.99, 0.003, text, ha="right", va="bottom", fontsize=6, color="0.4")
    return save_fig(run, fig, name, stamp=False)

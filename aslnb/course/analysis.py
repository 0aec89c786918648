"""Analysis helpers of notebooks 01 and 05: image statistics, split maps, probes, per-image scores.

The notebooks keep their cells short by calling these; none of them trains the
study's model (that is :func:`aslnb.train.train`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from ..data.images import frame_number, load_image
from ..data.scan import ImageFolder, drop_bad_images, scan_folder
from ..data.splits import Split, limit_folder, split_folder
from ..evaluate import cached_outputs, run_probabilities, score, score_external
from ..features import extract_features
from ..runs import load_run, run_split
from .transfer import covering_parts, linear_probe

SUBSETS = ("train", "val", "test", "dropped")


# ---------------------------------------------------------------- notebook 01
def image_stats(folder: ImageFolder, size: int = 64):
    """One row per image: class, frame, original width/height, mean brightness and contrast (0..255)."""
    import pandas as pd
    from PIL import Image

    def one(path: str):
        with Image.open(path) as im:
            w, h = im.size
        arr = load_image(path, size).astype(np.float32).mean(axis=2)
        return w, h, float(arr.mean()), float(arr.std())

    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(one, [str(f) for f in folder.files]))
    df = pd.DataFrame(rows, columns=["width", "height", "brightness", "contrast"])
    df.insert(0, "frame", [frame_number(f) for f in folder.files])
    df.insert(0, "class", [folder.class_names[i] for i in folder.labels])
    return df


def light_by_split(stats, folder: ImageFolder, split: Split):
    """Brightness and contrast (mean and std of grey levels, from :func:`image_stats` of ``folder``) per
    subset of ``split``: one row each for train, val, test.

    Columns: images; mean brightness; mean contrast; ``classes with more contrast than train``: the
    classes whose mean contrast in that subset exceeds their mean contrast in train, of the
    ``classes compared`` (present in both).
    """
    import pandas as pd

    where = split_assignment(folder, split)
    train_contrast = stats[where == "train"].groupby("class")["contrast"].mean()
    rows = {}
    for name in ("train", "val", "test"):
        part = stats[where == name]
        by_class = part.groupby("class")["contrast"].mean()
        shared = by_class.index.intersection(train_contrast.index)
        rows[name] = {"images": len(part), "brightness": round(float(part["brightness"].mean()), 1),
                      "contrast": round(float(part["contrast"].mean()), 1),
                      "classes with more contrast than train": int((by_class[shared] > train_contrast[shared]).sum()),
                      "classes compared": len(shared)}
    return pd.DataFrame.from_dict(rows, orient="index")


def one_per_class(folder: ImageFolder, position: float = 0.5) -> list[tuple[str, str]]:
    """``[(class, file)]``: the file at ``position`` (0..1) of each non-empty class, in class order."""
    out = []
    for lab, name in enumerate(folder.class_names):
        files = folder.files[folder.labels == lab]
        if len(files):
            out.append((name, str(files[int(round(position * (len(files) - 1)))])))
    return out


def _by_frame(files) -> list:
    """``files`` in frame-number order (names without a frame number first)."""
    return sorted(files, key=lambda f: frame_number(f) or 0)


def closest_frames(folder: ImageFolder, class_name: str) -> tuple[str, str]:
    """The two files of ``class_name`` whose frame numbers are closest (neighbouring video frames)."""
    lab = folder.class_names.index(class_name)
    files = _by_frame(folder.files[folder.labels == lab])
    frames = np.array([frame_number(f) or 0 for f in files])
    i = int(np.argmin(np.diff(frames)))
    return str(files[i]), str(files[i + 1])


def pixel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in grey levels (0..255)."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def neighbour_vs_random(folder: ImageFolder, size: int = 64, pairs: int = 60, seed: int = 0) -> dict[str, float]:
    """Mean pixel distance of neighbouring frames, of random frames of one class, and of two classes."""
    rng = np.random.default_rng(seed)
    imgs: dict[str, np.ndarray] = {}

    def img(f: str) -> np.ndarray:
        if f not in imgs:
            imgs[f] = load_image(f, size)
        return imgs[f]

    by_class = {lab: _by_frame(folder.files[folder.labels == lab])
                for lab in range(len(folder.class_names)) if (folder.labels == lab).sum() >= 2}
    labs = sorted(by_class)
    near, same, other = [], [], []
    for _ in range(pairs):
        lab = labs[rng.integers(len(labs))]
        files = by_class[lab]
        i = int(rng.integers(len(files) - 1))
        near.append(pixel_distance(img(files[i]), img(files[i + 1])))
        a, b = rng.choice(len(files), 2, replace=False)
        same.append(pixel_distance(img(files[a]), img(files[b])))
        lab2 = labs[(labs.index(lab) + 1 + int(rng.integers(len(labs) - 1))) % len(labs)]
        other.append(pixel_distance(img(files[a]), img(by_class[lab2][int(rng.integers(len(by_class[lab2])))])))
    return {"neighbouring frames": float(np.mean(near)), "random frames, same class": float(np.mean(same)),
            "random frames, different classes": float(np.mean(other))}


def split_assignment(folder: ImageFolder, split: Split) -> np.ndarray:
    """For each file of ``folder``: ``train``, ``val``, ``test`` or ``dropped`` (guard band)."""
    where = {}
    for name in ("train", "val", "test"):
        for f in getattr(split, name).files:
            where[str(f)] = name
    return np.array([where.get(str(f), "dropped") for f in folder.files])


def split_indices(folder: ImageFolder, split: Split) -> dict[str, np.ndarray]:
    """Positions in ``folder`` of the train/val/test files of ``split``."""
    a = split_assignment(folder, split)
    return {name: np.flatnonzero(a == name) for name in ("train", "val", "test")}


def split_table(folder: ImageFolder, splits: dict[str, Split]):
    """Sizes of each split method: images per subset, and the closest train-test frame distance."""
    import pandas as pd

    rows = []
    for method, sp in splits.items():
        a = split_assignment(folder, sp)
        gaps = []
        for lab in range(len(folder.class_names)):
            sel = folder.labels == lab
            frames = np.array([frame_number(f) or 0 for f in folder.files[sel]])
            tr, te = frames[a[sel] == "train"], frames[a[sel] == "test"]
            if len(tr) and len(te):
                gaps.append(int(np.abs(te[:, None] - tr[None, :]).min()))
        rows.append({"split": method, **{s: int((a == s).sum()) for s in SUBSETS},
                     "median closest train frame to a test frame": float(np.median(gaps)) if gaps else float("nan")})
    return pd.DataFrame(rows).set_index("split")


# ---------------------------------------------------------------- notebook 05
def per_class_table(per_class: dict[str, dict]):
    """The per-class precision/recall/F1/support of :func:`aslnb.evaluate.score` as a DataFrame."""
    import pandas as pd

    df = pd.DataFrame(per_class).T[["precision", "recall", "f1", "support"]]
    df["support"] = df["support"].astype(int)
    return df


def pooled_features(view: "RunView", cache_dir=None, batch_size: int = 32) -> np.ndarray:
    """The pooled backbone features (the head's input) of every image of ``view.folder``, in its order.

    With ``cache_dir`` the run's frozen part comes from the feature cache, one entry per part of its split (the
    entries its training and evaluation wrote; the frames between the parts make one more), and only the layers
    above it run here (:func:`aslnb.evaluate.cached_outputs`); without, the whole model runs on every image."""
    if cache_dir is not None:
        chunks = covering_parts(view.folder, [view.split.train, view.split.val, view.split.test])
        pooled = [cached_outputs(view.model, part, view.config, cache_dir, batch_size, stop_at="head_pool")
                  for _, part in chunks]
        if all(p is not None for p in pooled):
            out = np.zeros((len(view.folder), pooled[0].shape[1]), np.float32)
            for (pos, _), values in zip(chunks, pooled):
                out[pos] = values
            return out
    extractor = keras.Model(view.model.inputs, view.model.get_layer("head_pool").output, name="pooled_features")
    return np.asarray(extract_features(extractor, view.folder, view.image_size, batch_size=batch_size,
                                       cache_dir=cache_dir))


def random_vs_split(folder: ImageFolder, features: np.ndarray, method: str, *, val_fraction: float = 0.1,
                    test_fraction: float = 0.2, seed: int = 0) -> dict[str, float]:
    """Linear-probe test accuracy (:func:`aslnb.course.transfer.linear_probe`) on the same features
    with a random split and with split ``method`` (the run's: the headline split of notebook 01)."""
    out = {}
    for m in dict.fromkeys(("random", method)):
        idx = split_indices(folder, split_folder(folder, m, val_fraction=val_fraction,
                                                 test_fraction=test_fraction, seed=seed))
        tr, te = idx["train"], idx["test"]
        out[m] = linear_probe(features[tr], folder.labels[tr], features[te], folder.labels[te])
    return out


def spell_sequence(folder: ImageFolder, labels: list[str]) -> list[str]:
    """One file of ``folder`` for each label of ``labels``, cycling through each class's files
    in frame order (a held sign shows consecutive frames)."""
    used: dict[str, int] = {}
    out = []
    for lab in labels:
        files = _by_frame(folder.files[folder.labels == folder.class_names.index(lab)])
        if not len(files):
            raise ValueError(f"class {lab!r} has no images here")
        i = used.get(lab, 0)
        out.append(str(files[i % len(files)]))
        used[lab] = i + 1
    return out


class RunView:
    """A finished run, re-opened for analysis: model, its split, and its predictions.

    The split is rebuilt by :func:`aslnb.runs.run_split` and the predictions go through
    :func:`aslnb.evaluate.run_probabilities`, as in :func:`aslnb.evaluate.evaluate`, so the
    numbers equal the run's ``metrics.json``. The external set (when given) is scored by
    :func:`aslnb.evaluate.score_external` (at most ``external_limit`` images per class), so
    05 can score it both ways and bootstrap it by signer. ``feature_cache_dir``: the frozen part's features are
    reused from there (:func:`aslnb.evaluate.cached_class_probabilities`).
    """

    def __init__(self, run_dir, data_dir, external_dir=None, external_limit: int | None = None,
                 feature_cache_dir=None):
        self.run_dir = Path(run_dir)
        self.model, self.class_names, self.config = load_run(self.run_dir)
        p = self.config["params"]
        self.params = p
        self.backbone = p["backbone"]
        self.image_size = int(p["image_size"])
        self.folder = limit_folder(drop_bad_images(scan_folder(data_dir, class_names=self.class_names,
                                                               allow_empty_classes=True)), p.get("limit_per_class"))
        self.split = run_split(self.folder, p)
        self.test = self.split.test
        self.decoder = p["decoder"]
        self.test_probs = run_probabilities(self.model, self.test, self.config, self.class_names,
                                            source=self.run_dir, feature_cache_dir=feature_cache_dir)[0]
        self.test_scores = score(self.test.labels, self.test_probs, self.class_names)
        self.external_scores: dict | None = None
        self.external: ImageFolder | None = None  # the external images, labelled with training ids
        self.external_probs: np.ndarray | None = None
        self.external_shared: list[int] = []  # class ids the external set shares with the training set
        self.external_n = 0
        if external_dir is not None:
            ext = score_external(self.model, external_dir, self.config, self.class_names, source=self.run_dir,
                                 per_class=external_limit, verbose=0, feature_cache_dir=feature_cache_dir)
            self.external, self.external_probs, self.external_shared = ext.folder, ext.probs, ext.shared
            self.external_scores = ext.metrics
            self.external_n = len(self.external)

    def test_losses(self) -> np.ndarray:
        """Cross-entropy of each test image's true class."""
        return -np.log(np.clip(self.test_probs[np.arange(len(self.test)), self.test.labels], 1e-7, 1.0))

    def label(self, i: int) -> str:
        return self.class_names[int(i)]

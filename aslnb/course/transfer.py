"""What a pretrained backbone gives: frozen embeddings, linear probes, data efficiency.

Notebook 03 uses this module. A *linear probe* is a logistic regression
trained on the frozen, globally pooled features of a backbone: if a linear
classifier separates the classes well, the backbone's features already carry
the information, without any fine-tuning. Comparing probes of a randomly
initialised and an ImageNet-pretrained copy of the same backbone (EfficientNet-Lite0
offline, ResNet50 where its ImageNet weights are at hand) on a *random* and a *blocked* split (see :mod:`aslnb.data.splits`) separates what
pretraining gives from what near-duplicate frames leak.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ..config import profile_section
from ..data.scan import ImageFolder
from ..errors import ParameterError
from ..features import extract_features
from ..models.registry import build_backbone, get_backbone, weights_source


def transfer_defaults(profile: str) -> dict[str, Any]:
    """Notebook 03's settings: the ``transfer_*`` settings of ``profile`` (``cpu`` for unknown names), without the
    prefix, a fresh copy. ``scratch_epochs``: epochs of the small from-scratch CNN (the EPOCHS parameter overrides
    it); ``efficiency_sizes``: images per class for the data-efficiency curve ("all" is added)."""
    return profile_section(profile, "transfer_")


def compared_models(backbone: str, pretrained: str | None = None) -> dict[str, tuple[str, str]]:
    """Notebook 03's two embedders: ``{label: (backbone, weights)}``, the SAME backbone with
    pretrained weights (``pretrained``, default ImageNet) and with random initialisation.

    One architecture, two sets of weights: the difference is what pretraining gives.
    """
    pretrained = pretrained if pretrained not in (None, "", "none", "auto") else "imagenet"
    return {f"{backbone} · {'ImageNet' if pretrained == 'imagenet' else pretrained}": (backbone, pretrained),
            f"{backbone} · random init": (backbone, "none")}


def describe_weights(models: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Human-readable source of each compared model's weights (``{label: (backbone, weights)}``)."""
    return {label: weights_source(b, w) for label, (b, w) in models.items()}


def embedding_model(backbone: str, image_size: int, weights: str | None) -> keras.Model:
    """Frozen ``raw RGB (0..255) -> preprocessing -> backbone -> global average pool`` model.

    BatchNormalization runs in inference mode (``training=False``); nothing is
    trainable. The output is one vector per image (2048 for ResNet50, 1280 for
    EfficientNet-Lite0).
    """
    spec = get_backbone(backbone)
    if image_size < spec.min_size:
        raise ParameterError(f"image_size={image_size}: {backbone} needs at least {spec.min_size} px")
    base = build_backbone(backbone, (image_size, image_size, 3), weights)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    pre = spec.preprocess()
    if pre is not None:
        x = pre(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    return keras.Model(inputs, x, name=f"{backbone}_embedding")


def positions_in(folder: ImageFolder, subset: ImageFolder) -> np.ndarray:
    """Positions in ``folder`` of the files of ``subset`` (a split part of it), in ``subset``'s order."""
    where = {f: i for i, f in enumerate(folder.files.tolist())}
    try:
        return np.array([where[f] for f in subset.files.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise ParameterError(f"{exc.args[0]}: not a file of the folder the features were extracted from") from None


def covering_parts(folder: ImageFolder, parts: list[ImageFolder]) -> list[tuple[np.ndarray, ImageFolder]]:
    """``(positions in folder, part)`` for each non-empty one of ``parts`` (split parts of ``folder``), then for
    the images in none of them (the blocked split's gaps) when there are any."""
    chunks = [(positions_in(folder, part), part) for part in parts if len(part)]
    covered = np.zeros(len(folder), dtype=bool)
    for pos, _ in chunks:
        covered[pos] = True
    if not covered.all():
        rest = np.flatnonzero(~covered)
        chunks.append((rest, folder.subset(rest)))
    return chunks


def folder_features(model: keras.Model, folder: ImageFolder, parts: list[ImageFolder], image_size: int, *,
                    batch_size: int = 32, cache_dir=None) -> np.ndarray:
    """Features of every image of ``folder`` (its order), extracted part by part.

    ``parts``: split parts of ``folder`` (train, val, test); images in none of them (the
    blocked split's gaps) are one more part. Cached per part, so ``aslnb.train``
    (notebook 04), which extracts the same train and val parts through the same frozen
    model, finds them in the cache instead of computing them again.
    """
    out: np.ndarray | None = None
    for pos, part in covering_parts(folder, parts):
        f = np.asarray(extract_features(model, part, image_size, batch_size=batch_size, cache_dir=cache_dir))
        if out is None:
            out = np.empty((len(folder), *f.shape[1:]), dtype=f.dtype)
        out[pos] = f
    assert out is not None
    return out


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 500,
    return_model: bool = False,
    blas_threads: int | None = 1,
):
    """Accuracy on ``test`` of a logistic regression fitted on standardized ``train`` features.

    ``StandardScaler -> LogisticRegression(C)`` (multinomial, lbfgs). Returns the
    accuracy, or ``(accuracy, fitted_pipeline)`` with ``return_model=True``.
    ``blas_threads`` caps the BLAS threads during the fit (None: no cap): on a
    small, shared CPU, OpenBLAS threads spinning against TensorFlow's made
    these fits ten times slower than a single thread.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_y)) < 2:
        raise ParameterError("linear_probe: the training labels hold fewer than 2 classes")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings(), threadpool_limits(limits=blas_threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(train_x, dtype=np.float32), train_y)
        acc = float((clf.predict(np.asarray(test_x, dtype=np.float32)) == np.asarray(test_y)).mean())
    return (acc, clf) if return_model else acc


def subsample_per_class(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most ``n`` items per class, drawn at random with ``seed`` (all when None)."""
    labels = np.asarray(labels)
    if n is None:
        return np.arange(len(labels))
    if n < 1:
        raise ParameterError(f"n={n}: need at least one image per class")
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        keep.extend(rng.choice(idx, size=min(n, len(idx)), replace=False).tolist())
    return np.sort(np.array(keep, dtype=np.int64))


def efficiency_sizes(labels: np.ndarray, sizes: list[int] | tuple[int, ...] = (5, 10, 25, 50)) -> list[int]:
    """Increasing images-per-class sizes for the data-efficiency curve, ending with "all".

    Sizes at or above the smallest class's count are replaced by that count
    (all of the training data), so the list is strictly increasing.
    """
    counts = np.bincount(np.asarray(labels))
    counts = counts[counts > 0]
    if len(counts) == 0:
        raise ParameterError("efficiency_sizes: no labels")
    smallest, largest = int(counts.min()), int(counts.max())
    out = sorted({int(s) for s in sizes if 1 <= int(s) < smallest})
    out.append(largest)  # "all": every training image (classes may differ by a few)
    return out


def data_efficiency(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    sizes: list[int],
    *,
    seed: int = 0,
    max_iter: int = 500,
    full_accuracy: float | None = None,
) -> list[dict[str, Any]]:
    """Linear-probe test accuracy for each training size (images per class), same test set throughout.

    ``full_accuracy``: the accuracy of a probe already fitted on the whole
    training set, used (instead of fitting again) where a size keeps every image.
    """
    rows = []
    for n in sizes:
        keep = subsample_per_class(train_y, n, seed)
        if full_accuracy is not None and len(keep) == len(train_y):
            acc = float(full_accuracy)
        else:
            acc = linear_probe(train_x[keep], train_y[keep], test_x, test_y, max_iter=max_iter)
        rows.append({"per_class": int(n), "train_images": int(len(keep)), "accuracy": acc})
    return rows


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D projection of standardized ``features``: ``pca`` (fast) or ``tsne`` (slower, local structure)."""
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(z)
    if method == "tsne":
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        z = PCA(n_components=min(50, z.shape[1], z.shape[0]), random_state=seed).fit_transform(z)
        return TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(z) - 1) / 3), random_state=seed).fit_transform(z)
    raise ParameterError(f"method={method!r}: choose 'pca' or 'tsne'")


def build_scratch_cnn(image_size: int, num_classes: int, *, width: int = 16) -> keras.Model:
    """A small CNN trained from scratch: 4 conv/BN/ReLU/pool stages (width, 2x, 4x, 8x) and a dense softmax.

    Takes raw RGB 0..255. About 0.1 M parameters at ``width=16``: a fair
    "no transfer" baseline that trains in minutes on a CPU at 128 px.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for i, mult in enumerate((1, 2, 4, 8), 1):
        if x.shape[1] > 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.Conv2D(width * mult, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="scratch_cnn")


@dataclass
class ScratchResult:
    """The from-scratch baseline: model, per-epoch history, test accuracy, seconds."""

    model: keras.Model
    history: dict[str, list[float]]
    test_accuracy: float
    seconds: float


def train_scratch(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    num_classes: int,
    epochs: int = 12,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    width: int = 16,
) -> ScratchResult:
    """Train :func:`build_scratch_cnn` on ``train`` (uint8 images, int labels); report ``test`` accuracy.

    Adam, sparse categorical cross-entropy, fixed epochs, the weights of the
    epoch with the best validation accuracy are kept (EarlyStopping restore).
    """
    keras.utils.set_random_seed(seed)
    x_train, y_train = train
    model = build_scratch_cnn(int(x_train.shape[1]), num_classes, width=width)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    keep_best = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=epochs, mode="max",
                                              restore_best_weights=True)
    t0 = time.perf_counter()
    hist = model.fit(x_train, y_train, validation_data=val, epochs=epochs, batch_size=batch_size, shuffle=True,
                     callbacks=[keep_best], verbose=0)
    seconds = time.perf_counter() - t0
    probs = model.predict(test[0], batch_size=64, verbose=0)
    acc = float((probs.argmax(axis=1) == test[1]).mean())
    return ScratchResult(model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}, acc, seconds)


def external_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on an external set (Massey), the course's one definition: the prediction is the
    argmax over ALL the model's outputs (29 here), the labels are training class ids of the
    classes the set shares (26 Massey letters); predicting a class the set cannot hold
    (``del``, ``nothing``, ``space``) counts as wrong. :func:`aslnb.evaluate.evaluate` scores the same way.
    """
    return float((np.asarray(probs).argmax(axis=1) == np.asarray(labels)).mean())


def probe_results_table(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """``{backbone: {split: accuracy}}`` as rows for a DataFrame."""
    return [{"backbone": b, **{k: round(v, 3) for k, v in accs.items()}} for b, accs in results.items()]

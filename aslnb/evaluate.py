"""Evaluation: accuracy, top-3, per-class precision/recall/F1, confusion matrix.

``evaluate(run_dir, data)`` rebuilds the run's split from its config (same
method, fractions and seed), scores the held-out test split and, when given,
an external set (only the classes it shares with the training set; which ones
is recorded), and writes everything to ``metrics.json``.

Evaluating on another data folder than the run's training data writes
``metrics-<folder name>.json`` (and ``timing-<folder name>.json``) instead, so the
run's own ``metrics.json`` is never replaced by numbers of other data; one line
says which file was written. Classes of the model that the data lacks are
named in a warning line (and in ``missing_classes``), and so are folders that
are not classes of the model (of ``--data`` and of ``--external``); data sharing
none of the model's classes is refused. Data that is not the run's (its fingerprint,
:func:`check_trained_on`) is refused: ``other_data=True`` (``--other-data``) scores
every image of such a folder as another data set.

All predictions (here and in :mod:`aslnb.predict`) go through :func:`run_probabilities`,
by the run's recipe (image, crop, landmarks or fusion).

``metrics.json`` holds only results that are a function of the model and the
data (no timings, no timestamps), so two runs of the same command can be
compared byte for byte; how long prediction took goes to ``timing.json``.
"""
from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data.external import format_signer_scores, load_external, signer_scores, signers_of
from .data.images import frame_number
from .data.pipeline import DECODER, decode_files
from .data.scan import ImageFolder, drop_bad_images, scan_folder
from .data.splits import Split, limit_folder
from .errors import DataError, ModelError
from .intervals import bootstrap_accuracy, frame_runs
from .io import write_json
from .runs import data_fingerprint, load_run, run_split
from .settings import resolve_data_dir, resolve_external_dir

# lazy: aslnb.features and aslnb.models import Keras; only crop and landmarks runs and the cached path
# (cached_outputs) need them here (`import aslnb` stays free of TensorFlow).


def score(y_true: np.ndarray, probs: np.ndarray, class_names: list[str], *, labels: list[int] | None = None,
          top_pairs: int = 10) -> dict[str, Any]:
    """Metrics of predicted ``probs`` (N, K) against ``y_true`` (N,).

    ``labels`` restricts the per-class report and confusion matrix to those
    class ids (the shared classes of an external set); predictions of other
    classes still count as wrong, and per row they are counted in
    ``predicted_outside_labels`` (so matrix row + that = the class's images).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_pred = probs.argmax(1)
    k = probs.shape[1]
    labels = list(range(k)) if labels is None else sorted(labels)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    cm = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    cm_sub = cm[np.ix_(labels, labels)]
    row = cm[labels].sum(1, keepdims=True)
    norm = np.divide(cm_sub, row, out=np.zeros(cm_sub.shape, dtype=float), where=row > 0)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {class_names[c]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, c in enumerate(labels)}
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = []
    for flat in np.argsort(-off, axis=None)[:top_pairs]:
        t, q = np.unravel_index(flat, off.shape)
        if off[t, q] == 0:
            break
        pairs.append({"true": class_names[t], "predicted": class_names[q], "count": int(off[t, q])})
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0))))
    out_extra: dict[str, Any] = {}
    if len(labels) < k:
        # predictions of classes outside ``labels`` (e.g. 'del' on an external set): not in the square
        # matrix, so they are counted here; each row of the matrix plus this is the class's image count
        out_extra["predicted_outside_labels"] = (cm[labels].sum(1) - cm_sub.sum(1)).tolist()
    return {
        "n_images": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "top3_accuracy": float((top3 == y_true[:, None]).any(1).mean()),
        "loss": loss,
        "macro_f1": float(np.mean(f)) if len(f) else 0.0,
        "per_class": per_class,
        "confusion_labels": [class_names[c] for c in labels],
        "confusion_matrix": cm_sub.tolist(),
        "confusion_matrix_normalized": np.round(norm, 6).tolist(),
        "most_confused": pairs,
        **out_extra,
    }


def class_probabilities(model, files, image_size: int, batch_size: int = 32, *,
                        source: str | os.PathLike = "the model", decoder: str = DECODER) -> np.ndarray:
    """Class probabilities (N, K) for image ``files``, in order, decoded and run image by image (the path of
    ``aslnb predict``; :func:`cached_class_probabilities` gives the same numbers through the feature cache).

    Files are decoded with :func:`aslnb.data.pipeline.decode_files` by ``decoder``
    (the run's ``params.decoder``; a bad file raises :class:`DataError` naming it),
    the next batch while the model runs on this one.
    Non-finite outputs raise :class:`ModelError` naming ``source`` (the run).
    """
    files = [str(f) for f in files]
    size = int(image_size)
    chunks = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
    out: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(decode_files, chunks[0], size, decoder) if chunks else None
        for i in range(len(chunks)):
            try:
                batch = pending.result()
            except DataError as exc:  # keep the message on one line when a file name holds a newline
                raise DataError("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))) from None
            pending = pool.submit(decode_files, chunks[i + 1], size, decoder) if i + 1 < len(chunks) else None
            out.append(np.asarray(model.predict_on_batch(batch.astype(np.float32)), dtype=np.float64))
    return _finite(np.concatenate(out) if out else np.zeros((0, int(model.output_shape[-1]))), source)


def _finite(probs: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """``probs``, refused with :class:`ModelError` naming ``source`` when any is NaN or infinite."""
    if not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs)).any(1).sum())
        raise ModelError(f"{source}: the model outputs NaN or infinity for {bad} of {len(probs)} images (its weights "
                         "diverged in training): retrain with a lower learning rate")
    return probs


def cached_outputs(model, folder: ImageFolder, cfg: dict, cache_dir: str | os.PathLike, batch_size: int, *,
                   stop_at: str | None = None) -> np.ndarray | None:
    """Outputs of an image run's ``model`` (``stop_at``: of that head layer) for ``folder`` through the feature
    cache: the part its last phase kept frozen is computed once per image (:func:`aslnb.features.extract_features`,
    whose key hashes those very weights, so training and every other run on the same pretrained part share the
    entry), the layers above run on the stored features. The same layers, so the same outputs; None when the
    run froze nothing."""
    from .features import extract_features
    from .models import classifier_of, split_at_boundary

    p = cfg["params"]
    until = p.get("fine_tune_until") if p.get("fine_tune_epochs") else p.get("freeze_until")
    if until in (None, "none"):
        return None
    clf = classifier_of(model, p["backbone"], until, p["weights"] != "none")
    if clf.boundary_layer() is None:
        return None
    frozen, top = split_at_boundary(clf, stop_at=stop_at)
    feats = extract_features(frozen, folder, int(p["image_size"]), batch_size=batch_size, cache_dir=cache_dir,
                             decoder=p["decoder"])
    out = [np.asarray(top.predict_on_batch(feats[a:a + batch_size]), dtype=np.float64)
           for a in range(0, len(folder), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *top.output_shape[1:]))


def cached_class_probabilities(model, folder: ImageFolder, cfg: dict, cache_dir: str | os.PathLike,
                               batch_size: int, *, source: str | os.PathLike = "the model") -> np.ndarray | None:
    """:func:`class_probabilities` of an image run's ``model`` through the feature cache (:func:`cached_outputs`);
    None when the run froze nothing."""
    probs = cached_outputs(model, folder, cfg, cache_dir, batch_size)
    return None if probs is None else _finite(probs, source)


def _image_probabilities(model, files, cfg: dict, class_names: list[str], batch_size: int, *,
                         source: str | os.PathLike, feature_cache_dir: str | os.PathLike | None) -> np.ndarray:
    """An image model's probabilities for ``files`` (or an :class:`ImageFolder`): through the feature cache when
    ``feature_cache_dir`` is given and the run froze part of its backbone, else image by image."""
    params = cfg["params"]
    if feature_cache_dir is not None:
        folder = files if isinstance(files, ImageFolder) else ImageFolder(
            Path("."), list(class_names), np.asarray([str(f) for f in files]), np.zeros(len(files), np.int64))
        probs = cached_class_probabilities(model, folder, cfg, feature_cache_dir, batch_size, source=source)
        if probs is not None:
            return probs
    files = files.files if isinstance(files, ImageFolder) else files
    return class_probabilities(model, files, int(params["image_size"]), batch_size, source=source,
                               decoder=params["decoder"])


def run_probabilities(model, files, cfg: dict, class_names: list[str], *, source: str | os.PathLike = "the model",
                      batch_size: int | None = None,
                      feature_cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(probs, hand found)`` of ``files`` (paths or an :class:`ImageFolder`) by the run's recipe
    (``config.json``): :func:`class_probabilities` for images (found: None), of the hand crops for
    ``features='crop'``, the landmark head for ``features='landmarks'`` (no hand: ``nothing``), and for
    ``features='fusion'`` (``model``: the run's :class:`aslnb.runs.FusionParts`) the landmarks part's where a hand
    is found, the image part's elsewhere. ``feature_cache_dir``: image models reuse the frozen part's features
    stored there (:func:`cached_class_probabilities`)."""
    params = cfg["params"]
    features = params.get("features", "image")
    bs = int(batch_size or params["batch_size"])
    images = dict(source=source, feature_cache_dir=feature_cache_dir)
    if features == "fusion":
        return _fusion_probabilities(model, files, cfg, class_names, batch_size=batch_size, **images)
    if features == "image":
        return _image_probabilities(model, files, cfg, class_names, bs, **images), None
    files = files.files if isinstance(files, ImageFolder) else files
    if features == "crop":  # the hand's crop through the image model; no hand: 'nothing'
        from .features.crops import MARGIN, hand_crops
        from .features.landmarks import no_hand_probabilities, run_landmarker

        crops, found = hand_crops(files, run_landmarker(cfg, source), margin=cfg["landmarks"].get("crop_margin",
                                                                                                  MARGIN))
        probs = no_hand_probabilities(found, class_names)
        if found.any():
            probs[found] = _image_probabilities(model, crops[found], cfg, class_names, bs, **images)
        return probs, found
    from .features.landmarks import landmark_probabilities

    probs, found = landmark_probabilities(model, [str(f) for f in files], cfg, class_names, source=source)
    return _finite(probs, source), found


def _fusion_probabilities(parts, files, cfg: dict, class_names: list[str], *, source: str | os.PathLike,
                          batch_size: int | None, feature_cache_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """A fusion run's ``(probs, hand found)``: its parts' :func:`run_probabilities`, the landmarks part's where a
    hand is found (``fusion.with_hand='average'``: the mean with the image part's), the image part's elsewhere."""
    folder = files if isinstance(files, ImageFolder) else None
    files = np.asarray([str(f) for f in (files.files if folder is not None else files)])
    (lm_model, _, lm_cfg), (im_model, _, im_cfg) = parts.landmarks, parts.image
    probs, found = run_probabilities(lm_model, files, lm_cfg, class_names, source=source, batch_size=batch_size)
    average = cfg["fusion"]["with_hand"] == "average"
    need = np.ones(len(files), bool) if average else ~found  # the frames the image part is run on
    if need.any():
        image, _ = run_probabilities(im_model, files[need] if folder is None else folder.subset(need), im_cfg,
                                     class_names, source=source, batch_size=batch_size,
                                     feature_cache_dir=feature_cache_dir)
        full = np.zeros_like(probs)
        full[need] = image
        probs = np.where(found[:, None], (probs + full) / 2 if average else probs, full)
    return probs, found


def answered_by(cfg: dict, found: np.ndarray) -> list[str] | None:
    """Which part of a fusion run answered each frame (``landmarks``, ``image`` or ``landmarks+image``, the
    mean of both), given its hand mask; None for other runs."""
    if cfg["params"].get("features") != "fusion":
        return None
    with_hand = "landmarks+image" if cfg["fusion"]["with_hand"] == "average" else "landmarks"
    return [with_hand if f else "image" for f in np.asarray(found, bool)]


def no_hand_share(found: np.ndarray | None, correct: np.ndarray, files=None) -> dict[str, Any] | None:
    """``{"n", "no_hand", "share", "accuracy_with_hand"}`` of a hand mask (the last: accuracy on the frames with a
    hand), and ``by_signer`` for external files; None for image runs."""
    if found is None:
        return None
    found, correct = np.asarray(found, bool), np.asarray(correct, bool)

    def share(sel: np.ndarray) -> dict[str, Any]:
        n, miss, hit = int(sel.sum()), int((~found & sel).sum()), int((found & sel).sum())
        return {"n": n, "no_hand": miss, "share": round(miss / n, 6) if n else 0.0,
                "accuracy_with_hand": round(float(correct[found & sel].mean()), 6) if hit else None}

    out = share(np.ones(len(found), bool))
    if files is not None:
        who = signers_of(files)
        if not (who == "unknown").all():
            out["by_signer"] = {s: share(who == s) for s in sorted(set(who.tolist()), key=lambda s: (len(s), s))}
    return out


def metrics_name(run_cfg: dict, data_dir: Path, other_data: bool = False) -> str:
    """``metrics.json`` for the run's training data, else (or ``other_data``) ``metrics-<data folder name>.json``."""
    trained_on = run_cfg.get("data", {}).get("root")
    same = not trained_on or Path(trained_on).expanduser().resolve() == Path(data_dir).expanduser().resolve()
    if same and not other_data:
        return "metrics.json"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data_dir).resolve().name).strip("._") or "data"
    return f"metrics-{slug}.json"


def _warn(message: str) -> None:
    print(f"aslnb: warning: {message}", file=sys.stderr, flush=True)


def _shared_classes_or_fail(data_dir: Path, class_names: list[str]) -> list[str]:
    """Refuse a folder holding none of the model's classes (e.g. the Massey set given as --data).

    Returns its sub-folders that are not classes of the model (ignored, with a warning).
    """
    if not data_dir.is_dir():
        return []  # scan_folder says what is wrong
    found = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if found and not set(found) & set(class_names):
        raise DataError(
            f"{data_dir}: the model's classes ({_short(class_names)}) are missing in {data_dir} (found "
            f"{_short(found)}); pass the training data folder with --data, or give this set as --external "
            "(it maps a-z onto A-Z)")
    return [f for f in found if f not in class_names]


def check_trained_on(cfg: dict, split: Split, data_dir: Path) -> None:
    """Refuse data whose rebuilt split is not the run's: its test split would hold training images.

    Compares the data fingerprint training recorded in ``config.json`` (:func:`aslnb.runs.data_fingerprint`).
    Runs without one (made before it was recorded) and runs with hand views (the views are part of their
    fingerprint and are not rebuilt here) are not checked.
    """
    recorded = cfg.get("data", {}).get("fingerprint")
    if not recorded or cfg["params"].get("hand_views"):
        return
    if cfg["params"].get("features") == "crop":  # a crop run's fingerprint is of its hand crops (cached): rebuild them
        from .features.crops import with_hand_crops
        from .features.landmarks import run_landmarker

        split = with_hand_crops(split, run_landmarker(cfg, data_dir))[0]
    now = data_fingerprint(split)
    if now != recorded:
        raise DataError(
            f"{data_dir}: not the data this run was trained on (data fingerprint {now}, the run recorded {recorded}: "
            "files were added, removed or changed), so its rebuilt test split would hold training images; restore "
            f"the run's data ({cfg['data'].get('root')} as it was at training) or add --other-data to score all its "
            "images as another data set (written to metrics-<folder>.json)")


def _scored_part(folder: ImageFolder, cfg: dict, data_dir: Path, subset: str,
                 other_data: bool) -> tuple[ImageFolder, dict[str, Any]]:
    """The images to score and the ``split`` entry of the metrics: the run's rebuilt ``subset`` (refused for
    data that is not the run's), or with ``other_data`` every image of the folder (no split)."""
    if other_data:
        return folder, {"method": "none", "evaluated": "all", "n_images": len(folder)}
    split = run_split(folder, cfg["params"])
    check_trained_on(cfg, split, data_dir)
    part = {"test": split.test, "val": split.val, "train": split.train}[subset]
    if len(part) == 0:
        part, subset = split.val, "val"
    return part, {**split.describe(), "evaluated": subset}


def _short(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + ("..." if len(names) > n else "")


def evaluate(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    external: str | os.PathLike | None = None,
    subset: str = "test",
    verbose: int = 1,
    model=None,
    write: bool = True,
    other_data: bool = False,
    external_limit: int | None = None,
    feature_cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Score a run on its held-out ``subset`` (and ``external``, at most ``external_limit`` images per class).

    Writes ``metrics.json`` (``metrics-<folder>.json`` for other data than the run's training data).
    Data that differs from the run's (its fingerprint) is refused: ``other_data=True`` scores all
    of its images instead, as another data set (``metrics-<folder>.json``). ``feature_cache_dir``: reuse the
    frozen part's features stored there (:func:`cached_class_probabilities`; the numbers do not change).
    """
    run_dir = Path(run_dir)
    loaded, class_names, cfg = load_run(run_dir, model)
    params = cfg["params"]
    data_dir = resolve_data_dir(data)
    folder, notes = _run_data(data_dir, class_names, verbose)
    part, split_info = _scored_part(folder, cfg, data_dir, subset, other_data)
    t0 = time.perf_counter()
    probs, found = run_probabilities(loaded, part, cfg, class_names, source=run_dir,
                                     feature_cache_dir=feature_cache_dir)
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "run": str(run_dir), "data": str(data_dir), "split": split_info, "backbone": params["backbone"],
        "weights": params["weights"], "image_size": int(params["image_size"]),
        "held_out": {**score(part.labels, probs, class_names), "interval": held_out_interval(part, probs)},
    }
    if found is not None:  # the hand recipes: frames without a hand, predicted 'nothing' (fusion: by the image part)
        metrics["held_out"]["no_hand"] = no_hand_share(found, probs.argmax(1) == part.labels)
        metrics["landmarks"] = {**cfg.get("landmarks", {}), "features": params.get("features")}
    if "fusion" in cfg:
        metrics["fusion"] = {k: cfg["fusion"][k] for k in ("with_hand", "no_hand")}
    timing: dict[str, Any] = {"evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "subset": split_info["evaluated"],
                              "predict_seconds": round(seconds, 3),
                              "predict_images_per_second": round(len(part) / seconds, 2) if seconds > 0 else None}
    name = metrics_name(cfg, data_dir, other_data)
    metrics.update(_data_note(cfg, data_dir, name, other_data, len(part)), **notes)
    ext_dir = resolve_external_dir(external)
    if ext_dir is not None:
        t0 = time.perf_counter()
        metrics["external"] = score_external(loaded, ext_dir, cfg, class_names, source=run_dir,
                                             per_class=external_limit, verbose=verbose,
                                             feature_cache_dir=feature_cache_dir).metrics
        timing["external_predict_seconds"] = round(time.perf_counter() - t0, 3)
    if verbose:
        _print_summary(metrics, len(part))
    if write:
        _write(run_dir, name, metrics, timing, cfg, data_dir, verbose)
    return metrics


def _run_data(data_dir: Path, class_names: list[str], verbose: int) -> tuple[ImageFolder, dict[str, Any]]:
    """The images of ``data_dir`` of the model's classes, and the metrics' notes on what is missing or ignored
    (each also said in a warning line)."""
    ignored = _shared_classes_or_fail(data_dir, class_names)
    folder = drop_bad_images(scan_folder(data_dir, class_names=class_names, allow_empty_classes=True))
    missing = [c for c, n in folder.counts().items() if n == 0]
    if verbose and missing:
        _warn(f"{data_dir} has no images of {len(missing)} of the model's {len(class_names)} classes "
              f"({', '.join(missing)}): their recall is not measured")
    if verbose and ignored:
        _warn(f"{data_dir}: {len(ignored)} folder(s) are not classes of the model ({_short(ignored)}): ignored")
    return folder, {**({"missing_classes": missing} if missing else {}),
                    **({"ignored_folders": ignored} if ignored else {})}


def _data_note(cfg: dict, data_dir: Path, name: str, other_data: bool, n: int) -> dict[str, str]:
    """The metrics' ``note`` when the data scored is not the run's training data."""
    if other_data:
        return {"note": f"all {n} images of {data_dir} scored as another data set, not the run's training data "
                        f"(trained on {cfg['data']['root']}): no split, nothing held out"}
    if name != "metrics.json":
        return {"note": f"evaluated on {data_dir}, trained on {cfg['data']['root']}"}
    return {}


@dataclass
class ExternalScores:
    """An external set scored by a run: the ``external`` entry of metrics.json, and what it was computed from."""

    metrics: dict[str, Any]
    folder: ImageFolder  # the images scored, labelled with the run's class ids
    probs: np.ndarray
    found: np.ndarray | None  # hand found (landmarks/crop runs), else None
    shared: list[int]  # the class ids the external set shares with the training set


def score_external(model, ext_dir: str | os.PathLike, cfg: dict, class_names: list[str], *,
                   source: str | os.PathLike = "the model", per_class: int | None = None,
                   verbose: int = 1, feature_cache_dir: str | os.PathLike | None = None) -> ExternalScores:
    """Score ``model`` (a run's, ``cfg`` its config.json) on an external set: accuracy over the shared classes,
    per signer with intervals, no-hand shares. The one way an external set is scored (evaluate, notebooks 05
    and 06). ``per_class``: at most that many images per class (:func:`aslnb.data.splits.limit_folder`)."""
    ext = load_external(ext_dir, class_names)
    if verbose and ext.unmapped:  # as for --data: what is not scored is said
        _warn(f"{ext_dir}: {len(ext.unmapped)} folder(s) are not classes of the model ({_short(list(ext.unmapped))}"
              f"): ignored ({sum(ext.unmapped.values())} images not scored)")
    folder = limit_folder(drop_bad_images(ext.folder, warn=bool(verbose)), per_class)
    probs, found = run_probabilities(model, folder, cfg, class_names, source=source,
                                     feature_cache_dir=feature_cache_dir)
    shared = [class_names.index(c) for c in ext.shared_classes]
    correct = probs.argmax(1) == folder.labels
    metrics = {**ext.describe(), "shared_classes": ext.shared_classes,
               **score(folder.labels, probs, class_names, labels=shared)}
    by_signer = signer_scores(correct, folder.files, folder.labels)
    if by_signer is not None:
        metrics["signers"] = by_signer
    if found is not None:
        metrics["no_hand"] = no_hand_share(found, correct, folder.files)
    return ExternalScores(metrics, folder, probs, found, shared)


def _print_summary(metrics: dict[str, Any], n: int) -> None:
    subset, held = metrics["split"]["evaluated"], metrics["held_out"]
    line = f"{subset} accuracy {held['accuracy']:.4f} (top-3 {held['top3_accuracy']:.4f}) on {n} images"
    ext = metrics.get("external")
    if ext:
        line += f"; external accuracy {ext['accuracy']:.4f} on {ext['n_images']} images"
    print(line, flush=True)
    if ext and "signers" in ext:
        print("\n".join(format_signer_scores(ext["signers"])), flush=True)
    if "no_hand" in held:
        fusion = metrics.get("landmarks", {}).get("features") == "fusion"
        print(f"no hand found in {held['no_hand']['share']:.3f} of the {subset} frames"
              + (f" and {ext['no_hand']['share']:.3f} of the external images" if ext else "")
              + (" (answered by the image part)" if fusion else " (predicted 'nothing')"), flush=True)


def _write(run_dir: Path, name: str, metrics: dict, timing: dict, cfg: dict, data_dir: Path, verbose: int) -> None:
    write_json(run_dir / name, metrics)
    write_json(run_dir / name.replace("metrics", "timing", 1), timing)
    if verbose:
        where = "the run's training data" if name == "metrics.json" else \
            f"other data than the run's training data {cfg['data']['root']}; metrics.json is unchanged"
        print(f"metrics of {data_dir} ({where}) written to {run_dir / name}", flush=True)


def accuracy_interval(part: ImageFolder, probs: np.ndarray, *, seed: int = 0, blocked: bool = True):
    """Accuracy of ``probs`` on ``part`` with a 95% :class:`~aslnb.intervals.Interval` resampling runs of
    consecutive frames (``blocked=False``: single images, the interval a naive bootstrap would give)."""
    runs = frame_runs(part.labels, [frame_number(f) for f in part.files]) if blocked else None
    return bootstrap_accuracy(probs.argmax(1) == part.labels, runs, seed=seed)


def held_out_interval(part: ImageFolder, probs: np.ndarray) -> dict[str, Any]:
    """:func:`accuracy_interval` as the ``interval`` entry of ``metrics.json`` (groups: frame runs)."""
    if len(part) == 0:
        return {}
    return {"groups": "frame runs", **accuracy_interval(part, probs).as_dict()}


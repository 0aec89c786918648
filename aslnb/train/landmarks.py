"""Training of the ``landmarks`` recipe (``features='landmarks'``): an MLP on hand landmarks.

The split is the image recipe's (same data, method, fractions, seed). The hand landmarks of the training and
validation frames come from :func:`aslnb.features.landmarks.hand_landmarks` (computed once, cached); frames
without a hand are left out (their share is recorded in ``config.json`` under ``landmarks.no_hand``). The head
(:func:`aslnb.models.landmark_head.build_landmark_head`) is trained in one phase with the image recipe's
``fit_phase`` (checkpoints, resume, early stopping on the ASL validation split only). With ``augment`` each
training batch is a fresh random variant of its hands (:func:`aslnb.features.landmarks.augment_points`).
``config.json`` records the detector settings and the landmarker's sha256, which prediction checks, and (as
every run does, :meth:`aslnb.runs.RunDir.complete`) the sha256 of ``model.keras``, which :func:`aslnb.runs.load_run`
checks.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..errors import DataError
from ..runs import prepare_split, run_config
from .result import RunResult, log, open_run

# lazy: aslnb.features, aslnb.models and .fit import Keras (aslnb.train imports this module: `import aslnb` stays
# free of TensorFlow).


def _features(hands, labels: np.ndarray):
    """(normalised points, features, labels) of the frames with a hand."""
    from ..features.landmarks import landmark_features, normalise

    keep = hands.found
    normed = normalise(hands.points[keep], hands.left[keep])
    return normed, landmark_features(normed), np.asarray(labels)[keep]


def _batches(cfg: TrainConfig, normed: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Training batches: the features as they are, or (``augment``) a fresh variant of each batch's hands."""
    from ..features.landmarks import augment_points, landmark_features
    from .fit import EpochBatches

    def take(idx):
        if not cfg.augment:
            return x[idx], y[idx]
        rng = np.random.default_rng([cfg.seed, *idx[:8].tolist(), len(idx)])  # idx differs every epoch
        return landmark_features(augment_points(normed[idx], rng)), y[idx]

    return EpochBatches(len(y), cfg.batch_size, cfg.seed, 0, take)


def train_landmarks(cfg: TrainConfig, data_dir: Path, ext_dir: Path | None, out: Path, overwrite: bool,
                    verbose: int, callbacks: list | None = None):
    """Train ``cfg`` (``features='landmarks'``) into run directory ``out``; a :class:`aslnb.train.RunResult`."""
    import keras

    from ..features.landmarks import Landmarker, hand_landmarks
    from ..models.landmark_head import build_landmark_head
    from .fit import fit_phase, history_of

    keras.utils.set_random_seed(cfg.seed)
    split = prepare_split(data_dir, cfg, ext_dir)
    names = split.train.class_names
    lm = Landmarker.resolve()
    t0 = time.perf_counter()
    htr, hva = (hand_landmarks(part.files, lm) for part in (split.train, split.val))
    seconds = time.perf_counter() - t0
    normed, xtr, ytr = _features(htr, split.train.labels)
    _, xva, yva = _features(hva, split.val.labels)
    if len(ytr) == 0 or len(yva) == 0:
        raise DataError(f"{data_dir}: no hand found in any {'training' if len(ytr) == 0 else 'validation'} frame; "
                        "the landmarks recipe needs frames that show a hand (use features='image')")
    log(f"landmarks of {len(htr) + len(hva)} frames in {seconds:.1f}s ({htr.stats['computed'] + hva.stats['computed']}"
         f" computed); no hand: train {htr.no_hand()['share']:.3f}, val {hva.no_hand()['share']:.3f}", verbose)
    model = build_landmark_head(xtr, len(names), cfg.head_units, cfg.dropout, cfg.seed)
    config = run_config(cfg, split, data_dir, ext_dir, pretrained=False,
                        param_counts={"total": int(model.count_params())})
    run = open_run(out, config, overwrite, verbose)
    config["landmarks"] = {**lm.describe(), "no_hand": {"train": htr.no_hand(), "val": hva.no_hand()},
                           "features": int(xtr.shape[1])}
    eye = np.eye(len(names), dtype=np.float32)
    with run.guard():
        run.begin(config, names)
        records = fit_phase("head", 0, model, _batches(cfg, normed, xtr, eye[ytr]), (xva, eye[yva]), cfg.epochs,
                            cfg.learning_rate, run.work / "checkpoints" / "head", callbacks=callbacks,
                            early_stopping_patience=cfg.early_stopping_patience, verbose=verbose)
        history = history_of(records, [("head", "landmarks", cfg.epochs, cfg.learning_rate)], seconds)
        run.complete(model, config, history)
    return RunResult(out, config, history, {}, model=model)

"""Training: the study's recipe, with a run directory that records everything.

``train(data, out, **params)`` (and ``aslnb train``) scans and splits the data,
builds the classifier, trains it (phase ``head``: frozen early stages; optional
phase ``fine_tune``: one more stage unfrozen at a low learning rate). The run
directory gets ``model.keras``, ``config.json``, ``labels.json``,
``history.json`` and ``checkpoints/``; ``config.json`` gets its ``finished``
timestamp last: a directory without it is an interrupted run. Evaluation
(``metrics.json``, ``timing.json``) is the caller's next step
(:func:`aslnb.evaluate.evaluate`; ``aslnb train`` does it).

``features='landmarks'`` trains an MLP on hand landmarks instead (:mod:`aslnb.train.landmarks`);
``features='crop'`` trains the image recipe on the hands cut out by their landmarks
(:mod:`aslnb.features.crops`). Both record the landmarker in ``config.json`` (``landmarks``).

Everything is checked before anything is written: the parameters, the
backbone stage and weights, the data (scan, split), the external set (it must
share classes with the data), the feature cache folder and ``--out`` (not inside
``--data`` nor around it; a folder that is not a run directory is refused, also
with ``--overwrite``). A finished run is never overwritten without
``overwrite=True`` (``--overwrite``), and then only once the new run is
complete (see :func:`aslnb.runs.start_run`). An interrupted run is resumed only
by the same parameters and the same data (its fingerprint).

Each phase is one ``model.fit`` call (:mod:`aslnb.train.fit`: a non-finite loss stops
with a ParameterError, optional early stopping restores the best epoch, the caller's
``callbacks``, a backup in ``checkpoints/<phase>/``). The data order of epoch ``e``
depends only on ``(seed, phase, e)``. A killed run continues from its last finished
epoch when the same command is run again, and ends with the same numbers as an
uninterrupted run (tested: history and metrics equal, except the timing fields); not
covered: the state of the caller's callbacks and of early stopping. A killed
``--overwrite`` is resumed or removed by :func:`aslnb.runs.start_run`. ``config.json``
records the sha256 of ``model.keras`` (``model_sha256``), so a model file from another
run is refused on loading.

Features too large for memory without ``feature_cache_dir`` are cached in the
run's own partial state, ``checkpoints/features/``: a stopped run (Ctrl-C,
SIGTERM, kill -9) keeps them there and its resume reuses them; they are removed
when the run finishes (``--feature-cache-dir`` keeps them for other runs).

Determinism, on the same machine, same library versions, same command:

* deterministic: the split, the initial weights (``keras.utils.set_random_seed``
  before the model is built), the data order of every epoch, the feature
  cache, the training arithmetic (TensorFlow op determinism is switched on
  when ``deterministic=True``, the default) and so the whole of
  ``metrics.json`` and every loss/accuracy in ``history.json``;
* not deterministic: timings (``seconds``, ``images_per_second``,
  ``feature_extraction_seconds``, ``train_seconds`` in ``history.json``; all of
  ``timing.json``) and the ``started``/``finished`` timestamps in
  ``config.json``. ``metrics.json`` holds no timing on purpose.
* across machines (another CPU, a GPU, other thread counts or library
  versions) results differ in the last bits, so numbers agree only to a
  tolerance. ``precision='bfloat16'`` features are deterministic too, but
  differ from the float32 ones (bf16 keeps 8 mantissa bits), so a bf16 run is
  compared with a float32 run only to a tolerance.
* the other Keras backends (JAX, torch) are seeded but not made deterministic;
  a note in ``config.json`` says so.
* several replicas (``distribute``) sum in another order: equal to one device
  to float32 rounding only; mixed precision changes the numbers beyond that.

Where it computes (``distribute``: several GPUs, machines or a TPU;
``mixed_precision``): :mod:`aslnb.train.distribute`; ``config.json`` records
both (``distribution``, ``precision.training``).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..data.pipeline import decode_files, make_dataset, tf_routes
from ..errors import ParameterError
from ..provenance import memory_bytes
from ..runs import check_out_dir, prepare_split, run_config, save_model_atomic
from ..settings import resolve_data_dir, resolve_external_dir
from .distribute import placement
from .fusion import train_fusion
from .landmarks import train_landmarks
from .notes import run_notes
from .result import RunResult, log, open_run

# lazy: aslnb.features, aslnb.models and .fit import Keras, so they are imported inside the functions that use
# them (`import aslnb` and `aslnb --help` stay free of TensorFlow).

__all__ = ["RunResult", "train", "save_model_atomic"]


def train(
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "runs/latest",
    *,
    external: str | os.PathLike | None = None,
    overwrite: bool = False,
    verbose: int | str = "auto",
    feature_cache_dir: str | os.PathLike | None = None,
    callbacks: list | None = None,
    features_in_memory_max_bytes: int | None = None,
    **params: Any,
) -> RunResult:
    """Train the classifier on ``data`` into run directory ``out``; see the module docstring.

    ``params`` are the fields of :class:`TrainConfig` (unknown names are refused);
    ``callbacks`` (Keras callbacks) are passed to every phase's ``fit``.
    ``features_in_memory_max_bytes`` (``--features-in-memory-max-bytes``): cached
    features larger than this (default: a quarter of the machine's memory, see
    :func:`aslnb.features.in_memory_limit`) are not loaded: training and
    validation read them from the cache folder a batch at a time (0: always).
    Either way the numbers are the same.
    """
    cfg = TrainConfig.from_params(**params)
    verbose = (1 if sys.stdout.isatty() else 2) if verbose == "auto" else int(verbose)
    data_dir = resolve_data_dir(data)
    ext_dir = resolve_external_dir(external)
    out = Path(out)
    from ..features import check_cache_dir, in_memory_limit
    from ..models import check_weights

    if cfg.features == "fusion":  # both recipes, each a complete run in out/parts (aslnb.train.fusion)
        return train_fusion(cfg, data_dir, ext_dir, out, overwrite, verbose, train,
                            {"feature_cache_dir": feature_cache_dir, "callbacks": callbacks,
                             "features_in_memory_max_bytes": features_in_memory_max_bytes})
    if cfg.features == "landmarks":  # an MLP on hand points: no backbone, no weights (aslnb.train.landmarks)
        check_out_dir(out, data_dir, overwrite)
        return train_landmarks(cfg, data_dir, ext_dir, out, overwrite, verbose, callbacks)
    # Fail fast, before the data is scanned or anything is written (the stage names: TrainConfig.validate):
    check_weights(cfg.backbone, cfg.weights)  # offline without cached ImageNet weights, a missing file
    check_out_dir(out, data_dir, overwrite)
    in_memory_limit(features_in_memory_max_bytes)  # a negative limit
    if feature_cache_dir is not None:
        check_cache_dir(feature_cache_dir)

    with placement(cfg.distribute, cfg.mixed_precision) as place:  # restores the dtype policy afterwards
        if place.chief:
            res = _train(cfg, place, data_dir, ext_dir, out, overwrite, verbose, feature_cache_dir, callbacks,
                         features_in_memory_max_bytes)
            # A multi-worker model's predict waits for every worker: callers load model.keras instead.
            return dataclasses.replace(res, model=None, classifier=None) if place.name == "multiworker" else res
        with tempfile.TemporaryDirectory(prefix="aslnb-worker-") as tmp:  # the chief writes `out`
            log(f"worker (not the chief): training into {tmp}, deleted at the end; the chief writes {out}", verbose)
            res = _train(cfg, place, data_dir, ext_dir, Path(tmp) / "run", False, verbose, None, callbacks,
                         features_in_memory_max_bytes)
            return dataclasses.replace(res, run_dir=None)


@dataclasses.dataclass
class _Plan:
    """What the built classifier means for the run: where its frozen part ends, whether features are cached."""

    boundary: str | None  # the last frozen layer (None: nothing frozen)
    use_cache: bool
    ft_until: str | None  # the fine-tune phase's freeze point (None: no second phase)
    feature_precision: str | None
    notes: list[str]

    def phases(self, cfg: TrainConfig) -> list[tuple[str, str | None, int, float]]:
        """``(phase, freeze_until, epochs, learning_rate)`` of each phase."""
        head = [("head", cfg.freeze_until, cfg.epochs, cfg.learning_rate)]
        return head + ([("fine_tune", self.ft_until, cfg.fine_tune_epochs, cfg.fine_tune_lr)]
                       if cfg.fine_tune_epochs else [])


def _train(cfg: TrainConfig, place, data_dir: Path, ext_dir: Path | None, out: Path, overwrite: bool, verbose: int,
           feature_cache_dir, callbacks: list | None, in_memory_max_bytes: int | None = None) -> RunResult:
    """The image recipe's steps: seed, data and split, model, run directory, phases, run files."""
    _seed(cfg)
    split, crop_record = _prepare_data(cfg, data_dir, ext_dir, feature_cache_dir, verbose)
    class_names = split.train.class_names
    clf, plan = _build(cfg, place, len(class_names), verbose)
    config = _run_config(cfg, place, split, data_dir, ext_dir, clf, plan, crop_record)
    run = open_run(out, config, overwrite, verbose)  # the first write
    with run.guard():
        run.begin(config, class_names)
        log(f"data {data_dir}: split {split.describe()}; backbone {cfg.backbone}, weights {config['weights_source']}"
            f", frozen until {cfg.freeze_until}; feature cache {'on' if plan.use_cache else 'off'}; device "
            f"{config['device']}", verbose)
        history = _fit_phases(cfg, place, clf, split, plan, run.work, feature_cache_dir, callbacks,
                              in_memory_max_bytes, verbose)
        place.sync_batch_norm(clf.model, False)
        run.complete(clf.model, config, history)
    return RunResult(out, config, history, {}, model=clf.model, classifier=clf)


def _seed(cfg: TrainConfig) -> None:
    """Seed Keras (initial weights, dropout) and switch on TensorFlow's op determinism when asked."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _prepare_data(cfg: TrainConfig, data_dir: Path, ext_dir: Path | None, feature_cache_dir,
                  verbose: int) -> tuple[Any, dict | None]:
    """The run's split (hand crops or views applied) and the crop recipe's landmarker record (else None)."""
    split = prepare_split(data_dir, cfg, ext_dir)
    crop_record = None
    if cfg.features == "crop":  # the hand cut out by its landmarks' box (aslnb.features.crops)
        from ..features.crops import MARGIN, with_hand_crops
        from ..features.landmarks import Landmarker

        landmarker = Landmarker.resolve()
        split, no_hand = with_hand_crops(split, landmarker)
        crop_record = {**landmarker.describe(), "crop_margin": MARGIN, "no_hand": no_hand}
        log(f"hand crops: no hand in {no_hand['train']['share']:.3f} of the training frames (left out)", verbose)
    if cfg.hand_views:  # training-only composites of the training split (aslnb.features.views)
        from ..features.views import with_hand_views

        split = with_hand_views(split, cfg, feature_cache_dir, verbose)
    return split, crop_record


def _build(cfg: TrainConfig, place, k: int, verbose: int):
    """The classifier of ``k`` classes (in the placement's scope) and its :class:`_Plan`; the plan's notes are
    printed."""
    from ..features import resolve_precision
    from ..models import build_classifier, resolve_weights

    with place.scope():
        clf = build_classifier(k, cfg.image_size, backbone=cfg.backbone, weights=cfg.weights,
                               freeze_until=cfg.freeze_until, head_units=cfg.head_units, dropout=cfg.dropout,
                               augment=cfg.augment, seed=cfg.seed)
    place.sync_batch_norm(clf.model, True)  # off again before the model is saved
    boundary = clf.boundary_layer()
    if cfg.cache_features == "on" and (boundary is None or cfg.augment):
        raise ParameterError("cache_features='on' needs a frozen boundary (freeze_until != 'none') and augment off")
    use_cache = cfg.cache_features != "off" and boundary is not None and not cfg.augment
    ft_until = _fine_tune_until(cfg, clf.freeze_until, clf.spec.stages) if cfg.fine_tune_epochs else None
    feature_precision = resolve_precision(cfg.precision) if use_cache else None
    resolved_weights, weights_note = resolve_weights(cfg.backbone, cfg.weights)  # 'auto': imagenet or none
    notes = ([weights_note] if weights_note else []) + run_notes(cfg, resolved_weights, use_cache, boundary,
                                                                 feature_precision)
    for note in notes:
        log(f"note: {note}", verbose)
    return clf, _Plan(boundary, use_cache, ft_until, feature_precision, notes)


def _run_config(cfg: TrainConfig, place, split, data_dir: Path, ext_dir: Path | None, clf, plan: _Plan,
                crop_record: dict | None) -> dict:
    """``config.json`` of an image run as it starts (:meth:`aslnb.runs.RunDir.complete` adds the rest)."""
    from ..models import weights_source

    config = run_config(
        cfg, split, data_dir, ext_dir, notes=plan.notes,
        weights_source=weights_source(cfg.backbone, cfg.weights),
        pretrained=clf.pretrained,
        freeze={"until": cfg.freeze_until, "boundary_layer": plan.boundary, "fine_tune_until": plan.ft_until},
        feature_cache={"used": plan.use_cache, "boundary": plan.boundary if plan.use_cache else None},
        precision={"requested": cfg.precision, "features": plan.feature_precision, "training": place.policy},
        distribution=place.describe(cfg.batch_size, [lr for *_, lr in plan.phases(cfg)]),
        param_counts=clf.param_counts(),
    )
    if crop_record is not None:
        config["landmarks"] = crop_record
    return config


def _fit_phases(cfg: TrainConfig, place, clf, split, plan: _Plan, work: Path, feature_cache_dir, callbacks,
                in_memory_max_bytes: int | None, verbose: int) -> dict:
    """Train every phase (one ``fit`` each, backed up in ``work/checkpoints/<phase>``); ``history.json``'s dict."""
    from ..models import apply_freeze
    from .fit import CACHED_STEPS_PER_EXECUTION, EpochBatches, fit_phase, history_of

    phases = plan.phases(cfg)
    temp_cache = work / "checkpoints" / "features"  # a large set's features without feature_cache_dir
    eye = np.eye(len(split.train.class_names), dtype=np.float32)
    ys = (eye[split.train.labels], eye[split.val.labels])
    all_logs: list[dict] = []
    feature_seconds = 0.0
    for i, (phase, until, epochs, lr) in enumerate(phases):
        if i > 0:
            apply_freeze(clf.backbone, clf.spec, until, freeze_bn=clf.pretrained)
            clf.freeze_until = until
        fit_args = dict(callbacks=callbacks, early_stopping_patience=cfg.early_stopping_patience, verbose=verbose)
        if plan.use_cache and clf.boundary_layer() is not None:
            model, take, val_data, seconds = _cached_data(cfg, clf, split, plan, (phase, i), ys, feature_cache_dir,
                                                          temp_cache, in_memory_max_bytes, verbose)
            feature_seconds += seconds
            fit_args["steps_per_execution"] = place.steps_per_execution(CACHED_STEPS_PER_EXECUTION)
        else:
            model, take, val_data = _image_data(cfg, clf, split, ys)
        batches = EpochBatches(len(ys[0]), cfg.batch_size, cfg.seed, i, take)
        with place.scope():
            all_logs += fit_phase(phase, i, model, batches, val_data, epochs, lr, work / "checkpoints" / phase,
                                  **fit_args)
    shutil.rmtree(temp_cache, ignore_errors=True)  # removed before the run is committed
    return history_of(all_logs, phases, feature_seconds)


def _cached_data(cfg: TrainConfig, clf, split, plan: _Plan, phase: tuple[str, int], ys, feature_cache_dir,
                 temp_cache: Path, in_memory_max_bytes: int | None, verbose: int):
    """``(model, take, val_data, seconds)`` of a phase trained on the frozen part's cached features: the part
    above the boundary, a batch reader of the training features, the validation features, extraction time."""
    from ..features import extract_features
    from ..models import split_at_boundary
    from .fit import EpochBatches

    name, i = phase
    ytr, yva = ys
    frozen, model = split_at_boundary(clf)
    cache_dir = feature_cache_dir or _large_features_dir(frozen, len(split.train) + len(split.val),
                                                         in_memory_max_bytes, temp_cache, name, verbose)
    t0 = time.perf_counter()
    ftr, fva = (extract_features(frozen, part, cfg.image_size, batch_size=cfg.batch_size, cache_dir=cache_dir,
                                 precision=plan.feature_precision, in_memory_max_bytes=in_memory_max_bytes,
                                 decoder=cfg.decoder)
                for part in (split.train, split.val))
    seconds = time.perf_counter() - t0
    log(f"[{name}] features at {clf.boundary_layer()}: {ftr.shape[1:]} for {len(ftr) + len(fva)} "
        f"images in {seconds:.1f}s", verbose)
    # features too large to load (a FeatureStore) are read a batch at a time, validation too
    val_data = (fva, yva) if isinstance(fva, np.ndarray) else EpochBatches(
        len(yva), cfg.batch_size, cfg.seed, i, lambda idx: (fva[idx], yva[idx]), shuffle=False)
    return model, lambda idx: (ftr[idx], ytr[idx]), val_data, seconds


def _image_data(cfg: TrainConfig, clf, split, ys):
    """``(model, take, val_data)`` of a phase trained on the images: the whole model, a reader decoding a batch
    of training images (in parallel threads, order kept), the validation dataset."""
    files, ytr = split.train.files, ys[0]
    val_data = make_dataset(split.val, cfg.image_size, cfg.batch_size, num_classes=len(split.train.class_names),
                            decoder=cfg.decoder)
    routes = tf_routes(files, cfg.image_size) if cfg.decoder == "tf" else None  # header reads, once

    def take(idx):
        imgs = decode_files(files[idx], cfg.image_size, cfg.decoder, routes=None if routes is None else routes[idx])
        return imgs.astype(np.float32), ytr[idx]

    return clf.model, take, val_data


def _large_features_dir(frozen, n: int, max_bytes: int | None, folder: Path, phase: str, verbose: int) -> Path | None:
    """``folder`` when the features of ``n`` images exceed the in-memory limit (and say so), else None."""
    from ..features import feature_bytes, in_memory_limit

    need, limit = feature_bytes(frozen, n), in_memory_limit(max_bytes)
    if need <= limit:
        return None
    basis = ("features_in_memory_max_bytes" if max_bytes is not None else "a quarter of this machine's memory"
             if memory_bytes() else "the default where the memory is unknown")
    log(f"[{phase}] features ({need / 2**30:.2f} GiB) exceed the in-memory limit ({limit / 2**30:.2f} GiB, {basis}; "
         f"--features-in-memory-max-bytes BYTES changes it): cached in {folder} (the run's partial state, removed when "
         "the run finishes, reused if it is resumed; --feature-cache-dir keeps them)", verbose)
    return folder


def _fine_tune_until(cfg: TrainConfig, frozen_until: str, stages: list[str]) -> str:
    """The second phase's freeze point: the given one, else one stage before ``frozen_until`` (the backbone's name)."""
    if cfg.freeze_until == "none":
        raise ParameterError("fine_tune_epochs > 0 needs frozen stages to unfreeze (freeze_until != 'none')")
    if cfg.fine_tune_until:
        return cfg.fine_tune_until
    if frozen_until == "all":
        return stages[-2]
    i = stages.index(frozen_until)
    return stages[i - 1] if i > 0 else "none"

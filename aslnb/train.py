"""Training: the study's recipe, with a run directory that records everything.

``train(data, out, **params)`` (and ``aslnb train``) scans and splits the data,
builds the classifier, trains it (phase ``head``: frozen early stages; optional
phase ``fine_tune``: one more stage unfrozen at a low learning rate), then
evaluates it on the held-out test split. The run directory gets
``model.keras``, ``config.json``, ``labels.json``, ``history.json``,
``metrics.json``, ``timing.json`` and ``checkpoints/``. ``config.json`` gets
its ``finished`` timestamp last, after the evaluation: a directory without it
is an interrupted run.

Run directories: a finished run is never overwritten without ``overwrite=True``
(``--overwrite``); an interrupted run is resumed only by the same parameters
(other parameters are refused); a folder that is not a run directory is refused.

Resuming: after every epoch the model's variables, the optimizer state and
the epoch logs are checkpointed together in one file, written to a temporary
name, fsynced and renamed (``checkpoints/<phase>.state.npz``; the readable
``<phase>.epochs.json`` is a copy written after it). The data order of epoch
``e`` depends only on ``(seed, phase, e)``. A run that was killed continues
from its last finished epoch when the same command is run again, and ends with
the same numbers as an uninterrupted run (tested: history and metrics equal,
except the timing fields).

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
* the other Keras backends (torch) are not made deterministic here.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig
from .data.scan import ImageFolder
from .data.splits import Split
from .errors import ParameterError, RunDirError
from .runs import prepare_split
from .provenance import FORMAT_VERSION, device_name, versions
from .io import read_json, write_json
from .settings import resolve_data_dir, resolve_external_dir

RUN_FILES = ("model.keras", "config.json", "labels.json", "history.json", "metrics.json", "timing.json")
@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    config: dict
    history: dict
    metrics: dict
    model: Any = field(default=None, repr=False, compare=False)
    classifier: Any = field(default=None, repr=False, compare=False)  # the aslnb.models.Classifier trained


def _verbose(verbose: int | str) -> int:
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def _log(msg: str, verbose: int) -> None:
    if verbose:
        print(msg, flush=True)


def _prepare_run_dir(out: Path, params: dict, overwrite: bool) -> bool:
    """Create ``out``; return True when it holds an interrupted run to resume."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is a file; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if overwrite:
            for name in (*RUN_FILES, "checkpoints"):
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        elif (out / "config.json").exists() and _finished(out):
            raise RunDirError(f"{out}: already holds a finished run; pass --overwrite to replace it or choose another --out")
        elif (out / "config.json").exists():
            try:
                old = read_json(out / "config.json").get("params")
            except ValueError:
                old = None
            if old != params:
                raise RunDirError(
                    f"{out}: holds an interrupted run with other parameters; rerun with the same ones to resume, "
                    "or pass --overwrite"
                )
            return True
        else:
            raise RunDirError(f"{out}: folder is not empty and is not a run directory; choose another --out or --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return False


def _finished(out: Path) -> bool:
    """A run is finished once ``config.json`` records it (written last, after the evaluation).

    A run killed after ``model.keras`` was saved but before that (during the
    evaluation) counts as interrupted: rerunning it skips the trained epochs.
    """
    try:
        return "finished" in read_json(out / "config.json")
    except (OSError, ValueError):
        return (out / "model.keras").exists()


class _Checkpointer:
    """Per-epoch checkpoints of one phase: variables, optimizer state, epoch logs."""

    def __init__(self, folder: Path, phase: str):
        self.folder = folder
        self.phase = phase
        folder.mkdir(parents=True, exist_ok=True)
        self.state = folder / f"{phase}.state.npz"
        self.log = folder / f"{phase}.epochs.json"

    def load(self, model) -> tuple[int, list[dict]]:
        if not self.state.exists():
            return 0, []
        try:
            with np.load(self.state) as z:
                # The epoch logs live inside the same file as the variables (one atomic
                # rename), so a kill between two writes can never pair state and log of
                # different epochs; ``<phase>.epochs.json`` is a readable copy.
                logs = json.loads(str(z["logs"]))
                mvars = [z[f"m{i}"] for i in range(int(z["n_model"]))]
                ovars = [z[f"o{i}"] for i in range(int(z["n_opt"]))]
        except (OSError, ValueError, KeyError) as exc:
            raise RunDirError(f"{self.state}: unreadable checkpoint ({exc.__class__.__name__}); pass --overwrite to "
                              "start again") from None
        if len(mvars) != len(model.variables):
            raise RunDirError(f"{self.state}: checkpoint does not match the model; pass --overwrite to start again")
        for v, a in zip(model.variables, mvars):
            v.assign(a)
        opt = model.optimizer
        if not opt.built:
            opt.build(model.trainable_variables)
        for v, a in zip(opt.variables, ovars):
            v.assign(a)
        return len(logs), logs

    def save(self, model, logs: list[dict]) -> None:
        import keras

        arrays = {f"m{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
        arrays.update({f"o{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)})
        arrays["n_model"] = np.array(len(model.variables))
        arrays["n_opt"] = np.array(len(model.optimizer.variables))
        arrays["logs"] = np.array(json.dumps(logs))
        tmp = self.folder / f".{self.phase}.state.part.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state)
        write_json(self.log, logs)


# Steps run per call of the compiled train function when the head trains on cached
# features: a batch of features costs less than the Python round trip of one step.
CACHED_STEPS_PER_EXECUTION = 16


def _compile(model, lr: float, steps_per_execution: int = 1) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="categorical_crossentropy",
        metrics=["accuracy", keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy")],
        steps_per_execution=steps_per_execution,
    )


def _fit_phase(phase: str, phase_index: int, model, train_x, train_y, val_data, epochs: int, lr: float,
               cfg: TrainConfig, ckpt: _Checkpointer, verbose: int, make_images=None) -> list[dict]:
    """Run ``epochs`` epochs of one phase, one ``fit`` call per epoch, checkpointing each."""
    _compile(model, lr, CACHED_STEPS_PER_EXECUTION if make_images is None else 1)
    start, logs = ckpt.load(model)
    if start:
        _log(f"[{phase}] resuming after epoch {start} from {ckpt.state}", verbose)
    n = len(train_y)
    for epoch in range(start, epochs):
        perm = np.random.default_rng([cfg.seed, phase_index, epoch]).permutation(n)
        if verbose == 1:
            print(f"[{phase}] epoch {epoch + 1}/{epochs}", flush=True)
        t0 = time.perf_counter()
        if make_images is None:
            h = model.fit(train_x[perm], train_y[perm], batch_size=cfg.batch_size, epochs=epoch + 1,
                          initial_epoch=epoch, shuffle=False, validation_data=val_data,
                          verbose=1 if verbose == 1 else 0)
        else:
            h = model.fit(make_images(perm), epochs=epoch + 1, initial_epoch=epoch, validation_data=val_data,
                          shuffle=False, verbose=1 if verbose == 1 else 0)  # perm already shuffled
        seconds = time.perf_counter() - t0
        rec = {"phase": phase, "epoch": epoch + 1, **{k: float(v[-1]) for k, v in h.history.items()},
               "seconds": round(seconds, 3), "images_per_second": round(n / seconds, 2)}
        logs.append(rec)
        ckpt.save(model, logs)
        if verbose == 2:
            _log(f"[{phase}] epoch {epoch + 1}/{epochs}  loss {rec['loss']:.4f}  acc {rec['accuracy']:.4f}  "
                 f"val_loss {rec.get('val_loss', float('nan')):.4f}  val_acc {rec.get('val_accuracy', float('nan')):.4f}  "
                 f"{seconds:.1f}s  {rec['images_per_second']:.1f} img/s", verbose)
    return logs


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[labels]


def train(
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "runs/latest",
    *,
    external: str | os.PathLike | None = None,
    overwrite: bool = False,
    verbose: int | str = "auto",
    feature_cache_dir: str | os.PathLike | None = None,
    **params: Any,
) -> RunResult:
    """Train the classifier on ``data`` into run directory ``out``; see the module docstring.

    ``params`` are the fields of :class:`TrainConfig` (unknown names are refused).
    """
    import keras

    cfg = TrainConfig.from_params(**params)
    verbose = _verbose(verbose)
    data_dir = resolve_data_dir(data)
    ext_dir = resolve_external_dir(external)
    out = Path(out)
    from .models import check_weights, frozen_stages, get_backbone

    # Fail fast, before the data is scanned or the run directory is touched:
    frozen_stages(get_backbone(cfg.backbone), cfg.freeze_until)  # a typo in the stage name
    check_weights(cfg.backbone, cfg.weights)  # offline without cached ImageNet weights, a missing file
    resuming = _prepare_run_dir(out, asdict(cfg), overwrite)

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    split = prepare_split(data_dir, cfg)
    class_names = split.train.class_names
    k = len(class_names)
    from .models import resolve_weights

    resolved_weights, weights_note = resolve_weights(cfg.backbone, cfg.weights)  # 'auto': imagenet or none
    notes: list[str] = [weights_note] if weights_note else []
    if resolved_weights == "none" and cfg.freeze_until != "none":
        notes.append(
            f"weights 'none': the backbone is randomly initialised, so freezing it up to {cfg.freeze_until} keeps "
            "random features fixed; this is a no-pretraining baseline, not transfer learning"
        )
    for note in notes:
        _log(f"note: {note}", verbose)

    from .models import build_classifier, split_at_boundary, weights_source

    clf = build_classifier(k, cfg.image_size, backbone=cfg.backbone, weights=cfg.weights,
                           freeze_until=cfg.freeze_until, head_units=cfg.head_units, dropout=cfg.dropout,
                           augment=cfg.augment, seed=cfg.seed)
    boundary = clf.boundary_layer()
    if cfg.cache_features == "on" and (boundary is None or cfg.augment):
        raise ParameterError("cache_features='on' needs a frozen boundary (freeze_until != 'none') and augment off")
    use_cache = cfg.cache_features != "off" and boundary is not None and not cfg.augment
    if cfg.augment and cfg.cache_features == "auto" and boundary is not None:
        notes.append("feature cache bypassed: augmentation runs before the backbone, so features differ every epoch")
        _log(f"note: {notes[-1]}", verbose)
    if cfg.fine_tune_epochs:
        stages = clf.spec.stages
        if cfg.freeze_until == "none":
            raise ParameterError("fine_tune_epochs > 0 needs frozen stages to unfreeze (freeze_until != 'none')")
        ft_until = cfg.fine_tune_until or (
            stages[-2] if clf.freeze_until == "all" else
            (stages[stages.index(clf.freeze_until) - 1] if stages.index(clf.freeze_until) > 0 else "none"))
    else:
        ft_until = None
    from .features import resolve_precision

    feature_precision = resolve_precision(cfg.precision) if use_cache else None
    if use_cache and feature_precision != "float32":
        notes.append(f"features extracted in {feature_precision} (precision={cfg.precision}); the head trains in float32")
        _log(f"note: {notes[-1]}", verbose)
    elif not use_cache and cfg.precision == "bfloat16":
        notes.append("precision='bfloat16' applies to cached feature extraction only; this run has no feature "
                     "cache, so everything ran in float32")
        _log(f"note: {notes[-1]}", verbose)

    config = {
        "format_version": FORMAT_VERSION,
        "params": asdict(cfg),
        "data": {"root": str(data_dir), "fingerprint": _fingerprint(split),
                 "n_images": sum(split.sizes()[s] for s in ("train", "val", "test")), "class_names": class_names,
                 "problems": split.train.problems[:50]},
        "external": str(ext_dir) if ext_dir else None,
        "split": split.describe(),
        "weights_source": weights_source(cfg.backbone, cfg.weights),
        "pretrained": clf.pretrained,
        "freeze": {"until": cfg.freeze_until, "boundary_layer": boundary, "fine_tune_until": ft_until},
        "feature_cache": {"used": use_cache, "boundary": boundary if use_cache else None},
        "precision": {"requested": cfg.precision, "features": feature_precision, "training": "float32"},
        "param_counts": clf.param_counts(),
        "device": device_name(),
        "versions": versions(),
        "notes": notes,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if resuming:
        config["started"] = read_json(out / "config.json").get("started", config["started"])
    write_json(out / "config.json", config)
    write_json(out / "labels.json", {"class_names": class_names, "label_ids": {c: i for i, c in enumerate(class_names)}})
    _log(f"data {data_dir}: split {split.describe()}; backbone {cfg.backbone}, weights {config['weights_source']}, "
         f"frozen until {cfg.freeze_until}; feature cache {'on' if use_cache else 'off'}; device {config['device']}",
         verbose)

    ytr = _one_hot(split.train.labels, k)
    yva = _one_hot(split.val.labels, k)
    ckdir = out / "checkpoints"
    phases = [("head", cfg.freeze_until, cfg.epochs, cfg.learning_rate)]
    if cfg.fine_tune_epochs:
        phases.append(("fine_tune", ft_until, cfg.fine_tune_epochs, cfg.fine_tune_lr))
    all_logs: list[dict] = []
    feature_seconds = 0.0
    for i, (phase, until, epochs, lr) in enumerate(phases):
        if i > 0:
            from .models import apply_freeze

            apply_freeze(clf.backbone, clf.spec, until, freeze_bn=clf.pretrained)
            clf.freeze_until = until
        ckpt = _Checkpointer(ckdir, phase)
        if use_cache and clf.boundary_layer() is not None:
            frozen, trainable = split_at_boundary(clf)
            t0 = time.perf_counter()
            ftr = _extract(frozen, split.train, cfg, feature_cache_dir, feature_precision)
            fva = _extract(frozen, split.val, cfg, feature_cache_dir, feature_precision)
            feature_seconds += time.perf_counter() - t0
            _log(f"[{phase}] features at {clf.boundary_layer()}: {ftr.shape[1:]} for {len(ftr) + len(fva)} images "
                 f"in {time.perf_counter() - t0:.1f}s", verbose)
            logs = _fit_phase(phase, i, trainable, ftr, ytr, (fva, yva), epochs, lr, cfg, ckpt, verbose)
        else:
            from .data.pipeline import make_dataset

            val_ds = make_dataset(split.val, cfg.image_size, cfg.batch_size, num_classes=k)

            def images(perm, _split=split):
                return make_dataset((_split.train.files[perm], _split.train.labels[perm]), cfg.image_size,
                                    cfg.batch_size, num_classes=k)

            logs = _fit_phase(phase, i, clf.model, None, ytr, val_ds, epochs, lr, cfg, ckpt, verbose,
                              make_images=images)
        all_logs.extend(logs)

    marks, first = [], 1
    for i, rec in enumerate(all_logs, 1):
        rec["global_epoch"] = i
    for phase, until, epochs, lr in phases:
        marks.append({"phase": phase, "first_epoch": first, "last_epoch": first + epochs - 1,
                      "freeze_until": until, "learning_rate": lr})
        first += epochs
    history = {"epochs": all_logs, "phases": [p[0] for p in phases], "phase_marks": marks,
               "feature_extraction_seconds": round(feature_seconds, 3),
               "train_seconds": round(sum(r["seconds"] for r in all_logs), 3)}
    write_json(out / "history.json", history)
    save_model_atomic(clf.model, out / "model.keras")
    config["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(out / "config.json", config)
    return RunResult(out, config, history, {}, model=clf.model, classifier=clf)


def _fingerprint(split: Split) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in (split.train, split.val, split.test):
        h.update(part.fingerprint().encode())
    return h.hexdigest()[:16]


def _extract(frozen, folder: ImageFolder, cfg: TrainConfig, cache_dir, precision: str | None = None) -> np.ndarray:
    from .features import extract_features

    return extract_features(frozen, folder, cfg.image_size, batch_size=cfg.batch_size, cache_dir=cache_dir,
                            precision=precision or "float32")


def save_model_atomic(model, path: Path) -> None:
    """Save to a temporary file next to ``path``, then rename: a full disk never
    destroys the previous model."""
    tmp = path.with_name(f".{path.stem}.part.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise RunDirError(f"{path}: could not save the model ({exc.strerror or exc}); the previous file, if any, "
                          "is untouched; free some disk space and rerun the same command to resume") from None
    finally:
        if tmp.exists():
            tmp.unlink()

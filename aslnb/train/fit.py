"""One training phase = one ``model.fit`` call with Keras callbacks.

* :class:`EpochBatches` (a ``keras.utils.PyDataset``) serves the batches of
  epoch ``e`` in the order ``permutation(seed, phase, e)``; the epoch comes
  from ``on_epoch_begin``, so a resumed ``fit`` (which starts at a later
  initial epoch) sees exactly the order an uninterrupted one would.
* :class:`EpochRecords` turns each epoch's logs into a ``history.json`` record
  (metrics, ``seconds``, ``images_per_second``) and refuses a non-finite
  validation loss.
* :class:`RunBackup` does what ``keras.callbacks.BackupAndRestore`` does, on public
  Keras API only (a callback that saves at ``on_epoch_end``; the restored epoch is
  passed to ``fit(initial_epoch=...)``), with an atomic commit: the stock callback writes ``latest.weights.h5`` (model variables and
  optimizer state) and then ``training_metadata.json`` in place, so a kill
  between or during the two writes pairs weights and epoch of different epochs
  or leaves an unreadable file. Here each save writes a new weights file, then
  replaces ``state.json`` (epoch, weights file name, epoch records, ``done``)
  atomically, then deletes the older weights file: a kill at any point leaves
  the last complete epoch. :meth:`RunBackup.restore`, called before ``fit``, sets the
  weights and the optimizer state and returns the epoch to start from. ``done`` marks a finished
  phase (also one ended by early stopping) so a rerun does not train it again.
"""
from __future__ import annotations

import errno
import math
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from ..errors import ParameterError, RunDirError
from ..io import atomic_path, os_reason, read_json, write_json

# Steps run per call of the compiled train function when the head trains on cached
# features: a batch of features costs less than the Python round trip of one step.
CACHED_STEPS_PER_EXECUTION = 16


class EpochBatches(keras.utils.PyDataset):
    """Batches ``take(indices)`` of ``n`` examples in a per-epoch order fixed by ``(seed, phase_index, epoch)``.

    ``shuffle=False``: every epoch in index order (validation data read from a
    :class:`aslnb.features.store.FeatureStore`, a batch at a time).
    """

    def __init__(self, n: int, batch_size: int, seed: int, phase_index: int, take: Callable[[np.ndarray], tuple],
                 shuffle: bool = True):
        super().__init__()
        self.n, self.batch_size, self.key, self.take = n, batch_size, (seed, phase_index), take
        self.shuffle = shuffle
        self.epoch = 0
        self._perm: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([*self.key, epoch]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, i: int) -> tuple:
        if self._perm is None or self._perm[0] != self.epoch:
            self._perm = (self.epoch, self.order(self.epoch))
        return self.take(self._perm[1][i * self.batch_size:(i + 1) * self.batch_size])


class _SetEpoch(keras.callbacks.Callback):
    def __init__(self, data: EpochBatches):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.epoch = epoch


# A cross-entropy this large is a diverged run, finite or not (a sane one stays near ln(classes) or below;
# huge logits give finite losses of 1e29 that would otherwise train on and leave a broken model).
DIVERGED_LOSS = 1e6


class NonFiniteLoss(RuntimeError):
    pass


class EpochRecords(keras.callbacks.Callback):
    """The ``history.json`` record of every epoch of one phase; prints one line per epoch at verbose 2."""

    def __init__(self, phase: str, n_images: int, verbose: int = 0):
        super().__init__()
        self.phase, self.n_images, self.verbose = phase, n_images, verbose
        self.records: list[dict] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not all(math.isfinite(logs.get(k, 0.0)) and logs.get(k, 0.0) < DIVERGED_LOSS for k in ("loss", "val_loss")):
            raise NonFiniteLoss(f"epoch {epoch + 1}: loss {logs.get('loss')}, val_loss {logs.get('val_loss')}")
        rec = {"phase": self.phase, "epoch": epoch + 1, **logs, "seconds": round(seconds, 3),
               "images_per_second": round(self.n_images / seconds, 2)}
        self.records.append(rec)
        if self.verbose == 2:
            print(f"[{self.phase}] epoch {epoch + 1}/{self.params['epochs']}  loss {rec['loss']:.4f}  "
                  f"acc {rec.get('accuracy', float('nan')):.4f}  val_loss {rec.get('val_loss', float('nan')):.4f}  "
                  f"val_acc {rec.get('val_accuracy', float('nan')):.4f}  {seconds:.1f}s  "
                  f"{rec['images_per_second']:.1f} img/s", flush=True)


class RunBackup(keras.callbacks.Callback):
    """A backup of the phase after every epoch, one atomic commit each (see the module docstring)."""

    def __init__(self, backup_dir: Path, records: EpochRecords, verbose: int = 0, weights_change_at_end: bool = False):
        super().__init__()
        self.folder, self.records, self.verbose = Path(backup_dir), records, verbose
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = self.folder / "state.json"
        self.weights_change_at_end = weights_change_at_end  # EarlyStopping restores the best weights at the end
        self._done = False
        self._weights: str | None = None

    def restore(self, model, epochs: int) -> int:
        """Load the last complete epoch's weights, optimizer state and records into ``model`` (compiled); the
        epoch ``fit`` starts from (``epochs`` for a finished phase, 0 without a backup)."""
        if not self.state.exists():
            return 0
        try:
            state = read_json(self.state)
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(self.folder / state["weights"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDirError(f"{self.state}: unreadable checkpoint ({exc.__class__.__name__}); pass --overwrite "
                              "to start again") from None
        self._done, self._weights = bool(state.get("done")), state["weights"]
        self.records.records[:] = state["records"]
        if self.verbose:
            print(f"[{self.records.phase}] resuming after epoch {state['epoch']} from {self.state}", flush=True)
        return epochs if self._done else int(state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        self._commit()

    def _commit(self, done: bool = False):
        epoch = len(self.records.records)
        name = f"state-{epoch}{'-done' if done else ''}.weights.h5"
        target = self.folder / name
        try:
            with atomic_path(target) as tmp:  # no partial file on any error
                self.model.save_weights(str(tmp), overwrite=True)
            target = self.state
            self._write_state(name, done)
        except OSError as exc:
            if target == self.state:
                (self.folder / name).unlink(missing_ok=True)
            hint = "free some disk space and " if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
            raise RunDirError(f"{target}: could not write the checkpoint ({os_reason(exc)}); {hint}rerun the "
                              "same command to resume from the last complete epoch") from None
        self._weights = name
        for old in self.folder.glob("state-*.weights.h5"):
            if old.name != name:
                old.unlink()
        write_json(self.folder / "epochs.json", self.records.records)  # a readable copy

    def _write_state(self, weights: str, done: bool) -> None:
        """Replace ``state.json`` (atomically): the epochs done, their weights file, ``done``, the records."""
        write_json(self.state, {"epoch": len(self.records.records), "weights": weights, "done": done,
                                "records": self.records.records})

    def on_train_end(self, logs=None):
        if not self._done:
            if self.weights_change_at_end or self._weights is None:
                self._commit(done=True)
            else:  # the last epoch's weights are the final ones: mark the phase done without writing them again
                self._write_state(self._weights, True)
            self._done = True


def compile_model(model, lr: float, steps_per_execution: int = 1) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="categorical_crossentropy",
        metrics=["accuracy", keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy")],
        steps_per_execution=steps_per_execution,
    )


def fit_phase(phase: str, phase_index: int, model, data: EpochBatches, val_data, epochs: int, lr: float,
              backup_dir: Path, *, steps_per_execution: int = 1, callbacks: list | None = None,
              early_stopping_patience: int | None = None, verbose: int = 0) -> list[dict]:
    """Train one phase with one ``fit`` call; return its epoch records (restored ones included)."""
    compile_model(model, lr, steps_per_execution)
    records = EpochRecords(phase, data.n, verbose)
    stop = ([keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping_patience,
                                           restore_best_weights=True)] if early_stopping_patience else [])
    backup = RunBackup(backup_dir, records, verbose, weights_change_at_end=bool(stop))
    cbs = [keras.callbacks.TerminateOnNaN(raise_error=True), _SetEpoch(data), *(callbacks or []), *stop, records,
           backup]
    try:
        model.fit(data, epochs=epochs, initial_epoch=backup.restore(model, epochs), validation_data=val_data,
                  shuffle=False, callbacks=cbs, verbose=1 if verbose == 1 else 0)
    except (NonFiniteLoss, RuntimeError) as exc:
        if not isinstance(exc, NonFiniteLoss) and "NaN or Inf loss" not in str(exc):
            raise
        raise ParameterError(f"training diverged in phase {phase!r} (non-finite or exploding loss, {exc}); "
                             f"the learning rate "
                             f"{lr:g} is too high: lower --learning-rate (or --fine-tune-lr)") from None
    return records.records


def history_of(records: list[dict], phases: list[tuple], feature_seconds: float) -> dict:
    """``history.json``: the records (numbered across phases), phase marks, total times."""
    marks = []
    for i, rec in enumerate(records, 1):
        rec["global_epoch"] = i
    for phase, until, _epochs, lr in phases:
        mine = [r["global_epoch"] for r in records if r["phase"] == phase]
        marks.append({"phase": phase, "first_epoch": mine[0] if mine else None, "last_epoch": mine[-1] if mine else None,
                      "freeze_until": until, "learning_rate": lr})
    return {"epochs": records, "phases": [p[0] for p in phases], "phase_marks": marks,
            "feature_extraction_seconds": round(feature_seconds, 3),
            "train_seconds": round(sum(r["seconds"] for r in records), 3)}

"""The one-line notes a training run prints and records in ``config.json``."""
from __future__ import annotations

from ..config import TrainConfig


def _backend_notes(cfg: TrainConfig, use_cache: bool) -> list[str]:
    """What this Keras backend does not do of the requested options (one line each)."""
    import keras

    backend, notes = keras.backend.backend(), []
    if backend != "tensorflow" and cfg.deterministic:
        notes.append(f"deterministic=True: op determinism is a TensorFlow switch; the {backend} backend is seeded "
                     "but its ops are not made deterministic")
    if backend == "torch" and use_cache:
        notes.append("the torch backend runs one step per call (steps_per_execution=1): slower on cached features")
    return notes


def run_notes(cfg: TrainConfig, resolved_weights: str, use_cache: bool, boundary: str | None,
              feature_precision: str | None) -> list[str]:
    """The notes of a run (printed, and kept in ``config.json``): what the parameters mean for it."""
    notes = []
    if resolved_weights == "none" and cfg.freeze_until != "none":
        notes.append(f"weights 'none': the backbone is randomly initialised, so freezing it up to {cfg.freeze_until} "
                     "keeps random features fixed; this is a no-pretraining baseline, not transfer learning")
    if cfg.augment and cfg.cache_features == "auto" and boundary is not None:
        notes.append("feature cache bypassed: augmentation runs before the backbone, so features differ every epoch")
    if use_cache and feature_precision != "float32":
        trains = "float32" if cfg.mixed_precision == "off" else f"mixed {cfg.mixed_precision}"
        notes.append(f"features extracted in {feature_precision} (precision={cfg.precision}); the head trains in "
                     f"{trains}")
    elif not use_cache and cfg.precision == "bfloat16":
        notes.append("precision='bfloat16' applies to cached feature extraction only; this run has no feature "
                     "cache (for bfloat16 training use mixed_precision='bfloat16')")
    return notes + _backend_notes(cfg, use_cache)

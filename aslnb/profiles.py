"""Run profiles shared by the notebooks, ``aslnb report`` and the tests.

``smoke``: a few images per class, tiny images, 1 epoch (the test suite).
``cpu``: the whole 5,800-image sample, the study's 20 epochs, sizes chosen so
the whole report runs in under an hour on 2 CPU cores (head trained on cached
features of a fully frozen backbone; weights ``none`` where ImageNet weights
cannot be downloaded).
``gpu``: 224 px, the full recipe (conv1-conv4 frozen, conv5 + head trained,
then a fine-tuning phase), ImageNet weights.
"""
from __future__ import annotations

from typing import Any

from .errors import ParameterError

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "image_size": 32, "epochs": 1, "batch_size": 32, "limit_per_class": 12, "weights": "none",
        "freeze_until": "all", "fine_tune_epochs": 0, "head_units": [64], "external_limit": 4,
        "probe_size": 32, "residual_epochs": 1, "residual_depths": [2, 4], "residual_size": 16,
    },
    "cpu": {
        "image_size": 128, "epochs": 20, "batch_size": 32, "limit_per_class": None, "weights": "none",
        "freeze_until": "all", "fine_tune_epochs": 0, "head_units": [256], "external_limit": None,
        "probe_size": 128, "residual_epochs": 8, "residual_depths": [4, 12, 24], "residual_size": 24,
    },
    "gpu": {
        "image_size": 224, "epochs": 20, "batch_size": 32, "limit_per_class": None, "weights": "imagenet",
        "freeze_until": "conv4", "fine_tune_epochs": 5, "head_units": [256], "external_limit": None,
        "probe_size": 224, "residual_epochs": 15, "residual_depths": [4, 12, 24, 48], "residual_size": 32,
    },
}


def profile(name: str) -> dict[str, Any]:
    """A copy of the settings of profile ``name``."""
    if name not in PROFILES:
        raise ParameterError(f"profile={name!r}: unknown, choose one of {', '.join(PROFILES)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PROFILES[name].items()}

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


# ResNet50's freeze points and their EfficientNet-Lite0 counterparts (same share of the net frozen).
_FREEZE_EQUIV = {"efficientnet_lite0": {"conv1": "stem", "conv2": "block2", "conv3": "block4", "conv4": "block6",
                                        "conv5": "head"}}


def freeze_for(backbone: str, freeze_until: str) -> str:
    """The profile's ``freeze_until`` (named after ResNet50 stages) for ``backbone``."""
    return _FREEZE_EQUIV.get(backbone, {}).get(freeze_until, freeze_until)


def train_params(settings: dict[str, Any], backbone: str = "resnet50", *, seed: int = 0,
                 weights: str | None = None) -> dict[str, Any]:
    """The :func:`aslnb.train.train` keyword parameters of a profile's settings.

    Notebooks 04 and 05 both call this, so 05 retrains exactly what 04 trained
    when it runs on its own, and recognises a run of 04 as reusable. ``weights``
    (the WEIGHTS parameter) overrides the profile; without it ResNet50 uses the
    profile's weights and EfficientNet-Lite0 its offline ImageNet weights.
    """
    if weights is None:
        weights = settings["weights"] if backbone == "resnet50" else "imagenet"
    return {
        "backbone": backbone,
        "weights": weights,
        "image_size": int(settings["image_size"]),
        "epochs": int(settings["epochs"]),
        "batch_size": int(settings["batch_size"]),
        "freeze_until": freeze_for(backbone, settings["freeze_until"]),
        "head_units": list(settings["head_units"]),
        "limit_per_class": settings["limit_per_class"],
        "fine_tune_epochs": int(settings.get("fine_tune_epochs") or 0),
        "seed": int(seed),
    }

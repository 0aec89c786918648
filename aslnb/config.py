"""Run profiles shared by the notebooks, ``aslnb report`` and the tests.

``smoke``: a few images per class, tiny images, 1 epoch (the test suite).
``cpu``: the whole 5,800-image sample, the study's 20 epochs, sizes chosen so
the whole report runs in under an hour on 2 CPU cores (head trained on cached
features of a fully frozen backbone; weights ``auto``: ImageNet where the
weights are cached or can be downloaded, else ``none``, noted in the run).
``gpu``: 224 px, the full recipe (conv1-conv4 frozen, conv5 + head trained,
then a fine-tuning phase), ImageNet weights.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ParameterError

PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass
class TrainConfig:
    """Every training parameter; the defaults are the study's recipe."""

    epochs: int = 20
    batch_size: int = 32
    image_size: int = 224
    backbone: str = "resnet50"
    weights: str = "imagenet"
    freeze_until: str = "conv4"
    head_units: list[int] = field(default_factory=lambda: [256])
    dropout: float = 0.0
    learning_rate: float = 1e-3
    split: str = "blocked"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    fine_tune_epochs: int = 0
    fine_tune_until: str | None = None
    fine_tune_lr: float = 1e-5
    augment: bool = False
    cache_features: str = "auto"
    limit_per_class: int | None = None
    deterministic: bool = True
    precision: str = "float32"

    @classmethod
    def from_params(cls, **params: Any) -> "TrainConfig":
        """Build from keyword parameters, refusing unknown names and wrong types."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ParameterError(
                f"unknown training parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        cfg = cls(**{k: v for k, v in params.items() if v is not None or k in ("fine_tune_until", "limit_per_class")})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ParameterError(msg)

        for name in ("epochs", "batch_size", "image_size", "seed", "fine_tune_epochs"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool), f"{name}={v!r}: must be an integer")
        need(self.epochs >= 1, f"epochs={self.epochs}: must be at least 1")
        need(self.batch_size >= 1, f"batch_size={self.batch_size}: must be at least 1")
        need(self.fine_tune_epochs >= 0, f"fine_tune_epochs={self.fine_tune_epochs}: must be >= 0")
        for name in ("learning_rate", "fine_tune_lr", "dropout", "val_fraction", "test_fraction"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and not isinstance(v, bool), f"{name}={v!r}: must be a number")
        need(self.learning_rate > 0 and self.fine_tune_lr > 0, "learning rates must be positive")
        need(self.cache_features in ("auto", "on", "off"), f"cache_features={self.cache_features!r}: use auto, on or off")
        need(self.precision in PRECISIONS,
             f"precision={self.precision!r}: use {', '.join(PRECISIONS)} (bfloat16: feature extraction only)")
        need(isinstance(self.weights, str), f"weights={self.weights!r}: use 'imagenet', 'none' or a file path")
        self.head_units = [int(u) for u in (self.head_units or [])]
        need(self.limit_per_class is None or (isinstance(self.limit_per_class, int) and self.limit_per_class >= 4),
             f"limit_per_class={self.limit_per_class!r}: must be an integer >= 4 or None")
        need(self.val_fraction > 0, "val_fraction must be > 0: training reports validation accuracy per epoch")

    @property
    def pretrained(self) -> bool:
        return self.weights not in ("none", "")


PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "image_size": 32, "epochs": 1, "batch_size": 32, "limit_per_class": 12, "weights": "none",
        "freeze_until": "all", "fine_tune_epochs": 0, "head_units": [64], "external_limit": 4,
        "probe_size": 32, "residual_epochs": 1, "residual_depths": [2, 4], "residual_size": 16,
    },
    "cpu": {
        "image_size": 128, "epochs": 20, "batch_size": 32, "limit_per_class": None, "weights": "auto",
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


def freeze_for(backbone: str, freeze_until: str) -> str:
    """The profile's ``freeze_until`` (named after ResNet50 stages) as ``backbone``'s freeze point (the registry's map)."""
    from .models.registry import freeze_point

    return freeze_point(backbone, freeze_until)


def train_params(settings: dict[str, Any], backbone: str | None = None, *, seed: int = 0,
                 weights: str | None = None) -> dict[str, Any]:
    """The :func:`aslnb.train.train` keyword parameters of a profile's settings.

    Notebooks 04 and 05 both call this, so 05 retrains exactly what 04 trained
    when it runs on its own, and recognises a run of 04 as reusable. ``weights``
    (the WEIGHTS parameter) overrides the profile; without it the backbone's
    registry entry decides (the study's ResNet50 follows the profile's weights,
    EfficientNet-Lite uses its offline ImageNet weights). ``backbone``: default the study's.
    """
    from .models.registry import default_backbone, run_weights

    backbone = backbone or default_backbone()
    if weights is None:
        weights = run_weights(backbone, settings["weights"])
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

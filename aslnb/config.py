"""Training parameters (:class:`TrainConfig`), notebook settings and run profiles.

:class:`TrainConfig` is the one place a training default is written: ``aslnb
train``'s flags and their ``--help`` are generated from its fields, and the
profiles below only name what differs from it. :class:`CourseSettings` holds
the notebooks' own settings (probes, residual nets, the scratch CNN), again
with one default each.

Profiles (:data:`PROFILES`, overrides of those defaults; :func:`profile` merges them):

``smoke``: a few images per class, tiny images, 1 epoch (the test suite).
``cpu``: the whole 5,800-image sample, the study's 20 epochs, sizes chosen so
the whole report runs in about 20 minutes on 2 CPU cores from an empty cache: the head is
trained on cached features of the frozen backbone (early stopping; dropout 0, as
notebook 04's validation comparison picked), then a second phase trains the top stage
(``fine_tune_until`` ``conv4``: ResNet50's conv5, Lite0's block7 and head conv) at a
low learning rate on features cached at that boundary; weights ``auto``: ImageNet
where the weights are cached or can be downloaded, else ``none``, noted in the run.
``hands``: the other-hands recipe, ``features='landmarks'`` (an MLP on MediaPipe hand landmarks, augmented),
with the cpu profile's course settings.
``gpu``: 224 px, ImageNet weights, the study's recipe (conv1-conv4 frozen: their
features cached, conv5 + head trained for 20 epochs) with the cpu profile's dropout
and early stopping, then a second phase (conv4 and conv5 unfrozen, learning rate
1e-5, 5 epochs, BatchNormalization in inference mode).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .backend import import_keras
from .data.pipeline import DECODER, DECODERS
from .data.splits import SPLIT_METHODS as SPLITS, check_fractions
from .errors import ParameterError
from .provenance import memory_bytes

# lazy: aslnb.models imports Keras, so it is imported inside the functions that need it (`aslnb --help` and
# `import aslnb` stay free of TensorFlow).

PRECISIONS = ("auto", "float32", "bfloat16")
CACHE_MODES = ("auto", "on", "off")
DISTRIBUTE = ("none", "mirrored", "multiworker", "tpu")
MIXED_PRECISION = ("off", "bfloat16", "float16")
FEATURES = ("image", "landmarks", "crop", "fusion")
MAX_SEED = 2**32 - 1  # numpy's and TensorFlow's seed range


def _backbone_names() -> tuple[str, ...]:
    import_keras()  # without TensorFlow's start-up notices
    from .models import backbone_names

    return tuple(backbone_names())


def _p(default: Any, help: str, choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None) -> Any:
    """A dataclass field with its ``--help`` text (and allowed values)."""
    meta = {"help": help, **({"choices": choices} if choices is not None else {})}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every training parameter; the defaults are the study's recipe."""

    epochs: int = _p(20, "training epochs of the first phase")
    batch_size: int = _p(32, "images per training step")
    image_size: int = _p(224, "square input size in pixels (at least 32; the top is set by the memory at hand)")
    backbone: str = _p("resnet50", "pretrained network under the classifier head", _backbone_names)
    weights: str = _p("imagenet", "backbone weights: imagenet, auto (imagenet where cached or downloadable, else "
                                  "none), none (random initialisation) or a .weights.h5 file")
    freeze_until: str = _p("conv4", "freeze the backbone up to this stage: none, all, a stage of the backbone, "
                                    "or the study's ResNet50 name conv1..conv5 (mapped to the same share of any "
                                    "backbone)")
    head_units: list[int] = _p([256], "hidden ReLU layer sizes of the head, comma-separated, e.g. 512,128")
    dropout: float = _p(0.0, "dropout rate in the head, 0 <= d < 1")
    learning_rate: float = _p(1e-3, "learning rate of the first phase")
    split: str = _p("chunk", "hold out the last frames of each class as one chunk (chunk, chosen by notebook "
                             "01's split study), whole blocks of consecutive frames (blocked) or single images "
                             "(random)", SPLITS)
    val_fraction: float = _p(0.1, "share of each class held out for validation, 0 < f < 1")
    test_fraction: float = _p(0.2, "share of each class held out for the test, 0 < f < 1 (val + test < 1)")
    seed: int = _p(0, f"random seed of the split, the initialisation and the shuffling, 0..{MAX_SEED}")
    fine_tune_epochs: int = _p(0, "epochs of a second phase with more of the backbone unfrozen (0: none)")
    fine_tune_until: str | None = _p(None, "freeze point of the second phase (default: one stage before "
                                           "--freeze-until)")
    fine_tune_lr: float = _p(1e-5, "learning rate of the second phase")
    augment: bool = _p(False, "random rotation/zoom/brightness while training (bypasses the feature cache; with "
                              "features=landmarks: random rotations and stretch of the hand points)")
    hand_views: int = _p(0, "training-only views per frame: the hand cut out of the room, cropped, pasted on other "
                             "backgrounds (aslnb.features.views; 0: none)")
    view_augment: float = _p(0.0, "Keras augmentation strength of the hand views, 0..2 (0: flip only)")
    cache_features: str = _p("auto", "compute the frozen part once per image and train the rest on it (auto: "
                                     "whenever something is frozen and augmentation is off)", CACHE_MODES)
    limit_per_class: int | None = _p(None, "use at most N >= 4 images per class, for quick runs (default: all)")
    deterministic: bool = _p(True, "deterministic TensorFlow ops: same machine, same numbers")
    decoder: str = _p(DECODER, "image decoding: tf (tf.io ops for the JPEG/PNG/BMP files TensorFlow decodes as Pillow "
                               "would, Pillow for the rest) or pil (Pillow for every file)", DECODERS)
    precision: str = _p("float32", "feature-extraction precision (auto: bfloat16 on a GPU or a CPU with native "
                                   "bf16, else float32)", PRECISIONS)
    early_stopping_patience: int | None = _p(None, "stop a phase after this many epochs without a lower val_loss "
                                                   "and keep its best epoch's weights (default: every epoch runs)")
    distribute: str = _p("none", "where to train: none (one device), mirrored (this machine's GPUs or logical "
                                 "devices), multiworker (the machines of TF_CONFIG), tpu (a Colab TPU); the global "
                                 "batch is batch_size, split across replicas (aslnb.train.distribute)", DISTRIBUTE)
    mixed_precision: str = _p("off", "mixed-precision training: off (float32), bfloat16, float16 (GPU only); "
                                     "the softmax stays float32", MIXED_PRECISION)
    features: str = _p("image", "what the classifier sees: image (the backbone on the pixels), landmarks (a small "
                                "MLP on the 21 hand points of MediaPipe's hand landmarker, extra 'hands'; --augment: "
                                "landmark rotations/stretch) or crop (the backbone on the hand cut out by its "
                                "landmarks' box); frames without a hand are left out of training and predicted "
                                "'nothing'; fusion: the landmarks recipe where a hand is found, this image recipe "
                                "elsewhere (both trained, aslnb.train.fusion)", FEATURES)

    @classmethod
    def from_params(cls, **params: Any) -> "TrainConfig":
        """Build from keyword parameters, refusing unknown names and wrong types or values."""
        unknown = sorted(set(params) - set(TRAIN_FIELDS))
        if unknown:
            raise ParameterError(
                f"unknown training parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(TRAIN_FIELDS))}"
            )
        # None means "the default" for a parameter whose default is not None itself.
        cfg = cls(**{k: v for k, v in params.items() if v is not None or field_default(TRAIN_FIELDS[k]) is None})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Refuse, with one line naming the parameter and the fix, any value training cannot use."""
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ParameterError(msg)

        for name in ("epochs", "batch_size", "image_size", "seed", "fine_tune_epochs", "hand_views"):
            v = getattr(self, name)
            need(_is_int(v), f"{name}={v!r}: must be an integer")
        for name in ("learning_rate", "fine_tune_lr", "dropout", "view_augment"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and not isinstance(v, bool), f"{name}={v!r}: must be a number")
            need(math.isfinite(v), f"{name}={v!r}: must be a finite number, e.g. {_default_of(name)}")
        for name in ("augment", "deterministic"):
            need(isinstance(getattr(self, name), bool), f"{name}={getattr(self, name)!r}: must be True or False")
        need(self.epochs >= 1, f"epochs={self.epochs}: must be at least 1")
        need(self.batch_size >= 1, f"batch_size={self.batch_size}: must be at least 1")
        need(self.fine_tune_epochs >= 0,
             f"fine_tune_epochs={self.fine_tune_epochs}: must be 0 (no second phase) or more")
        need(0 <= self.hand_views <= 8, f"hand_views={self.hand_views}: must be in 0..8 (0: none)")
        need(0 <= self.view_augment <= 2, f"view_augment={self.view_augment}: must be in 0..2, e.g. 1")
        need(0 <= self.seed <= MAX_SEED, f"seed={self.seed}: must be in 0..{MAX_SEED} (2**32-1); use e.g. seed=0")
        for name in ("learning_rate", "fine_tune_lr"):
            need(getattr(self, name) > 0, f"{name}={getattr(self, name)}: must be positive, e.g. {_default_of(name)}")
        need(0 <= self.dropout < 1, f"dropout={self.dropout}: must be in [0, 1), e.g. 0.2 (0: no dropout)")
        check_fractions(self.val_fraction, self.test_fraction, zero_ok=False)  # a run needs val and test images
        for name in ("split", "cache_features", "precision", "decoder", "distribute", "mixed_precision", "backbone",
                     "features"):
            allowed = _choices(name)
            need(getattr(self, name) in allowed, f"{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}")
        need(isinstance(self.weights, str) and self.weights != "",
             f"weights={self.weights!r}: use 'imagenet', 'none' or a file path")
        units = self.head_units if isinstance(self.head_units, (list, tuple)) else [self.head_units]
        need(all(_is_int(u) and u >= 1 for u in units),
             f"head_units={self.head_units!r}: sizes must be integers >= 1, e.g. [256] (an empty list: no hidden "
             "layer)")
        self.head_units = [int(u) for u in units]
        need(self.limit_per_class is None or (_is_int(self.limit_per_class) and self.limit_per_class >= 4),
             f"limit_per_class={self.limit_per_class!r}: must be an integer >= 4 (enough to split a class into "
             "train, val and test), or None for all images")
        p = self.early_stopping_patience
        need(p is None or (_is_int(p) and p >= 1), f"early_stopping_patience={p!r}: must be an integer >= 1 or None")
        self._check_landmarks()
        from .models import frozen_stages, get_backbone

        spec = get_backbone(self.backbone)
        self._check_image_size(spec.min_size)
        frozen_stages(spec, self.freeze_until)  # a typo in the stage name
        if self.fine_tune_until is not None:
            try:
                frozen_stages(spec, self.fine_tune_until)
            except ParameterError as exc:
                raise ParameterError(f"fine_tune_until={self.fine_tune_until!r}: {exc}") from None

    def _check_landmarks(self) -> None:
        """``features='landmarks'`` has no image backbone: refuse the levers that need one (and hand views with
        ``crop``)."""
        if self.features == "crop" and self.hand_views:
            raise ParameterError(f"hand_views={self.hand_views}: features='crop' already cuts the hand out of the "
                                 "room; set hand_views=0")
        if self.features == "fusion" and self.distribute == "multiworker":
            raise ParameterError("distribute='multiworker': features='fusion' trains its two parts on one machine; use "
                                 "distribute='none' or 'mirrored'")
        if self.features != "landmarks":
            return
        for name in ("hand_views", "fine_tune_epochs"):
            if getattr(self, name):
                raise ParameterError(f"{name}={getattr(self, name)}: features='landmarks' trains an MLP on hand "
                                     f"points, there is no image backbone; set {name}=0")
        if self.distribute != "none":
            raise ParameterError(f"distribute={self.distribute!r}: features='landmarks' trains on one device; use "
                                 "distribute='none'")

    def _check_image_size(self, min_size: int) -> None:
        size, bs = self.image_size, self.batch_size
        if size < min_size:
            raise ParameterError(f"image_size={size}: {self.backbone} needs at least {min_size} px; use e.g. "
                                 "image_size=128")
        from .models.registry import activation_bytes, max_image_size

        need, have = activation_bytes(self.backbone, size, bs), memory_bytes()
        if have is not None and need > have:
            raise ParameterError(
                f"image_size={size}: one batch of {bs} images needs about {need / 2**30:.1f} GiB of activations in "
                f"{self.backbone}, more than this machine's {have / 2**30:.1f} GiB of memory; lower image_size "
                f"(to {max_image_size(self.backbone, bs, have)} or less) or batch_size"
            )

    @property
    def pretrained(self) -> bool:
        return self.weights not in ("none", "")


#: The :class:`TrainConfig` fields by name, in order (a profile's other settings are the notebooks').
TRAIN_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def field_default(f: dataclasses.Field) -> Any:
    """The default of dataclass field ``f`` (a fresh copy of a list)."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _default_of(name: str) -> Any:
    return field_default(TRAIN_FIELDS[name])


def _choices(name: str) -> tuple[str, ...]:
    """The allowed values of TrainConfig field ``name`` (none: any)."""
    c = TRAIN_FIELDS[name].metadata.get("choices")
    return c() if callable(c) else tuple(c or ())


@dataclass
class CourseSettings:
    """The notebooks' own settings (not training parameters); the defaults are the full study's sizes."""

    external_limit: int | None = _p(None, "external images per class notebook 05 scores itself (None: all, "
                                          "scored with the run)")
    probe_size: int = _p(224, "image size of notebook 03's linear probes")
    residual_epochs: int = _p(15, "epochs of notebook 02's plain and residual nets")
    residual_depths: list[int] = _p([4, 12, 24, 48], "depths compared in notebook 02")
    residual_size: int = _p(32, "image size of notebook 02's nets")
    residual_width: int = _p(32, "channels of notebook 02's nets")
    residual_batch_size: int = _p(32, "batch size of notebook 02's nets")
    residual_per_class: int | None = _p(None, "training images per class in notebook 02 (None: the whole "
                                              "blocked train split)")
    residual_learning_rate: float = _p(2e-3, "learning rate of notebook 02's nets")
    transfer_scratch_epochs: int = _p(30, "epochs of notebook 03's small from-scratch CNN (EPOCHS overrides it)")
    transfer_efficiency_sizes: list[int] = _p([5, 10, 25, 50], "images per class of notebook 03's "
                                                               "data-efficiency curve ('all' is added)")
    transfer_batch_size: int = _p(64, "batch size of notebook 03's embeddings and scratch CNN")
    transfer_max_iter: int = _p(1000, "iterations of notebook 03's logistic-regression probes")
    hands_per_class: int | None = _p(None, "images per class of notebook 06's live run (None: all)")


#: Each profile names only what differs from the :class:`TrainConfig` and :class:`CourseSettings` defaults.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "image_size": 32, "epochs": 1, "limit_per_class": 12, "weights": "none", "freeze_until": "all",
        "head_units": [64], "external_limit": 4, "probe_size": 32, "residual_epochs": 1, "residual_depths": [2, 4],
        "residual_size": 16, "residual_width": 8, "residual_per_class": 12, "transfer_scratch_epochs": 1,
        "transfer_efficiency_sizes": [2, 4], "transfer_batch_size": 32, "transfer_max_iter": 200,
    },
    "cpu": {
        "image_size": 128,
        "weights": "auto",
        "freeze_until": "all",
        # the setting of notebook 04's validation comparison (section 4, recorded as nb04.<backbone>.
        # head_settings_by_validation, checked there): the lowest mean validation loss over 3 training seeds
        # among dropout 0.0 without early stopping and dropout 0.0, 0.2, 0.5 with it (patience 3) was dropout
        # 0.0 (the default, so not restated here) with early stopping; the dropout rates differ by less than
        # their seed spread
        "early_stopping_patience": 3,
        # a real second phase on 2 cores: the top stage (ResNet50 conv5, Lite0 block7 + head conv) trained on
        # features cached at the conv4 boundary, BatchNormalization in inference mode. Its learning rate is
        # fixed (an earlier comparison on the validation split among 1e-5, 1e-4 and 3e-4, not rerun by the
        # notebooks); notebook 04 checks that the second phase is not worse than the frozen model on validation
        "fine_tune_epochs": 5, "fine_tune_until": "conv4", "fine_tune_lr": 3e-4,
        "probe_size": 128, "residual_epochs": 8, "residual_depths": [4, 24], "residual_size": 24,
        "residual_width": 16, "residual_per_class": 45, "transfer_scratch_epochs": 10, "transfer_batch_size": 32,
        "transfer_max_iter": 300, "hands_per_class": 60,
    },
    "gpu": {
        # the cpu profile's head settings (notebook 04's validation comparison: dropout 0.0, early stopping)
        "early_stopping_patience": 3,
        "fine_tune_epochs": 5,
    },
}
#: The ``landmarks`` recipe kept by ``benchmarks/landmarks.py`` on the ASL validation split and Massey ``hand1``
#: (hand1 0.70 over 3 seeds, against 0.28 for the image recipe of notebook 06's ablation: offline Lite0, frozen,
#: hand views); also the landmarks part of ``features='fusion'`` (:mod:`aslnb.train.fusion`).
LANDMARKS_RECIPE: dict[str, Any] = {"features": "landmarks", "epochs": 80, "batch_size": 64,
                                    "early_stopping_patience": 10, "head_units": [256, 128], "dropout": 0.3,
                                    "augment": True}  # learning rate: 1e-3
#: Other hands (``aslnb train --profile hands``): the ``fusion`` recipe, adopted by ``benchmarks/landmarks.py
#: --fusion-seeds`` on ASL validation + ``hand1`` over 3 seeds (0.809 against its landmarks part's 0.800, sd 0.003):
#: the landmarks part (:data:`LANDMARKS_RECIPE`) where a hand is found, else an image part with the cpu profile's
#: EfficientNet-Lite0 settings (ImageNet, 128 px, frozen, no second phase); with the cpu profile's course settings.
HANDS_RECIPE: dict[str, Any] = {
    "features": "fusion",
    "backbone": "efficientnet_lite0",
    "image_size": 128, "freeze_until": "all", "early_stopping_patience": 3,  # the rest: TrainConfig's
}
PROFILES["hands"] = {**{k: v for k, v in PROFILES["cpu"].items() if k not in TRAIN_FIELDS}, **HANDS_RECIPE}


def defaults() -> dict[str, Any]:
    """Every setting of a profile at its default: the :class:`TrainConfig` and :class:`CourseSettings` fields."""
    return {**dataclasses.asdict(TrainConfig()), **dataclasses.asdict(CourseSettings())}


def profile(name: str) -> dict[str, Any]:
    """The full settings of profile ``name``: :func:`defaults` with the profile's overrides (a fresh copy)."""
    if name not in PROFILES:
        raise ParameterError(f"profile={name!r}: unknown, choose one of {', '.join(PROFILES)}")
    settings = defaults()
    unknown = sorted(set(PROFILES[name]) - set(settings))
    if unknown:
        raise ParameterError(f"profile {name!r}: unknown setting(s) {', '.join(unknown)}")
    settings.update({k: (list(v) if isinstance(v, list) else v) for k, v in PROFILES[name].items()})
    return settings


def profile_section(name: str, prefix: str) -> dict[str, Any]:
    """The settings of profile ``name`` whose key starts with ``prefix``, without it (``cpu`` for unknown names)."""
    settings = profile(name if name in PROFILES else "cpu")
    return {k[len(prefix):]: v for k, v in settings.items() if k.startswith(prefix)}


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
    EfficientNet-Lite uses its offline ImageNet weights). ``backbone``: a registered
    name (None: the study's), or ``"auto"`` (:func:`aslnb.models.registry.auto_backbone`: ResNet50 where its
    ImageNet weights are at hand, else EfficientNet-Lite0).
    """
    from .models.registry import default_backbone, resolve_backbone, run_weights

    backbone = resolve_backbone(backbone or default_backbone(), settings["weights"])[0]
    if weights is None:
        weights = run_weights(backbone, settings["weights"])
    return {
        "backbone": backbone,
        "weights": weights,
        "image_size": int(settings["image_size"]),
        "epochs": int(settings["epochs"]),
        "batch_size": int(settings["batch_size"]),
        "learning_rate": float(settings["learning_rate"]),
        "freeze_until": freeze_for(backbone, settings["freeze_until"]),
        "head_units": list(settings["head_units"]),
        "limit_per_class": settings["limit_per_class"],
        "dropout": float(settings.get("dropout") or 0.0),
        "early_stopping_patience": settings.get("early_stopping_patience"),
        "fine_tune_epochs": int(settings.get("fine_tune_epochs") or 0),
        "fine_tune_until": (freeze_for(backbone, settings["fine_tune_until"])
                            if settings.get("fine_tune_until") else None),
        "fine_tune_lr": float(settings.get("fine_tune_lr") or _default_of("fine_tune_lr")),
        "seed": int(seed),
    }

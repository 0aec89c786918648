"""What a backbone is, as data: :class:`BackboneSpec` (no registry, no Keras).

Backbone modules (:mod:`.resnet50`, :mod:`.efficientnet_lite`) describe themselves
with a spec; :mod:`.registry` collects them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ParameterError

#: The study's freeze points (ResNet50 stages); every backbone maps them onto its own stages.
RESNET_FREEZE_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: how to build it, its stages and freeze points, its weights.

    ``build(input_shape, weights)`` returns the backbone without top; ``weights`` is
    None, ``"imagenet"`` or a file path. ``imagenet_path(download)`` gives the
    ImageNet weights file (fetching/converting it when ``download``);
    ``imagenet_status()`` says ``(available, where)`` without fetching anything.
    ``default_weights``: the weights the backbone uses when a run names none for it
    (``None``: it follows the profile's ``weights`` setting, as the study's ResNet50 does).
    """

    name: str
    description: str
    build: Callable[[tuple[int, int, int], str | None], Any]
    preprocess: Callable[[], Any]
    stages: tuple[str, ...]
    stage_of: Callable[[str], str]
    freeze_equiv: Mapping[str, str]
    native_size: int
    features: int
    imagenet_path: Callable[[bool], Path]
    imagenet_status: Callable[[], tuple[bool, str]]
    imagenet_source: str
    default_weights: str | None = None
    min_size: int = 32
    #: float32 activations per input pixel over all layers (measured at 64 px; bounds --image-size by memory)
    activations_per_pixel: int = 0
    study: bool = False
    in_course: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def freeze_points(self) -> tuple[str, ...]:
        """Every accepted ``freeze_until`` of this backbone's own (``none``, its stages, ``all``)."""
        return ("none",) + self.stages + ("all",)

    def freeze_point(self, name: str) -> str:
        """``name`` (``none``, ``all``, a stage, or a ResNet50 name ``conv1..conv5``) as this backbone's point."""
        if name in ("none", "all") or name in self.stages:
            return name
        if name in self.freeze_equiv:
            return self.freeze_equiv[name]
        raise ParameterError(
            f"freeze_until={name!r}: unknown for {self.name}; use none, all, one of its stages "
            f"({', '.join(self.stages)}) or a ResNet50 stage name ({', '.join(RESNET_FREEZE_NAMES)})"
        )

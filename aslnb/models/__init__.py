"""Models: the backbone registry (ResNet50, EfficientNet-Lite0/1/2) and the study's classifier.

Importing this package registers every backbone (:mod:`.registry`) and the custom layers saved models need.
"""
from .classifier import (Classifier, apply_freeze, build_classifier, classifier_of, frozen_stages, head_layers,
                         split_at_boundary)
from .layers import CaffePreprocess
from .registry import (
    AUTO_BACKBONE,
    BackboneSpec,
    auto_backbone,
    backbone_names,
    build_backbone,
    check_weights,
    course_backbones,
    default_backbone,
    freeze_point,
    get_backbone,
    register,
    resolve_backbone,
    resolve_weights,
    run_weights,
    weights_source,
)

__all__ = [
    "AUTO_BACKBONE", "auto_backbone", "resolve_backbone", "BackboneSpec", "CaffePreprocess", "Classifier", "apply_freeze", "backbone_names", "build_backbone", "build_classifier",
    "check_weights", "course_backbones", "default_backbone", "freeze_point", "frozen_stages", "get_backbone", "head_layers",
    "classifier_of", "register", "resolve_weights", "run_weights", "split_at_boundary", "weights_source",
]

"""Models: backbones by name and the study's classifier."""
from .backbones import BACKBONES, BackboneSpec, check_weights, get_backbone, weights_source
from .classifier import Classifier, apply_freeze, build_classifier, frozen_stages, split_at_boundary
from .layers import CaffePreprocess

__all__ = [
    "BACKBONES", "BackboneSpec", "CaffePreprocess", "check_weights", "Classifier", "apply_freeze", "build_classifier",
    "frozen_stages", "get_backbone", "split_at_boundary", "weights_source",
]

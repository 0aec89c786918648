"""Backward-compatible names for the registry (:mod:`.registry`) and the ResNet50 spec (:mod:`.resnet50`)."""
from __future__ import annotations

from .registry import BackboneSpec, backbone_names, check_weights, get_backbone, resolve_weights, weights_source
from .resnet50 import RESNET50_NOTOP, RESNET50_ORIGIN, RESNET50_NOTOP_MD5, resnet50_imagenet_path

__all__ = ["BackboneSpec", "RESNET50_NOTOP", "RESNET50_NOTOP_MD5", "RESNET50_ORIGIN", "backbone_names",
           "check_weights", "get_backbone", "resnet50_imagenet_path", "resolve_weights", "weights_source"]

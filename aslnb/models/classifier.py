"""The study's classifier: a pretrained backbone, frozen early stages, a ReLU FC head.

``input (raw RGB 0..255) -> preprocessing layer -> backbone -> global average
pooling -> Dense(ReLU) [-> Dropout] ... -> Dense(softmax, float32)``.

Frozen stages have ``trainable=False``. With pretrained weights every
BatchNormalization layer is frozen too (Keras 3 runs a non-trainable BN layer
in inference mode), so fine-tuning never destroys the ImageNet statistics.
With random weights (``weights="none"``) BN layers of trainable stages train.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from ..errors import ModelError
from .registry import BackboneSpec, build_backbone, default_backbone, get_backbone, resolve_weights

_WEIGHTLESS_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


@dataclass
class Classifier:
    """The full model plus the parts the trainer needs."""

    model: keras.Model
    backbone: keras.Model
    spec: BackboneSpec
    head_layers: list[keras.layers.Layer]
    preprocess: keras.layers.Layer | None
    freeze_until: str
    pretrained: bool

    def boundary_layer(self) -> str | None:
        """Name of the last frozen backbone layer (the feature-cache point), or None."""
        stages = frozen_stages(self.spec, self.freeze_until)
        return next((layer.name for layer in reversed(self.backbone.layers)
                     if self.spec.stage_of(layer.name) in stages), None)

    def param_counts(self) -> dict[str, int]:
        trainable = sum(int(keras.ops.size(w)) for w in self.model.trainable_weights)
        frozen = sum(int(keras.ops.size(w)) for w in self.model.non_trainable_weights)
        return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}


def frozen_stages(spec: BackboneSpec, freeze_until: str) -> tuple[str, ...]:
    """The stages ``freeze_until`` freezes (a ResNet50 name maps through :meth:`BackboneSpec.freeze_point`)."""
    point = spec.freeze_point(freeze_until)
    if point == "none":
        return ()
    if point == "all":
        return spec.stages
    return spec.stages[: spec.stages.index(point) + 1]


def apply_freeze(backbone: keras.Model, spec: BackboneSpec, freeze_until: str, *, freeze_bn: bool) -> None:
    """Set ``trainable`` per layer: frozen stages off, BN off when ``freeze_bn``.

    Dropout layers of frozen stages (EfficientNet's stochastic depth) get rate 0, their own
    rate back when their stage is unfrozen: Keras 3 does not pass a nested call's
    ``training=False`` on during ``fit``, so they would otherwise drop blocks of the frozen
    part, which then would not be the fixed function the feature cache stores.
    """
    stages = set(frozen_stages(spec, freeze_until))
    backbone.trainable = True
    for layer in backbone.layers:
        frozen = spec.stage_of(layer.name) in stages
        if isinstance(layer, keras.layers.Dropout):
            rate = layer.__dict__.setdefault("_aslnb_rate", layer.rate)
            layer.rate = 0.0 if frozen else rate
        if isinstance(layer, keras.layers.BatchNormalization) and freeze_bn:
            frozen = True
        layer.trainable = not frozen


def head_layers(num_classes: int, head_units: tuple[int, ...] | list[int] = (256,), dropout: float = 0.0,
                seed: int = 0) -> list[keras.layers.Layer]:
    """The study's head on pooled features, as layers: BatchNormalization, then per entry of ``head_units`` a
    Dense ReLU layer (with Dropout when ``dropout``), then a softmax over ``num_classes``.

    BatchNormalization standardises each pooled feature before the dense layers: random-init backbone
    features have a large common offset and tiny image-to-image differences, on which an unnormalised head
    stays at chance. Notebook 04 builds its head with this function too.
    """
    layers: list[keras.layers.Layer] = [keras.layers.BatchNormalization(momentum=0.9, name="head_norm")]
    for i, units in enumerate(head_units, 1):
        layers.append(keras.layers.Dense(int(units), activation="relu", name=f"head_dense_{i}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, seed=seed + i, name=f"head_dropout_{i}"))
    layers.append(keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions"))
    return layers


def build_classifier(
    num_classes: int,
    image_size: int = 224,
    *,
    backbone: str | None = None,
    weights: str | None = "imagenet",
    freeze_until: str = "conv4",
    head_units: tuple[int, ...] | list[int] = (256,),
    dropout: float = 0.0,
    augment: bool = False,
    seed: int = 0,
) -> Classifier:
    """Build the classifier; see the module docstring for the architecture.

    ``backbone``: a registered name (default: the study's); ``weights``: ``imagenet``,
    ``auto`` (ImageNet where it can be had, else none), ``none`` or a file;
    ``freeze_until``: a freeze point of the backbone or a ResNet50 name (mapped).
    The other values are checked once, by :meth:`aslnb.config.TrainConfig.validate`.
    """
    backbone = backbone or default_backbone()
    spec = get_backbone(backbone)
    freeze_until = spec.freeze_point(freeze_until)  # validates the name; ResNet50 names map
    weights = resolve_weights(backbone, weights)[0]
    pretrained = weights != "none"
    base = build_backbone(backbone, (image_size, image_size, 3), weights)
    apply_freeze(base, spec, freeze_until, freeze_bn=pretrained)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    if augment:
        x = keras.layers.RandomRotation(0.05, seed=seed, name="aug_rotate")(x)
        x = keras.layers.RandomZoom(0.1, seed=seed, name="aug_zoom")(x)
        x = keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed, name="aug_brightness")(x)
    pre = spec.preprocess()
    if pre is not None:
        x = pre(x)
    # BN in inference mode when pretrained: training=False on the nested call.
    x = base(x, training=False) if pretrained else base(x)
    head = [keras.layers.GlobalAveragePooling2D(name="head_pool"), *head_layers(num_classes, head_units, dropout, seed)]
    for layer in head:
        x = layer(x)
    model = keras.Model(inputs, x, name=f"asl_{backbone}")
    return Classifier(model, base, spec, head, pre, freeze_until, pretrained)


def classifier_of(model: keras.Model, backbone: str, freeze_until: str, pretrained: bool) -> Classifier:
    """The :class:`Classifier` view of a classifier loaded from a run (:func:`aslnb.runs.load_model`), frozen up to
    ``freeze_until``: the model's own layer objects, so :func:`split_at_boundary` cuts it where training did."""
    spec = get_backbone(backbone)
    at, base = next((i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, keras.Model))
    pre = [layer for layer in model.layers[1:at] if not layer.name.startswith("aug_")]  # augmentation: identity here
    return Classifier(model, base, spec, list(model.layers[at + 1:]), pre[-1] if pre else None,
                      spec.freeze_point(freeze_until), pretrained)


def split_at_boundary(clf: Classifier, *, stop_at: str | None = None) -> tuple[keras.Model, keras.Model]:
    """``(frozen_part, trainable_part)`` sharing the classifier's layers.

    ``frozen_part``: raw image -> activations at the freeze boundary.
    ``trainable_part``: those activations -> class probabilities (``stop_at``: the output of that head layer
    instead, e.g. ``head_pool``). Training the second trains the full model (same layer objects).

    When the whole backbone is frozen, the head's global pooling (it has no
    weights) moves into the frozen part: the cache then holds one 2048-vector per
    image instead of a 4x4x2048 (128 px) or 7x7x2048 (224 px) map, 16-49x less
    memory and a faster head, with the same outputs.
    """
    name = clf.boundary_layer()
    if name is None:
        raise ModelError("nothing is frozen (freeze_until='none'): there is no boundary to cache features at")
    base = clf.backbone
    cut = base.get_layer(name).output
    inputs = keras.Input(clf.model.input_shape[1:], name="image")
    x = clf.preprocess(inputs) if clf.preprocess is not None else inputs
    lower = keras.Model(base.input, cut)
    feats = lower(x, training=False)
    head = list(clf.head_layers)
    upper = None if name == base.layers[-1].name else keras.Model(cut, base.output)
    if upper is None:
        while head and isinstance(head[0], _WEIGHTLESS_POOLING):
            pooled = head.pop(0)
            feats = pooled(feats)
            head = [] if pooled.name == stop_at else head
    frozen = keras.Model(inputs, feats, name="frozen_part")
    feat_in = keras.Input(tuple(feats.shape[1:]), name="features")
    y = feat_in
    if upper is not None:
        y = upper(y, training=False) if clf.pretrained else upper(y)
    for layer in head:
        y = layer(y)
        if layer.name == stop_at:
            break
    trainable = keras.Model(feat_in, y, name="trainable_part")
    return frozen, trainable

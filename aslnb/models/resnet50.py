"""ResNet50 (``keras.applications``), the study's backbone, with Keras's ImageNet weights.

Stages are ``conv1`` .. ``conv5`` (Keras's layer-name prefixes): ``freeze_until="conv4"``
freezes ``conv1`` .. ``conv4`` and trains ``conv5`` and the head. Preprocessing is
:class:`~aslnb.models.layers.CaffePreprocess` inside the model.
"""
from __future__ import annotations

from pathlib import Path

import keras

from ..errors import ModelError
from ..settings import keras_home
from .layers import CaffePreprocess
from .spec import RESNET_FREEZE_NAMES, BackboneSpec
from .weightfiles import first_line, load_weights_checked, unreachable, weights_file

NAME = "resnet50"
RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_NOTOP
RESNET50_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


def stage_of(layer_name: str) -> str:
    """``conv3_block2_out`` -> ``conv3``; the input and ``pool1_*`` belong to ``conv1``."""
    head = layer_name.split("_")[0]
    return {"input": "conv1", "pool1": "conv1"}.get(head, head)


def _offline(folder: Path, reason: str) -> ModelError:
    return ModelError(
        f"ResNet50 ImageNet weights are not cached in {folder} and cannot be downloaded ({reason[:160]}): "
        f"copy {RESNET50_NOTOP} into {folder}/ (KERAS_HOME), or train without them with --weights none"
    )


def resnet50_imagenet_path(download: bool = True) -> Path:
    """``$KERAS_HOME/models/`` + :data:`RESNET50_NOTOP`, downloaded by Keras when missing.

    The cache folder is read from the environment at call time (not when Keras
    was imported). Offline and not cached: a :class:`ModelError` saying the two
    ways on (copy the file there, or ``--weights none``).
    """
    folder = keras_home() / "models"
    cached = folder / RESNET50_NOTOP
    if cached.is_file() or not download:
        return cached
    # Probe first (urllib, like Keras: proxies are honoured), so that offline nothing but our line is printed.
    why = unreachable(RESNET50_ORIGIN)
    if why is not None:
        raise _offline(folder, why) from None
    try:
        got = keras.utils.get_file(RESNET50_NOTOP, RESNET50_ORIGIN, cache_subdir="models",
                                   cache_dir=str(keras_home()), file_hash=RESNET50_NOTOP_MD5)
    except Exception as exc:  # noqa: BLE001 - get_file wraps URLError/OSError in a bare Exception
        raise _offline(folder, first_line(exc)) from None
    return Path(got)


def imagenet_status() -> tuple[bool, str]:
    """``(available, where)``: cached in KERAS_HOME, or downloadable now (a HEAD request; nothing is fetched)."""
    cached = resnet50_imagenet_path(download=False)
    if cached.is_file():
        return True, f"cached in {cached}"
    why = unreachable(RESNET50_ORIGIN)
    if why is None:
        return True, f"downloadable from {RESNET50_ORIGIN.split('/')[2]}"
    return False, f"{RESNET50_NOTOP} not cached in {cached.parent} and not downloadable: {why}"


def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """ResNet50 without top; ``weights``: None/``"none"``, ``"imagenet"`` or a ``.weights.h5``/``.h5`` file."""
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)
    if weights in (None, "none"):
        return model
    if weights == "imagenet":
        path = resnet50_imagenet_path()
        try:
            load_weights_checked(model, path, "ResNet50 ImageNet (no top)")
        except ModelError as exc:
            raise ModelError(f"{exc}; delete {path} to download it again") from None
        return model
    load_weights_checked(model, weights_file(weights), "ResNet50 (no top)")
    return model


SPEC = BackboneSpec(
    name=NAME,
    description="ResNet50 (He et al. 2016), keras.applications; the study's backbone",
    build=build,
    preprocess=CaffePreprocess,
    stages=RESNET_FREEZE_NAMES,
    stage_of=stage_of,
    freeze_equiv={s: s for s in RESNET_FREEZE_NAMES},
    native_size=224,
    features=2048,
    activations_per_pixel=742,
    imagenet_path=resnet50_imagenet_path,
    imagenet_status=imagenet_status,
    imagenet_source="Keras cache/download",
    default_weights=None,
    study=True,
    in_course=True,
)

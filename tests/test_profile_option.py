"""``aslnb train --profile NAME``: a profile's training settings as defaults; the ``hands`` profile is the kept recipe."""
import dataclasses

from aslnb.cli.parser import build_parser
from aslnb.config import PROFILES, TrainConfig, profile


def _train_args(argv):
    from aslnb.cli.parser import profile_in

    return build_parser(profile_in(argv)).parse_args(argv)  # what aslnb.cli.main does


def test_profile_settings_become_defaults_and_options_override_them():
    args = _train_args(["train", "--out", "runs/x", "--profile", "hands"])
    hands = profile("hands")
    for f in dataclasses.fields(TrainConfig):
        assert getattr(args, f.name) == hands[f.name], f.name
    assert args.hand_views == 2 and args.view_augment == 1.0 and args.backbone == "efficientnet_lite0"
    args = _train_args(["train", "--out", "runs/x", "--profile", "hands", "--hand-views", "1", "--epochs", "3"])
    assert (args.hand_views, args.epochs, args.view_augment) == (1, 3, 1.0)
    plain = _train_args(["train", "--out", "runs/x"])
    assert plain.hand_views == 0 and plain.head_units == [256]  # TrainConfig's defaults without --profile


def test_profile_help_shows_the_profiles_defaults(capsys):
    import pytest

    from aslnb.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--profile", "hands", "--help"])
    out = capsys.readouterr().out
    assert "--profile" in out and "hands" in out
    entry = " ".join(out.split("\n  --hand-views", 1)[1].split("\n  --", 1)[0].split())
    assert entry.endswith("(default: 2)"), entry


def test_hands_profile_is_the_recipe_kept_on_the_validation_signer():
    from aslnb.course.hands import RECIPE

    import benchmarks.other_hands as bench

    hands = profile("hands")
    assert {k: hands[k] for k in RECIPE} == RECIPE, RECIPE
    base = {k: v for k, v in bench.BASE.items() if k not in RECIPE}
    assert {k: hands[k] for k in base} == base
    # what the ablation left at TrainConfig's defaults is at the defaults here too (the cpu profile's extras are off)
    assert hands["dropout"] == 0.0 and hands["early_stopping_patience"] is None and hands["fine_tune_epochs"] == 0
    kept = {k for k in PROFILES["cpu"] if k not in ("dropout", "early_stopping_patience", "weights")
            and not k.startswith("fine_tune")}
    assert {k: PROFILES["hands"][k] for k in kept - set(RECIPE) - set(bench.BASE)} == \
        {k: PROFILES["cpu"][k] for k in kept - set(RECIPE) - set(bench.BASE)}  # the course settings are cpu's


# ---------------------------------------------------------------- profile weights 'auto': the backbone as the notebooks pick it
def _fake_train(monkeypatch):
    """Replace aslnb.train.train by a recorder (the CLI's choice of parameters is what is tested)."""
    import importlib

    module = importlib.import_module("aslnb.train")  # the package; `aslnb.train` the attribute is the function
    seen = {}

    def train(data, out, **kw):
        seen.update(kw)
        return type("R", (), {"run_dir": None})()  # "a non-chief worker": nothing more to do

    monkeypatch.setattr(module, "train", train)
    return seen


def test_cpu_profile_offline_trains_lite0_and_says_why(monkeypatch, offline, capsys):
    """KERAS_HOME is empty and the network closed: no ResNet50 ImageNet weights, so not a random ResNet50."""
    from aslnb.cli import main
    from aslnb.config import freeze_for

    seen = _fake_train(monkeypatch)
    assert main(["train", "--profile", "cpu", "--out", "runs/x", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("--profile cpu: "))
    assert "efficientnet_lite0" in line and "resnet50's ImageNet weights are not at hand" in line, out
    assert seen["backbone"] == "efficientnet_lite0" and seen["weights"] != "none" and seen["epochs"] == 2
    cpu = profile("cpu")
    assert seen["freeze_until"] == freeze_for("efficientnet_lite0", cpu["freeze_until"])
    assert seen["fine_tune_until"] == freeze_for("efficientnet_lite0", cpu["fine_tune_until"]) != cpu["fine_tune_until"]


def test_a_typed_backbone_or_weights_is_kept(monkeypatch, offline, capsys):
    from aslnb.cli import main

    seen = _fake_train(monkeypatch)
    assert main(["train", "--profile", "cpu", "--out", "runs/x", "--backbone", "resnet50", "--weights", "none"]) == 0
    assert (seen["backbone"], seen["weights"]) == ("resnet50", "none")
    assert "--profile cpu:" not in capsys.readouterr().out


def test_no_backbone_with_weights_at_hand_is_refused_in_one_line(monkeypatch, offline, capsys):
    import dataclasses

    from aslnb.cli import main
    from aslnb.models import get_backbone, registry

    for name in registry.course_backbones():
        spec = get_backbone(name)
        monkeypatch.setitem(registry._REGISTRY, name,
                            dataclasses.replace(spec, imagenet_status=lambda: (False, "not cached")))
    seen = _fake_train(monkeypatch)
    assert main(["train", "--profile", "cpu", "--out", "runs/x"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aslnb: error: --profile cpu: "), err
    assert "--backbone efficientnet_lite0" in err[0] and "KERAS_HOME" in err[0] and not seen

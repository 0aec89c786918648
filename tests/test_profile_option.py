"""``aslnb train --profile NAME``: a profile's training settings as defaults; the ``hands`` profile is the kept
landmarks recipe (benchmarks/landmarks.json)."""
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
    assert args.features == "fusion" and args.backbone == "efficientnet_lite0" and args.image_size == 128
    args = _train_args(["train", "--out", "runs/x", "--profile", "hands", "--features", "landmarks", "--epochs", "3"])
    assert (args.epochs, args.features) == (3, "landmarks")
    plain = _train_args(["train", "--out", "runs/x"])
    assert plain.hand_views == 0 and plain.head_units == [256] and plain.features == "image"  # TrainConfig's


def test_profile_help_shows_the_profiles_defaults(capsys):
    import pytest

    from aslnb.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--profile", "hands", "--help"])
    out = capsys.readouterr().out
    assert "--profile" in out and "hands" in out
    entry = " ".join(out.split("\n  --features", 1)[1].split("\n  --", 1)[0].split())
    assert entry.endswith("(default: fusion)"), entry


def test_hands_profile_is_the_recipe_kept_on_the_validation_signer():
    """The hands profile is benchmarks/landmarks.json's fusion recipe (adopted on ASL val + hand1) whose landmarks
    part is the kept landmarks recipe (chosen on ASL val + hand1), with cpu's course settings; the landmarks recipe
    was kept because it beats the image recipe on hand1."""
    import json
    from pathlib import Path

    from aslnb.config import LANDMARKS_RECIPE, defaults

    result = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "landmarks.json").read_text())
    lm = {**defaults(), **LANDMARKS_RECIPE}
    assert {k: lm[k] for k in result["kept_params"]} == result["kept_params"]
    hands = profile("hands")
    assert result["fusion"]["verdict"]["adopt"] and {k: hands[k] for k in result["fusion"]["params"]} == \
        result["fusion"]["params"]
    assert result["beats_image_recipe_on_hand1"] and result["summary"]["hand1"]["mean"] > result["image_recipe_hand1"]
    trained = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {k: v for k, v in PROFILES["hands"].items() if k not in trained} == \
        {k: v for k, v in PROFILES["cpu"].items() if k not in trained}  # the course settings are cpu's


# ---------------------------------------------------------------- profile weights 'auto': the backbone as the notebooks pick it
def _fake_train(monkeypatch):
    """Replace the CLI's aslnb.train.train by a recorder (the CLI's choice of parameters is what is tested)."""
    import aslnb.cli.commands as module

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

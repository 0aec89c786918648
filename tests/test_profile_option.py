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
    assert args.features == "landmarks" and args.augment is True and args.head_units == [256, 128]
    args = _train_args(["train", "--out", "runs/x", "--profile", "hands", "--no-augment", "--epochs", "3"])
    assert (args.augment, args.epochs, args.features) == (False, 3, "landmarks")
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
    assert entry.endswith("(default: landmarks)"), entry


def test_hands_profile_is_the_recipe_kept_on_the_validation_signer():
    """The hands profile is benchmarks/landmarks.json's kept recipe (chosen on ASL val + hand1), with cpu's
    course settings, and it was kept because it beats the image recipe on hand1."""
    import json
    from pathlib import Path

    result = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "landmarks.json").read_text())
    hands = profile("hands")
    assert {k: hands[k] for k in result["kept_params"]} == result["kept_params"]
    assert result["beats_image_recipe_on_hand1"] and result["summary"]["hand1"]["mean"] > result["image_recipe_hand1"]
    trained = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {k: v for k, v in PROFILES["hands"].items() if k not in trained} == \
        {k: v for k, v in PROFILES["cpu"].items() if k not in trained}  # the course settings are cpu's

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

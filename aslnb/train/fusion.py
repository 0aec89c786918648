"""Training of the ``fusion`` recipe (``features='fusion'``): the landmarks recipe where a hand is found, the image
recipe where none is.

A fusion run directory holds its two parts as complete run directories, trained on the same data, split and seed
by :func:`aslnb.train.train`: ``parts/landmarks`` (:data:`aslnb.config.LANDMARKS_RECIPE`, whatever the other
parameters) and ``parts/image`` (the run's own parameters with ``features='image'``). Each part checks, resumes
and records itself like any run; a finished part with the same parameters is reused when the fusion run is
resumed. The fusion run's own ``config.json`` records the split, both parts' parameters and model sha256s, the
landmarker (``landmarks``, the landmarks part's record) and the rule (``fusion.with_hand``, :data:`WITH_HAND`);
``labels.json`` and ``history.json`` (``parts``) are the parts'. Prediction (:func:`aslnb.evaluate.run_probabilities`)
detects the hand once: found, the landmarks part answers (``with_hand='average'`` would take the mean of both
parts' probabilities); not found, the image part answers. :data:`WITH_HAND` was chosen by ``benchmarks/landmarks.py
--fusion-seeds`` on the ASL validation split and Massey ``hand1`` only.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..config import LANDMARKS_RECIPE, TrainConfig
from ..data.manifest import sha256_file
from ..io import read_json
from ..runs import FUSION_PARTS, check_out_dir, is_finished, load_run, prepare_split, run_config
from .result import RunResult, log, open_run

# lazy: aslnb.models imports Keras (aslnb.train imports this module: `import aslnb` stays free of TensorFlow).

#: What answers where a hand is found: ``landmarks`` (the landmarks part) or ``average`` (both parts' mean).
#: ``landmarks``: the better mean of ASL validation and hand1 over 3 seeds (``benchmarks/landmarks.md``).
WITH_HAND = "landmarks"
WITH_HAND_RULES = ("landmarks", "average")
#: The fields both parts take from the fusion run: the same split of the same images, the same seed.
SHARED = ("split", "val_fraction", "test_fraction", "seed", "limit_per_class", "deterministic")


def part_params(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """The :func:`aslnb.train.train` parameters of each part: the landmarks recipe and the run's own image recipe,
    both with the run's split, seed and image limit."""
    shared = {k: getattr(cfg, k) for k in SHARED}
    return {"landmarks": {**LANDMARKS_RECIPE, **shared}, "image": {**asdict(cfg), "features": "image"}}


def _train_part(name: str, params: dict, folder: Path, data_dir: Path, ext_dir: Path | None, verbose: int,
                train, train_kwargs: dict) -> None:
    """Train one part into ``folder`` by ``train``; a finished part with these parameters is kept, one with others
    replaced."""
    wanted = asdict(TrainConfig.from_params(**params))
    try:
        recorded = read_json(folder / "config.json").get("params")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded == wanted and is_finished(folder):
        log(f"fusion: the {name} part in {folder} is finished, reused", verbose)
        return
    log(f"fusion: training the {name} part into {folder}", verbose)
    train(data_dir, folder, external=ext_dir, overwrite=recorded is not None and recorded != wanted, verbose=verbose,
          **train_kwargs, **params)


def train_fusion(cfg: TrainConfig, data_dir: Path, ext_dir: Path | None, out: Path, overwrite: bool, verbose: int,
                 train: Callable[..., RunResult], train_kwargs: dict) -> RunResult:
    """Train both parts of ``cfg`` (``features='fusion'``) into run directory ``out`` by ``train``
    (:func:`aslnb.train.train`, passed in: this module is below it); the result's model is the run's
    :class:`aslnb.runs.FusionParts`. ``train_kwargs``: what ``train`` passes on to the parts (feature cache folder,
    callbacks, in-memory limit)."""
    from ..models import check_weights

    params = part_params(cfg)
    for p in params.values():
        TrainConfig.from_params(**p)  # a bad parameter of either part fails before anything is written
    check_weights(cfg.backbone, cfg.weights)  # offline without cached ImageNet weights: before the landmarks part
    check_out_dir(out, data_dir, overwrite)
    split = prepare_split(data_dir, cfg, ext_dir)
    config = run_config(cfg, split, data_dir, ext_dir, fusion={
        "with_hand": WITH_HAND, "no_hand": "image", "parts": {n: f"parts/{n}" for n in FUSION_PARTS},
        "part_params": params})
    run = open_run(out, config, overwrite, verbose)
    names = config["data"]["class_names"]
    with run.guard():
        run.begin(config, names)
        for name in FUSION_PARTS:  # landmarks first: a missing landmarker fails before the longer image part
            _train_part(name, params[name], run.work / "parts" / name, data_dir, ext_dir, verbose, train,
                        train_kwargs)
        parts = {n: run.work / "parts" / n for n in FUSION_PARTS}
        history = {"parts": {n: read_json(p / "history.json") for n, p in parts.items()}}
        config["landmarks"] = read_json(parts["landmarks"] / "config.json")["landmarks"]
        config["fusion"]["model_sha256"] = {n: sha256_file(p / "model.keras") for n, p in parts.items()}
        run.complete(None, config, history)
    model, _, config = load_run(out)
    return RunResult(out, config, history, {}, model=model)

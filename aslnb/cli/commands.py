"""What each ``aslnb`` subcommand does (the parser is in :mod:`aslnb.cli.parser`)."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..config import TRAIN_FIELDS, freeze_for
from ..config import profile as get_profile
from ..data.external import check_external
from ..data.manifest import verify_folder
from ..data.scan import dataset_info, find_bad_images, images_to_verify
from ..errors import EXIT_BAD_IMAGES, EXIT_FETCH_INCOMPLETE, AslnbError, DataError, ParameterError
from ..evaluate import evaluate
from ..predict import check_top_k, collect_images, format_result, predict, readable_images
from ..settings import default_data_dir, default_external_dir, resolve_data_dir
from ..train import train

# lazy: aslnb.models and aslnb.course.report import Keras, aslnb.data.fetch imports requests (half the start-up
# time again): `aslnb --help` loads none of them.


def _dumps(obj: Any) -> str:
    """JSON text of plain data; refuses what would come out silently wrong (a bug, not a user error)."""
    text = json.dumps(obj, indent=2, allow_nan=False)  # NaN is not JSON; numpy ints, paths... raise TypeError
    found = _NUMPY_REPR.search(text)
    if found:
        raise ValueError(f"JSON output holds a numpy repr ({found.group(0)}...): build the message from str()")
    return text


_NUMPY_REPR = re.compile(r"\bnp\.[a-z_]+[0-9]*\(")


def _cmd_data(args) -> int:
    if args.data_command == "fetch":
        return _data_fetch_external(args) if args.external else _data_fetch(args)
    root = resolve_data_dir(args.dir or args.data)
    return _data_info(args, root) if args.data_command == "info" else _data_verify(args, root)


def _data_fetch_external(args) -> int:
    rep = check_external(args.dest or os.environ.get("ASLNB_EXTERNAL_DATA") or default_external_dir())
    print(rep.summary())
    for rel, reason in rep.bad[:20]:
        print(f"  differs {rel}: {reason}")
    for rel in rep.missing[:20]:
        print(f"  missing {rel}")
    return 0 if rep.ok else EXIT_FETCH_INCOMPLETE


def _data_fetch(args) -> int:
    from ..data.fetch import HttpOptions, fetch_dataset

    dest = args.dest or args.data or os.environ.get("ASLNB_DATA") or str(default_data_dir())
    classes = args.classes.split(",") if args.classes else None
    res = fetch_dataset(dest, args.per_class, base_url=args.base_url, classes=classes, workers=args.workers,
                        progress=sys.stderr.isatty(), http=HttpOptions(deadline=args.deadline))
    print(f"{res.dest}: {res.downloaded} downloaded, {res.kept} already present, {len(res.failed)} failed; "
          f"manifest {res.manifest}")
    for url, reason in res.failed[:20]:
        print(f"  failed {url}: {reason}")
    if res.unverified_files or res.skipped:
        print(f"  {len(res.unverified_files)} files beyond the manifest are unverified (no hash to check); "
              f"{len(res.skipped)} upstream gaps skipped")
    return 0 if not res.failed else EXIT_FETCH_INCOMPLETE


def _data_info(args, root) -> int:
    info = dataset_info(root)
    if args.json:
        print(_dumps(info.as_dict()))
        return 0
    print(f"{info.root}: {len(info.class_names)} classes, {info.n_images} images")
    for name, n in info.counts.items():
        print(f"  {name:>8}: {n}")
    print("sizes:   " + ", ".join(f"{k} ({v})" for k, v in info.sizes.items()))
    print("modes:   " + ", ".join(f"{k} ({v})" for k, v in info.modes.items()))
    print("formats: " + ", ".join(f"{k} ({v})" for k, v in info.formats.items()))
    if info.external:
        ext = info.external
        print("signers: " + ", ".join(f"{k} ({v})" for k, v in ext["signers"].items()))
        print("maps onto training classes: " + ", ".join(f"{k}->{v}" for k, v in ext["mapping"].items()))
        print(f"no training class: {', '.join(ext['unmapped']) or '-'}; "
              f"training classes absent: {', '.join(ext['missing_training_classes']) or '-'}")
    print(f"problems: {len(info.problems)}")
    for p in info.problems[:50]:
        print(f"  {p}")
    return 0


def _data_verify(args, root) -> int:
    files, problems = images_to_verify(root)  # a class-per-folder dataset, or a folder of photos
    bad = find_bad_images(files, progress=sys.stderr.isatty())
    for p in problems:
        print(f"problem: {p}")
    for path, reason in bad.items():
        print(f"bad: {path}: {reason}")
    print(f"{root}: {len(files)} files checked, {len(bad)} bad")
    if args.manifest:
        rep = verify_folder(root, args.manifest)
        lines = [f"differs: {rel}: {reason}" for rel, reason in rep.bad] + [f"missing: {rel}" for rel in rep.missing]
        for line in lines[:50] + ([f"... and {len(lines) - 50} more"] if len(lines) > 50 else []):
            print(line)
        print(rep.summary())
        return EXIT_BAD_IMAGES if bad or not rep.ok else 0
    return 0 if not bad else EXIT_BAD_IMAGES


def _profile_backbone(args, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the backbone a profile whose weights are ``auto`` resolves to, as the notebooks'
    ``BACKBONE="auto"`` does (no ``--backbone``/``--weights`` typed); one line says which and why.

    Refuses (one line) rather than train the study's ResNet50 from random weights without being asked.
    """
    from ..models.registry import course_backbones, default_backbone, resolve_backbone, run_weights

    given = getattr(args, "given", frozenset())
    if not args.profile or get_profile(args.profile)["weights"] != "auto" or given & {"--backbone", "--weights"}:
        return params
    backbone, why = resolve_backbone("auto", "auto")
    if backbone == default_backbone() and "no course backbone" in why:
        other = next(b for b in course_backbones() if b != backbone)
        raise ParameterError(f"--profile {args.profile}: {why.split(': ', 1)[1]}; put {backbone}'s ImageNet weights "
                             f"in $KERAS_HOME/models (or go online), pass --backbone {other}, or "
                             f"--weights none to train {backbone} from random weights on purpose")
    print(f"--profile {args.profile}: {why}")
    if backbone == params["backbone"]:
        return params
    out = {**params, "backbone": backbone, "weights": run_weights(backbone, "auto"),
           "freeze_until": freeze_for(backbone, params["freeze_until"])}
    if params.get("fine_tune_until"):
        out["fine_tune_until"] = freeze_for(backbone, params["fine_tune_until"])
    return out


def _cmd_train(args) -> int:
    params = {name: getattr(args, name) for name in TRAIN_FIELDS}
    params = _profile_backbone(args, params)
    res = train(args.data, args.out, external=args.external, overwrite=args.overwrite,
                feature_cache_dir=args.feature_cache_dir,
                features_in_memory_max_bytes=args.features_in_memory_max_bytes, **params)
    if res.run_dir is None:  # a multi-worker run's non-chief worker: the chief writes and evaluates the run
        print(f"worker finished; the chief writes {args.out}")
        return 0
    if not args.no_evaluate:
        evaluate(res.run_dir, res.config["data"]["root"], external=res.config["external"], model=res.model,
                 feature_cache_dir=args.feature_cache_dir)
    print(f"run written to {res.run_dir}")
    return 0


def _cmd_evaluate(args) -> int:
    evaluate(args.run_dir, args.data, external=args.external, subset=args.subset,
             other_data=args.other_data)  # prints where it wrote
    return 0


def _cmd_predict(args) -> int:
    check_top_k(args.top_k)  # before any file is read
    good, bad = readable_images(collect_images(args.images))  # a wrong path fails before the model is loaded
    results = predict(args.run_dir, good, top_k=args.top_k) if good else []  # refuses non-finite probabilities
    if args.json:
        print(_dumps(results))
    else:
        for r in results:
            print(format_result(r))
    sys.stdout.flush()
    for line in bad.values():  # the good images are answered; each bad one is one line, exit non-zero
        print(f"aslnb: error: {line}", file=sys.stderr)
    return DataError.exit_code if bad else 0


def _cmd_report(args) -> int:
    from ..course.report import run_report

    # The committed report (cpu, no parameter overrides other than data paths) fails when a lesson check
    # does not hold; other profiles and a learner's own parameters only see the printed check lines.
    strict = args.profile == "cpu" and not args.parameter and not args.weights
    out = run_report(args.profile, out=args.out, data=args.data, external=args.external, weights=args.weights,
                     notebooks=args.notebooks.split(",") if args.notebooks else None, extra=args.parameter,
                     strict=strict)
    print(f"report written to {out}")
    return 0


def _cmd_bench(args) -> int:
    # The benchmarks live beside the package in a source checkout and are not installed.
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "bench.py").is_file():
        raise AslnbError("aslnb bench needs a source checkout (the benchmarks are not installed): clone the "
                         "repository, `pip install -e .` there, and run `aslnb bench` or `python -m benchmarks.run`")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.bench import run_bench

    path = run_bench(data=args.data, out=args.out, quick=args.quick)
    print(f"benchmark results written to {path}")
    return 0




#: The function that runs each subcommand (``aslnb COMMAND``).
HANDLERS = {"data": _cmd_data, "train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
            "report": _cmd_report, "bench": _cmd_bench}

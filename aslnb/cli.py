"""The ``aslnb`` command: data info|verify|fetch, train, evaluate, predict, report, bench.

Errors print as one line (``aslnb: error: ...``) with a non-zero exit code;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import AslnbError


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


# Commands that load Keras: imported up front, without TensorFlow's start-up notices.
NEEDS_KERAS = frozenset({"train", "evaluate", "predict", "bench", "report"})


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 256 or 512,128") from None


def _add_data(p: argparse.ArgumentParser, external: bool = False) -> None:
    p.add_argument("--data", help="training images, one folder per class (default: $ASLNB_DATA, else the fetch folder)")
    if external:
        p.add_argument("--external", help="external test images, e.g. the Massey set (default: $ASLNB_EXTERNAL_DATA)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aslnb", description="ASL alphabet recognition by transfer learning (Keras).")
    parser.add_argument("--version", action="version", version=f"aslnb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="inspect, verify or download the image data")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = dsub.add_parser("info", help="classes, counts, image sizes and modes, problems found")
    info.add_argument("dir", nargs="?", help="dataset folder (default: --data / $ASLNB_DATA)")
    _add_data(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    verify = dsub.add_parser("verify", help="decode every image and list the bad ones")
    verify.add_argument("dir", nargs="?", help="dataset folder (default: --data / $ASLNB_DATA)")
    _add_data(verify)
    fetch = dsub.add_parser("fetch", help="download N images per class of the original data set")
    fetch.add_argument("--per-class", type=int, default=200, help="images per class, frames spread over 1..3000 (default 200)")
    fetch.add_argument("--dest", help="where to write (default: the user cache folder aslnb reads by default)")
    fetch.add_argument("--base-url", help="mirror of the dataset/ folder (default: $ASLNB_DATA_URL or GitHub)")
    fetch.add_argument("--workers", type=int, default=8)
    fetch.add_argument("--classes", help="comma-separated subset of classes")

    tr = sub.add_parser("train", help="train the classifier into a run directory")
    _add_data(tr, external=True)
    tr.add_argument("--out", required=True, help="run directory to create (refused if it holds a finished run)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--image-size", type=int, default=224)
    tr.add_argument("--backbone", choices=("resnet50", "efficientnet_lite0"), default="resnet50")
    tr.add_argument("--weights", default="imagenet", help="imagenet, none, or a .weights.h5 file")
    tr.add_argument("--freeze-until", default="conv4", help="none, all, or a stage (resnet50: conv1..conv5)")
    tr.add_argument("--head-units", type=_ints, default=[256], help="hidden ReLU layer sizes, e.g. 256 or 512,128")
    tr.add_argument("--dropout", type=float, default=0.0)
    tr.add_argument("--learning-rate", type=float, default=1e-3)
    tr.add_argument("--split", choices=("blocked", "random"), default="blocked")
    tr.add_argument("--val-fraction", type=float, default=0.1)
    tr.add_argument("--test-fraction", type=float, default=0.2)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--fine-tune-epochs", type=int, default=0, help="second phase: unfreeze one more stage")
    tr.add_argument("--fine-tune-until", help="freeze point of the second phase (default: one stage earlier)")
    tr.add_argument("--fine-tune-lr", type=float, default=1e-5)
    tr.add_argument("--augment", action="store_true", help="random rotation/zoom/brightness (bypasses the feature cache)")
    tr.add_argument("--cache-features", choices=("auto", "on", "off"), default="auto",
                    help="compute the frozen part once per image and train the rest on it (auto: whenever "
                         "something is frozen and --augment is off)")
    tr.add_argument("--limit-per-class", type=int, help="use at most N images per class (quick runs)")
    tr.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="float32",
                    help="feature-extraction precision (auto: bfloat16 on a GPU or a CPU with native bf16, else float32; default float32)")
    tr.add_argument("--feature-cache-dir", help="keep extracted features on disk here and reuse them")
    tr.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")

    ev = sub.add_parser("evaluate", help="score a run on its held-out split (and an external set)")
    ev.add_argument("run_dir")
    _add_data(ev, external=True)
    ev.add_argument("--subset", choices=("test", "val", "train"), default="test")

    pr = sub.add_parser("predict", help="label image files or folders with a trained run")
    pr.add_argument("run_dir")
    pr.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true", help="print a JSON list")

    rp = sub.add_parser("report", help="run all notebooks with papermill into reports/<profile>/")
    rp.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default="cpu")
    rp.add_argument("--out", default="reports", help="parent folder of the report (default reports/)")
    _add_data(rp, external=True)
    rp.add_argument("--weights", help="override the profile's weights (imagenet or none)")
    rp.add_argument("--notebooks", help="comma-separated subset, e.g. 01,04")
    rp.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                    help="extra notebook parameter (YAML value), repeatable")

    bn = sub.add_parser("bench", help="measure throughput and the feature-cache speed-up")
    _add_data(bn)
    bn.add_argument("--out", default="benchmarks/results.json")
    bn.add_argument("--quick", action="store_true", help="a short run (for checking the script)")
    return parser


def _cmd_data(args) -> int:
    from .settings import resolve_data_dir

    if args.data_command == "fetch":
        from .data.fetch import fetch_dataset
        from .settings import default_data_dir

        dest = args.dest or args.data or os.environ.get("ASLNB_DATA") or str(default_data_dir())
        classes = args.classes.split(",") if args.classes else None
        res = fetch_dataset(dest, args.per_class, base_url=args.base_url, classes=classes, workers=args.workers,
                            progress=sys.stderr.isatty())
        print(f"{res.dest}: {res.downloaded} downloaded, {res.kept} already present, {len(res.failed)} failed; "
              f"manifest {res.manifest}")
        for url, reason in res.failed[:20]:
            print(f"  failed {url}: {reason}")
        return 0 if not res.failed else 7
    root = resolve_data_dir(args.dir or args.data)
    if args.data_command == "info":
        from .data.scan import dataset_info

        info = dataset_info(root)
        if args.json:
            print(json.dumps(info.as_dict(), indent=2))
            return 0
        print(f"{info.root}: {len(info.class_names)} classes, {info.n_images} images")
        for name, n in info.counts.items():
            print(f"  {name:>8}: {n}")
        print("sizes:   " + ", ".join(f"{k} ({v})" for k, v in info.sizes.items()))
        print("modes:   " + ", ".join(f"{k} ({v})" for k, v in info.modes.items()))
        print("formats: " + ", ".join(f"{k} ({v})" for k, v in info.formats.items()))
        print(f"problems: {len(info.problems)}")
        for p in info.problems[:50]:
            print(f"  {p}")
        return 0
    from .data.scan import find_bad_images, scan_folder

    folder = scan_folder(root, allow_empty_classes=True)
    bad = find_bad_images(folder.files, progress=sys.stderr.isatty())
    for p in folder.problems:
        print(f"problem: {p}")
    for path, reason in bad.items():
        print(f"bad: {path}: {reason}")
    print(f"{root}: {len(folder)} files checked, {len(bad)} bad")
    return 0 if not bad else 8


def _cmd_train(args) -> int:
    from .train import train

    res = train(
        args.data, args.out, external=args.external, overwrite=args.overwrite,
        feature_cache_dir=args.feature_cache_dir,
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, backbone=args.backbone,
        weights=args.weights, freeze_until=args.freeze_until, head_units=args.head_units, dropout=args.dropout,
        learning_rate=args.learning_rate, split=args.split, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, seed=args.seed, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_until=args.fine_tune_until, fine_tune_lr=args.fine_tune_lr, augment=args.augment,
        cache_features=args.cache_features, limit_per_class=args.limit_per_class, precision=args.precision,
    )
    if not args.no_evaluate:
        from .evaluate import evaluate

        evaluate(res.run_dir, res.config["data"]["root"], external=res.config["external"], model=res.model)
    print(f"run written to {res.run_dir}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate

    evaluate(args.run_dir, args.data, external=args.external, subset=args.subset)  # prints where it wrote
    return 0


def _cmd_predict(args) -> int:
    from .predict import format_result, predict

    results = predict(args.run_dir, args.images, top_k=args.top_k)  # refuses non-finite probabilities
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False))
    else:
        for r in results:
            print(format_result(r))
    return 0


def _cmd_report(args) -> int:
    from .course.report import run_report

    out = run_report(args.profile, out=args.out, data=args.data, external=args.external, weights=args.weights,
                     notebooks=args.notebooks.split(",") if args.notebooks else None, extra=args.parameter)
    print(f"report written to {out}")
    return 0


def _cmd_bench(args) -> int:
    # The benchmarks live beside the package in a source checkout and are not installed.
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "bench.py").is_file():
        raise AslnbError("aslnb bench needs a source checkout (the benchmarks are not installed): clone the "
                         "repository, `pip install -e .` there, and run `aslnb bench` or `python -m benchmarks.run`")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.bench import run_bench

    path = run_bench(data=args.data, out=args.out, quick=args.quick)
    print(f"benchmark results written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aslnb`` console script."""
    _quiet_tf()
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"data": _cmd_data, "train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
                "report": _cmd_report, "bench": _cmd_bench}
    try:
        if args.command in NEEDS_KERAS:
            from .backend import import_keras

            import_keras()
        return handlers[args.command](args)
    except AslnbError as exc:
        if args.debug:
            raise
        print(f"aslnb: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and closed
        return 0
    except KeyboardInterrupt:
        print("aslnb: interrupted; rerun the same command to resume where it can", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"aslnb: error: unexpected {exc.__class__.__name__}: {first[:300]} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``aslnb`` command: data info|verify|fetch, train, evaluate, predict, report, bench.

Errors print as one line (``aslnb: error: ...``) with a non-zero exit code (the
table is in :mod:`aslnb.errors` and ``aslnb --help``); ``--debug``, before or
after the command, shows the traceback. ``aslnb train``'s options are generated
from :class:`aslnb.config.TrainConfig`, so their defaults live there only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .config import PROFILES, TrainConfig, check_cache_dir
from .errors import EXIT_BAD_IMAGES, EXIT_CODES, EXIT_FETCH_INCOMPLETE, EXIT_INTERRUPTED, EXIT_UNEXPECTED, AslnbError


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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (``(default: X)``) unless its help already says it; keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or "(default" in text or not action.option_strings
                or action.default in (None, argparse.SUPPRESS)
                or (action.default is False and not isinstance(action, argparse.BooleanOptionalAction))):
            return text
        return f"{text} (default: %(default)s)"


class _LazyChoices:
    """Allowed values looked up only when an option is checked or its help shown (e.g. backbones: Keras)."""

    def __init__(self, load: Callable[[], Sequence[str]]):
        self._load = load

    def __contains__(self, value: object) -> bool:
        return value in self._load()

    def __iter__(self):
        return iter(self._load())


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per :class:`TrainConfig` field, with its type, allowed values, help and default."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kind = hints[f.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        kw: dict[str, Any] = {"dest": f.name, "help": f.metadata["help"], "default": default}
        choices = f.metadata.get("choices")
        if callable(choices):  # looked up when used; a fixed metavar keeps --help and parsing from loading them
            kw.update(choices=_LazyChoices(choices), metavar="NAME", help=kw["help"] + " (%(choices)s)")
        elif choices is not None:
            kw["choices"] = choices
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:
            # a string default goes through the type too, and shows as the user would type it
            kw.update(type=_ints, metavar="N[,N...]", default=",".join(map(str, default)))
        else:
            kw["type"] = kind
        p.add_argument(flag, **kw)


def _add_data(p: argparse.ArgumentParser, external: bool = False) -> None:
    p.add_argument("--data", help="training images, one folder per class (default: $ASLNB_DATA, else the fetch folder)")
    if external:
        p.add_argument("--external", help="external test images, e.g. the Massey set (default: $ASLNB_EXTERNAL_DATA)")


def _epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    # --debug is accepted before and after the command (SUPPRESS: a sub-command does not reset it).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    fmt = {"formatter_class": _HelpFormatter, "parents": [common]}
    parser = argparse.ArgumentParser(prog="aslnb", description="ASL alphabet recognition by transfer learning (Keras).",
                                     epilog=_epilog(), formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"aslnb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="inspect, verify or download the image data", **fmt)
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = dsub.add_parser("info", help="classes, counts, image sizes and modes, problems found", **fmt)
    info.add_argument("dir", nargs="?", help="dataset folder (default: --data / $ASLNB_DATA)")
    _add_data(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    verify = dsub.add_parser("verify", help="decode every image and list the bad ones", **fmt)
    verify.add_argument("dir", nargs="?", help="dataset folder (default: --data / $ASLNB_DATA)")
    _add_data(verify)
    verify.add_argument("--manifest", help="also check every file's sha256 against a manifest: "
                        "asl-alphabet-sample, massey-asl or a JSON file (default: decode only, no hash check)")
    fetch = dsub.add_parser("fetch", help="download the images of the report (or N per class) of the original data set", **fmt)
    fetch.add_argument("--per-class", type=int, help="images per class (default: the 200 per class of the "
                       "shipped manifest, each checked against its sha256; more adds unverified frames)")
    fetch.add_argument("--external", action="store_true", help="the Massey test set: check a copy made by hand "
                       "(its Kaggle page needs a login; prints the steps) (default: the training images)")
    fetch.add_argument("--dest", help="where to write (default: the user cache folder aslnb reads by default)")
    fetch.add_argument("--base-url", help="mirror of the dataset/ folder (default: $ASLNB_DATA_URL or GitHub)")
    fetch.add_argument("--workers", type=int, default=8, help="parallel downloads")
    fetch.add_argument("--classes", help="comma-separated subset of classes (default: all 29)")

    tr = sub.add_parser("train", help="train the classifier into a run directory", **fmt)
    _add_data(tr, external=True)
    tr.add_argument("--out", required=True, help="run directory to create (refused if it holds a finished run)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    _add_config_options(tr)
    tr.add_argument("--feature-cache-dir", help="keep extracted features on disk here and reuse them "
                                                "(default: in memory only)")
    tr.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")

    ev = sub.add_parser("evaluate", help="score a run on its held-out split (and an external set)", **fmt)
    ev.add_argument("run_dir")
    _add_data(ev, external=True)
    ev.add_argument("--subset", choices=("test", "val", "train"), default="test", help="which split to score")

    pr = sub.add_parser("predict", help="label image files or folders with a trained run", **fmt)
    pr.add_argument("run_dir")
    pr.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    pr.add_argument("--top-k", type=int, default=3, help="labels listed per image, most probable first")
    pr.add_argument("--json", action="store_true", help="print a JSON list")

    rp = sub.add_parser("report", help="run all notebooks with papermill into reports/<profile>/", **fmt)
    rp.add_argument("--profile", choices=tuple(PROFILES), default="cpu", help="settings profile (aslnb.config)")
    rp.add_argument("--out", default="reports", help="parent folder of the report")
    _add_data(rp, external=True)
    rp.add_argument("--weights", help="override the profile's weights: imagenet or none (default: the profile's)")
    rp.add_argument("--notebooks", help="comma-separated subset, e.g. 01,04 (default: all)")
    rp.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                    help="extra notebook parameter (YAML value), repeatable (default: none)")

    bn = sub.add_parser("bench", help="measure throughput and the feature-cache speed-up", **fmt)
    _add_data(bn)
    bn.add_argument("--out", default="benchmarks/results.json", help="results file")
    bn.add_argument("--quick", action="store_true", help="a short run (for checking the script)")
    return parser


def _dumps(obj: Any) -> str:
    """JSON text of plain data; refuses what would come out silently wrong (a bug, not a user error)."""
    text = json.dumps(obj, indent=2, allow_nan=False)  # NaN is not JSON; numpy ints, paths... raise TypeError
    found = _NUMPY_REPR.search(text)
    if found:
        raise ValueError(f"JSON output holds a numpy repr ({found.group(0)}...): build the message from str()")
    return text


_NUMPY_REPR = re.compile(r"\bnp\.[a-z_]+[0-9]*\(")


def _cmd_data(args) -> int:
    from .settings import resolve_data_dir

    if args.data_command == "fetch" and args.external:
        from .data.external import check_external
        from .settings import default_external_dir

        rep = check_external(args.dest or os.environ.get("ASLNB_EXTERNAL_DATA") or default_external_dir())
        print(rep.summary())
        for rel, reason in rep.bad[:20]:
            print(f"  differs {rel}: {reason}")
        for rel in rep.missing[:20]:
            print(f"  missing {rel}")
        return 0 if rep.ok else EXIT_FETCH_INCOMPLETE
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
        if res.unverified_files or res.skipped:
            print(f"  {len(res.unverified_files)} files beyond the manifest are unverified (no hash to check); "
                  f"{len(res.skipped)} upstream gaps skipped")
        return 0 if not res.failed else EXIT_FETCH_INCOMPLETE
    root = resolve_data_dir(args.dir or args.data)
    if args.data_command == "info":
        from .data.scan import dataset_info

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
    from .data.scan import find_bad_images, scan_folder

    folder = scan_folder(root, allow_empty_classes=True)
    bad = find_bad_images(folder.files, progress=sys.stderr.isatty())
    for p in folder.problems:
        print(f"problem: {p}")
    for path, reason in bad.items():
        print(f"bad: {path}: {reason}")
    print(f"{root}: {len(folder)} files checked, {len(bad)} bad")
    if args.manifest:
        from .data.manifest import verify_folder

        rep = verify_folder(root, args.manifest)
        lines = [f"differs: {rel}: {reason}" for rel, reason in rep.bad] + [f"missing: {rel}" for rel in rep.missing]
        for line in lines[:50] + ([f"... and {len(lines) - 50} more"] if len(lines) > 50 else []):
            print(line)
        print(rep.summary())
        return EXIT_BAD_IMAGES if bad or not rep.ok else 0
    return 0 if not bad else EXIT_BAD_IMAGES


def _cmd_train(args) -> int:
    from .train import train

    check_cache_dir(args.feature_cache_dir)
    params = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    res = train(args.data, args.out, external=args.external, overwrite=args.overwrite,
                feature_cache_dir=args.feature_cache_dir, **params)
    if res.run_dir is None:  # a multi-worker run's non-chief worker: the chief writes and evaluates the run
        print(f"worker finished; the chief writes {args.out}")
        return 0
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
        print(_dumps(results))
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
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"aslnb: error: unexpected {exc.__class__.__name__}: {first[:300]} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

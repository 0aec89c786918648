"""The ``aslnb`` argument parser; ``aslnb train``'s options are generated from TrainConfig."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable, Sequence

from .. import __version__
from ..config import PROFILES, TRAIN_FIELDS, TrainConfig, field_default, profile
from ..errors import EXIT_CODES
from ..settings import DOWNLOAD_DEADLINE


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


def _add_config_options(p: argparse.ArgumentParser, defaults: dict[str, Any] | None = None) -> None:
    """One option per :class:`TrainConfig` field, with its type, allowed values, help and default
    (``defaults``: a profile's values instead of TrainConfig's)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = (defaults or {}).get(f.name, field_default(f))
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


def profile_in(argv: Sequence[str]) -> str | None:
    """The NAME of ``train --profile NAME`` (or ``--profile=NAME``) in ``argv``, read before parsing so that
    ``--help`` shows the profile's defaults; None without one (an unknown name is left to the parser)."""
    argv = list(argv)
    if "train" not in argv:
        return None
    for i, tok in enumerate(argv):
        if tok == "--profile" and i + 1 < len(argv):
            return argv[i + 1] if argv[i + 1] in PROFILES else None
        if tok.startswith("--profile="):
            return tok.split("=", 1)[1] if tok.split("=", 1)[1] in PROFILES else None
    return None


def _profile_training(name: str | None) -> dict[str, Any]:
    """The :class:`TrainConfig` settings of profile ``name`` (none: {})."""
    return {k: v for k, v in profile(name).items() if k in TRAIN_FIELDS} if name else {}


def _add_data(p: argparse.ArgumentParser, external: bool = False) -> None:
    p.add_argument("--data", help="training images, one folder per class (default: $ASLNB_DATA, else the fetch folder)")
    if external:
        p.add_argument("--external", help="external test images, e.g. the Massey set (default: $ASLNB_EXTERNAL_DATA)")


def _epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def build_parser(train_profile: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``train_profile``: ``aslnb train``'s defaults are that profile's training settings."""
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
    fetch.add_argument("--deadline", type=float, default=DOWNLOAD_DEADLINE,
                       help="seconds each file may take in all, retries included (a stalled server fails at it)")
    fetch.add_argument("--classes", help="comma-separated subset of classes (default: all 29)")

    tr = sub.add_parser("train", help="train the classifier into a run directory", **fmt)
    _add_data(tr, external=True)
    tr.add_argument("--out", required=True, help="run directory to create (refused if it holds a finished run)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    tr.add_argument("--profile", choices=tuple(PROFILES), help="start from a profile's training settings "
                    "(aslnb.config.PROFILES, e.g. hands: the other-hands recipe); options given override them "
                    "(default: none, TrainConfig's defaults)")
    _add_config_options(tr, _profile_training(train_profile))
    tr.add_argument("--feature-cache-dir", help="keep extracted features on disk here and reuse them; sets over "
                                                "the in-memory limit are read back a batch at a time (default: in "
                                                "memory, or for larger sets the run's checkpoints/features, "
                                                "removed when the run finishes)")
    tr.add_argument("--features-in-memory-max-bytes", type=int, metavar="BYTES",
                    help="largest feature set loaded into memory; larger ones are read from disk a batch at a time "
                         "(0: always) (default: a quarter of this machine's memory)")
    tr.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")

    ev = sub.add_parser("evaluate", help="score a run on its held-out split (and an external set)", **fmt)
    ev.add_argument("run_dir")
    _add_data(ev, external=True)
    ev.add_argument("--subset", choices=("test", "val", "train"), default="test", help="which split to score")
    ev.add_argument("--other-data", action="store_true", help="--data is not the run's training data (its files "
                    "differ: refused without this): score all its images as another data set, into "
                    "metrics-<folder>.json")

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



"""The ``aslnb`` command: data info|verify|fetch, train, evaluate, predict, report, bench.

Errors print as one line (``aslnb: error: ...``) with a non-zero exit code (the
table is in :mod:`aslnb.errors` and ``aslnb --help``); ``--debug``, before or
after the command, shows the traceback. ``aslnb train``'s options are generated
from :class:`aslnb.config.TrainConfig`, so their defaults live there only.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

from ..backend import import_keras
from ..errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, AslnbError
from .commands import HANDLERS
from .parser import build_parser, profile_in

__all__ = ["build_parser", "main"]


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


# Commands that load Keras: imported up front, without TensorFlow's start-up notices.
NEEDS_KERAS = frozenset({"train", "evaluate", "predict", "bench", "report"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aslnb`` console script."""
    _quiet_tf()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(profile_in(argv))  # train --profile NAME: its settings are the defaults (and --help's)
    args = parser.parse_args(argv)
    args.given = frozenset(tok.split("=", 1)[0] for tok in argv if tok.startswith("--"))  # options typed
    try:
        if args.command in NEEDS_KERAS:
            import_keras()
        return HANDLERS[args.command](args)
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

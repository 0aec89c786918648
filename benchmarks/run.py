"""``python -m benchmarks.run [--data DIR] [--out benchmarks/results.json] [--quick]``.

The same as ``aslnb bench``: runs :func:`benchmarks.bench.run_bench` and writes the
JSON file and a markdown table next to it (``results.md``).
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description="Run the aslnb benchmarks (see benchmarks/README.md).")
    parser.add_argument("--data", help="training images (default: $ASLNB_DATA)")
    parser.add_argument("--out", default="benchmarks/results.json", help="JSON results; markdown goes next to it")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a 40-image subset (checks the script)")
    parser.add_argument("--naive-epochs", type=int, default=None,
                        help="epochs of the plain-fit path to measure before scaling to 20 (default 3; each ~70 s on 2 cores)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from aslnb.backend import import_keras
    from benchmarks.bench import run_bench
    from aslnb.errors import AslnbError

    try:
        import_keras()
        path = run_bench(data=args.data, out=args.out, quick=args.quick, naive_epochs=args.naive_epochs)
    except AslnbError as exc:
        print(f"benchmarks.run: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"benchmark results written to {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

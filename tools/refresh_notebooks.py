#!/usr/bin/env python
"""Re-execute the course notebooks in place under the ``smoke`` profile, so their stored
outputs are what ``pytest --nbval-lax notebooks/`` compares against.

    ASLNB_DATA=... ASLNB_EXTERNAL_DATA=... python tools/refresh_notebooks.py [--only 01,04]

The stored outputs come from a smoke run (the banner says ``profile smoke``): small,
quick, and deterministic in the cells marked ``# NBVAL_CHECK_OUTPUT``. papermill's
execution metadata (timings per cell) is stripped so a refresh changes only outputs.
Figures go to ``notebooks/figures/`` and runs to ``notebooks/runs/`` (both git-ignored).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def strip_metadata(path: Path) -> None:
    """Drop papermill's and the kernel's per-run metadata; keep the kernelspec and outputs."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)  # one kernelspec in every notebook
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,04 (default: all)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    args = ap.parse_args(argv)
    if not os.environ.get("ASLNB_DATA"):
        print("refresh_notebooks: set ASLNB_DATA (and ASLNB_EXTERNAL_DATA) to the data folders first", file=sys.stderr)
        return 2
    os.environ["ASLNB_PROFILE"] = "smoke"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import papermill

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        wanted = {n.strip()[:2] for n in args.only.split(",")}
        paths = [p for p in paths if p.name[:2] in wanted]
    for path in paths:
        t0 = time.perf_counter()
        print(f"{path.name} ...", end=" ", flush=True)
        papermill.execute_notebook(str(path), str(path), kernel_name="python3", cwd=str(NOTEBOOKS),
                                   log_output=False, progress_bar=False, execution_timeout=args.timeout)
        strip_metadata(path)
        print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

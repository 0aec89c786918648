#!/usr/bin/env python
"""Put the outputs of the cpu report into ``notebooks/``, so a learner opening a notebook
(on GitHub, in JupyterLab or Colab) sees the real run, not a smoke run.

    make report                                  # runs the notebooks into reports/cpu/
    python tools/refresh_notebooks.py            # copies their outputs into notebooks/
    python tools/refresh_notebooks.py --check    # exit 1 if notebooks/ and the report differ

Each executed notebook ``reports/cpu/<name>`` (notebook 04: its one run, named after the
backbone ``auto`` chose) must have exactly the cells of
``notebooks/<name>`` (papermill's injected-parameters cell aside): a notebook edited
since the report ran is refused with the command to rerun. The source notebook keeps
its own cells, ids and parameters; it gets the report's outputs and execution counts.
papermill's and the kernel's per-run metadata are not copied. CI then runs
``pytest --nbval-lax`` under the smoke profile against these outputs: only the cells
marked ``# NBVAL_CHECK_OUTPUT`` are compared, and those print the same under every
profile (class lists, counts of the scanned folder, the recipe's constants).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _cells(nb) -> list:
    """The cells of an executed notebook without papermill's injected-parameters cell."""
    return [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]


def differences(source, executed) -> list[str]:
    """Why ``executed`` is not a run of ``source`` (empty: it is)."""
    src, run = source.cells, _cells(executed)
    if len(src) != len(run):
        return [f"{len(src)} cells in the notebook, {len(run)} in the report"]
    return [f"cell {i}: {'type' if a.cell_type != b.cell_type else 'source'} differs"
            for i, (a, b) in enumerate(zip(src, run)) if a.cell_type != b.cell_type or a.source != b.source]


def with_outputs(source, executed):
    """``source`` with the outputs and execution counts of ``executed`` (same cells)."""
    import copy

    out = copy.deepcopy(source)
    out.metadata["kernelspec"] = dict(KERNELSPEC)
    for key in ("papermill", "widgets"):
        out.metadata.pop(key, None)
    for cell, ran in zip(out.cells, _cells(executed)):
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = copy.deepcopy(ran.get("outputs", []))
            cell.execution_count = ran.get("execution_count")
    return out


def report_copy(report: Path, name: str) -> Path:
    """The executed copy of notebook ``name`` in ``report``: the same name, or the one run of it
    (notebook 04 is named after the backbone its ``BACKBONE="auto"`` resolved to, e.g.
    ``04_finetune_efficientnet_lite0.ipynb`` offline)."""
    exact = report / name
    if exact.is_file():
        return exact
    runs = sorted(report.glob(f"{name[:3]}*.ipynb"))
    return runs[0] if len(runs) == 1 else exact


def main(argv: list[str] | None = None) -> int:
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", default=str(ROOT / "reports" / "cpu"), help="executed notebooks (default: reports/cpu)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if notebooks/ lacks the report's outputs")
    args = ap.parse_args(argv)
    report = Path(args.report)
    bad = 0
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        ran_path = report_copy(report, path.name)
        if not ran_path.is_file():
            print(f"{ran_path}: missing; run `make report` first", file=sys.stderr)
            bad += 1
            continue
        source, executed = nbformat.read(path, as_version=4), nbformat.read(ran_path, as_version=4)
        diff = differences(source, executed)
        if diff:
            print(f"{path.name}: changed since the report ran ({'; '.join(diff[:3])}); rerun `make report`",
                  file=sys.stderr)
            bad += 1
            continue
        new = with_outputs(source, executed)
        if args.check:
            if nbformat.writes(new) != nbformat.writes(source):
                print(f"{path.name}: stored outputs are not the report's; run python tools/refresh_notebooks.py",
                      file=sys.stderr)
                bad += 1
            continue
        nbformat.write(new, path)
        print(f"{path.name}: outputs of {ran_path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

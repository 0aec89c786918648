"""Replace the setup cell (the first code cell) of every course notebook by aslnb.course.colab.SETUP_CELL; nothing else.

Run from the repository root after changing SETUP_CELL: `python tools/set_setup_cell.py` (never re-executes a notebook).
"""
import glob
import json

from aslnb.course.colab import SETUP_CELL

for p in sorted(glob.glob("notebooks/[0-9][0-9]_*.ipynb")):
    raw = open(p, encoding="utf-8").read()
    nb = json.loads(raw)
    same = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    assert same == raw, f"{p}: round trip is not byte-identical"
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = SETUP_CELL.splitlines(keepends=True)
    open(p, "w", encoding="utf-8").write(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print("updated", p)

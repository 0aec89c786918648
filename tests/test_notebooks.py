"""The course notebooks: conventions (static, fast) and regression checks with nbval.

The stored outputs in ``notebooks/`` are those of the cpu report (``make report``,
then ``python tools/refresh_notebooks.py``), so a learner sees the real run; a test
checks they equal ``reports/cpu/``'s, and another that every number in the prose
was printed by a cell above it. ``test_nbval`` runs ``pytest --nbval-lax
notebooks/`` in a subprocess under the ``smoke`` profile: every cell must run
without error, and the cells whose first line is ``# NBVAL_CHECK_OUTPUT`` (class
lists, counts of the scanned folder, the recipe's constants: what every profile
prints alike) must print what the stored cpu outputs say.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from aslnb.course.notebook import COMMON_PARAMS, NOTEBOOK_PARAMS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(params=NOTEBOOKS, ids=IDS)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_kernelspec_and_title(notebook):
    path, nb = notebook
    ks = nb.metadata.get("kernelspec", {})
    assert ks.get("name") == "python3" and str(ks.get("display_name", "")).startswith("Python 3"), ks
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "first cell: a markdown title"
    badge = f"https://colab.research.google.com/github/aslnb/aslnb/blob/main/notebooks/{path.name}"
    assert badge in first.source, "Open in Colab badge with this notebook's URL"
    assert "what you will learn" in first.source.lower()


def test_colab_cell_parameters_cell_then_setup(notebook):
    path, nb = notebook
    code = _code(nb)
    assert "google.colab" in code[0].source and "pip" in code[0].source, "first code cell installs on Colab"
    assert "import os" in code[0].source
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    i = tagged[0]
    names = set()
    for stmt in ast.parse(code[i].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), \
            f"parameters cell: only simple assignments ({ast.unparse(stmt)})"
        names.add(stmt.targets[0].id)
        value = stmt.value
        if stmt.targets[0].id == "PROFILE":
            assert ast.unparse(value) == "os.environ.get('ASLNB_PROFILE', 'auto')"
        else:
            assert isinstance(value, ast.Constant), f"{stmt.targets[0].id}: a literal value"
    nn = path.name[:2]
    assert names == set(COMMON_PARAMS) | set(NOTEBOOK_PARAMS.get(nn, {})), "parameters cell = NOTEBOOK_PARAMS"
    nxt = code[i + 1].source
    if code[i + 1].metadata.get("tags") == ["injected-parameters"]:
        nxt = code[i + 2].source
    assert f'aslnb.course.notebook.setup("{nn}", globals()' in nxt, "the cell after the parameters calls setup()"


def test_summary_exercises_and_no_progress_bars(notebook):
    path, nb = notebook
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in md and "## Exercises" in md
    assert nb.cells[-1].cell_type == "markdown"
    for c in _code(nb):
        try:
            tree = ast.parse("\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith(("!", "%"))))
        except SyntaxError:
            continue
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and \
                    call.func.attr in ("fit", "predict", "evaluate"):
                verbose = [k.value for k in call.keywords if k.arg == "verbose"]
                assert verbose and isinstance(verbose[0], ast.Constant) and verbose[0].value in (0, 2), \
                    f"Keras {call.func.attr}() needs verbose=0 or 2 (no per-step progress bars): {ast.unparse(call)}"


def _tool():
    spec = importlib.util.spec_from_file_location("refresh_notebooks", ROOT / "tools" / "refresh_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_exercise_has_a_hint_and_a_collapsed_solution(notebook):
    path, nb = notebook
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and "## Exercises" in c.source)
    text = text[text.index("## Exercises"):]
    items = re.split(r"(?m)^\d+\. ", text)[1:]
    assert items, f"{path.name}: number the exercises (1. 2. ...)"
    for i, item in enumerate(items, 1):
        assert "<details><summary>Hint</summary>" in item and "<details><summary>Solution</summary>" in item, \
            f"{path.name}: exercise {i} needs a collapsed hint and solution (<details><summary>Hint</summary>...)"


def test_stored_outputs_are_the_cpu_report(notebook):
    """What a learner sees in notebooks/ is the real cpu run of reports/cpu/, cell for cell."""
    path, nb = notebook
    outs = [o for c in _code(nb) for o in c.get("outputs", [])]
    assert outs, f"{path.name} has no stored outputs: make report, then python tools/refresh_notebooks.py"
    assert not [o for o in outs if o.output_type == "error"], "stored outputs contain an error"
    text = "\n".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert f"aslnb notebook {path.name[:2]} · profile cpu" in text, "stored outputs must come from the cpu profile"
    tool = _tool()
    executed = nbformat.read(tool.report_copy(ROOT / "reports" / "cpu", path.name), as_version=4)
    assert not tool.differences(nb, executed), f"{path.name} changed since the cpu report ran: make report"
    assert nbformat.writes(tool.with_outputs(nb, executed)) == nbformat.writes(nb), \
        "notebooks/ must hold the report's outputs: python tools/refresh_notebooks.py"
    checked = [c for c in _code(nb) if c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "mark the stable cells with # NBVAL_CHECK_OUTPUT"
    for c in checked:
        assert not [o for o in c.outputs if o.output_type == "stream" and o.name == "stderr"], \
            "a checked cell must not print to stderr"


_NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?(?=\s?%))(?![\w])")
_EXEMPT = re.compile(r"`[^`]*`|\(https?://[^)]*\)|https?://\S+|arXiv:?\s?\d+\.\d+", re.I)


def _printed(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts += [str(o.data.get(k, "")) for k in ("text/plain", "text/html", "text/markdown")]
    return "\n".join(parts)


# Words that state the direction of a result: the prose may use one only where a printed line or a
# check's line above carries the same word (e.g. "check: ImageNet beats random weights: holds").
_DIRECTION = re.compile(r"\b(higher|lower|better|worse|helps?|hurts?|beats?|outperforms?)\b", re.I)


def numbers_not_printed_above(nb) -> list[str]:
    """Decimals, percentages and direction words (higher, better, worse, helps, ...) in markdown that no
    code cell above printed (the stale-number check)."""
    seen, missing = "", []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            seen += "\n" + _printed(cell)
            continue
        if cell.cell_type != "markdown":
            continue
        prose = _EXEMPT.sub(" ", cell.source)
        for num in _NUMBER.findall(prose):
            # 0.805 may be a rounding of a printed 0.8052; 80 must not match inside 0.8052 or 180
            if not re.search(r"(?<![\d.])" + re.escape(num) + ("" if "." in num else r"(?!\d)"), seen):
                missing.append(f"cell {i}: {num}")
        for word in dict.fromkeys(w.lower() for w in _DIRECTION.findall(prose)):
            if not re.search(r"\b" + re.escape(word) + r"\b", seen, re.I):
                missing.append(f"cell {i}: {word}")
    return missing


def test_markdown_numbers_are_printed_above(notebook):
    """Every decimal or percentage in the prose is one a cell above printed in the stored (cpu) run."""
    path, nb = notebook
    assert not numbers_not_printed_above(nb), f"{path.name}: numbers in markdown that no cell above printed " \
        f"(print them from a cell, or drop them): {numbers_not_printed_above(nb)}"


def test_stale_number_check_catches_a_made_up_number():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(acc)", outputs=[nbformat.v4.new_output("stream", text="accuracy 0.8052\n")]),
        nbformat.v4.new_markdown_cell("The probe scores 0.805 here, but 0.14 on a chunk, about 80 % of `v1.2`."),
    ])
    assert numbers_not_printed_above(nb) == ["cell 1: 0.14", "cell 1: 80"]


def test_stale_number_check_catches_a_direction_no_cell_printed():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(acc)", outputs=[nbformat.v4.new_output(
            "stream", text="check: ImageNet beats random weights: holds (0.53 vs 0.05)\n")]),
        nbformat.v4.new_markdown_cell("ImageNet weights beat random ones, and fine-tuning is Better; "
                                      "`higher` in code."),
        nbformat.v4.new_markdown_cell("The pretrained probe beats the random one."),
    ])
    assert numbers_not_printed_above(nb) == ["cell 1: beat", "cell 1: better"]


@pytest.mark.slow
def test_nbval(tmp_path, sample_dir, external_dir):
    """Run every notebook under the smoke profile and compare the checked cells with the stored cpu outputs."""
    env = {**os.environ, "ASLNB_DATA": str(sample_dir), "ASLNB_EXTERNAL_DATA": str(external_dir),
           "ASLNB_PROFILE": "smoke", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout", "300",
           "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "-p", "no:cacheprovider",
           "-q", "--no-header", "-o", "addopts=", "notebooks/"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"nbval failed:\n{tail}"
    assert "passed" in proc.stdout and "failed" not in proc.stdout.split("\n")[-2], tail

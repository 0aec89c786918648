"""``aslnb report``: the smoke report end to end, and how it fails.

The full smoke report runs once per session (a few minutes on 2 cores); the
failure tests run one notebook, or a tiny synthetic one, and stop at once.
"""
from __future__ import annotations

import json
import re

import nbformat
import pytest

from aslnb.errors import ParameterError
from aslnb.course.report import NotebookFailed, course_notebooks, parse_extra, plan, run_report


def _outputs(path, *, kinds=("stream", "execute_result", "display_data")) -> str:
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type in kinds:
                parts.append(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _error_output(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                return cell, o
    return None, None


# ---------------------------------------------------------------- no kernel needed
def test_parse_extra_reads_yaml_values():
    assert parse_extra(["EPOCHS=3", "WEIGHTS=none", "RUN_DIR=null", "X=[1, 2]", "S='3'"]) == {
        "EPOCHS": 3, "WEIGHTS": "none", "RUN_DIR": None, "X": [1, 2], "S": "3"}
    assert parse_extra(None) == {}
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_extra(["EPOCHS"])


def test_plan_runs_04_once_per_backbone_and_routes_extras(tmp_path):
    jobs = plan("smoke", out=tmp_path, extra=["FINE_TUNE_EPOCHS=1"])
    names = [j["name"] for j in jobs]
    assert names[0].startswith("01_") and names[-1].startswith("05_")
    assert "04_finetune_resnet50.ipynb" in names and "04_finetune_efficientnet_lite0.ipynb" in names
    by = {j["name"]: j["parameters"] for j in jobs}
    assert by["04_finetune_efficientnet_lite0.ipynb"]["BACKBONE"] == "efficientnet_lite0"
    assert by["04_finetune_efficientnet_lite0.ipynb"]["WEIGHTS"] == "imagenet"
    assert by["04_finetune_resnet50.ipynb"]["FINE_TUNE_EPOCHS"] == 1
    assert "FINE_TUNE_EPOCHS" not in by[names[0]]  # 01 does not declare it
    assert all(p["REPORT_DIR"] == str((tmp_path / "smoke").resolve()) for p in by.values())
    # a name no notebook declares goes everywhere, so the first setup cell refuses it
    assert all("NOPE" in j["parameters"] for j in plan("smoke", out=tmp_path, extra=["NOPE=1"]))
    assert [j["name"][:2] for j in plan("smoke", out=tmp_path, notebooks=["05", "01"])] == ["01", "05"]
    with pytest.raises(ParameterError, match="--notebooks 09"):
        plan("smoke", out=tmp_path, notebooks=["09"])
    with pytest.raises(ParameterError, match="profile"):
        plan("fast", out=tmp_path)


def test_course_has_five_numbered_notebooks():
    names = [p.name for p in course_notebooks()]
    assert names == ["01_dataset.ipynb", "02_residual_learning.ipynb", "03_transfer_learning.ipynb",
                     "04_finetune_resnet50.ipynb", "05_results.ipynb"]
    # every notebook of the folder is a numbered course notebook (none is left out of the report)
    assert names == sorted(p.name for p in course_notebooks()[0].parent.glob("*.ipynb"))


# ---------------------------------------------------------------- the smoke report
@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory, sample_dir, external_dir):
    out = tmp_path_factory.mktemp("reports")
    report_dir = run_report("smoke", out=out)
    return report_dir


def test_report_writes_notebooks_html_figures_metrics(smoke_report):
    assert smoke_report.name == "smoke"
    executed = sorted(p.name for p in smoke_report.glob("[0-9][0-9]_*.ipynb"))
    expected = {p.name for p in course_notebooks()} - {"04_finetune_resnet50.ipynb"} | {
        "04_finetune_resnet50.ipynb", "04_finetune_efficientnet_lite0.ipynb"}
    assert set(executed) == expected
    for name in executed:
        assert (smoke_report / name).with_suffix(".html").stat().st_size > 10_000
        err_cell, err = _error_output(smoke_report / name)
        assert err is None, f"{name}: {err and err.evalue}"
    figures = list((smoke_report / "figures").glob("*.png"))
    assert {"nb01_", "nb04_", "nb05_"} <= {f.name[:5] for f in figures}
    assert (smoke_report / "figures" / "nb04_curves_efficientnet_lite0.png").is_file()
    metrics = json.loads((smoke_report / "metrics.json").read_text())
    assert next(iter(metrics)) == "_report"
    rep = metrics["_report"]
    assert rep["profile"] == "smoke" and rep["status"] == "ok"
    assert set(rep["notebook_seconds"]) == set(executed)
    assert "WITHOUT ImageNet" in rep["NOTE"]
    assert {"python", "keras", "tensorflow"} <= set(rep["versions"]) and rep["device"]
    assert {"nb01", "nb04", "nb05"} <= set(metrics)


def test_recorded_numbers_equal_what_the_notebooks_printed(smoke_report):
    metrics = json.loads((smoke_report / "metrics.json").read_text())
    checks = [
        ("01_dataset.ipynb", "nb01", "n_images_used"),
        ("04_finetune_resnet50.ipynb", "nb04", "resnet50.test_accuracy"),
        ("04_finetune_resnet50.ipynb", "nb04", "resnet50.param_counts"),
        ("04_finetune_efficientnet_lite0.ipynb", "nb04", "efficientnet_lite0.test_accuracy"),
        ("05_results.ipynb", "nb05", "resnet50.test_accuracy"),
        ("05_results.ipynb", "nb05", "efficientnet_lite0.test_accuracy"),
    ]
    for notebook, section, key in checks:
        value = metrics[section][key]
        shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        assert f"{key} = {shown}" in _outputs(smoke_report / notebook), (notebook, key, shown)
    # 05 recomputes the test accuracy from the saved model: it must equal 04's
    assert metrics["nb05"]["resnet50.test_accuracy"] == metrics["nb04"]["resnet50.test_accuracy"]
    # the banner says which profile produced the numbers
    assert "profile smoke" in _outputs(smoke_report / "05_results.ipynb")


# ---------------------------------------------------------------- failures stop with one clear line
def _assert_short_setup_error(report_dir, notebook, pattern):
    cell, err = _error_output(report_dir / notebook)
    assert err is not None, "the executed notebook should keep the error"
    assert "aslnb.course.notebook.setup" in cell.source
    text = "\n".join(err.traceback)
    assert re.search(pattern, text), text
    assert len(err.traceback) == 1 and "Traceback" not in text and 'File "' not in text, text


@pytest.mark.parametrize("extra, error, pattern", [
    (["EPOCHZ=3"], "ParameterError", r"unknown parameter\(s\) EPOCHZ for notebook 01"),
    (["EPOCHS=three"], "ParameterError", r"EPOCHS='three': expected int or None, got str"),
])
def test_bad_parameter_stops_the_setup_cell(tmp_path, sample_dir, extra, error, pattern):
    with pytest.raises(NotebookFailed, match=rf"notebook 01_dataset.ipynb failed in cell \[\d+\]: {error}"):
        run_report("smoke", out=tmp_path, notebooks=["01"], extra=extra)
    _assert_short_setup_error(tmp_path / "smoke", "01_dataset.ipynb", pattern)
    rep = json.loads((tmp_path / "smoke" / "metrics.json").read_text())["_report"]
    assert rep["status"] == "failed" and rep["failed"]["notebook"] == "01_dataset.ipynb"


def test_missing_data_dir_stops_the_setup_cell(tmp_path):
    missing = tmp_path / "no-such-data"
    with pytest.raises(NotebookFailed, match=r"01_dataset.ipynb failed in cell \[\d+\]: DataError"):
        run_report("smoke", out=tmp_path, data=missing, notebooks=["01"])
    _assert_short_setup_error(tmp_path / "smoke", "01_dataset.ipynb", r"DataError: training data folder .*no-such-data")


def test_failing_notebook_keeps_partial_output_and_names_the_cell(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell("PROFILE = 'cpu'\nREPORT_DIR = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('got this far', PROFILE)"),
                nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
                nbformat.v4.new_code_cell("print('never')")]
    nbformat.write(nb, folder / "01_broken.ipynb")
    with pytest.raises(NotebookFailed) as info:
        run_report("smoke", out=tmp_path / "out", folder=folder)
    msg = str(info.value)
    assert "01_broken.ipynb failed in cell [" in msg and "ValueError: broken on purpose" in msg
    executed = tmp_path / "out" / "smoke" / "01_broken.ipynb"
    assert "got this far smoke" in _outputs(executed)
    assert "never" not in _outputs(executed)
    assert executed.with_suffix(".html").is_file()


def test_plan_with_one_backbone_runs_04_once(tmp_path):
    jobs = plan("smoke", out=tmp_path, notebooks=["04"], extra=["BACKBONE=efficientnet_lite0"])
    assert [j["name"] for j in jobs] == ["04_finetune_efficientnet_lite0.ipynb"]
    assert jobs[0]["parameters"]["BACKBONE"] == "efficientnet_lite0"

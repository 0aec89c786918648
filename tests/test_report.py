"""``aslnb report``: the smoke report end to end, and how it fails.

The full smoke report runs once per session (a few minutes on 2 cores); the
failure tests run one notebook, or a tiny synthetic one, and stop at once; bad
``-p`` parameters are refused without starting a kernel.
"""
from __future__ import annotations

import json
import re

import nbformat
import pytest

from aslnb.errors import ParameterError
from aslnb.course.report import ChecksFailed, NotebookFailed, course_notebooks, plan, run_report
from aslnb.course.report_params import parse_extra


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
    from aslnb.course.report import report_backbones

    jobs = plan("smoke", out=tmp_path, extra=["FINE_TUNE_EPOCHS=1"])
    names = [j["name"] for j in jobs]
    assert names[0].startswith("01_") and names[-1].startswith("05_")  # 05 reads every other notebook: last
    runs04 = [n for n in names if n.startswith("04_")]
    assert runs04 == [f"04_finetune_{b}.ipynb" for b in report_backbones("smoke")]
    assert set(runs04) == {"04_finetune_resnet50.ipynb", "04_finetune_efficientnet_lite0.ipynb"}
    by = {j["name"]: j["parameters"] for j in jobs}
    assert by["04_finetune_efficientnet_lite0.ipynb"]["BACKBONE"] == "efficientnet_lite0"
    assert by["04_finetune_resnet50.ipynb"]["FINE_TUNE_EPOCHS"] == 1
    assert "FINE_TUNE_EPOCHS" not in by[names[0]]  # 01 does not declare it
    assert all(p["REPORT_DIR"] == str((tmp_path / "smoke").resolve()) for p in by.values())
    with pytest.raises(ParameterError, match=r"-p NOPE: no notebook to run .* declares this parameter"):
        plan("smoke", out=tmp_path, extra=["NOPE=1"])
    assert [j["name"][:2] for j in plan("smoke", out=tmp_path, notebooks=["05", "01"])] == ["01", "05"]
    # 05's ending reads every other notebook's metrics (06's too): it runs last
    assert [j["name"][:2] for j in plan("smoke", out=tmp_path, notebooks=["06", "05", "01"])] == ["01", "06", "05"]
    with pytest.raises(ParameterError, match="--notebooks 09"):
        plan("smoke", out=tmp_path, notebooks=["09"])
    with pytest.raises(ParameterError, match="profile"):
        plan("fast", out=tmp_path)


def test_transport_notices_are_dropped_but_errors_and_other_warnings_pass():
    import logging

    from aslnb.course.report_kernel import TransportNoise as _TransportNoise

    noise = _TransportNoise()

    def record(level, msg):
        return logging.LogRecord("traitlets", level, __file__, 1, msg, None, None)

    assert not noise.filter(record(logging.WARNING, "Kernel is running over TCP without encryption. All ..."))
    assert not noise.filter(record(logging.WARNING, "Debugger warning: It seems that frozen modules are being used"))
    assert noise.filter(record(logging.ERROR, "Kernel is running over TCP without encryption"))  # errors pass
    assert noise.filter(record(logging.WARNING, "Input notebook does not contain a cell with tag 'parameters'"))


def test_course_has_six_numbered_notebooks():
    names = [p.name for p in course_notebooks()]
    assert names == ["01_dataset.ipynb", "02_residual_learning.ipynb", "03_transfer_learning.ipynb",
                     "04_finetune_resnet50.ipynb", "06_other_hands.ipynb", "05_results.ipynb"]  # 05 reads 06: last
    # every notebook of the folder is a numbered course notebook (none is left out of the report)
    assert sorted(names) == sorted(p.name for p in course_notebooks()[0].parent.glob("*.ipynb"))


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
    ]
    b05 = metrics["nb05"]["backbone"]  # 05 analyses the best pretrained backbone (offline: Lite0)
    checks.append(("05_results.ipynb", "nb05", f"{b05}.test_accuracy"))
    for notebook, section, key in checks:
        value = metrics[section][key]
        shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        assert f"{key} = {shown}" in _outputs(smoke_report / notebook), (notebook, key, shown)
    # 05 recomputes the test accuracy from the saved model: it must equal 04's
    assert metrics["nb05"][f"{b05}.test_accuracy"] == metrics["nb04"][f"{b05}.test_accuracy"]
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


@pytest.mark.parametrize("extra, pattern", [
    (["EPOCH=1"], r"-p EPOCH: no notebook to run .* declares this parameter; did you mean EPOCHS\?"),
    (["EPOCHS=three"], r"-p EPOCHS='three': expected int or None, got str"),
    (["FINE_TUNE_EPOCHS=2"], r"-p FINE_TUNE_EPOCHS: no notebook to run \(01_dataset.ipynb\)"),
    (["BACKBONE=vgg16"], r"-p BACKBONE='vgg16': choose one of resnet50"),
    (["REPORT_DIR=/tmp/x"], r"-p REPORT_DIR: set by `aslnb report` itself; use --out"),
])
def test_bad_parameter_is_refused_before_anything_runs_or_is_touched(tmp_path, extra, pattern):
    old = _old_report(tmp_path / "smoke")
    with pytest.raises(ParameterError, match=pattern):
        run_report("smoke", out=tmp_path, notebooks=["01"] if extra[0].startswith("FINE") else None, extra=extra)
    assert _snapshot(tmp_path / "smoke") == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smoke"]  # no .previous, no .failed


def test_cli_parameter_typo_keeps_the_previous_report(tmp_path, aslnb_cli):
    """Issue 14 case 2: `aslnb report --profile smoke --out rep2 -p EPOCH=1`."""
    old = _old_report(tmp_path / "rep2" / "smoke")
    r = aslnb_cli("report", "--profile", "smoke", "--out", tmp_path / "rep2", "-p", "EPOCH=1", timeout=120)
    assert r.returncode == ParameterError.exit_code
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslnb: error: -p EPOCH: ") and "EPOCHS" in lines[0], r.stderr
    assert r.stdout == ""  # no notebook started
    assert _snapshot(tmp_path / "rep2" / "smoke") == old


def test_missing_data_dir_stops_the_setup_cell(tmp_path):
    missing = tmp_path / "no-such-data"
    with pytest.raises(NotebookFailed, match=r"01_dataset.ipynb failed in cell \[\d+\]: DataError"):
        run_report("smoke", out=tmp_path, data=missing, notebooks=["01"], progress=False)
    _assert_short_setup_error(tmp_path / "smoke.failed", "01_dataset.ipynb",
                              r"DataError: training data folder .*no-such-data")
    assert not (tmp_path / "smoke").exists()  # there was no previous report
    rep = json.loads((tmp_path / "smoke.failed" / "metrics.json").read_text())["_report"]
    assert rep["status"] == "failed" and rep["failed"]["notebook"] == "01_dataset.ipynb"


def _old_report(report_dir):
    """A previous report: notebook, HTML, metrics, a figure, a run file."""
    (report_dir / "figures").mkdir(parents=True)
    (report_dir / "runs" / "resnet50").mkdir(parents=True)
    (report_dir / "01_dataset.ipynb").write_text('{"old": true}')
    (report_dir / "01_dataset.html").write_text("<p>old</p>")
    (report_dir / "metrics.json").write_text(json.dumps({"_report": {"status": "ok"}, "nb01": {"n": 1},
                                                         "nb05": {"acc": 0.5}}))
    (report_dir / "figures" / "nb01_x.png").write_bytes(b"png")
    (report_dir / "runs" / "resnet50" / "model.keras").write_bytes(b"model")
    return _snapshot(report_dir)


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _notebook_folder(folder, *, fail: bool, name="01_tiny.ipynb"):
    """A course folder with one tiny notebook that writes REPORT_DIR/made.txt (and then fails, if asked)."""
    folder.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell("PROFILE = 'cpu'\nREPORT_DIR = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import pathlib\npathlib.Path(REPORT_DIR, 'made.txt').write_text(PROFILE)\nprint('got this far', PROFILE)")]
    if fail:
        nb.cells += [nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
                     nbformat.v4.new_code_cell("print('never')")]
    nbformat.write(nb, folder / name)
    return folder


def test_failing_notebook_keeps_the_previous_report_and_the_failed_run(tmp_path, capfd):
    folder = _notebook_folder(tmp_path / "nbs", fail=True, name="01_broken.ipynb")
    old = _old_report(tmp_path / "out" / "smoke")
    with pytest.raises(NotebookFailed) as info:
        run_report("smoke", out=tmp_path / "out", folder=folder)
    msg = str(info.value)
    assert "01_broken.ipynb failed in cell [" in msg and "ValueError: broken on purpose" in msg
    failed = tmp_path / "out" / "smoke.failed"
    assert f"partial output kept in {failed / '01_broken.ipynb'}" in msg
    assert _snapshot(tmp_path / "out" / "smoke") == old  # the previous report, untouched
    executed = failed / "01_broken.ipynb"
    assert "got this far smoke" in _outputs(executed) and "never" not in _outputs(executed)
    assert executed.with_suffix(".html").is_file() and (failed / "made.txt").read_text() == "smoke"
    assert not (tmp_path / "out" / "smoke.previous").exists()
    out, err = capfd.readouterr()
    assert re.search(r"^\[1/1\] 01_broken.ipynb: running$", out, re.M), out
    assert re.search(r"^\[1/1\] 01_broken.ipynb: failed in \d+\.\d s \(4 code cells\)$", out, re.M), out
    assert f"the previous report in {tmp_path / 'out' / 'smoke'} is unchanged" in out
    assert "without encryption" not in err and "frozen modules" not in err, err


def test_complete_report_replaces_the_previous_one(tmp_path, capfd):
    folder = _notebook_folder(tmp_path / "nbs", fail=False)
    _old_report(tmp_path / "out" / "smoke")
    (tmp_path / "out" / "smoke.failed").mkdir()  # from an earlier failure: left alone
    report_dir = run_report("smoke", out=tmp_path / "out", folder=folder)
    assert report_dir == tmp_path / "out" / "smoke"
    assert sorted(p.name for p in report_dir.iterdir()) == ["01_tiny.html", "01_tiny.ipynb", "made.txt",
                                                            "metrics.json"]
    assert json.loads((report_dir / "metrics.json").read_text())["_report"]["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["smoke", "smoke.failed"]
    out, err = capfd.readouterr()
    assert re.search(r"^\[1/1\] 01_tiny.ipynb: ok in \d+\.\d s \(2 code cells\)$", out, re.M), out
    assert "without encryption" not in err and "Kernel is running over TCP" not in err, err


def test_partial_report_keeps_the_other_notebooks_numbers(tmp_path):
    folder = _notebook_folder(tmp_path / "nbs", fail=False)
    _old_report(tmp_path / "out" / "smoke")
    report_dir = run_report("smoke", out=tmp_path / "out", folder=folder, notebooks=["01"], progress=False)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert "nb01" not in metrics and metrics["nb05"] == {"acc": 0.5}  # 01's old numbers dropped, 05's kept
    assert (report_dir / "runs" / "resnet50" / "model.keras").read_bytes() == b"model"
    assert (report_dir / "made.txt").is_file() and not (tmp_path / "out" / "smoke.previous").exists()


def test_a_report_killed_mid_run_is_recovered(tmp_path):
    folder = _notebook_folder(tmp_path / "nbs", fail=False)
    old = _old_report(tmp_path / "out" / "smoke.previous")  # what a killed run leaves behind
    (tmp_path / "out" / "smoke").mkdir()
    (tmp_path / "out" / "smoke" / "half.txt").write_text("killed")
    with pytest.raises(ParameterError):  # a refused run touches nothing, not even the leftovers
        run_report("smoke", out=tmp_path / "out", folder=folder, extra=["NOPE=1"])
    assert (tmp_path / "out" / "smoke.previous").is_dir() and (tmp_path / "out" / "smoke" / "half.txt").is_file()
    run_report("smoke", out=tmp_path / "out", folder=folder, notebooks=["01"], progress=False)
    assert (tmp_path / "out" / "smoke.failed" / "half.txt").read_text() == "killed"
    report = _snapshot(tmp_path / "out" / "smoke")
    assert report["runs/resnet50/model.keras"] == old["runs/resnet50/model.keras"] and "made.txt" in report
    assert not (tmp_path / "out" / "smoke.previous").exists()


def test_report_backbones_cpu_one_pretrained_run_gpu_both(monkeypatch):
    import dataclasses

    from aslnb.course.report import report_backbones
    from aslnb.models import get_backbone, registry

    spec = get_backbone("resnet50")
    for ok, first in ((False, "efficientnet_lite0"), (True, "resnet50")):
        monkeypatch.setitem(registry._REGISTRY, "resnet50", dataclasses.replace(spec, imagenet_status=lambda ok=ok: (ok, "")))
        assert report_backbones("cpu") == [first]  # no random-weight ResNet50 run on a CPU
        assert report_backbones("gpu")[0] == first and set(report_backbones("gpu")) == {"resnet50", "efficientnet_lite0"}
    jobs = plan("cpu", notebooks=["04"])
    assert [j["name"] for j in jobs] == ["04_finetune_resnet50.ipynb"] and jobs[0]["parameters"]["BACKBONE"] == "resnet50"
    jobs = plan("cpu", notebooks=["04"], extra=["BACKBONE=auto"])
    assert [j["name"] for j in jobs] == ["04_finetune_resnet50.ipynb"] and jobs[0]["parameters"]["BACKBONE"] == "resnet50"


def test_plan_with_one_backbone_runs_04_once(tmp_path):
    jobs = plan("smoke", out=tmp_path, notebooks=["04"], extra=["BACKBONE=efficientnet_lite0"])
    assert [j["name"] for j in jobs] == ["04_finetune_efficientnet_lite0.ipynb"]
    assert jobs[0]["parameters"]["BACKBONE"] == "efficientnet_lite0"


def test_a_partial_run_keeps_the_full_runs_record_of_the_other_notebooks(tmp_path):
    from aslnb.course.report import _write_report_block

    metrics = tmp_path / "metrics.json"
    jobs = [{"name": n, "parameters": {"PROFILE": "smoke"}} for n in ("01_dataset.ipynb", "05_results.ipynb")]
    _write_report_block(metrics, "smoke", jobs, 0.0, {"01_dataset.ipynb": 10.0, "05_results.ipynb": 50.0}, None, 60)
    _write_report_block(metrics, "smoke", jobs[:1], 0.0, {"01_dataset.ipynb": 12.0}, None, 60)
    block = json.loads(metrics.read_text())["_report"]
    assert block["notebook_seconds"] == {"05_results.ipynb": 50.0, "01_dataset.ipynb": 12.0}
    assert set(block["parameters"]) == {"01_dataset.ipynb", "05_results.ipynb"} and block["last_run"] == ["01_dataset.ipynb"]


# ---------------------------------------------------------------- issue 25, case 15: -p values no notebook uses
def test_a_parameter_no_notebook_to_run_reads_is_refused(tmp_path):
    """``-p IMAGE_SIZE=64`` for notebooks 01 and 02 (which declare it but size their images by the profile's
    probe_size / residual_size) was accepted and ignored."""
    with pytest.raises(ParameterError, match=r"-p IMAGE_SIZE: notebooks 01_dataset.ipynb, 02_residual_learning"
                                             r".ipynb declare it but do not use it") as err:
        plan("smoke", out=tmp_path, notebooks=["01", "02"], extra=["IMAGE_SIZE=64"])
    assert "\n" not in str(err.value)
    with pytest.raises(ParameterError, match=r"-p EPOCHS: .*01_dataset.ipynb declare"):
        plan("smoke", out=tmp_path, notebooks=["01"], extra=["EPOCHS=2"])
    jobs = plan("smoke", out=tmp_path, notebooks=["02", "03"], extra=["IMAGE_SIZE=64"])  # 03 reads it
    assert [j["parameters"].get("IMAGE_SIZE") for j in jobs] == [64, 64]


@pytest.mark.parametrize("item, pattern", [("IMAGE_SIZE=1", r"IMAGE_SIZE=1: must be at least 32"),
                                           ("EPOCHS=0", r"EPOCHS=0: must be at least 1"),
                                           ("FINE_TUNE_EPOCHS=-1", r"FINE_TUNE_EPOCHS=-1: must be at least 0")])
def test_a_parameter_out_of_range_is_refused(tmp_path, item, pattern):
    with pytest.raises(ParameterError, match=pattern) as err:
        plan("smoke", out=tmp_path, extra=[item])
    assert str(err.value).startswith("-p ") and "\n" not in str(err.value)


# ---------------------------------------------------------------- lesson checks
def _check_notebook_folder(folder, *, holds: bool):
    """A course folder with one tiny notebook that records a lesson check through aslnb.course.checks."""
    folder.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell("PROFILE = 'cpu'\nREPORT_DIR = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from pathlib import Path\nfrom aslnb.course.checks import check\nfrom aslnb.course.notebook import NotebookRun\n"
        "run = NotebookRun('01', {'PROFILE': PROFILE, 'SEED': 0}, {}, Path('.'), None, Path(REPORT_DIR), Path('.'))\n"
        f"check(run, 'two beats one', {'2 > 1' if holds else '2 < 1'}, 'two vs one')")]
    nbformat.write(nb, folder / "01_check.ipynb")
    return folder


def test_a_check_that_does_not_hold_fails_a_strict_report_and_keeps_the_old_one(tmp_path, capfd):
    folder = _check_notebook_folder(tmp_path / "nbs", holds=False)
    old = _old_report(tmp_path / "out" / "smoke")
    with pytest.raises(ChecksFailed) as info:
        run_report("smoke", out=tmp_path / "out", folder=folder, strict=True)
    msg = str(info.value)
    assert "nb01: two beats one (two vs one)" in msg and "\n" not in msg, msg
    assert _snapshot(tmp_path / "out" / "smoke") == old  # the previous report, untouched
    failed = tmp_path / "out" / "smoke.failed"
    metrics = json.loads((failed / "metrics.json").read_text())
    assert metrics["nb01"]["checks"]["two beats one"] == {"holds": False, "detail": "two vs one"}
    assert metrics["_report"]["status"] == "failed"
    assert "check: two beats one: does NOT hold in this run (two vs one)" in _outputs(failed / "01_check.ipynb")
    assert not (tmp_path / "out" / "smoke.previous").exists()
    out, _ = capfd.readouterr()
    assert f"the previous report in {tmp_path / 'out' / 'smoke'} is unchanged" in out


def test_a_check_that_does_not_hold_is_only_printed_when_not_strict(tmp_path):
    folder = _check_notebook_folder(tmp_path / "nbs", holds=False)
    report_dir = run_report("smoke", out=tmp_path / "out", folder=folder, progress=False)
    assert "does NOT hold in this run" in _outputs(report_dir / "01_check.ipynb")
    assert json.loads((report_dir / "metrics.json").read_text())["_report"]["status"] == "ok"


def test_a_strict_report_whose_checks_hold_replaces_the_old_one(tmp_path):
    folder = _check_notebook_folder(tmp_path / "nbs", holds=True)
    _old_report(tmp_path / "out" / "smoke")
    report_dir = run_report("smoke", out=tmp_path / "out", folder=folder, strict=True, progress=False)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["nb01"]["checks"]["two beats one"]["holds"] is True and "nb05" not in metrics
    assert not (tmp_path / "out" / "smoke.failed").exists()


@pytest.mark.parametrize("argv, strict", [
    (["report"], True),
    (["report", "--profile", "cpu", "--data", "d", "--external", "e", "--notebooks", "01"], True),
    (["report", "--profile", "cpu", "-p", "EPOCHS=1"], False),
    (["report", "--profile", "cpu", "--weights", "none"], False),
    (["report", "--profile", "smoke"], False),
])
def test_the_cli_makes_only_the_committed_cpu_report_strict(monkeypatch, tmp_path, argv, strict):
    import aslnb.course.report as report
    from aslnb.cli import main

    seen = {}
    monkeypatch.setattr(report, "run_report", lambda *a, **kw: seen.update(kw) or tmp_path)
    assert main(argv) == 0
    assert seen["strict"] is strict


def test_the_committed_cpu_report_has_lesson_checks_and_all_hold():
    """Fails until reports/cpu is regenerated with the notebooks' checks (the coordinator does that)."""
    from aslnb.course.checks import failed_checks

    metrics = json.loads((course_notebooks()[0].parents[1] / "reports" / "cpu" / "metrics.json").read_text())
    recorded = {nb: sorted(section.get("checks", {})) for nb, section in metrics.items() if nb.startswith("nb")}
    assert recorded.get("nb01") and recorded.get("nb03"), recorded
    assert failed_checks(metrics) == []


def test_the_report_shows_no_library_noise(smoke_report):
    """No TqdmWarning ("IProgress not found": ipywidgets is a dependency), no TensorFlow retracing warning and
    none of TensorFlow's start-up notices (a course module that imports Keras before aslnb.course.notebook
    has hidden them) in any output of the report's notebooks."""
    from aslnb.backend import START_UP_NOTICES

    for notebook in sorted(smoke_report.glob("[0-9][0-9]_*.ipynb")):
        shown = _outputs(notebook)
        for noise in ("TqdmWarning", "IProgress not found", "triggered tf.function retracing", *START_UP_NOTICES):
            assert noise not in shown, (notebook.name, noise)


def test_the_committed_cpu_report_shows_no_start_up_notices():
    """The committed report's notebooks hold none of TensorFlow's start-up notices either (notebooks 02 and 03
    import Keras-importing course modules in their first import cell)."""
    from aslnb.backend import START_UP_NOTICES

    report = course_notebooks()[0].parents[1] / "reports" / "cpu"
    for notebook in sorted(report.glob("[0-9][0-9]_*.ipynb")):
        shown = _outputs(notebook)
        assert not [n for n in START_UP_NOTICES if n in shown], notebook.name


def test_the_report_names_no_path_of_this_machine(smoke_report):
    """metrics.json, the banners and every printed line name the data as $ASLNB_DATA (with its fingerprint),
    folders relative."""
    import os
    from pathlib import Path

    from aslnb.provenance import folder_fingerprint, repo_root

    machine = {str(smoke_report.parent), str(Path.home()), str(repo_root()), "/work/", "/tmp/",
               str(Path(os.environ["ASLNB_DATA"]).resolve())}
    metrics_text = (smoke_report / "metrics.json").read_text()
    produced = json.loads(metrics_text)["_produced_by"]["nb01"]
    assert produced["data"] == f"$ASLNB_DATA (fingerprint {folder_fingerprint(os.environ['ASLNB_DATA'])})"
    for notebook in sorted(smoke_report.glob("[0-9][0-9]_*.ipynb")):
        shown = _outputs(notebook)
        banner = shown[shown.index("aslnb notebook"):].split("\n  settings", 1)[0]
        assert "  data     : $ASLNB_DATA (fingerprint " in banner and "package  : aslnb " in banner, banner
        nb = json.loads(notebook.read_text())
        injected = "".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in nb["cells"]
                           if "injected-parameters" in c["metadata"].get("tags", []))
        papermill_meta = json.dumps(nb["metadata"].get("papermill"))
        assert "REPORT_DIR" in injected and "input_path" in papermill_meta
        for path in machine:
            assert path not in shown, (notebook.name, path, shown[max(0, shown.find(path) - 200):][:400])
            assert path not in metrics_text, path
            assert path not in injected and path not in papermill_meta, (notebook.name, path)


def _lane_jobs(*names):
    return [{"name": f"{n}_x.ipynb"} for n in names]


def test_run_lanes_runs_02_beside_the_others_and_05_after_both():
    import threading
    import time

    from aslnb.course.report import run_lanes

    events, beside_started = [], threading.Event()

    def run_one(job, tag):
        nb = job["name"][:2]
        events.append(("start", nb, tag))
        if nb == "02":
            beside_started.set()
            time.sleep(0.5)
        elif nb == "01":
            assert beside_started.wait(10), "02 did not start while 01 ran"
        events.append(("end", nb, tag))

    run_lanes(_lane_jobs("01", "02", "03", "06", "05"), run_one)
    order = [(kind, nb) for kind, nb, _ in events]
    assert order.index(("start", "05")) > max(order.index(("end", nb)) for nb in ("01", "02", "03", "06"))
    assert order.index(("start", "03")) > order.index(("end", "01"))  # the main lane keeps its order
    assert ("start", "05", "[5/5] 05_x.ipynb") in events


def test_run_lanes_raises_the_first_failure_and_runs_nothing_after_it():
    from aslnb.course.report import run_lanes

    ran = []

    def run_one(job, tag):
        if job["name"].startswith("02"):
            raise NotebookFailed("notebook 02_x.ipynb failed in cell [3]")
        ran.append(job["name"][:2])

    with pytest.raises(NotebookFailed, match="02_x.ipynb failed"):
        run_lanes(_lane_jobs("01", "02", "05"), run_one)
    assert "05" not in ran  # 05 (after both lanes) never starts

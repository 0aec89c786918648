"""``aslnb report``: run every notebook with papermill into ``<out>/<profile>/``.

A report folder holds the executed notebooks (notebook 04 once per backbone of :func:`report_backbones`, named
after it: ``04_finetune_efficientnet_lite0.ipynb``), an HTML rendering of each (images embedded), ``figures/``
(every figure as PNG, from the notebooks' ``save_fig``), ``runs/`` (the trained models: large, keep them out of
git) and ``metrics.json``: the numbers the notebooks recorded (``nb01`` ...) plus a ``_report`` block (profile,
parameters, versions, device, start/end time, seconds per notebook). Timings live only there and in fields named
``*seconds*`` / ``*per_second*``; every other number depends only on data, parameters and seed.

Every ``-p NAME=VALUE`` is checked (:mod:`.report_params`) before anything runs or is touched. The previous report
is kept until the new one is complete (:mod:`.report_folder`). A notebook that fails stops the report, and the
error names the notebook and the failing cell; a strict report (the committed ``cpu`` one: no ``-p``/``--weights``)
fails the same way when a lesson check recorded in metrics.json (:mod:`.checks`) does not hold. The notebooks run
in the final folder, so the paths printed in them and recorded in the runs are the report's own; in the order of
:func:`run_lanes`, with one progress line as each starts and ends. The kernel's transport chatter is dropped
(:mod:`.report_kernel`), its errors are not.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import EXIT_CHECKS_FAILED, EXIT_NOTEBOOK_FAILED, AslnbError, ParameterError
from ..config import profile as get_profile
from ..io import read_json, write_json
from ..backend import import_keras
from ..provenance import gpu_visible
from .report_folder import ReportFolder
from .report_kernel import KERNEL_ARGS, quiet_kernel
from .report_params import check_extras, parse_extra

# Longest time one cell may run, per profile (papermill has no limit by default).
CELL_TIMEOUT = {"smoke": 300, "cpu": 1800, "gpu": 3600}


def report_backbones(profile: str, weights: str | None = None) -> list[str]:
    """The backbones notebook 04 runs with in a report of ``profile``, one run each: ``BACKBONE="auto"`` resolved
    (:func:`aslnb.models.registry.auto_backbone`), then, except under ``cpu``, the other course backbones (``smoke``:
    the tests see every one through 04 and 05). Offline, ``cpu`` runs EfficientNet-Lite0 alone: a random-weight
    ResNet50 run teaches nothing notebook 03 does not show and costs minutes."""
    from ..models.registry import course_backbones, resolve_backbone

    first = resolve_backbone("auto", weights or get_profile(profile)["weights"])[0]
    others = [b for b in course_backbones() if b != first] if profile != "cpu" else []
    return [first, *others]


class NotebookFailed(AslnbError):
    """A notebook of the report raised an error; the message names the notebook and the cell."""

    exit_code = EXIT_NOTEBOOK_FAILED
    record: dict[str, Any] | None = None  # metrics.json's ``_report.failed``: notebook, cell, error


class ChecksFailed(AslnbError):
    """A strict report (the committed ``cpu`` one) ran, but a lesson check does not hold in it."""

    exit_code = EXIT_CHECKS_FAILED


def _check_lessons(metrics_path: Path, failed_dir: Path) -> None:
    """Raise :class:`ChecksFailed` naming every recorded lesson check of ``metrics_path`` that does not hold."""
    from .checks import failed_checks

    failed = failed_checks(read_json(metrics_path)) if metrics_path.is_file() else []
    if failed:
        raise ChecksFailed(f"lesson check(s) do not hold: {'; '.join(failed)} (the report's lessons rest on them; "
                           f"run kept in {failed_dir})")


def notebooks_dir() -> Path:
    """The course's ``notebooks/`` folder (next to the package in a source checkout)."""
    d = Path(__file__).resolve().parents[2] / "notebooks"
    if not d.is_dir():
        raise AslnbError(f"{d}: no notebooks folder; `aslnb report` runs from a source checkout (pip install -e .)")
    return d


#: The notebook whose ending ("What we found") reads every other notebook's metrics: a report runs it last.
RUNS_LAST = "05"
#: Notebooks a report runs one after the other in a second kernel, beside the rest (:func:`run_lanes`), on a
#: machine without a GPU (two kernels would each claim all of a GPU's memory). 02 and 06 read nothing the
#: others write (their own nets and runs; shared caches are written atomically) and only :data:`RUNS_LAST`
#: reads theirs. Measured on 2 cores: 02's small nets keep about 1.3 cores busy, 04's training and
#: evaluation about 1.5, so a second kernel gets what the first leaves idle.
BESIDE = ("02", "06")


def course_notebooks(folder: Path | None = None) -> list[Path]:
    """``notebooks/[0-9][0-9]_*.ipynb`` in the order a report runs them: by number, :data:`RUNS_LAST` last."""
    found = sorted((folder or notebooks_dir()).glob("[0-9][0-9]_*.ipynb"))
    return sorted(found, key=lambda p: p.name[:2] == RUNS_LAST)


def plan(profile: str, *, out: str | os.PathLike = "reports", data=None, external=None, weights: str | None = None,
         notebooks: Iterable[str] | None = None, extra=None, folder: Path | None = None) -> list[dict[str, Any]]:
    """The notebook runs of a report, in order: ``{"source", "name", "parameters"}`` each."""
    import papermill

    get_profile(profile)  # refuses an unknown profile
    report_dir = Path(out).expanduser().resolve() / profile
    sources = course_notebooks(folder)
    if not sources:
        raise AslnbError(f"{folder or notebooks_dir()}: no notebooks named NN_*.ipynb")
    if notebooks:
        wanted = [str(n).strip() for n in notebooks if str(n).strip()]
        known = {p.name[:2]: p for p in sources}
        bad = [n for n in wanted if n[:2] not in known]
        if bad:
            raise ParameterError(f"--notebooks {','.join(bad)}: unknown; choose from {','.join(sorted(known))}")
        sources = [p for p in sources if p.name[:2] in {n[:2] for n in wanted}]
    extras = parse_extra(extra)
    if extras.get("BACKBONE") == "auto":  # -p BACKBONE=auto: the backbone it resolves to, named in the file
        extras["BACKBONE"] = report_backbones(profile, weights)[0]
    declared = {p: set(papermill.inspect_notebook(str(p))) for p in sources}
    check_extras(extras, set().union(*declared.values()), [p.name for p in sources])
    base: dict[str, Any] = {"PROFILE": profile, "REPORT_DIR": str(report_dir)}
    if data:
        base["DATA_DIR"] = str(Path(data).expanduser().resolve())
    if external:
        base["EXTERNAL_DIR"] = str(Path(external).expanduser().resolve())
    if weights:
        base["WEIGHTS"] = weights
    jobs = []
    for src in sources:
        # An extra goes to the notebooks that declare it (check_extras refused the others).
        params = {**base, **{k: v for k, v in extras.items() if k in declared[src]}}
        if src.name.startswith("04_") and "BACKBONE" in declared[src]:  # one run per backbone, named after it
            backbones = [extras["BACKBONE"]] if "BACKBONE" in extras else report_backbones(profile, weights)
            jobs += [{"source": src, "name": f"04_finetune_{b}.ipynb", "parameters": {**params, "BACKBONE": b}}
                     for b in backbones]
        else:
            jobs.append({"source": src, "name": src.name, "parameters": params})
    return jobs


def to_html(notebook: Path) -> Path:
    """``notebook`` rendered as a standalone HTML file next to it (images embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.embed_images = True
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _failure(name: str, exc: Exception, dest: Path) -> NotebookFailed:
    """:class:`NotebookFailed` naming notebook ``name``, the failing cell (when known), ``exc`` and ``dest`` (where
    its partial output is kept); its ``record`` holds the same for metrics.json."""
    from papermill.exceptions import PapermillExecutionError

    in_cell = isinstance(exc, PapermillExecutionError)  # else kernel death, timeout...
    cell = exc.exec_count if in_cell else None
    ename, evalue = (exc.ename, exc.evalue) if in_cell else (exc.__class__.__name__, str(exc))
    first = str(evalue).strip().splitlines()[0] if str(evalue).strip() else ""
    where = f"cell [{cell}]" if cell is not None else "a cell"
    failure = NotebookFailed(f"notebook {name} failed in {where}: {ename}: {first[:400]} "
                             f"(partial output kept in {dest})")
    failure.record = {"notebook": name, "cell": cell, "error": f"{ename}: {evalue}"}
    return failure


def run_report(profile: str = "cpu", out: str | os.PathLike = "reports", data=None, external=None,
               weights: str | None = None, notebooks: Iterable[str] | None = None, extra=None, *,
               timeout: int | None = None, kernel_name: str = "python3", folder: Path | None = None,
               progress: bool = True, strict: bool = False) -> Path:
    """Run the course notebooks with papermill; return the report folder ``<out>/<profile>``.

    Every argument is checked first; the previous report is replaced only when all notebooks succeed
    and, when ``strict`` (the committed report: ``cpu`` without parameter overrides), every lesson
    check recorded in metrics.json holds (:class:`ChecksFailed` otherwise).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # the kernel's debugger "frozen modules" notice
    jobs = plan(profile, out=out, data=data, external=external, weights=weights, notebooks=notebooks, extra=extra,
                folder=folder)
    report_dir = Path(out).expanduser().resolve() / profile
    target = ReportFolder(report_dir)
    target.open(whole=notebooks is None)
    metrics_path = report_dir / "metrics.json"
    if notebooks is not None:
        _forget(metrics_path, {f"nb{j['name'][:2]}" for j in jobs})
    timeout = timeout or CELL_TIMEOUT.get(profile, 1800)
    beside = side_by_side()
    started = time.time()
    seconds: dict[str, float] = {}
    failed = None
    ok = False
    try:
        with quiet_kernel():
            run_lanes(jobs, lambda job, tag: _run_notebook(job, tag, target, folder or notebooks_dir(),
                                                           kernel_name, timeout, seconds, progress),
                      beside=beside)
        if strict:
            _check_lessons(metrics_path, target.failed)
        ok = True
    except (NotebookFailed, ChecksFailed) as exc:
        failed = exc.record if isinstance(exc, NotebookFailed) else {"notebook": None, "cell": None, "error": str(exc)}
        raise
    finally:
        try:
            _write_report_block(metrics_path, profile, jobs, started, seconds, failed, timeout, beside)
        finally:
            after = target.close(ok=ok)
            if after:
                _say(progress, after)
    return report_dir


def side_by_side() -> tuple[str, ...]:
    """:data:`BESIDE` on a machine without a GPU, else none (each kernel would claim all of the GPU's memory)."""
    import_keras()  # TensorFlow, its start-up notices dropped
    return () if gpu_visible() else BESIDE


def run_lanes(jobs: list[dict[str, Any]], run_one: Callable[[dict[str, Any], str], None], *,
              beside: tuple[str, ...] = BESIDE) -> None:
    """``run_one(job, "[i/n] name")`` for every job of :func:`plan`: those of ``beside`` (notebook numbers) in
    order in a second thread, the others in order here, then :data:`RUNS_LAST` once both are done. A failure in
    either lane is raised after the other lane's current notebook has finished (a kernel is not stopped
    half-way); Ctrl-C stops at once."""
    tagged = [(job, f"[{i}/{len(jobs)}] {job['name']}") for i, job in enumerate(jobs, 1)]
    side = [t for t in tagged if t[0]["name"][:2] in beside]
    last = [t for t in tagged if t[0]["name"][:2] == RUNS_LAST and t not in side]
    main = [t for t in tagged if t not in side and t not in last]
    errors: list[BaseException] = []

    def run(items: list[tuple[dict[str, Any], str]]) -> None:
        for job, tag in items:
            if errors:
                return
            try:
                run_one(job, tag)
            except Exception as exc:  # noqa: BLE001 - raised by the main thread below
                errors.append(exc)

    second = threading.Thread(target=run, args=(side,), name="aslnb-report-beside", daemon=True)
    second.start()
    run(main)
    second.join()
    run(last)
    if errors:
        raise errors[0]


def _run_notebook(job: dict[str, Any], tag: str, target: ReportFolder, cwd: Path, kernel_name: str, timeout: int,
                  seconds: dict[str, float], progress: bool) -> None:
    """Execute one job of :func:`plan` into ``target`` (with its HTML), recording its time in ``seconds``;
    a failure raises :class:`NotebookFailed` whose ``record`` names the notebook, the cell and the error."""
    import papermill

    name, dest = job["name"], target.path / job["name"]
    _say(progress, f"{tag}: running")
    t0, done = time.perf_counter(), False
    try:
        papermill.execute_notebook(
            str(job["source"]), str(dest), parameters=job["parameters"], kernel_name=kernel_name, cwd=str(cwd),
            log_output=False, progress_bar=False, execution_timeout=timeout, extra_arguments=list(KERNEL_ARGS),
        )
        done = True
    except Exception as exc:  # noqa: BLE001 - a cell's error; kernel death, timeout: name the notebook
        raise _failure(name, exc, target.failed / name) from exc
    finally:
        seconds[name] = round(time.perf_counter() - t0, 1)
        if dest.is_file():
            if done:  # a failed notebook is this machine's diagnosis: it keeps the paths its error names
                portable_paths(dest, _path_parameters(job["parameters"]))
            to_html(dest)
        _say(progress, f"{tag}: {'ok' if done else 'failed'} in {seconds[name]:.1f} s "
                       f"({_code_cells(job['source'])} code cells)")


def portable_paths(notebook: Path, extra: dict[str, str] | None = None) -> None:
    """Rewrite ``notebook`` with portable paths (``$ASLNB_DATA``, ``./reports/cpu``:
    :func:`aslnb.provenance.portable`, ``extra`` first), never this machine's: the papermill-injected
    parameters cell, the papermill metadata and every printed output (log lines, tables)."""
    import nbformat

    from ..provenance import portable

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = portable(cell.source, extra)
        for out in cell.get("outputs", []):
            if "text" in out:  # stream
                out["text"] = portable(out["text"], extra)
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in out.get("data", {}):
                    out["data"][mime] = portable(out["data"][mime], extra)
    if "papermill" in nb.metadata:
        nb.metadata["papermill"] = portable(dict(nb.metadata["papermill"]), extra)
    nbformat.write(nb, notebook)


def _path_parameters(parameters: dict[str, Any]) -> dict[str, str]:
    """``{folder: portable name}`` of the data folders a report was given (``--data``, ``--external``)."""
    names = {"DATA_DIR": "$ASLNB_DATA", "EXTERNAL_DIR": "$ASLNB_EXTERNAL_DATA"}
    return {parameters[k]: name for k, name in names.items() if parameters.get(k)}


def _say(progress: bool, line: str) -> None:
    if progress:  # one write per line: the two lanes of run_lanes print from two threads
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _code_cells(notebook: Path) -> int:
    import nbformat

    if not notebook.is_file():
        return 0
    return sum(c.cell_type == "code" for c in nbformat.read(notebook, as_version=4).cells)


def _forget(metrics_path: Path, sections: set[str]) -> None:
    """Drop the old numbers of the notebooks about to run (a partial report keeps the others)."""
    if not metrics_path.is_file():
        return
    data = read_json(metrics_path)
    for s in sections:
        data.pop(s, None)
        data.get("_produced_by", {}).pop(s, None)
    write_json(metrics_path, data)


def _write_report_block(metrics_path: Path, profile: str, jobs: list[dict], started: float,
                        seconds: dict[str, float], failed: dict | None, timeout: int,
                        beside: tuple[str, ...] = ()) -> None:
    from ..models.registry import course_backbones, default_backbone, resolve_weights, weights_source
    from ..provenance import device_name, portable, versions

    data = read_json(metrics_path) if metrics_path.is_file() else {}
    settings = get_profile(profile)
    study = default_backbone()
    r50_weights = next((j["parameters"].get("WEIGHTS") for j in jobs
                        if j["parameters"].get("BACKBONE", study) == study and "WEIGHTS" in j["parameters"]),
                       None) or settings["weights"]
    block: dict[str, Any] = {
        "profile": profile,
        "profile_settings": settings,
        f"{study}_weights": weights_source(study, r50_weights),
        "parameters": {j["name"]: dict(j["parameters"]) for j in jobs},
        "versions": versions(),
        "device": device_name(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notebook_seconds": seconds,
        # run in a second kernel beside the others: their seconds overlap the others'
        "run_beside": [j["name"] for j in jobs if j["name"][:2] in beside],
        "cell_timeout_seconds": timeout,
        "status": "failed" if failed else "ok",
    }
    if failed:
        block["failed"] = failed
    old = data.get("_report") or {}
    if old.get("profile") == profile and old.get("status") == "ok":
        # A run of some notebooks (--notebooks) keeps what the last full run recorded for the others.
        for key in ("parameters", "notebook_seconds"):
            block[key] = {**{k: v for k, v in old.get(key, {}).items() if k not in block[key]}, **block[key]}
        block["last_run"] = sorted(seconds)
    if resolve_weights(study, r50_weights)[0] == "none":
        block["NOTE"] = (f"{study} ran WITHOUT ImageNet weights (weights 'none': random initialisation). Its numbers "
                         f"are a no-pretraining baseline, not the study's transfer learning; the "
                         f"{course_backbones()[1]} run uses real ImageNet weights.")
    # The block goes first, so the note is the first thing a reader of metrics.json sees; paths as
    # $ASLNB_DATA, ./reports/cpu ...: never the machine's (provenance.portable).
    write_json(metrics_path, portable({"_report": block, **{k: v for k, v in data.items() if k != "_report"}}))

"""Helpers for the notebooks: parameter checks, the run banner, figures, recorded numbers.

Every notebook has a cell tagged ``parameters`` with UPPER_CASE names, and
then calls :func:`setup`, which refuses unknown names (a papermill ``-p`` typo),
wrong types and missing data folders with one short message instead of a deep
traceback, resolves the profile, and prints the run banner.

Numbers that go into the report are passed to :func:`record`, which prints
them and writes them to ``<REPORT_DIR>/metrics.json``, so the report and the
notebooks cannot disagree.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from .. import __version__
from ..backend import import_keras
from ..config import TrainConfig, train_params
from ..config import profile as get_profile
from ..errors import ParameterError
from ..evaluate import evaluate
from ..io import read_json, write_json
from ..provenance import data_label, device_name, gpu_visible, portable
from ..settings import EXTERNAL_ENV, cache_dir, resolve_data_dir, resolve_external_dir
from ..train import train
from .colab import ensure_data, on_colab, resolve_profile
from .plots import stamp as add_stamp

# lazy: aslnb.models.registry imports Keras; in a notebook it must come after import_keras() below, which hides
# TensorFlow's start-up notices.

if "ipykernel" in sys.modules:
    # In a notebook, import Keras now, dropping the start-up notices TensorFlow's C++
    # prints regardless of TF_CPP_MIN_LOG_LEVEL (see aslnb.backend).
    import_keras()

#: The lock file beside a report's metrics.json: :func:`record` holds it while it reads, adds and writes.
METRICS_LOCK = ".metrics.json.lock"

# The parameters every notebook declares (its parameters cell holds exactly these
# plus the notebook's own, listed in NOTEBOOK_PARAMS). tests/test_notebooks.py checks it.
COMMON_PARAMS: dict[str, tuple[type, ...]] = {
    "PROFILE": (str,), "DATA_DIR": (str, type(None)), "EXTERNAL_DIR": (str, type(None)),
    "REPORT_DIR": (str, type(None)), "SEED": (int,), "WEIGHTS": (str, type(None)),
    "IMAGE_SIZE": (int, type(None)), "EPOCHS": (int, type(None)),
}
NOTEBOOK_PARAMS: dict[str, dict[str, tuple[type, ...]]] = {
    "01": {}, "02": {}, "03": {"BACKBONE": (str,)}, "04": {"RUN_DIR": (str, type(None)), "BACKBONE": (str,),
                                         "FINE_TUNE_EPOCHS": (int, type(None))},
    "05": {"RUN_DIR": (str, type(None))}, "06": {},
}


@dataclass
class NotebookRun:
    """What :func:`setup` resolved: parameters, profile settings, paths."""

    notebook: str
    params: dict[str, Any]
    settings: dict[str, Any]
    data_dir: Path
    external_dir: Path | None
    report_dir: Path | None
    fig_dir: Path
    started: float = field(default_factory=time.time)
    backbone_why: str = ""  # why BACKBONE 'auto' became the backbone it did (empty when one was named)

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]

    def stamp(self, what: str | None = None) -> str:
        """One line naming what produced a figure or number.

        ``what``: the model(s) and image size, e.g. ``"efficientnet_lite0 ImageNet · 128px"``
        (default: the profile's image size and weights setting).
        """
        s = self.settings
        what = what or f"{s['image_size']}px · weights {s['weights']}"
        return f"aslnb nb{self.notebook} · profile {self.params['PROFILE']} · {what} · seed {self.params['SEED']}"


def check_types(values: dict[str, Any], spec: dict[str, tuple[type, ...]]) -> None:
    """Raise :class:`ParameterError` naming the first parameter whose value is not of its ``spec`` types."""
    for name, value in values.items():
        types = spec[name]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise ParameterError(f"parameter {name}={value!r}: expected {want}, got {type(value).__name__}")


def setup(notebook: str, namespace: dict[str, Any], *, need_external: bool = False) -> NotebookRun:
    """Validate the notebook's parameters (UPPER_CASE names in ``namespace``) and print the banner."""
    spec = {**COMMON_PARAMS, **NOTEBOOK_PARAMS[notebook]}
    given = {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_") and k not in _IGNORED}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)} for notebook {notebook}; "
                             f"known: {', '.join(sorted(spec))}")
    missing = sorted(set(spec) - set(given))
    if missing:
        raise ParameterError(f"parameter(s) {', '.join(missing)} not defined: run the parameters cell first")
    check_types(given, spec)
    from ..models.registry import AUTO_BACKBONE, backbone_names, resolve_backbone

    if "BACKBONE" in given and given["BACKBONE"] not in (AUTO_BACKBONE, *backbone_names()):
        raise ParameterError(f"parameter BACKBONE={given['BACKBONE']!r}: choose one of "
                             f"{', '.join((AUTO_BACKBONE, *backbone_names()))}")
    given["PROFILE"], note = resolve_profile(given["PROFILE"])
    if note:
        print(note)
    settings = get_profile(given["PROFILE"])
    for key, pname in (("weights", "WEIGHTS"), ("image_size", "IMAGE_SIZE"), ("epochs", "EPOCHS"),
                       ("fine_tune_epochs", "FINE_TUNE_EPOCHS")):
        if given.get(pname) is not None:
            settings[key] = given[pname]
    why = ""
    if "BACKBONE" in given:  # 'auto': ResNet50 where its ImageNet weights are at hand, else EfficientNet-Lite0
        given["BACKBONE"], why = resolve_backbone(given["BACKBONE"], settings["weights"])
    data_dir = ensure_data(given["DATA_DIR"]) or resolve_data_dir(given["DATA_DIR"])
    external_dir = resolve_external_dir(given["EXTERNAL_DIR"], required=need_external)
    report_dir = Path(given["REPORT_DIR"]) if given["REPORT_DIR"] else None
    fig_dir = (report_dir / "figures") if report_dir else Path("figures")
    import keras

    keras.utils.set_random_seed(given["SEED"])
    _display_options()
    run = NotebookRun(notebook, given, settings, data_dir, external_dir, report_dir, fig_dir,
                      backbone_why=why)
    print(banner(run))
    if run.backbone_why:
        print(run.backbone_why)
    return run


_IGNORED = {"In", "Out"}


def _display_options() -> None:
    """Tables show their row labels and cells whole (pandas cuts them at 50 characters by default); TensorFlow's
    Python warnings about its own tracing ("triggered tf.function retracing": each new model traces its
    functions once) stay out of the lesson's outputs, its errors do not."""
    import logging

    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def banner(run: NotebookRun) -> str:
    """The run banner: device, backend, weights, data, profile."""
    import keras

    from ..models.registry import course_backbones, resolve_weights, run_weights, weights_source

    s = run.settings
    study, *others = course_backbones()
    weights = f"{study} {weights_source(study, s['weights'])}" + "".join(
        f"; {b} {weights_source(b, run_weights(b, s['weights']))}" for b in others)
    lines = [
        f"aslnb notebook {run.notebook} · profile {run.params['PROFILE']}" + (" · Colab" if on_colab() else ""),
        f"  device   : {device_name()}",
        f"  backend  : keras {keras.__version__} on {keras.backend.backend()} · python {platform.python_version()}",
        f"  package  : aslnb {__version__} ({portable(str(Path(__file__).resolve().parents[1]))})",
        f"  weights  : {weights}",
        f"  data     : {data_label(run.data_dir)}",
        f"  external : {data_label(run.external_dir)}",
        f"  settings : image {s['image_size']}px · epochs {s['epochs']} · batch {s['batch_size']} · "
        f"per class {s['limit_per_class'] or 'all'} · seed {run.params['SEED']}",
    ]
    if run.params.get("BACKBONE", study) == study and resolve_weights(study, s["weights"])[0] == "none":
        lines.append(f"  NOTE     : {study} runs WITHOUT ImageNet pretraining here (weights 'none'): "
                     "its numbers are a no-pretraining baseline.")
    if not gpu_visible() and run.params["PROFILE"] == "gpu":
        lines.append("  WARNING  : profile 'gpu' but no GPU found: this will be slow")
    return portable("\n".join(lines))  # no path of this machine (the weights line may name the Keras cache)


def save_fig(run: NotebookRun, fig, name: str, *, stamp: bool = True, what: str | None = None) -> Path:
    """Save ``fig`` as ``<fig_dir>/nb<NN>_<name>.png``, stamped with what produced it (``what``: see
    :meth:`NotebookRun.stamp`)."""
    run.fig_dir.mkdir(parents=True, exist_ok=True)
    if stamp:
        add_stamp(fig, run.stamp(what))
    path = run.fig_dir / f"nb{run.notebook}_{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def record(run: NotebookRun, key: str, value: Any, *, show: bool = True) -> Any:
    """Print ``key = value`` and store it under ``nb<NN>.<key>`` in the report's metrics.json."""
    if show:
        print(f"{key} = {json.dumps(value, default=str) if not isinstance(value, float) else f'{value:.4f}'}")
    if run.report_dir is None:
        return value
    path = run.report_dir / "metrics.json"
    with FileLock(run.report_dir / METRICS_LOCK):  # a report runs notebooks side by side (course.report.BESIDE)
        data = read_json(path) if path.is_file() else {}
        section = data.setdefault(f"nb{run.notebook}", {})
        section[key] = portable(value)  # paths as $ASLNB_DATA, ./reports/cpu ...: never this machine's
        data.setdefault("_produced_by", {})[f"nb{run.notebook}"] = {
            "profile": run.params["PROFILE"], "settings": run.settings, "seed": run.params["SEED"],
            "data": data_label(run.data_dir), "external": data_label(run.external_dir) if run.external_dir else None,
            "device": device_name(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(path, data)
    return value


def default_run_dir(run: NotebookRun, backbone: str, seed: int | None = None) -> Path:
    """Where notebook 04 saves (and 05 looks for) the run of ``backbone``.

    ``<REPORT_DIR>/runs/<profile>-<backbone>`` in a report, else
    ``runs/<profile>-<backbone>`` next to the notebook (git-ignored); a ``seed`` other than
    the notebook's SEED (the training-variance runs) adds ``-seed<N>``.
    """
    base = (run.report_dir / "runs") if run.report_dir else Path("runs")
    extra = "" if seed is None or seed == run.params["SEED"] else f"-seed{seed}"
    return base / f"{run.params['PROFILE']}-{backbone}{extra}"


def feature_cache_dir() -> Path:
    """The shared feature cache (``<aslnb cache>/features``): 03, 04 and 05 reuse each other's features."""
    return cache_dir() / "features"


def train_kwargs(run: NotebookRun, backbone: str, seed: int | None = None) -> dict[str, Any]:
    """The :func:`aslnb.train.train` parameters of this notebook run (profile + overrides).

    WEIGHTS applies to the notebook's own BACKBONE (04) or to ResNet50 (05); the other
    backbone keeps its default (EfficientNet-Lite0: its offline ImageNet weights).
    ``seed``: another training seed (default: the SEED parameter).
    """
    from ..models.registry import default_backbone

    own = backbone == (run.params.get("BACKBONE") or default_backbone())
    seed = run.params["SEED"] if seed is None else seed
    return train_params(run.settings, backbone, seed=seed, weights=run.params["WEIGHTS"] if own else None)


def train_run(run: NotebookRun, backbone: str, run_dir: str | os.PathLike | None = None,
              *, verbose: int = 2, seed: int | None = None):
    """Train ``backbone`` with this run's settings (``seed``: another training seed) into ``run_dir``
    (replacing what is there)."""
    out = Path(run_dir) if run_dir else default_run_dir(run, backbone, seed)
    # The run scores the external set too when the profile uses all of it; with a per-class
    # limit (smoke) notebook 05 scores a limited external set itself.
    external = run.external_dir if run.settings.get("external_limit") is None else None
    with _external_env(external):
        result = train(run.data_dir, out, external=external, overwrite=True, verbose=verbose,
                       feature_cache_dir=feature_cache_dir(), **train_kwargs(run, backbone, seed))
        result.metrics = evaluate(out, run.data_dir, external=external, verbose=verbose, model=result.model,
                                  feature_cache_dir=feature_cache_dir())
    return result


@contextlib.contextmanager
def _external_env(external: Path | None):
    """Hide ``$ASLNB_EXTERNAL_DATA`` while ``external`` is None (train() falls back to it)."""
    saved = os.environ.pop(EXTERNAL_ENV, None) if external is None else None
    try:
        yield
    finally:
        if saved is not None:
            os.environ[EXTERNAL_ENV] = saved


def run_matches(run: NotebookRun, run_dir: str | os.PathLike, backbone: str,
                seed: int | None = None) -> bool:
    """True when ``run_dir`` holds a finished run trained with exactly this run's settings (and ``seed``) and data."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file() or not (run_dir / "metrics.json").is_file():
        return False
    try:
        cfg = read_json(run_dir / "config.json")
    except (OSError, ValueError):
        return False
    want = dataclasses.asdict(TrainConfig.from_params(**train_kwargs(run, backbone, seed)))
    return cfg.get("params") == want and Path(cfg.get("data", {}).get("root", "")) == run.data_dir


def ensure_run(run: NotebookRun, backbone: str, run_dir: str | os.PathLike | None = None,
               *, train_if_missing: bool = True, seed: int | None = None) -> Path | None:
    """The run folder of ``backbone``: reused when it matches this run's settings, else trained now
    (when ``train_if_missing``; otherwise None).

    An explicit ``run_dir`` (the RUN_DIR parameter) holding a finished run is used as it is,
    whatever its settings: it is never retrained over. ``seed``: another training seed.
    """
    out = Path(run_dir) if run_dir else default_run_dir(run, backbone, seed)
    if run_dir and (out / "model.keras").is_file():
        print(f"{backbone}: using the run in {out} as given (RUN_DIR)")
        return out
    if run_matches(run, out, backbone, seed):
        print(f"{backbone}: reusing the run in {out}")
        return out
    if not train_if_missing:
        print(f"{backbone}: no matching run in {out}; skipped (run notebook 04 with BACKBONE={backbone!r})")
        return None
    print(f"{backbone}: no matching run in {out}; training it now with the profile's settings")
    train_run(run, backbone, out, seed=seed)
    return out

"""Reading a run directory back: config, labels, and the model in safe mode."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from .config import TrainConfig
from .data.scan import drop_bad_images, scan_folder
from .data.splits import Split, limit_folder, split_folder
from .errors import ModelError, RunDirError
from .provenance import FORMAT_VERSION
from .io import read_json


def load_labels(run_dir: str | os.PathLike) -> list[str]:
    run_dir = Path(run_dir)
    path = run_dir / "labels.json"
    if not path.is_file():
        raise RunDirError(f"{path}: missing; {run_dir} is not a finished run directory (train one with `aslnb train`)")
    try:
        return list(read_json(path)["class_names"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: unreadable label map ({exc}); retrain or restore the file") from None


def load_config(run_dir: str | os.PathLike) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunDirError(f"{path}: missing; {run_dir} is not a run directory (train one with `aslnb train`)")
    try:
        cfg = read_json(path)
    except ValueError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None
    if cfg.get("format_version") != FORMAT_VERSION:
        raise RunDirError(
            f"{path}: run format {cfg.get('format_version')!r}, this aslnb reads {FORMAT_VERSION}; retrain with this version"
        )
    return cfg


def load_model(path: str | os.PathLike, class_names: list[str] | None = None):
    """Load a ``.keras`` file in Keras safe mode (no code from the file is run).

    Refuses, with one clear line: a missing or corrupt file, a file with
    ``Lambda`` layers or unknown classes (safe mode), and a model whose output
    size differs from ``class_names``.
    """
    import keras

    from . import models  # noqa: F401 - registers the custom layers (CaffePreprocess)
    from .models import efficientnet_lite  # noqa: F401 - registers EfficientNetLitePreprocess

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: missing; train a model first (`aslnb train --out {path.parent}`)")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras model file (corrupt or truncated); retrain or restore it")
    refused = ModelError(
        f"{path}: refused by Keras safe mode, it contains code (a Lambda layer or a serialized function) that "
        "would run on loading; only load models you trained yourself with aslnb"
    )
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - corrupt archives raise many kinds
        chain = []
        e: BaseException | None = exc
        while e is not None and len(chain) < 10:
            chain.append(str(e))
            e = e.__cause__ or e.__context__
        # Safe mode's own error is sometimes wrapped (a Lambda inside a Sequential comes out as a
        # TypeError "could not be deserialized"), so the archive's config is checked as well.
        if any("safe_mode" in t or "Lambda" in t or "lambda" in t for t in chain) or _holds_code(path):
            raise refused from None
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelError(f"{path}: cannot be loaded ({exc.__class__.__name__}: {first}); "
                         "the file is corrupt or from an incompatible version: retrain") from None
    if class_names is not None:
        n_out = model.output_shape[-1]
        if n_out != len(class_names):
            raise ModelError(
                f"{path}: predicts {n_out} classes but labels.json lists {len(class_names)}; the run directory mixes "
                "files from different runs"
            )
    return model


def _holds_code(path: Path) -> bool:
    """True when the archive's ``config.json`` has a Lambda layer or a serialized Python function."""
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read("config.json").decode("utf-8", "replace")
    except (KeyError, OSError, zipfile.BadZipFile, RuntimeError):
        return False  # left to Keras, which reports what is wrong
    try:
        config = json.loads(text)
    except ValueError:
        return False

    def walk(node) -> bool:
        if isinstance(node, dict):
            if node.get("class_name") in ("Lambda", "function", "__lambda__") or "__lambda__" in node:
                return True
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(config)


def load_run(run_dir: str | os.PathLike):
    """``(model, class_names, config)`` of a finished run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory; train one with `aslnb train --out {run_dir}`")
    cfg = load_config(run_dir)
    names = load_labels(run_dir)
    return load_model(run_dir / "model.keras", names), names, cfg


def prepare_split(data_dir: Path, cfg: TrainConfig) -> Split:
    """Scan, drop undecodable files (with a warning each), limit, split."""
    folder = drop_bad_images(scan_folder(data_dir))
    folder = limit_folder(folder, cfg.limit_per_class)
    return split_folder(folder, cfg.split, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                        seed=cfg.seed)

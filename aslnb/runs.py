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
    """The run's class names from ``labels.json``: a list of distinct, non-empty strings."""
    run_dir = Path(run_dir)
    path = run_dir / "labels.json"
    if not path.is_file():
        raise RunDirError(f"{path}: missing; {run_dir} is not a finished run directory (train one with `aslnb train`)")
    fix = "restore the file from the run or retrain"
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable label map ({exc}); {fix}") from None
    names = data.get("class_names") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names:
        raise RunDirError(f"{path}: \"class_names\" must be a non-empty list of class names, e.g. "
                          f"[\"A\", \"B\"] (found {type(names).__name__}); {fix}")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise RunDirError(f"{path}: \"class_names\" holds {bad[0]!r}, not a class name (every entry must be a "
                          f"non-empty string); {fix}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RunDirError(f"{path}: \"class_names\" lists {', '.join(map(repr, dupes))} more than once; {fix}")
    return list(names)


def load_config(run_dir: str | os.PathLike) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunDirError(f"{path}: missing; {run_dir} is not a run directory (train one with `aslnb train`)")
    try:
        cfg = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc}); restore the file from the run or retrain") from None
    if not isinstance(cfg, dict):
        raise RunDirError(f"{path}: expected a JSON object; restore the file from the run or retrain")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise RunDirError(
            f"{path}: run format {cfg.get('format_version')!r}, this aslnb reads {FORMAT_VERSION}; retrain with this version"
        )
    size = (cfg.get("params") or {}).get("image_size") if isinstance(cfg.get("params"), dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise RunDirError(f"{path}: params.image_size is {'missing' if size is None else repr(size)}, expected the "
                          "model's input size in pixels (e.g. 128); restore the file from the run or retrain")
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
    _check_archive(path)
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


def _check_archive(path: Path) -> None:
    """Refuse, each with its own message, an unreadable file, a non-zip file and a truncated zip."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc}); fix its permissions "
                         f"(e.g. `chmod u+r {path}`) or run as the user who owns it") from None
    if zipfile.is_zipfile(path):
        return
    if head == b"PK\x03\x04":
        raise ModelError(f"{path}: truncated (the zip archive has no end; an interrupted copy or download?); "
                         "copy it again or retrain")
    kind = "an empty file" if not head else "not a zip archive"
    raise ModelError(f"{path}: not a Keras model file ({kind}; a .keras file is a zip archive); "
                     "restore the right file or retrain")


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
    model = load_model(run_dir / "model.keras", names)
    size = cfg["params"]["image_size"]
    shape = tuple(model.input_shape[1:3])
    if None not in shape and shape != (size, size):
        raise RunDirError(f"{run_dir / 'config.json'}: params.image_size is {size} but the model takes "
                          f"{shape[0]}x{shape[1]} images; the run directory mixes files from different runs: "
                          "restore config.json or retrain")
    return model, names, cfg


def prepare_split(data_dir: Path, cfg: TrainConfig) -> Split:
    """Scan, drop undecodable files (with a warning each), limit, split."""
    folder = drop_bad_images(scan_folder(data_dir))
    folder = limit_folder(folder, cfg.limit_per_class)
    return split_folder(folder, cfg.split, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                        seed=cfg.seed)

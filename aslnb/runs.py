"""Run directories: reading one back (config, labels, the model in safe mode) and their lifecycle
(check, start, resume or replace, finish)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .data.external import load_external
from .data.manifest import sha256_file
from .data.pipeline import DECODERS
from .data.scan import ImageFolder, drop_bad_images, scan_folder
from .data.splits import Split, limit_folder, split_folder
from .errors import ModelError, ParameterError, RunDirError
from .provenance import FORMAT_VERSION, device_name, versions
from .io import atomic_path, make_work_dir, os_reason, read_json, stale_parts, write_json


_FIX = "restore the file from the run or retrain"


def _read_run_json(path: Path, what: str, invalid: str) -> Any:
    """The JSON of run file ``path``; missing (its folder is not ``what``), unreadable or ``invalid`` JSON: one
    :class:`RunDirError` line."""
    if not path.is_file():
        raise RunDirError(f"{path}: missing; {path.parent} is not {what} (train one with `aslnb train`)")
    try:
        return read_json(path)
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise RunDirError(f"{path}: cannot be read (permission denied); ask its owner to make it readable "
                              f"(e.g. `chmod a+r {path}`) or run as the user who owns it") from None
        raise RunDirError(f"{path}: cannot be read ({os_reason(exc)}); {_FIX}") from None
    except ValueError as exc:
        raise RunDirError(f"{path}: {invalid} ({exc}); {_FIX}") from None


def load_labels(run_dir: str | os.PathLike) -> list[str]:
    """The run's class names from ``labels.json``: a list of distinct, non-empty strings."""
    path = Path(run_dir) / "labels.json"
    data = _read_run_json(path, "a finished run directory", "unreadable label map")
    names = data.get("class_names") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names:
        raise RunDirError(f"{path}: \"class_names\" must be a non-empty list of class names, e.g. "
                          f"[\"A\", \"B\"] (found {type(names).__name__}); {_FIX}")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise RunDirError(f"{path}: \"class_names\" holds {bad[0]!r}, not a class name (every entry must be a "
                          f"non-empty string); {_FIX}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RunDirError(f"{path}: \"class_names\" lists {', '.join(map(repr, dupes))} more than once; {_FIX}")
    return list(names)


def load_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    cfg = _read_run_json(path, "a run directory", "not valid JSON")
    if not isinstance(cfg, dict):
        raise RunDirError(f"{path}: expected a JSON object; {_FIX}")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise RunDirError(
            f"{path}: run format {cfg.get('format_version')!r}, this aslnb reads {FORMAT_VERSION}; retrain with this version"
        )
    params = cfg.get("params")
    size = params.get("image_size") if isinstance(params, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise RunDirError(f"{path}: params.image_size is {'missing' if size is None else repr(size)}, expected the "
                          f"model's input size in pixels (e.g. 128); {_FIX}")
    decoder = params.get("decoder")
    if decoder not in DECODERS:
        raise RunDirError(f"{path}: params.decoder is {'missing' if decoder is None else repr(decoder)}, expected the "
                          f"image decoder the run was trained with ({' or '.join(DECODERS)}); {_FIX}")
    return cfg


def load_model(path: str | os.PathLike, class_names: list[str] | None = None):
    """Load a ``.keras`` file in Keras safe mode (no code from the file is run).

    Refuses, with one clear line: a missing or corrupt file, a file with
    ``Lambda`` layers or unknown classes (safe mode), and a model whose output
    size differs from ``class_names``.
    """
    # lazy: Keras and aslnb.models stay out of `import aslnb` (runs is imported by aslnb.train)
    import keras

    from . import models  # noqa: F401 - registers the custom layers saved models need (every backbone's)

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


def load_run(run_dir: str | os.PathLike, model=None):
    """``(model, class_names, config)`` of a finished run directory (a fusion run's model: :class:`FusionParts`);
    ``model`` given (the one training returned): that one, not loaded again."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory; train one with `aslnb train --out {run_dir}`")
    cfg = load_config(run_dir)
    names = load_labels(run_dir)
    if model is not None:
        return model, names, cfg
    if cfg["params"].get("features") == "fusion":
        return _load_fusion(run_dir, cfg, names), names, cfg
    _check_model_digest(run_dir, cfg)
    model = load_model(run_dir / "model.keras", names)
    _check_class_order(run_dir, cfg, names)
    size = cfg["params"]["image_size"]
    shape = tuple(model.input_shape[1:3])
    image_input = len(model.input_shape) == 4  # the landmarks recipe's head takes a feature vector
    if image_input and None not in shape and shape != (size, size):
        raise RunDirError(f"{run_dir / 'config.json'}: params.image_size is {size} but the model takes "
                          f"{shape[0]}x{shape[1]} images; the run directory mixes files from different runs: "
                          "restore config.json or retrain")
    return model, names, cfg


@dataclass(frozen=True)
class FusionParts:
    """The two parts of a ``features='fusion'`` run, each ``(model, class_names, config)`` of its run directory
    (``parts/landmarks``, ``parts/image``; :mod:`aslnb.train.fusion`)."""

    landmarks: tuple
    image: tuple


FUSION_PARTS = ("landmarks", "image")


def _load_fusion(run_dir: Path, cfg: dict, names: list[str]) -> FusionParts:
    """Load a fusion run's parts; refuse a part whose model or classes are not the ones the run recorded."""
    parts = {}
    for name in FUSION_PARTS:
        folder = run_dir / "parts" / name
        recorded = ((cfg.get("fusion") or {}).get("model_sha256") or {}).get(name)
        if recorded is not None and (folder / "model.keras").is_file() and sha256_file(folder / "model.keras") != \
                recorded:
            raise RunDirError(f"{folder / 'model.keras'}: not the model {run_dir / 'config.json'} records for its "
                              f"{name} part (sha256 {recorded[:12]}...); restore the run's parts/ folder or retrain")
        parts[name] = load_run(folder)
        if parts[name][1] != names:
            raise RunDirError(f"{folder / 'labels.json'}: its classes differ from {run_dir / 'labels.json'}; the "
                              "fusion run mixes parts of different runs: restore its parts/ folder or retrain")
    return FusionParts(**parts)


def _check_class_order(run_dir: Path, cfg: dict, names: list[str]) -> None:
    """Refuse a ``labels.json`` whose classes differ from ``config.json``'s ``data.class_names``."""
    config, labels = run_dir / "config.json", run_dir / "labels.json"
    recorded = cfg["data"].get("class_names") if isinstance(cfg.get("data"), dict) else None
    if isinstance(recorded, list) and recorded != names:
        i = next((i for i, (a, b) in enumerate(zip(names, recorded)) if a != b), min(len(names), len(recorded)))
        got = repr(names[i]) if i < len(names) else "nothing"
        want = repr(recorded[i]) if i < len(recorded) else "nothing"
        raise RunDirError(f"{labels}: class {i} is {got} but {config} records {want} (data.class_names); the two "
                          "files come from different runs or were edited: restore labels.json from the run or retrain")


def _check_model_digest(run_dir: Path, cfg: dict) -> None:
    """Refuse a ``model.keras`` other than the one ``config.json`` records (``model_sha256``, written since
    issue 25; older runs have none and are not checked)."""
    config, model = run_dir / "config.json", run_dir / "model.keras"
    digest = cfg.get("model_sha256")
    if isinstance(digest, str) and model.is_file():
        try:
            actual = sha256_file(model)
        except OSError:
            return  # load_model says why the file cannot be read
        if actual != digest:
            raise RunDirError(f"{model}: comes from another run (its sha256 {actual[:12]}... is not the "
                              f"{digest[:12]}... that {config} records); restore this run's model.keras or retrain")


def prepare_split(data_dir: Path, cfg: TrainConfig, ext_dir: Path | None = None) -> Split:
    """Scan, drop undecodable files (with a warning each), then :func:`run_split`; an external set ``ext_dir``
    sharing no class with the data is refused now, not after training."""
    split = run_split(drop_bad_images(scan_folder(data_dir)), asdict(cfg))
    if ext_dir is not None:
        load_external(ext_dir, split.train.class_names)
    return split


def run_split(folder: ImageFolder, params: Mapping[str, Any]) -> Split:
    """The split a run makes of ``folder`` (``params``: its TrainConfig fields or config.json's ``params``): at
    most ``limit_per_class`` images per class, then ``split`` with its fractions and seed. The one way a run's
    split is rebuilt (training, evaluation, the notebooks' analysis)."""
    folder = limit_folder(folder, params.get("limit_per_class"))
    return split_folder(folder, params["split"], val_fraction=params["val_fraction"],
                        test_fraction=params["test_fraction"], seed=params["seed"])


def run_config(cfg: TrainConfig, split: Split, data_dir: Path, ext_dir: Path | None, *,
               notes: list | None = None, **fields: Any) -> dict[str, Any]:
    """``config.json`` of a run as it starts, for every recipe: parameters, data (with the split's
    :func:`data_fingerprint`), external set, split, the recipe's own ``fields``, device, versions, ``notes``,
    start."""
    return {
        "format_version": FORMAT_VERSION, "params": asdict(cfg),
        "data": {"root": str(data_dir), "fingerprint": data_fingerprint(split),
                 "n_images": sum(split.sizes()[s] for s in ("train", "val", "test")),
                 "class_names": split.train.class_names, "problems": split.train.problems[:50]},
        "external": str(ext_dir) if ext_dir else None, "split": split.describe(),
        **fields,
        "device": device_name(), "versions": versions(), "notes": notes or [],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def data_fingerprint(split: Split) -> str:
    """16 hex digits identifying the split's files (stored in config.json, compared on resume)."""
    h = hashlib.sha256()
    for part in (split.train, split.val, split.test):
        h.update(part.fingerprint().encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------
# Run-directory lifecycle: check, start (new, resume or replace), finish.
# --------------------------------------------------------------------------


def is_finished(run_dir: Path) -> bool:
    """A run is finished once ``config.json`` records it (written last by training).

    A run killed after ``model.keras`` was saved but before that counts as
    interrupted: rerunning it skips the trained epochs.
    """
    try:
        return "finished" in read_json(run_dir / "config.json")
    except (OSError, ValueError):
        return (run_dir / "model.keras").exists()


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_out_dir(out: Path, data_dir: Path, overwrite: bool) -> None:
    """Refuse, before anything is written, an ``out`` that cannot or must not become this run."""
    o, d = out.resolve(), data_dir.resolve()
    if _inside(o, d) or _inside(d, o):
        raise RunDirError(f"{out}: the run directory and the data folder {data_dir} overlap (one inside the other); "
                          "choose an --out outside the data")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is a file; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise RunDirError(f"{out}: folder is not empty and is not a run directory; choose another --out "
                          "(--overwrite never deletes files aslnb did not write)")
    if out.is_dir() and is_finished(out) and not overwrite:
        raise RunDirError(f"{out}: already holds a finished run; pass --overwrite to replace it or choose another --out")
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"{parent}: folder is not writable; choose another --out or fix its permissions")


@dataclass
class RunDir:
    """Where a run is written (``work``) and where it ends up (``out``)."""

    out: Path
    work: Path
    resuming: bool = False
    created: bool = False  # this call started the run in ``work`` (discarded when training fails for a bad parameter)
    keep_folder: bool = False  # ``work`` existed (empty) before: discard empties it instead of deleting it
    notes: list[str] = field(default_factory=list)  # what opening it did (resumed or removed leftovers), for the log

    def finish(self) -> None:
        """Move a replacement run into place: old run aside, new one in, old one deleted."""
        if self.work == self.out:
            return
        old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.work, self.out)
        shutil.rmtree(old, ignore_errors=True)
        self.work = self.out

    def discard(self) -> None:
        """Delete what this call created (never a run it resumed)."""
        if self.created and self.work.exists():
            shutil.rmtree(self.work, ignore_errors=True)
            if self.keep_folder:
                self.work.mkdir(exist_ok=True)

    @contextmanager
    def guard(self) -> Iterator[RunDir]:
        """Write the run inside this block. A bad parameter (``ParameterError``, e.g. a diverged loss) deletes what
        this call created; a failed write becomes one ``RunDirError`` line; anything else (Ctrl-C) deletes a
        replacement's hidden folder but keeps a run trained in place, to resume."""
        try:
            yield self
        except ParameterError:
            self.discard()  # a diverged run is not worth resuming
            raise
        except OSError as exc:
            if self.work != self.out:
                self.discard()
            raise RunDirError(f"{exc.filename or self.work}: could not be written ({os_reason(exc)}); free some "
                              "disk space or fix the permissions and rerun the same command") from None
        except BaseException:
            if self.work != self.out:
                self.discard()
            raise

    def begin(self, config: dict, class_names: list[str]) -> None:
        """Write ``config.json`` (a resumed run keeps its ``started``) and ``labels.json``."""
        if self.resuming:
            config["started"] = read_json(self.work / "config.json").get("started", config["started"])
        write_json(self.work / "config.json", config)
        write_json(self.work / "labels.json", {"class_names": class_names,
                                               "label_ids": {c: i for i, c in enumerate(class_names)}})

    def complete(self, model, config: dict, history: dict) -> None:
        """Write ``history.json`` and ``model.keras`` (``model`` None: a fusion run, whose parts hold the models),
        then ``config.json`` with the model's sha256 (``model_sha256``: :func:`load_run` refuses another run's
        model) and ``finished`` (last); :meth:`finish`."""
        write_json(self.work / "history.json", history)
        if model is not None:
            save_model_atomic(model, self.work / "model.keras")
            config["model_sha256"] = sha256_file(self.work / "model.keras")
        config["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(self.work / "config.json", config)
        self.finish()


def _resume_problem(folder: Path, params: dict, fingerprint: str) -> str | None:
    """Why the interrupted run in ``folder`` cannot be resumed with ``params`` on data ``fingerprint`` (None: it can)."""
    try:
        old = read_json(folder / "config.json")
    except ValueError:
        old = {}
    if not isinstance(old, dict) or old.get("params") != params:
        return "params"
    if (old.get("data") or {}).get("fingerprint") != fingerprint:
        return f"data:{(old.get('data') or {}).get('fingerprint')}"
    return None


def remove_partial_files(work: Path) -> int:
    """Delete the temporary files a killed run left in its folder and checkpoint folders; how many.

    They are :func:`aslnb.io.atomic_path`'s ``.<file>.XXXX.part...`` files and a feature
    store's ``.features-<key>.XXXX.part`` folders (in ``checkpoints/features``), never
    read by anyone once their writer is gone; call only on a run this process resumes.
    """
    n = 0
    for folder in (work, *sorted(p for p in (work / "checkpoints").glob("*") if p.is_dir())):
        for p in folder.glob(".*.part*"):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            n += 1
    return n


def _partial_to_resume(out: Path, params: dict, fingerprint: str) -> tuple[Path | None, list[str]]:
    """A killed ``--overwrite`` run of ``out`` with these parameters and data (to resume), and notes on the
    others, which are removed (a partial run of a process still running is left alone)."""
    found, notes = None, []
    for p in stale_parts(out.parent, f".{out.name}.partial-*"):
        if not p.is_dir():
            continue
        if found is None and (p / "config.json").is_file() and _resume_problem(p, params, fingerprint) is None:
            found = p
            notes.append(f"resuming the interrupted --overwrite run in {p} (the finished run in {out} is "
                         "replaced when it completes)")
            continue
        shutil.rmtree(p)
        notes.append(f"removed {p} (an interrupted --overwrite run with other parameters or data)")
    return found, notes


def start_run(out: Path, params: dict, fingerprint: str, overwrite: bool) -> RunDir:
    """Open ``out`` for training; call :func:`check_out_dir` first.

    An empty or missing ``out`` is trained in place; an interrupted run with the
    same parameters and data is resumed; with ``overwrite`` an existing run is
    replaced only once the new one is complete (trained in a hidden sibling
    ``.<name>.partial-<pid>-XXXX``, then swapped in by :meth:`RunDir.finish`). A
    partial folder left by a killed ``--overwrite`` is resumed when it has the same
    parameters and data, else removed; ``RunDir.notes`` says which. A resumed run's
    leftover temporary files are removed (:func:`remove_partial_files`). Then, every recipe alike:
    ``with run.guard(): run.begin(config, names); ...; run.complete(model, config, history)``.
    """
    try:
        if out.is_dir() and (out / "config.json").is_file():
            if overwrite:
                partial, notes = _partial_to_resume(out, params, fingerprint)
                if partial is None:
                    return RunDir(out, make_work_dir(out.parent, f".{out.name}.partial-", ""), created=True,
                                  notes=notes)
                return _resumed(RunDir(out, partial, resuming=True, notes=notes))
            problem = _resume_problem(out, params, fingerprint)
            if problem == "params":
                raise RunDirError(f"{out}: holds an interrupted run with other parameters; rerun with the same ones "
                                  "to resume, or pass --overwrite")
            if problem is not None:
                raise RunDirError(f"{out}: holds an interrupted run trained on other data (fingerprint "
                                  f"{problem[5:]} vs {fingerprint} now); use the same "
                                  "data to resume, pass --overwrite to start again, or choose another --out")
            if not os.access(out, os.W_OK | os.X_OK):
                raise RunDirError(f"{out}: run directory is not writable; fix its permissions to resume")
            return _resumed(RunDir(out, out, resuming=True))
        existed = out.exists()
        out.mkdir(parents=True, exist_ok=True)
        return RunDir(out, out, created=True, keep_folder=existed)
    except OSError as exc:
        raise RunDirError(f"{exc.filename or out}: cannot be written ({exc.strerror or exc}); choose another --out "
                          "or fix its permissions") from None


def _resumed(run: RunDir) -> RunDir:
    n = remove_partial_files(run.work)
    if n:
        run.notes.append(f"removed {n} partial file{'s' if n > 1 else ''} left by the interrupted run in {run.work}")
    return run


def save_model_atomic(model, path: Path) -> None:
    """Save through a temporary file next to ``path``: a full disk never destroys the previous model."""
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
    except OSError as exc:
        raise RunDirError(f"{path}: could not save the model ({os_reason(exc)}); the previous file, if any, "
                          "is untouched; free some disk space and rerun the same command to resume") from None

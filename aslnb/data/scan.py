"""Scan a class-per-folder image dataset: classes, files, counts, problems.

The layout is the one ``keras.utils.image_dataset_from_directory`` expects::

    root/A/A1.jpg, root/A/A2.jpg, ..., root/space/space17.jpg

Class names are the sub-folder names sorted with Python's ``sorted`` (so
``A``..``Z`` come before ``del``, ``nothing``, ``space``, as in Keras); the label
id of a class is its index in that list.

A class's images are the image files directly in its folder: files in
sub-folders of a class folder are not read, and one warning line (also in
``problems``) counts them and names the first few; ``aslnb predict DIR`` reads
a folder by the same rule. A file whose name is not valid UTF-8 is skipped with
a warning naming it (escaped).
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .images import bombs_as_errors, check_image_in_thread, display_path, frame_number, is_image_name, utf8_name
from .massey import massey_summary

#: Skip notices go here, one line each (Python prints them to stderr when logging is not set up).
LOG = logging.getLogger("aslnb.data")


def _list(folder: Path, what: str) -> list[Path]:
    """The entries of ``folder``; an unreadable folder is a :class:`DataError` naming it."""
    try:
        return list(folder.iterdir())
    except PermissionError:
        raise DataError(f"{folder}: cannot read this {what} (permission denied); fix its permissions "
                        f"(e.g. chmod -R u+rX {folder}) or point --data elsewhere") from None
    except OSError as err:
        raise DataError(f"{folder}: cannot read this {what} ({err.strerror or err})") from None


@dataclass
class ImageFolder:
    """The files of a dataset and their integer labels."""

    root: Path
    class_names: list[str]
    files: np.ndarray  # str paths
    labels: np.ndarray  # int64 label ids into class_names
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def counts(self) -> dict[str, int]:
        """Images per class, every class listed (0 for empty ones)."""
        c = Counter(self.labels.tolist())
        return {name: int(c.get(i, 0)) for i, name in enumerate(self.class_names)}

    def subset(self, index: np.ndarray) -> "ImageFolder":
        """The same dataset restricted to ``index`` (positions or a boolean mask)."""
        return ImageFolder(self.root, list(self.class_names), self.files[index], self.labels[index], [])

    def fingerprint(self) -> str:
        """sha256 over class names, relative file names and sizes: changes when the data does."""
        h = hashlib.sha256()
        h.update("\n".join(self.class_names).encode())
        for f, lab in zip(self.files, self.labels):
            p = Path(f)
            try:
                size = p.stat().st_size
            except OSError:
                size = -1
            # os.fsencode: a name that is not valid UTF-8 hashes as its bytes (the same bytes as before otherwise)
            name = os.fsencode(p.parent.name) + b"/" + os.fsencode(p.name)
            h.update(f"{lab}:".encode() + name + f":{size}\n".encode())
        return h.hexdigest()[:16]


def nested_images(dirs: list[Path]) -> list[Path]:
    """Image files anywhere below ``dirs`` (hidden names left out; links to folders inside are not followed)."""
    found: list[Path] = []
    for top_dir in dirs:
        for top, names, files in os.walk(top_dir):
            names[:] = sorted(n for n in names if not n.startswith("."))
            found.extend(Path(top) / f for f in sorted(files) if not f.startswith(".") and is_image_name(f))
    return found


def skipped_notice(files: list[Path], where: str, fix: str) -> str:
    """One line counting ``files`` that are not read, naming the first three."""
    shown = ", ".join(display_path(f) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return f"{len(files)} image file{'s' if len(files) != 1 else ''} in {where} {'are' if len(files) != 1 else 'is'} " \
           f"not read ({shown}); {fix}"


def _readable_name(path: Path, problems: list[str]) -> bool:
    """False (a problem logged and recorded, naming the file escaped) for a name that is not valid UTF-8."""
    if utf8_name(path):
        return True
    msg = f"{display_path(path)}: file name is not valid UTF-8; skipped: rename it (UTF-8 or ASCII characters only)"
    problems.append(msg)
    LOG.warning("%s", msg)
    return False


def _class_folders(root: Path, min_classes: int) -> list[str]:
    """The class sub-folders of ``root`` (sorted), refusing a missing folder, a file, too few classes, none."""
    if not root.exists():
        raise DataError(f"{root}: folder does not exist; check --data / ASLNB_DATA")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, expected a folder with one sub-folder per class")
    entries = _list(root, "data folder")
    subdirs = sorted(p.name for p in entries if p.is_dir() and not p.name.startswith("."))
    if subdirs and len(subdirs) < min_classes:
        raise DataError(f"{root}: only {len(subdirs)} class folder(s) ({', '.join(subdirs)}); a classifier "
                        f"needs at least {min_classes} classes: add a folder of images per class")
    if not subdirs:
        loose = [p.name for p in entries if p.is_file() and is_image_name(p)]
        hint = f" (it holds {len(loose)} loose images: move them into one folder per class)" if loose else ""
        raise DataError(f"{root}: no class sub-folders found{hint}; expected root/<class>/<image>.jpg")
    return subdirs


def scan_folder(
    root: str | os.PathLike,
    *,
    class_names: list[str] | None = None,
    allow_empty_classes: bool = False,
    min_classes: int = 1,
) -> ImageFolder:
    """List the images of a class-per-folder dataset (no decoding).

    ``class_names`` fixes the label ids (for evaluation data that must match a
    model's classes); folders not in it are reported as problems. Raises
    :class:`DataError` for a missing or unreadable folder, a folder with no class
    sub-folders or fewer than ``min_classes`` (training needs 2), or an empty class
    folder (unless ``allow_empty_classes``).
    """
    root = Path(root).expanduser()
    subdirs = _class_folders(root, min_classes if class_names is None else 1)
    problems: list[str] = []
    names = list(class_names) if class_names is not None else subdirs
    if class_names is not None:
        for extra in sorted(set(subdirs) - set(names)):
            problems.append(f"{root / extra}: class '{extra}' is not one of the model's classes; ignored")
    files: list[str] = []
    labels: list[int] = []
    empty: list[str] = []
    below: list[Path] = []  # class folders' sub-folders: not read (one rule with predict's folders)
    for idx, name in enumerate(names):
        folder = root / name
        if not folder.is_dir():
            problems.append(f"{folder}: class '{name}' has no folder here")
            continue
        entries = sorted(_list(folder, "class folder"),
                         key=lambda p: (frame_number(p) is None, frame_number(p) or 0, p.name))
        imgs = [p for p in entries if p.is_file() and not p.name.startswith(".") and is_image_name(p)
                and _readable_name(p, problems)]
        below += [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        for p in entries:
            if p.is_file() and not p.name.startswith(".") and not is_image_name(p):
                problems.append(f"{p}: not an image file name; ignored")
        if not imgs:
            empty.append(str(folder))
        files.extend(str(p) for p in imgs)
        labels.extend([idx] * len(imgs))
    nested = nested_images(below)
    if nested:
        problems.append(skipped_notice(nested, "sub-folders of class folders", "move them up into their class "
                                       "folder (only a class folder's own files are its images)"))
        LOG.warning("%s", problems[-1])
    if empty and not allow_empty_classes:
        raise DataError(
            f"{empty[0]}: class folder holds no images"
            + (f" (and {len(empty) - 1} more empty class folders)" if len(empty) > 1 else "")
            + "; add images or remove the folder"
        )
    problems.extend(f"{e}: class folder holds no images" for e in empty)
    if not files:
        raise DataError(f"{root}: no image files found in its class folders")
    return ImageFolder(root, names, np.array(files), np.array(labels, dtype=np.int64), problems)


def images_to_verify(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(files, problems)`` that ``aslnb data verify`` checks: a class-per-folder dataset's (:func:`scan_folder`),
    or, for a folder without sub-folders (photos for ``aslnb predict``), the image files in it."""
    root = Path(root).expanduser()
    if root.is_dir():
        entries = _list(root, "folder")
        if not any(p.is_dir() and not p.name.startswith(".") for p in entries):
            loose = sorted(p for p in entries if p.is_file() and not p.name.startswith(".") and is_image_name(p))
            if loose:
                return [str(p) for p in loose], []
    folder = scan_folder(root, allow_empty_classes=True)
    return folder.files.tolist(), folder.problems


def find_bad_images(paths, workers: int = 4, progress: bool = False) -> dict[str, str]:
    """Decode every file; return ``{path: reason}`` for the ones that fail."""
    paths = [str(p) for p in paths]  # plain str: np.str_ would show as np.str_('...') in reasons
    # the warning filters are set here, once: they are not thread-safe, so never in the workers
    with bombs_as_errors(ignore_others=True), ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(check_image_in_thread, paths)
        if progress:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(paths), desc="verify", unit="img")
        return {p: r for p, r in zip(paths, results) if r is not None}


# Files this process has decoded, by (path, size, mtime): train then evaluate in one
# notebook decode the sample once. An edited or replaced file has a new key.
_CHECKED: dict[tuple[str, int, int], str | None] = {}


def _bad_images_memo(paths) -> dict[str, str]:
    keys = {}
    for p in map(str, paths):
        try:
            st = os.stat(p)
            keys[p] = (p, st.st_size, st.st_mtime_ns)
        except OSError:
            keys[p] = None  # gone or unreadable: decode it (and report it) every time
    todo = [p for p, k in keys.items() if k is None or k not in _CHECKED]
    found = find_bad_images(todo) if todo else {}
    for p in todo:
        if keys[p] is not None:
            _CHECKED[keys[p]] = found.get(p)
    reasons = {p: (found.get(p) if k is None else _CHECKED[k]) for p, k in keys.items()}
    return {p: r for p, r in reasons.items() if r is not None}


def drop_bad_images(folder: ImageFolder, *, warn: bool = True) -> ImageFolder:
    """Decode every file once and drop the unreadable ones, logging one line per file.

    This is the documented behaviour for training and evaluation: a corrupt file
    is skipped with a one-line notice naming it on the ``aslnb.data`` logger (printed
    to stderr when logging is not set up; ``aslnb data verify`` lists them all).
    """
    bad = _bad_images_memo(folder.files)
    if not bad:
        return folder
    keep = np.array([f not in bad for f in folder.files])
    for path, reason in bad.items():
        msg = f"{path}: skipped, not a readable image ({reason}); run `aslnb data verify` and delete or replace it"
        folder.problems.append(msg)
        if warn:
            LOG.warning("%s", msg)
    out = folder.subset(keep)
    out.problems = folder.problems
    if len(out) == 0:
        raise DataError(f"{folder.root}: none of its {len(folder)} image files could be decoded")
    return out


@dataclass
class DataInfo:
    """What ``aslnb data info`` reports."""

    root: str
    class_names: list[str]
    counts: dict[str, int]
    n_images: int
    sizes: dict[str, int]
    modes: dict[str, int]
    formats: dict[str, int]
    problems: list[str]
    external: dict | None = None  # Massey layout: per-signer counts, class mapping (external.massey_summary)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def dataset_info(root: str | os.PathLike, sample: int | None = None) -> DataInfo:
    """Classes, counts, image sizes/modes/formats (headers only) and problems."""
    folder = scan_folder(root, allow_empty_classes=True)
    files = folder.files if sample is None else folder.files[:: max(1, len(folder.files) // sample)]
    files = files.tolist()  # plain str: Pillow's messages show np.str_ as np.str_('...')
    sizes: Counter = Counter()
    modes: Counter = Counter()
    formats: Counter = Counter()
    problems = list(folder.problems)

    def header(p: str):
        try:
            with Image.open(p) as im:
                return f"{im.size[0]}x{im.size[1]}", im.mode, im.format or "?"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return None, None, f"{p}: cannot open ({exc.__class__.__name__}: {exc})"

    with bombs_as_errors(ignore_others=True), ThreadPoolExecutor(max_workers=8) as pool:
        for size, mode, fmt in pool.map(header, files):
            if size is None:
                problems.append(fmt)
            else:
                sizes[size] += 1
                modes[mode] += 1
                formats[fmt] += 1
    return DataInfo(
        str(folder.root), folder.class_names, folder.counts(), len(folder), dict(sizes.most_common()),
        dict(modes.most_common()), dict(formats.most_common()), problems, massey_summary(folder),
    )

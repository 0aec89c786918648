"""Hash manifests: the exact files of a data set (relative path, sha256, size in bytes).

Two manifests ship with the package (``aslnb/data/manifests/``):

``asl-alphabet-sample``
    the 5,800 frames (200 per class) the report was made with, files of the upstream
    ASL Alphabet mirror; ``aslnb data fetch`` downloads exactly these by default and
    checks each one against its hash.
``massey-asl``
    the 2,515 images of the Massey ASL set as published on Kaggle ("ayuraj/asl-dataset"),
    which needs a login to download: ``aslnb data verify --manifest massey-asl DIR``
    checks a copy made by hand.

``tools/make_manifest.py`` writes them from a folder. The format is JSON,
``{"name", "source", "files": {"A/A1008.jpg": [sha256, bytes], ...}}``, one file a line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pooch

from ..errors import DataError, ParameterError
from ..io import write_text
from .images import frame_number, is_image_name

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
SAMPLE_MANIFEST = "asl-alphabet-sample"
MASSEY_MANIFEST = "massey-asl"
#: The 29 training classes, in ``sorted()`` order (upper-case letters sort first).
CLASSES: list[str] = sorted([chr(c) for c in range(ord("A"), ord("Z") + 1)] + ["del", "nothing", "space"])


@dataclass
class Manifest:
    """The files of a data set: ``files[rel] = (sha256, bytes)``, ``rel`` like ``"A/A1008.jpg"``."""

    name: str
    source: str
    files: dict[str, tuple[str, int]]

    def by_class(self) -> dict[str, list[str]]:
        """Relative paths per class folder, in file-name order of frame number."""
        out: dict[str, list[str]] = {}
        for rel in self.files:
            out.setdefault(rel.split("/", 1)[0], []).append(rel)
        return {c: sorted(v, key=lambda r: (frame_number(r) or 0, r)) for c, v in sorted(out.items())}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (pooch's, which checks the downloads)."""
    return pooch.file_hash(str(path), alg="sha256")


def build_manifest(root: str | os.PathLike, name: str, source: str) -> Manifest:
    """Hash every image file in the class folders of ``root`` (hidden files skipped)."""
    root = Path(root)
    files = {}
    for p in sorted(root.glob("*/*")):
        if p.is_file() and not p.name.startswith(".") and not p.parent.name.startswith(".") and is_image_name(p):
            files[f"{p.parent.name}/{p.name}"] = (sha256_file(p), p.stat().st_size)
    if not files:
        raise DataError(f"{root}: no images in class folders to put in a manifest")
    return Manifest(name, source, files)


def write_manifest(manifest: Manifest, path: str | os.PathLike) -> None:
    """Write ``manifest`` as JSON with one file a line (small diffs)."""
    lines = [f"  {json.dumps(rel)}: {json.dumps(list(v))}" for rel, v in sorted(manifest.files.items())]
    head = f'{{"name": {json.dumps(manifest.name)}, "source": {json.dumps(manifest.source)}, "files": {{\n'
    write_text(path, head + ",\n".join(lines) + "\n}}\n")


def load_manifest(name_or_path: str | os.PathLike) -> Manifest:
    """A shipped manifest by name (``asl-alphabet-sample``, ``massey-asl``) or one from a file."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = MANIFEST_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in MANIFEST_DIR.glob("*.json")))
            raise ParameterError(f"unknown manifest {str(name_or_path)!r}: give a file or one of {known}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {str(k): (str(v[0]), int(v[1])) for k, v in data["files"].items()}
        return Manifest(str(data.get("name", path.stem)), str(data.get("source", "")), files)
    except FileNotFoundError:
        raise DataError(f"{path}: manifest file does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise DataError(f"{path}: not a manifest ({type(err).__name__}: {err}); expected "
                        '{"files": {"A/A1.jpg": [sha256, bytes]}}') from None


@dataclass
class VerifyReport:
    """How a folder compares with a manifest (lists of relative paths)."""

    root: Path
    manifest: str
    good: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (rel, reason)
    extra: list[str] = field(default_factory=list)  # images on disk the manifest does not list

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad

    def summary(self) -> str:
        """One line: counts and what to do."""
        line = (f"{self.root}: {len(self.good)} of {len(self.good) + len(self.missing) + len(self.bad)} files "
                f"match manifest {self.manifest}; {len(self.missing)} missing, {len(self.bad)} differ, "
                f"{len(self.extra)} not in the manifest")
        return line if self.ok else line + "; replace the files listed from the original source"


def check_file(path: Path, expected: tuple[str, int]) -> str | None:
    """None when ``path`` has the expected (sha256, bytes); else the reason."""
    sha, size = expected
    try:
        actual_size = path.stat().st_size
        if actual_size != size:
            return f"size {actual_size} bytes, expected {size}"
        actual = sha256_file(path)
    except OSError as err:
        return f"cannot read ({err})"
    return None if actual == sha else f"sha256 {actual[:12]}..., expected {sha[:12]}..."


def verify_folder(root: str | os.PathLike, manifest: Manifest | str) -> VerifyReport:
    """Check every file ``manifest`` lists under ``root`` (nothing is changed)."""
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"{root}: {what}; give the folder that holds the class folders")
    rep = VerifyReport(root, manifest.name)
    for rel, expected in sorted(manifest.files.items()):
        p = root / rel
        if not p.is_file():
            rep.missing.append(rel)
            continue
        reason = check_file(p, expected)
        if reason is None:
            rep.good.append(rel)
        else:
            rep.bad.append((rel, reason))
    listed = set(manifest.files)
    rep.extra = sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*")
                       if p.is_file() and is_image_name(p) and f"{p.parent.name}/{p.name}" not in listed)
    return rep

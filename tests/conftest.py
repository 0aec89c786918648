"""Shared fixtures for the data tests.

``sample_dir``   the training sample (``$ASLNB_DATA``), skipped when unset.
``external_dir`` the external test set (``$ASLNB_EXTERNAL_DATA``), skipped when unset.
``tmp_dataset``  a factory building small class-per-folder trees under ``tmp_path``
                 from a FEW real images (copied by default, or symlinked). The real
                 data and the repository are never written to.
"""
from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest


def _env_dir(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is not set: point it at the data folder to run this test")
    path = Path(value).expanduser()
    if not path.is_dir():
        pytest.fail(f"{var}={value}: not a folder; fix the variable or unset it to skip these tests")
    return path


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The ASL Alphabet sample: 29 class folders of JPEGs (``$ASLNB_DATA``)."""
    return _env_dir("ASLNB_DATA")


@pytest.fixture(scope="session")
def external_dir() -> Path:
    """The external test set, e.g. Massey ASL (``$ASLNB_EXTERNAL_DATA``)."""
    return _env_dir("ASLNB_EXTERNAL_DATA")


@pytest.fixture
def tmp_dataset(tmp_path, sample_dir):
    """Factory: ``make(spec, *, source=None, link=False) -> Path`` of a new dataset root.

    ``spec`` maps a class folder name to either a number of images taken from the
    class of the same name in ``source`` (default: ``sample_dir``), or to a tuple
    ``(source_class, n)``. ``n`` may be 0 (an empty class folder). A list of class
    names means 3 images each. Images are picked spread over the source class
    (sorted by name) and keep their file names. Files are copied (safe to
    modify) unless ``link=True``.
    """
    counter = itertools.count()

    def make(spec, *, source: Path | None = None, link: bool = False) -> Path:
        src_root = Path(source) if source is not None else sample_dir
        if not isinstance(spec, dict):
            spec = {name: 3 for name in spec}
        root = tmp_path / f"dataset{next(counter)}"
        root.mkdir()
        for name, value in spec.items():
            src_class, n = (name, value) if isinstance(value, int) else value
            dest = root / name
            dest.mkdir()
            if n == 0:
                continue
            files = sorted(p for p in (src_root / src_class).iterdir() if p.is_file() and not p.name.startswith("."))
            if n > len(files):
                raise ValueError(f"{src_root / src_class} has only {len(files)} files, {n} asked for")
            for p in files[:: max(1, len(files) // n)][:n]:
                if link:
                    (dest / p.name).symlink_to(p)
                else:
                    shutil.copyfile(p, dest / p.name)  # copyfile: no read-only mode bits copied
        return root

    return make

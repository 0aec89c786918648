"""Shared fixtures, and the rule for test data.

The data rule
-------------
* A test that needs only "some images in the real layout" (class-per-folder JPEGs
  named ``<class><frame>.jpg``) uses ``tiny_images`` or ``tmp_dataset`` (built from
  it). Those images are made here, in a temporary folder: such tests never skip.
* A test that needs the REAL data (an accuracy claim, the ported-weights check on
  real photos, the notebooks, the report) asks for ``sample_dir`` or ``external_dir``.
  Those tests get the ``data`` marker automatically and FAIL, not skip, when
  ``$ASLNB_DATA`` / ``$ASLNB_EXTERNAL_DATA`` is unset: ``.ci/run`` always sets them;
  without the data, deselect them explicitly with ``pytest -m "not data"``.

Markers: ``slow`` marks the tests that train a model or run the notebooks or the
benchmark for real (every test using ``tiny_run`` or test_report's ``smoke_report``
gets it automatically), so
``pytest -m "not slow"`` is the quick loop; ``make test`` runs everything.

``tiny_images``  29 class folders (the sample's names) x 200 small JPEGs named by the
                 frame numbers the fetcher downloads (``A376.jpg`` ...), 32 px, one
                 colour and stripe pattern per class plus noise and a slow drift
                 over the frames (neighbouring frames look alike): a tiny model learns it.
``sample_dir``   the training sample (``$ASLNB_DATA``); fails when unset.
``external_dir`` the external test set (``$ASLNB_EXTERNAL_DATA``); fails when unset.
``tmp_dataset``  a factory building small class-per-folder trees under ``tmp_path``
                 from a few images of ``tiny_images`` (or of another source: copied
                 by default, or symlinked). The real data and the repository are
                 never written to.
"""
from __future__ import annotations

import itertools
import os
import shutil
import string
from pathlib import Path

import numpy as np
import pytest

DATA_FIXTURES = {"sample_dir": "ASLNB_DATA", "external_dir": "ASLNB_EXTERNAL_DATA"}
SLOW_FIXTURES = {"tiny_run", "smoke_report"}  # fixtures that train a model / run the notebooks for real
TINY_CLASSES = [*string.ascii_uppercase, "del", "nothing", "space"]
TINY_PER_CLASS, TINY_SIZE = 200, 32


def pytest_configure(config):
    config.addinivalue_line("markers", "data: needs the real data ($ASLNB_DATA / $ASLNB_EXTERNAL_DATA); "
                                       "fails without it (see tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & set(DATA_FIXTURES):
            item.add_marker(pytest.mark.data)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


def _env_dir(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set: this test needs the real data; point {var} at it "
                    f'(.ci/run does) or deselect these tests with -m "not data"', pytrace=False)
    path = Path(value).expanduser()
    if not path.is_dir():
        pytest.fail(f"{var}={value}: not a folder; fix the variable", pytrace=False)
    return path


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The ASL Alphabet sample: 29 class folders of JPEGs (``$ASLNB_DATA``)."""
    return _env_dir("ASLNB_DATA")


@pytest.fixture(scope="session")
def external_dir() -> Path:
    """The external test set, e.g. Massey ASL (``$ASLNB_EXTERNAL_DATA``)."""
    return _env_dir("ASLNB_EXTERNAL_DATA")


def make_tiny_images(root: Path, classes=TINY_CLASSES, per_class: int = TINY_PER_CLASS,
                     size: int = TINY_SIZE, seed: int = 0) -> Path:
    """Write the ``tiny_images`` set under ``root`` (see the module docstring); returns ``root``."""
    from PIL import Image

    from aslnb.data.fetch import frames_for

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    frames = frames_for(per_class)
    for k, name in enumerate(classes):
        colour = np.array([(37 * k) % 256, (91 * k + 60) % 256, (151 * k + 120) % 256], dtype=np.float32)
        angle = np.pi * k / len(classes)
        stripes = 60 * np.sin(2 * np.pi * (2 + k % 4) * (np.cos(angle) * xx + np.sin(angle) * yy))
        folder = root / name
        folder.mkdir(parents=True)
        for frame in frames:
            drift = 40 * np.sin(2 * np.pi * frame / 3000)  # slow change over the "video"
            img = colour + (stripes + drift)[..., None] + rng.normal(0, 12, (size, size, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{name}{frame}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """29 class folders x 200 generated 32 px JPEGs in the sample's layout (read-only by convention)."""
    return make_tiny_images(tmp_path_factory.mktemp("tiny_images"))


@pytest.fixture
def tmp_dataset(tmp_path, tiny_images):
    """Factory: ``make(spec, *, source=None, link=False) -> Path`` of a new dataset root.

    ``spec`` maps a class folder name to either a number of images taken from the
    class of the same name in ``source`` (default: ``tiny_images``), or to a tuple
    ``(source_class, n)``. ``n`` may be 0 (an empty class folder). A list of class
    names means 3 images each. Images are picked spread over the source class
    (sorted by name) and keep their file names. Files are copied (safe to
    modify) unless ``link=True``.
    """
    counter = itertools.count()

    def make(spec, *, source: Path | None = None, link: bool = False) -> Path:
        src_root = Path(source) if source is not None else tiny_images
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


# --------------------------------------------------------------------------
# Fixtures of the model / training / CLI / reliability tests.
#
# ``tiny_train``   the parameters of a tiny real training run (32 px, 12 images per
#                  class, head only on cached features, random weights, 3 epochs).
# ``tiny_run``     that run, trained once per session in-process (RunResult, with
#                  ``.log``: what it printed); treat its directory as read-only.
# ``aslnb_cli``    run ``python -m aslnb ARGS...`` in a subprocess -> CompletedProcess.
# ``closed_port``  a local TCP port nothing listens on.
# ``offline``      monkeypatches the environment so that downloads fail for real:
#                  proxies pointing at ``closed_port``, ``KERAS_HOME`` in tmp_path.
# --------------------------------------------------------------------------
import contextlib
import io
import socket
import subprocess
import sys

TINY_TRAIN = dict(epochs=3, batch_size=16, image_size=32, weights="none", freeze_until="all",
                  limit_per_class=12, seed=0)


def train_cli_args(params: dict) -> list[str]:
    """``--name value`` CLI flags of training parameters (lists comma-joined)."""
    out: list[str] = []
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{flag[2:]}")
            continue
        out += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return out


@pytest.fixture(scope="session")
def tiny_train() -> dict:
    return dict(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sample_dir):
    from aslnb.evaluate import evaluate
    from aslnb.train import train

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ASLNB_EXTERNAL_DATA", raising=False)
        with contextlib.redirect_stdout(buf):
            res = train(sample_dir, out, verbose=2, **TINY_TRAIN)
            res.metrics = evaluate(out, sample_dir, verbose=2, model=res.model)
    res.log = buf.getvalue()
    return res


@pytest.fixture(scope="session")
def aslnb_cli():
    def run(*args, env: dict | None = None, drop_env=("ASLNB_EXTERNAL_DATA",), timeout=600, cwd=None):
        full = dict(os.environ)
        for name in drop_env:
            full.pop(name, None)
        full.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        full.update(env or {})
        return subprocess.run([sys.executable, "-m", "aslnb", *map(str, args)], capture_output=True, text=True,
                              env=full, timeout=timeout, cwd=cwd)

    return run


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline(monkeypatch, tmp_path, closed_port) -> dict:
    proxy = f"http://127.0.0.1:{closed_port}"
    env = {"KERAS_HOME": str(tmp_path / "keras_home"), "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy,
           "https_proxy": proxy, "http_proxy": proxy}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return env


@pytest.fixture(scope="session")
def landmarker():
    """The real landmarker (the 'hands' extra and a model file: cache, download or the mediapipe wheel)."""
    pytest.importorskip("mediapipe", reason="the 'hands' extra is not installed (pip install 'aslnb[hands]')")
    from aslnb.features.landmarks import Landmarker

    return Landmarker.resolve()


def grey_frame(path: Path) -> Path:
    """A uniform grey 160x120 image at ``path``: a frame without a hand."""
    from PIL import Image

    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(path)
    return path

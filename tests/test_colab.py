"""Colab, end to end, as Colab would run it (simulated: no Colab here).

The simulation: a fake ``google.colab`` module, the package installed by the
notebook's own setup cell from a wheel built from this checkout (``ASLNB_INSTALL``
points the cell at it; pip installs it into a folder first on the kernel's path),
no ``$ASLNB_DATA`` so the notebook downloads the images itself from a loopback
HTTP server, and ``PROFILE`` left at its default ``auto``. What it cannot show:
Colab's real package set and GPU runtime.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from aslnb.course.colab import COLAB_GPU_HINT, REPO_URL, SETUP_CELL, resolve_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def first_code_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_starts_with_the_same_setup_cell(path):
    assert first_code_cell(path) == SETUP_CELL


def test_setup_cell_installs_from_the_repository_named_in_pyproject():
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == REPO_URL
    assert f"git+{REPO_URL}" in SETUP_CELL


def test_setup_cell_does_nothing_off_colab():
    ns: dict = {}
    exec(compile(SETUP_CELL, "setup", "exec"), ns)  # noqa: S102 - our own cell
    assert "spec" not in ns


def test_auto_profile(monkeypatch):
    import aslnb.course.colab as colab

    monkeypatch.setattr(colab, "gpu_visible", lambda: True)
    assert resolve_profile("auto")[0] == "gpu"
    monkeypatch.setattr(colab, "gpu_visible", lambda: False)
    assert resolve_profile("auto")[0] == "cpu"
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    assert resolve_profile("auto") == ("cpu", COLAB_GPU_HINT)
    assert resolve_profile("smoke") == ("smoke", None)


@contextlib.contextmanager
def serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.slow
def test_notebook_01_runs_on_a_simulated_colab(tmp_path, sample_dir):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(ROOT)], check=True, timeout=600)
    wheel = next(wheels.glob("aslnb-*.whl"))
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab in the test."""\n')
    startup = tmp_path / "ipython" / "profile_default" / "startup"  # Colab's kernel imports google.colab at start
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # noqa: F401\n")
    site = tmp_path / "site"  # what the setup cell's pip installs into
    site.mkdir()
    out = tmp_path / "out.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASLNB_", "PYTHONPATH"))}
    with serve(sample_dir) as url:
        env.update({
            "PYTHONPATH": os.pathsep.join([str(site), str(fake)]),  # the wheel's aslnb shadows the checkout
            "ASLNB_INSTALL": str(wheel),
            # Colab installs the package's dependencies; here they are this venv's (no second TensorFlow).
            "PIP_TARGET": str(site), "PIP_NO_DEPS": "1",
            "ASLNB_DATA_URL": url, "ASLNB_CACHE": str(tmp_path / "cache"),
            "KERAS_HOME": str(tmp_path / "keras"), "MPLBACKEND": "Agg", "IPYTHONDIR": str(tmp_path / "ipython"),
        })
        res = subprocess.run([sys.executable, "-m", "papermill", "-k", "python3", "--cwd", str(tmp_path),
                              str(ROOT / "notebooks" / "01_dataset.ipynb"), str(out)],
                             env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    text = "".join(o.get("text", "") for c in nbformat.read(out, 4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert COLAB_GPU_HINT in text  # PROFILE auto on a runtime without a GPU
    # the wheel's copy ran, not the checkout (the banner names no machine path: the temporary folder is $TMPDIR)
    assert "package  : aslnb" in text and f"{site.name}/aslnb)" in text and "(./aslnb)" not in text
    data = tmp_path / "cache" / "asl-alphabet"
    assert sum(1 for _ in data.rglob("*.jpg")) == sum(1 for _ in sample_dir.rglob("*.jpg"))
    assert "no training images yet: downloading them" in text
    assert f"n_images = {sum(1 for _ in sample_dir.rglob('*.jpg'))}" in text  # notebook 01 ran on what it fetched


def test_a_failed_install_stops_the_setup_cell_with_one_line_saying_what_to_do(monkeypatch, tmp_path):
    """A bad ASLNB_INSTALL (as the unpublished default would be on Colab): one line, no CalledProcessError."""
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("ASLNB_INSTALL", str(tmp_path / "aslnb-0-py3-none-any.whl"))  # no such wheel
    with pytest.raises(Exception) as info:
        exec(compile(SETUP_CELL, "setup", "exec"), {})  # noqa: S102 - our own cell
    assert type(info.value).__name__ == "SetupError"
    shown = info.value._render_traceback_()  # what IPython prints instead of a traceback
    assert len(shown) == 1 and "\n" not in shown[0], shown
    assert "aslnb-0-py3-none-any.whl" in shown[0] and "ASLNB_INSTALL" in shown[0]
    assert f"no repository is published at {REPO_URL}" in shown[0] and "fork" in shown[0] and "wheel" in shown[0]


def test_the_badges_say_that_no_repository_is_published_yet():
    readme = (ROOT / "README.md").read_text()
    badge_line = next(i for i, ln in enumerate(readme.splitlines()) if "colab-badge.svg" in ln)
    near = "\n".join(readme.splitlines()[badge_line:badge_line + 6])
    assert "not published" in near.lower() and "ASLNB_INSTALL" in near, near
    for path in NOTEBOOKS[:3]:  # 01-03 (04-06's first cells are being rewritten on other branches)
        first = next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        assert "no repository is published" in first and "ASLNB_INSTALL" in first, path.name
    assert "no repository is published" in SETUP_CELL and "ASLNB_INSTALL" in SETUP_CELL.split("import os")[0]

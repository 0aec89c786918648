"""Where a notebook runs: the profile for this machine, and the data on a fresh Colab runtime.

Every notebook starts with the same setup cell (``SETUP_CELL``): on Colab it
installs this package (leaving Colab's own TensorFlow and torch alone); elsewhere
it does nothing. Until a repository is published at :data:`REPO_URL`, a learner sets
``ASLNB_INSTALL`` to a fork's URL or an uploaded wheel; a failed install stops the
cell with one line saying so (no ``CalledProcessError`` traceback). :func:`aslnb.course.notebook.setup` then calls
:func:`resolve_profile` (``PROFILE="auto"``: ``gpu`` when a GPU is visible, else
``cpu`` with a hint on how to get one on Colab) and, on Colab only,
:func:`ensure_data`, which downloads the training images when none are present.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..data.fetch import fetch_dataset
from ..provenance import gpu_visible
from ..settings import DATA_ENV, default_data_dir

#: Where the course will live; the setup cell of every notebook installs from here by default. Nothing is
#: published there yet: the cell and the badges' notes say so and point at ``ASLNB_INSTALL`` (a fork, a wheel).
REPO_URL = "https://github.com/aslnb/aslnb"
#: Overrides what the setup cell installs (a wheel file, a fork, a branch); used by the Colab test.
INSTALL_ENV = "ASLNB_INSTALL"

SETUP_CELL = f'''\
# Setup, the same in every notebook. On Colab it installs the course package (about a minute);
# Colab's own TensorFlow and torch are kept. Elsewhere it does nothing.
# No repository is published at {REPO_URL} yet, so the default install fails: first run
#   os.environ["{INSTALL_ENV}"] = "git+https://github.com/YOU/aslnb"  (your fork) or "/content/aslnb-....whl"
import os
import sys

if "google.colab" in sys.modules:
    import importlib
    import subprocess

    class SetupError(Exception):
        def _render_traceback_(self):  # one line in the notebook, no traceback
            return [f"SetupError: {{self}}"]

    spec = os.environ.get("{INSTALL_ENV}", "aslnb[lite0] @ git+{REPO_URL}")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], capture_output=True, text=True)
    if pip.returncode:
        why = (pip.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise SetupError(f"pip could not install {{spec!r}} ({{why}}); no repository is published at {REPO_URL} "
                         f"yet: set os.environ['{INSTALL_ENV}'] to your fork (git+https://github.com/YOU/aslnb) or "
                         "to an uploaded wheel's path (/content/aslnb-....whl), then run this cell again")
    importlib.invalidate_caches()'''

COLAB_GPU_HINT = ("no GPU on this Colab runtime: using the cpu profile; for the gpu profile choose "
                  "Runtime › Change runtime type › T4 GPU and run the notebook again")


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def resolve_profile(name: str) -> tuple[str, str | None]:
    """``(profile, note)``: ``auto`` becomes ``gpu`` with a GPU, else ``cpu`` (with a hint on Colab)."""
    if name != "auto":
        return name, None
    if gpu_visible():
        return "gpu", "profile auto: a GPU is visible, using the gpu profile"
    return "cpu", COLAB_GPU_HINT if on_colab() else "profile auto: no GPU visible, using the cpu profile"


def ensure_data(data_dir: str | os.PathLike | None) -> Path | None:
    """On Colab with no data given or found: download the course's images; returns their folder.

    Elsewhere, or when ``data_dir`` / ``$ASLNB_DATA`` is set or the default folder
    already holds images, nothing happens and None is returned (the caller then
    resolves the folder as usual, with its own clear error).
    """
    if not on_colab() or data_dir or os.environ.get(DATA_ENV):
        return None
    dest = default_data_dir()
    if dest.is_dir() and any(p.is_dir() for p in dest.iterdir()):
        return dest
    print(f"no training images yet: downloading them into {dest} (a few minutes, once per runtime)", flush=True)
    fetch_dataset(dest)  # the frames the report used, each checked against the shipped manifest
    return dest

"""What produced a result: library versions, device, backend, run format."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import tempfile
from pathlib import Path

FORMAT_VERSION = 1


def gpu_names() -> list[str]:
    """Names of the GPUs Keras's backend sees (``[]`` on a CPU, or when the backend cannot tell)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                    for g in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no backend library / no driver: treat as CPU
        pass
    return []


def gpu_visible() -> bool:
    """True when Keras's backend sees a GPU."""
    return bool(gpu_names())


def device_name() -> str:
    """'GPU: <name>' when Keras's backend sees one, else 'CPU: <model>'."""
    gpus = gpu_names()
    return f"GPU: {gpus[0]}" if gpus else f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    import keras
    import numpy

    out = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__,
           "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    try:
        out["aslnb"] = importlib.metadata.version("aslnb")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        out["aslnb"] = "unknown"
    return out


def memory_bytes() -> int | None:
    """This machine's memory (physical RAM, lowered to a cgroup limit if one is set); None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


# --------------------------------------------------------------------------- paths without the machine
# What a report records names folders as a reader of any machine can follow: the data as ``$ASLNB_DATA``
# (with its fingerprint), the package and report folders relative to the repository.
_PATH_ENVS = ("ASLNB_DATA", "ASLNB_EXTERNAL_DATA", "KERAS_HOME", "ASLNB_CACHE")


def repo_root() -> Path | None:
    """The source checkout holding the package; None when the package is installed (no ``pyproject.toml``)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _path_names(extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """``(absolute prefix, portable name)`` pairs, longest prefix first."""
    names = {str(Path(p).expanduser().resolve()): name for p, name in (extra or {}).items() if p}
    for env in _PATH_ENVS:
        if os.environ.get(env):
            names.setdefault(str(Path(os.environ[env]).expanduser().resolve()), f"${env}")
    if repo_root() is not None:
        names.setdefault(str(repo_root()), ".")
    names.setdefault(str(Path.home().resolve()), "~")
    names.setdefault(str(Path(tempfile.gettempdir()).resolve()), "$TMPDIR")
    return sorted(names.items(), key=lambda kv: -len(kv[0]))


def portable(value, extra: dict[str, str] | None = None):
    """``value`` (a string, or lists/dicts of them) with machine paths replaced by portable names.

    ``$ASLNB_DATA``, ``$ASLNB_EXTERNAL_DATA``, ``$KERAS_HOME``, ``$ASLNB_CACHE`` where those are set,
    the source checkout as ``.`` (``./reports/cpu``; an installed package keeps its path), the home folder as ``~``, the temporary folder as
    ``$TMPDIR``; ``extra``: more ``{absolute path: name}`` pairs (they come first).
    """
    pairs = _path_names(extra)

    def one(v):
        if isinstance(v, str):
            for prefix, name in pairs:
                if prefix != "/" and prefix in v:
                    v = v.replace(prefix, name)
            return v
        if isinstance(v, dict):
            return {k: one(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [one(x) for x in v]
        return v

    return one(value)


def folder_fingerprint(folder: os.PathLike | str) -> str:
    """12 hex digits identifying a data folder's files (relative names and sizes), wherever it lies."""
    return _fingerprint(str(Path(folder).resolve()))


@functools.lru_cache(maxsize=8)
def _fingerprint(folder: str) -> str:
    """:func:`folder_fingerprint` of a resolved folder, once per process (a notebook records many times)."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()[:12]


def data_label(folder: os.PathLike | str | None) -> str:
    """``$ASLNB_DATA (fingerprint 1a2b...)``: a data folder named without the machine's path
    (a folder outside the portable names shows as ``.../<its name>``)."""
    if folder is None:
        return "(none)"
    name = portable(str(Path(folder).resolve()))
    name = name if not name.startswith("/") else f".../{Path(folder).name}"
    return f"{name} (fingerprint {folder_fingerprint(folder)})"

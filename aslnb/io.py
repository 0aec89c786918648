"""Files written safely: an atomic temp-file-and-rename writer, and JSON/text on top of it.

Files and folders made here follow the process's umask (``tempfile`` alone makes
them 0600/0700). Hidden working folders carry the pid of the process that made
them (``.<name>.<pid>-XXXXXXXX.part``, :func:`make_work_dir`), so a later run can tell a dead process's
leftovers (:func:`stale_parts`) from a running one's.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write; on success it is fsynced and renamed over ``path``.

    On an error the temporary file is removed and ``path`` is untouched: a crash or
    a full disk never leaves half a file. The temporary name ends with ``path``'s
    suffixes (``.m.weights.h5.1a2b.part.weights.h5``), so writers that check or infer
    the format from the name (Keras, NumPy, Matplotlib) work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part" + "".join(path.suffixes))
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _close_h5(tmp)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (other threads may be creating files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # elsewhere: set briefly to the strictest usual mask, never a looser one
    os.umask(mask)
    return mask


def make_work_dir(parent: str | os.PathLike, prefix: str, suffix: str = ".part") -> Path:
    """A new folder ``<prefix><pid>-XXXXXXXX<suffix>`` in ``parent``, with the umask's mode."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{os.getpid()}-", suffix=suffix))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def stale_parts(parent: str | os.PathLike, pattern: str) -> list[Path]:
    """The entries of ``parent`` matching ``pattern`` left by processes that are gone.

    A name with a pid (``...<pid>-XXXXXXXX...``, see :func:`make_work_dir`) is stale once
    that process has ended (this process's own are never stale); a name without one
    (written by an older aslnb) is stale.
    """
    found = []
    for p in sorted(Path(parent).glob(pattern)):
        m = re.search(r"[.-](\d+)-[A-Za-z0-9_]{8}(?:\.part)?$", p.name)
        pid = int(m.group(1)) if m else None
        if pid is None or (pid != os.getpid() and not _pid_alive(pid)):
            found.append(p)
    return found


def _close_h5(path: Path) -> None:
    """Close HDF5 files left open on ``path`` by a failed write (h5py would flush them later, on a full disk
    printing tracebacks and crashing the interpreter at exit)."""
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return
    for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        try:
            if os.path.abspath(os.fsdecode(h5py.h5f.get_name(fid))) == os.path.abspath(path):
                h5py.File(fid).close()
        except Exception:  # noqa: BLE001 - the flush on closing fails the way the write did
            pass


def os_reason(exc: OSError) -> str:
    """One line for an OSError: ``strerror`` of its errno (h5py's own messages span lines), else its first line."""
    if exc.errno in errno.errorcode:
        return os.strerror(exc.errno)
    text = str(exc.strerror or exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2, sort_keys: bool = False) -> None:
    """Write JSON atomically (see :func:`atomic_path`), with a final newline."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

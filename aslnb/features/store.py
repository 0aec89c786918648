"""A feature cache on disk: ``.npy`` shards, read a batch of rows at a time.

A cache folder ``features-<key>/`` holds ``shard-00000.npy``, ``shard-00001.npy``,
... (``rows`` rows each, the last one shorter) and ``manifest.json`` (shape, dtype,
rows per shard, shard names). It is written once: the shards and the manifest go
into a hidden ``.features-<key>.<pid>-<random>.part`` folder next to it (each file through
:func:`aslnb.io.atomic_path`), which is then renamed to ``features-<key>``; an
interrupted write leaves no folder behind (one killed outright is removed by the
next write in that folder), and a folder without a valid manifest or with a short
shard is not used.

:class:`FeatureStore` reads rows by index arrays (``store[idx]``) like a numpy
array, with positional reads (``os.pread``) of each row's bytes from the shard
files, sorted by position. It maps nothing into the process: an epoch in shuffled
order holds one batch in memory, and the operating system's page cache (which is
not the process's memory and gives way to it) keeps what fits. Memory maps would
not do: every page an epoch touches counts in the process's resident memory (RSS)
for as long as it stays cached, so an epoch over a 3 GB store grows RSS by up to 3 GB
(``benchmarks/scale.py`` measures both). ``np.asarray(store)`` loads everything (for small sets).
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..io import atomic_path, make_work_dir, read_json, stale_parts, write_json

SHARD_ROWS = 1024
MANIFEST = "manifest.json"


class FeatureStore:
    """Read-only rows of a sharded cache folder; ``store[index_array]`` is a float32 ``np.ndarray``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        m = read_json(self.folder / MANIFEST)
        self.rows = int(m["rows"])
        self.shape = tuple(int(s) for s in m["shape"])
        self.dtype = np.dtype(m["dtype"])
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._paths = [self.folder / name for name in m["shards"]]
        self._offsets = [_data_offset(p, self.shape[1:], self.dtype) for p in self._paths]
        self._lengths = [min(self.rows, self.shape[0] - i * self.rows) for i in range(len(self._paths))]
        for path, offset, n in zip(self._paths, self._offsets, self._lengths):
            if n < 1 or path.stat().st_size != offset + n * self.row_bytes:
                raise ValueError(f"{path}: shard does not match {MANIFEST}")
        if sum(self._lengths) != self.shape[0]:
            raise ValueError(f"{self.folder}: shards do not match {MANIFEST}")
        self._files: dict[int, Any] = {}
        self._lock = threading.Lock()  # for platforms without os.pread (seek + read)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def shards(self) -> list[int]:
        """Rows per shard file."""
        return list(self._lengths)

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.folder)!r}, shape={self.shape}, shards={len(self._paths)})"

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise IndexError(f"FeatureStore takes an int, a slice or a 1-d index array, not {key!r}")
        idx = np.where(idx < 0, idx + len(self), idx).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} rows")
        out = np.empty((idx.size, *self.shape[1:]), dtype=self.dtype)
        flat = out.reshape(idx.size, self.row_bytes // self.dtype.itemsize).view(np.uint8)
        order = np.argsort(idx, kind="stable")  # read in file order; runs of consecutive rows in one read
        i = 0
        while i < len(order):
            row = int(idx[order[i]])
            shard, first = divmod(row, self.rows)
            j = i + 1
            while (j < len(order) and idx[order[j]] == row + (j - i) and (row + j - i) // self.rows == shard
                   and order[j] == order[i] + (j - i)):
                j += 1
            self._read(shard, first, flat[order[i]:order[i] + (j - i)])
            i = j
        return out

    def _read(self, shard: int, first: int, dest: np.ndarray) -> None:
        """Fill ``dest`` (rows of bytes, contiguous) with rows ``first...`` of ``shard``."""
        offset, view = self._offsets[shard] + first * self.row_bytes, memoryview(dest).cast("B")
        fh = self._file(shard)
        done = 0
        while done < len(view):
            if hasattr(os, "pread"):
                chunk = os.pread(fh.fileno(), len(view) - done, offset + done)
                view[done:done + len(chunk)] = chunk
                got = len(chunk)
            else:  # Windows: no positional read; one seek + read at a time
                with self._lock:
                    fh.seek(offset + done)
                    got = fh.readinto(view[done:]) or 0
            if not got:
                raise OSError(f"{self._paths[shard]}: file shorter than its manifest says")
            done += got

    def _file(self, shard: int):
        fh = self._files.get(shard)
        if fh is None:
            fh = self._files[shard] = open(self._paths[shard], "rb", buffering=0)
        return fh

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))] if len(self) else np.empty(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)


def _data_offset(path: Path, row_shape: tuple, dtype: np.dtype) -> int:
    """Where the rows of the ``.npy`` file ``path`` start; its header must say C order, ``dtype`` and ``row_shape``."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, file_dtype = read(fh)
        if fortran or np.dtype(file_dtype) != dtype or tuple(shape[1:]) != tuple(row_shape):
            raise ValueError(f"{path}: shard does not match {MANIFEST}")
        return fh.tell()


def open_store(folder: str | os.PathLike, n: int) -> FeatureStore | None:
    """The store at ``folder`` when complete, valid and ``n`` rows long (float32), else None."""
    try:
        store = FeatureStore(folder)
    except (OSError, ValueError, KeyError, TypeError, EOFError):  # missing, truncated or foreign: recompute
        return None
    return store if len(store) == n and store.dtype == np.float32 else None


def write_store(folder: str | os.PathLike, chunks: Iterable[np.ndarray], rows: int = SHARD_ROWS) -> FeatureStore:
    """Write ``chunks`` (each ``rows`` long but the last) as the store ``folder``, all or nothing; open it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for old in stale_parts(folder.parent, ".features-*.part"):  # left by killed writers
        shutil.rmtree(old, ignore_errors=True)
    tmp = make_work_dir(folder.parent, f".{folder.name}.")
    try:
        names, n, row_shape = [], 0, ()
        for i, chunk in enumerate(chunks):
            chunk = np.ascontiguousarray(chunk, dtype=np.float32)
            names.append(f"shard-{i:05d}.npy")
            with atomic_path(tmp / names[-1]) as part, open(part, "wb") as fh:
                np.save(fh, chunk, allow_pickle=False)
            n, row_shape = n + len(chunk), chunk.shape[1:]
        write_json(tmp / MANIFEST, {"shape": [n, *row_shape], "dtype": "float32", "rows": rows, "shards": names})
        if folder.exists():  # a stale or broken store of the same key
            shutil.rmtree(folder)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same key first: keep its copy
            if open_store(folder, n) is None:
                raise
    finally:  # also on KeyboardInterrupt: no partial folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
    return FeatureStore(folder)

"""A feature cache on disk: ``.npy`` shards read through memory maps.

A cache folder ``features-<key>/`` holds ``shard-00000.npy``, ``shard-00001.npy``,
... (``rows`` rows each, the last one shorter) and ``manifest.json`` (shape, dtype,
rows per shard, shard names). It is written once: the shards and the manifest go
into a hidden ``.features-<key>.<random>.part`` folder next to it (each file through
:func:`aslnb.io.atomic_path`), which is then renamed to ``features-<key>``; an
interrupted write leaves no folder behind, and a folder without a valid manifest
or with a short shard is not used.

:class:`FeatureStore` opens the shards with ``np.load(mmap_mode="r")`` and serves
rows by index arrays (``store[idx]``) like a numpy array, so a training epoch in
shuffled order reads only the rows of each batch: the operating system's page cache
holds what fits and the set never has to fit in memory. ``np.asarray(store)`` loads
everything (Keras does that with ``validation_data``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..io import atomic_path, read_json, write_json

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
        self._shards = [np.load(self.folder / name, mmap_mode="r", allow_pickle=False) for name in m["shards"]]
        expect = [min(self.rows, self.shape[0] - i * self.rows) for i in range(len(self._shards))]
        if (sum(expect) != self.shape[0] or [s.shape[0] for s in self._shards] != expect
                or any(s.shape[1:] != self.shape[1:] or s.dtype != self.dtype for s in self._shards)):
            raise ValueError(f"{self.folder}: shards do not match {MANIFEST}")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.folder)!r}, shape={self.shape}, shards={len(self._shards)})"

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
        shard = idx // self.rows
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            where = where[np.argsort(idx[where], kind="stable")]  # each shard read in file order
            out[where] = self._shards[s][idx[where] - s * self.rows]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate([np.asarray(s) for s in self._shards]) if self._shards else np.empty(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)


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
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
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

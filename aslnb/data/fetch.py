"""Download the ASL alphabet images (the backend of ``aslnb data fetch``).

The images come from a public GitHub mirror of the Kaggle "ASL Alphabet" training set:
``<base>/<CLASS>/<CLASS><n>.jpg`` for the 29 classes and frames ``n = 1..3000`` (a few
frames are missing upstream, e.g. ``A1``). The base URL is the ``base_url`` argument,
else ``$ASLNB_DATA_URL``, else :data:`DEFAULT_BASE_URL`.

By default :func:`fetch_dataset` downloads exactly the frames of the shipped manifest
``asl-alphabet-sample`` (the 200 per class the report used) and checks each against its
sha256 and size: a file that differs is deleted and reported. ``per_class=N`` takes N of
those frames per class, evenly spread; beyond the manifest's count it adds frames spread
over 1..3000 that no hash vouches for: they are marked ``"verified": false`` in
``dest/manifest.json`` and a 404 on one of them (an upstream gap) is skipped with a
one-line warning. Runs are resumable: files already there that match their hash (or,
unverified, decode) are kept. ``dest/manifest.json`` maps each file on disk to its
``sha256``, ``bytes``, source ``url`` and ``verified``; it is rewritten atomically at the
end of every run, also an interrupted one.
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image
from tqdm.auto import tqdm

from ..errors import DownloadError, ParameterError
from ..io import read_json, write_json
from ..settings import DATA_ENV, default_data_dir
from .http import HttpFailure, HttpOptions, download, make_session, part_path, probe
from .manifest import CLASSES, SAMPLE_MANIFEST, Manifest, check_file, load_manifest

__all__ = ["CLASSES", "DATA_URL_ENV", "DEFAULT_BASE_URL", "FRAMES_PER_CLASS", "MANIFEST_NAME", "FetchResult",
           "HttpOptions", "fetch_dataset", "frame_url", "frames_for", "plan", "resolve_base_url"]

LOG = logging.getLogger("aslnb.data")
FRAMES_PER_CLASS = 3000
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/loicmarie/sign-language-alphabet-recognizer/master/dataset"
DATA_URL_ENV = "ASLNB_DATA_URL"
MANIFEST_NAME = "manifest.json"


@dataclass
class FetchResult:
    """What :func:`fetch_dataset` did; file lists are paths relative to ``dest`` (``"A/A1008.jpg"``).

    ``failed`` and ``skipped`` (upstream gaps among unverified frames) hold ``(url, reason)``.
    """

    dest: Path
    manifest: Path
    downloaded: int = 0
    kept: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    downloaded_files: list[str] = field(default_factory=list)
    kept_files: list[str] = field(default_factory=list)
    unverified_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every requested file is on disk and valid (gaps skipped)."""
        return not self.failed

    @property
    def total(self) -> int:
        return self.downloaded + self.kept + len(self.failed) + len(self.skipped)


@dataclass(frozen=True)
class Task:
    rel: str
    url: str
    expected: tuple[str, int] | None  # (sha256, bytes) from the reference manifest, None: unverified


def resolve_base_url(base_url: str | None = None) -> str:
    """The image base URL: ``base_url``, else ``$ASLNB_DATA_URL``, else the default."""
    source, url = ("base_url", base_url) if base_url else (
        (DATA_URL_ENV, os.environ[DATA_URL_ENV]) if os.environ.get(DATA_URL_ENV) else ("default", DEFAULT_BASE_URL))
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(
            f"data URL {url!r} (from {source}) is not an http(s) URL: set {DATA_URL_ENV} to a "
            f"mirror such as {DEFAULT_BASE_URL}, or use local images with --data DIR or {DATA_ENV}=DIR"
        )
    return url


def frames_for(per_class: int, n_frames: int = FRAMES_PER_CLASS) -> list[int]:
    """``per_class`` distinct frame numbers spread evenly over ``1..n_frames``, ascending
    (the middle of each of ``per_class`` equal slices)."""
    if isinstance(per_class, bool) or not isinstance(per_class, int):
        raise ParameterError(f"per_class must be an integer, got {per_class!r}")
    if not 1 <= per_class <= n_frames:
        raise ParameterError(f"per_class={per_class} is out of range: use 1..{n_frames} images per class")
    return [1 + ((2 * i + 1) * n_frames) // (2 * per_class) for i in range(per_class)]


def frame_url(base_url: str, cls: str, n: int) -> str:
    """URL of frame ``n`` of class ``cls`` under ``base_url``."""
    return f"{base_url.rstrip('/')}/{cls}/{cls}{n}.jpg"


def plan(manifest: Manifest | None, classes: list[str], per_class: int | None, base: str) -> list[Task]:
    """The files to fetch: the manifest's (or ``per_class`` of them), plus unverified extra frames."""
    from .scan import frame_number

    by_class = manifest.by_class() if manifest else {}
    tasks = []
    for cls in classes:
        listed = by_class.get(cls, [])
        n = len(listed) if per_class is None else per_class
        if n == 0:
            raise ParameterError(f"the manifest lists no file of class {cls}: give --per-class N")
        frames_for(n)  # range check
        if n <= len(listed):
            picked = [listed[(2 * i + 1) * len(listed) // (2 * n)] for i in range(n)]
            tasks += [Task(rel, f"{base}/{rel}", manifest.files[rel]) for rel in picked]
            continue
        tasks += [Task(rel, f"{base}/{rel}", manifest.files[rel]) for rel in listed]
        have = {frame_number(r) for r in listed}
        extra = [f for f in frames_for(min(FRAMES_PER_CLASS, n + len(listed))) if f not in have][: n - len(listed)]
        tasks += [Task(f"{cls}/{cls}{f}.jpg", frame_url(base, cls, f), None) for f in extra]
    return tasks


def _decodes(path: Path) -> None:
    """Raise :class:`HttpFailure` unless ``path`` is an image Pillow can fully decode."""
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise HttpFailure(f"not a valid image ({type(err).__name__}: {err})") from None


def _keep(target: Path, task: Task) -> bool:
    """True when ``target`` is already good (hash match, or decodes when unverified); else delete it."""
    if not target.is_file():
        return False
    try:
        if task.expected is not None:
            if check_file(target, task.expected) is None:
                return True
        else:
            _decodes(target)
            return True
    except HttpFailure:
        pass
    target.unlink(missing_ok=True)
    return False


def fetch_dataset(
    dest: str | os.PathLike | None,
    per_class: int | None = None,
    base_url: str | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    workers: int = 8,
    progress: bool = True,
    manifest: Manifest | str | None = SAMPLE_MANIFEST,
    http: HttpOptions = HttpOptions(),
) -> FetchResult:
    """Download the frames of ``manifest`` (``per_class`` of them per class) into ``dest/<CLASS>/``.

    ``dest`` defaults to :func:`aslnb.settings.default_data_dir`, ``classes`` to all 29;
    ``manifest=None`` fetches ``per_class`` frames spread over 1..3000, all unverified.
    Returns a :class:`FetchResult`; raises :class:`DownloadError` when the host cannot be
    reached, a response exceeds ``http.max_bytes``, or every requested download failed.
    """
    dest = Path(dest).expanduser() if dest else default_data_dir()
    base = resolve_base_url(base_url)
    ref = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    if ref is None and per_class is None:
        raise ParameterError("per_class is needed when no manifest is used")
    classes = list(CLASSES) if classes is None else list(dict.fromkeys(classes))
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ParameterError(f"unknown class name(s) {unknown or classes}: choose from {', '.join(CLASSES)}")
    if workers < 1:
        raise ParameterError(f"workers={workers} must be at least 1")
    tasks = plan(ref, classes, per_class, base)
    manifest_path = dest / MANIFEST_NAME
    old = _read_entries(manifest_path)
    result = FetchResult(dest=dest, manifest=manifest_path)
    entries: dict[str, dict] = {}
    session = make_session(workers)

    def work(task: Task) -> tuple[str, str, int]:
        target = dest / task.rel
        if _keep(target, task):
            data = target.read_bytes()
            return "kept", hashlib.sha256(data).hexdigest(), len(data)
        sha, size = download(session, task.url, target, http, task.expected,
                             check=None if task.expected else _decodes)
        return "downloaded", sha, size

    try:
        missing = [t for t in tasks if not (dest / t.rel).is_file()]
        if missing:  # fail fast when offline, before creating anything
            probe(session, missing[0].url, urlsplit(base).netloc,
                  f"point the project at local images with --data DIR or {DATA_ENV}=DIR, or set {DATA_URL_ENV} "
                  "to a mirror")
        try:
            for cls in classes:
                (dest / cls).mkdir(parents=True, exist_ok=True)
                for p in (dest / cls).glob(".*.part"):  # left by a run that was killed
                    p.unlink(missing_ok=True)
        except OSError as err:
            raise DownloadError(f"cannot create the data folder {dest} ({err}): choose another --dest") from err
        with tqdm(total=len(tasks), unit="file", desc="aslnb data fetch", disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aslnb-fetch") as pool:
            futures = {pool.submit(work, t): t for t in tasks}
            try:
                for fut in as_completed(futures):
                    task = futures[fut]
                    _collect(fut, task, dest, old, entries, result)
                    bar.update(1)
            finally:
                for f in futures:
                    f.cancel()
    except BaseException:
        if dest.is_dir():  # interrupted or failed: still record what is good on disk
            try:
                _write_entries(manifest_path, dest, old, entries)
            except DownloadError:
                pass
        raise
    finally:
        session.close()
    _write_entries(manifest_path, dest, old, entries)
    for name in ("failed", "skipped", "downloaded_files", "kept_files", "unverified_files"):
        getattr(result, name).sort()
    if result.failed and not (result.downloaded or result.kept):
        url, reason = result.failed[0]
        err = DownloadError(
            f"all {len(result.failed)} downloads from {base} failed (first: {url}: {reason}): check "
            f"{DATA_URL_ENV} or the network, or use local images with --data DIR or {DATA_ENV}=DIR"
        )
        err.result = result  # the full list of failures, for callers that want it
        raise err
    return result


def _collect(fut, task: Task, dest: Path, old: dict, entries: dict, result: FetchResult) -> None:
    """Record the outcome of one download in ``result`` and ``entries``."""
    try:
        status, sha, size = fut.result()
    except HttpFailure as err:
        if err.status == 404 and task.expected is None:
            LOG.warning("%s: skipped, not on the server (a gap in the upstream frames)", task.url)
            result.skipped.append((task.url, str(err)))
        else:
            result.failed.append((task.url, str(err)))
        return
    except OSError as err:
        result.failed.append((task.url, f"cannot write {dest / task.rel} ({err})"))
        return
    prev = old.get(task.rel, {})
    url = prev.get("url", task.url) if prev.get("sha256") == sha else task.url
    entries[task.rel] = {"sha256": sha, "bytes": size, "url": url, "verified": task.expected is not None}
    if task.expected is None:
        result.unverified_files.append(task.rel)
    if status == "kept":
        result.kept += 1
        result.kept_files.append(task.rel)
    else:
        result.downloaded += 1
        result.downloaded_files.append(task.rel)


def _read_entries(path: Path) -> dict:
    """The existing fetch manifest, or ``{}`` if there is none or it is unreadable (it is rebuilt)."""
    try:
        data = read_json(path)
    except Exception:  # noqa: BLE001 - a damaged manifest is rebuilt from the files
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and "bytes" in v and "sha256" in v}


def _write_entries(path: Path, dest: Path, old: dict, new: dict) -> None:
    """Merge this run's entries into the old ones, keeping only files on disk with the recorded size."""
    merged = {}
    for rel, entry in {**old, **new}.items():
        p = dest / rel
        try:
            if p.is_file() and p.stat().st_size == entry.get("bytes") and not part_path(p).exists():
                merged[rel] = entry
        except OSError:
            pass
    try:
        write_json(path, merged, indent=1, sort_keys=True)
    except OSError as err:
        raise DownloadError(f"cannot write {path} ({err}): check free space and permissions of the folder") from err

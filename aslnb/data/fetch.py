"""Download the ASL alphabet images (the backend of ``aslnb data fetch``), with :mod:`pooch`.

The images come from a public GitHub mirror of the Kaggle "ASL Alphabet" training set:
``<base>/<CLASS>/<CLASS><n>.jpg`` for the 29 classes and frames ``n = 1..3000`` (a few
frames are missing upstream, e.g. ``A1``). The base URL is the ``base_url`` argument,
else ``$ASLNB_DATA_URL``, else :data:`DEFAULT_BASE_URL`.

By default :func:`fetch_dataset` downloads exactly the frames of the shipped manifest
``asl-alphabet-sample`` (the 200 per class the report used): the manifest is pooch's
registry of known sha256, so a file already there with its hash is kept (resume) and a
download is only moved into place once its hash matches (:mod:`aslnb.data.http`). A file
of the user's that differs is replaced only by such a verified copy; if none arrives it is
moved aside to ``NAME.mismatch`` with a warning. ``per_class=N`` takes N of those frames per
class, evenly spread; beyond the manifest's count it adds frames spread over 1..3000 that
no hash vouches for: they are marked ``"verified": false`` in ``dest/manifest.json``, must
decode as images, and a 404 on one of them (an upstream gap) is skipped with a one-line
warning. Each file has a total deadline (``HttpOptions.deadline``); Ctrl-C cuts every
transfer off at once. ``dest/manifest.json`` maps each file on disk to its ``sha256``,
``bytes``, source ``url`` and ``verified``; it is rewritten atomically at the end of every
run, also an interrupted one. :func:`fetch_file` fetches one file with a known sha256.
"""
from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from ..errors import DownloadError, ParameterError
from ..io import read_json, write_json
from ..settings import DATA_ENV, default_data_dir
from .http import Downloader, HttpFailure, HttpOptions, Transfers, make_session, probe, quiet_pooch, retrieve
from .images import check_image_in_thread, frame_number
from .manifest import CLASSES, SAMPLE_MANIFEST, Manifest, load_manifest, sha256_file

__all__ = ["CLASSES", "DATA_URL_ENV", "DEFAULT_BASE_URL", "FRAMES_PER_CLASS", "MANIFEST_NAME", "FetchResult",
           "HttpOptions", "fetch_dataset", "fetch_file", "frame_url", "frames_for", "plan", "resolve_base_url"]

LOG = logging.getLogger("aslnb.data")
FRAMES_PER_CLASS = 3000
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/loicmarie/sign-language-alphabet-recognizer/master/dataset"
DATA_URL_ENV = "ASLNB_DATA_URL"
MANIFEST_NAME = "manifest.json"
_POOCH_TMP = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile's names, which pooch's temporary files have


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
    by_class = manifest.by_class() if manifest else {}
    tasks = []
    for cls in classes:
        listed = by_class.get(cls, [])
        n = len(listed) if per_class is None else per_class
        if n == 0:
            raise ParameterError(f"the manifest lists no file of class {cls}: give --per-class N")
        frames_for(n)  # range check
        picked = listed if n > len(listed) else [listed[(2 * i + 1) * len(listed) // (2 * n)] for i in range(n)]
        tasks += [Task(rel, f"{base}/{rel}", manifest.files[rel]) for rel in picked]
        if n > len(listed):  # frames no hash vouches for
            have = {frame_number(r) for r in listed}
            extra = [f for f in frames_for(min(FRAMES_PER_CLASS, n + len(listed))) if f not in have][: n - len(listed)]
            tasks += [Task(f"{cls}/{cls}{f}.jpg", frame_url(base, cls, f), None) for f in extra]
    return tasks


def _decodes(path: Path) -> None:
    """Raise :class:`HttpFailure` unless ``path`` is an image Pillow can fully decode."""
    reason = check_image_in_thread(path)  # in a worker thread: the warning filters are left alone
    if reason is not None:
        raise HttpFailure(f"not a valid image ({reason})")


def _move_aside(target: Path, why: str) -> str:
    """Rename a file of the user's that is not the expected one to ``NAME.mismatch`` (never over another); say so."""
    aside = target.with_name(target.name + ".mismatch")
    for i in range(2, 1000):
        if not aside.exists():
            break
        aside = target.with_name(f"{target.name}.mismatch{i}")
    try:
        target.rename(aside)
        note = f"{target}: {why}; your file was moved to {aside.name} (kept, not used)"
    except OSError as err:
        note = f"{target}: {why}; your file was left in place (cannot rename it: {err})"
    LOG.warning("%s", note)
    return note


def _fetch_one(task: Task, dest: Path, downloader: Downloader) -> tuple[str, str, int]:
    """Make ``dest/task.rel`` the file of ``task`` (kept when already good); return (status, sha256, bytes).

    A file of the user's that differs is replaced only by a verified copy; when none
    arrives it is moved aside (:func:`_move_aside`) and the failure says so.
    """
    target = dest / task.rel
    if task.expected is None and target.is_file():
        try:
            _decodes(target)
        except HttpFailure as err:
            note = _move_aside(target, str(err))
            if target.exists():  # could not be moved: pooch would keep it
                raise HttpFailure(note) from None
    try:
        action = retrieve(task.url, task.expected[0] if task.expected else None, target, downloader)
    except HttpFailure as err:
        if task.expected is not None and target.is_file():  # pooch keeps a differing file it could not replace
            note = _move_aside(target, "differs from the manifest and no verified copy arrived")
            raise HttpFailure(f"{err} ({note})", err.status) from None
        raise
    if action == "update":
        LOG.warning("%s: your file differed from the manifest; replaced by the verified copy", target)
    status = "kept" if action == "fetch" else "downloaded"
    return (status, *task.expected) if task.expected else (status, sha256_file(target), target.stat().st_size)


def _in_threads(work: Callable[[Task], tuple], tasks: list[Task], workers: int,
                transfers: Transfers) -> Iterator[tuple[Task, object]]:
    """Yield ``(task, work(task) or the exception it raised)`` as each ends, ``workers`` at a time.

    The threads are daemons: on Ctrl-C (or any exit of the caller) :meth:`Transfers.abort` cuts
    off the transfers, the threads get 2 s to end, and the temporary files of any still
    blocked (waiting for a server's first answer) are removed, so the process exits at once.
    """
    todo, done = queue.SimpleQueue(), queue.SimpleQueue()
    for task in tasks:
        todo.put(task)

    def worker() -> None:
        while not transfers.stopped.is_set():
            try:
                task = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((task, work(task)))
            except Exception as err:  # noqa: BLE001 - handed to the caller
                done.put((task, err))

    threads = [threading.Thread(target=worker, name="aslnb-fetch", daemon=True) for _ in range(min(workers, len(tasks)))]
    for t in threads:
        t.start()
    try:
        for _ in tasks:
            while True:
                try:
                    yield done.get(timeout=0.5)  # a timeout: Ctrl-C is seen on every platform
                    break
                except queue.Empty:
                    continue
    finally:
        temps = transfers.abort()
        try:
            end = time.monotonic() + 2
            for t in threads:
                t.join(max(0.0, end - time.monotonic()))
        finally:  # also on a second Ctrl-C during the wait
            for tmp in temps:
                Path(tmp).unlink(missing_ok=True)


def _check_request(classes: list[str] | tuple[str, ...] | None, per_class: int | None, workers: int) -> list[str]:
    """The classes to fetch, after refusing a bad class name, ``per_class`` or ``workers``."""
    classes = list(CLASSES) if classes is None else list(dict.fromkeys(classes))
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ParameterError(f"unknown class name(s) {unknown or classes}: choose from {', '.join(CLASSES)}")
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise ParameterError(f"--per-class {per_class}: must be at least 1 (images per class, at most "
                             f"{FRAMES_PER_CLASS})")
    if workers < 1:
        raise ParameterError(f"--workers {workers}: must be at least 1")
    return classes


def _remove_leftovers(dest: Path, classes: list[str]) -> None:
    """Remove the temporary files (pooch's ``tmpXXXXXXXX``) of a fetch that was killed, and say so."""
    gone = [p for c in classes for p in (dest / c).glob("tmp*") if p.is_file() and _POOCH_TMP.fullmatch(p.name)]
    for p in gone:
        p.unlink(missing_ok=True)
    if gone:
        LOG.warning("removed %d temporary file(s) of an interrupted fetch (e.g. %s)", len(gone),
                    gone[0].relative_to(dest).as_posix())


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
    classes = _check_request(classes, per_class, workers)
    ref = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    if ref is None and per_class is None:
        raise ParameterError("per_class is needed when no manifest is used")
    tasks = plan(ref, classes, per_class, base)
    manifest_path = dest / MANIFEST_NAME
    old = _read_entries(manifest_path)
    result = FetchResult(dest=dest, manifest=manifest_path)
    entries: dict[str, dict] = {}
    session, transfers = make_session(workers), Transfers()
    downloaders = {True: Downloader(session, http, transfers), False: Downloader(session, http, transfers, _decodes)}
    try:
        _prepare(dest, classes, tasks, session, base)
        with quiet_pooch(), tqdm(total=len(tasks), unit="file", desc="aslnb data fetch", disable=not progress) as bar:
            jobs = _in_threads(lambda t: _fetch_one(t, dest, downloaders[t.expected is not None]), tasks, workers,
                               transfers)
            with closing(jobs):  # on any exit, also Ctrl-C: transfers cut off, threads and temporary files gone
                for task, outcome in jobs:
                    _collect(outcome, task, dest, old, entries, result)
                    bar.update(1)
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


def _prepare(dest: Path, classes: list[str], tasks: list[Task], session, base: str) -> None:
    """Fail fast when offline (before creating anything), then create the class folders."""
    missing = [t for t in tasks if not (dest / t.rel).is_file()]
    if missing:
        probe(session, missing[0].url, urlsplit(base).netloc,
              f"point the project at local images with --data DIR or {DATA_ENV}=DIR, or set {DATA_URL_ENV} "
              "to a mirror")
    try:
        for cls in classes:
            (dest / cls).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create the data folder {dest} ({err}): choose another --dest") from err
    _remove_leftovers(dest, classes)


def fetch_file(url: str, sha256: str, dest_dir: str | os.PathLike, name: str | None = None,
               http: HttpOptions = HttpOptions(), progress: bool = False) -> Path:
    """``dest_dir/name`` (default: the URL's last part) holding the file at ``url`` with ``sha256``.

    Downloaded only when missing or different (then replaced only by a verified copy), with
    ``http``'s deadline and size cap (by default 120 s and 20 MB: give larger ones for a large
    file); any failure is a one-line :class:`DownloadError` naming the URL, and leaves no
    partial file.
    """
    target = Path(dest_dir).expanduser() / (name or urlsplit(url).path.rsplit("/", 1)[-1])
    with make_session(1) as session, quiet_pooch():
        downloader = Downloader(session, http, content_types=None, progress=progress)
        try:
            retrieve(url, sha256, target, downloader)
        except HttpFailure as err:
            raise DownloadError(f"cannot download {url} ({err}): check the network, or put the file with sha256 "
                                f"{sha256[:12]}... at {target} by hand") from None
        except OSError as err:
            raise DownloadError(f"cannot write {target} ({err}): check free space and permissions") from None
    return target


def _collect(outcome, task: Task, dest: Path, old: dict, entries: dict, result: FetchResult) -> None:
    """Record the outcome of one download (a tuple, or the exception it raised) in ``result`` and ``entries``."""
    if isinstance(outcome, HttpFailure):
        if outcome.status == 404 and task.expected is None:
            LOG.warning("%s: skipped, not on the server (a gap in the upstream frames)", task.url)
            result.skipped.append((task.url, str(outcome)))
        else:
            result.failed.append((task.url, str(outcome)))
        return
    if isinstance(outcome, OSError):
        result.failed.append((task.url, f"cannot write {dest / task.rel} ({outcome})"))
        return
    if isinstance(outcome, BaseException):
        raise outcome
    status, sha, size = outcome
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
            if p.is_file() and p.stat().st_size == entry.get("bytes"):
                merged[rel] = entry
        except OSError:
            pass
    try:
        write_json(path, merged, indent=1, sort_keys=True)
    except OSError as err:
        raise DownloadError(f"cannot write {path} ({err}): check free space and permissions of the folder") from err

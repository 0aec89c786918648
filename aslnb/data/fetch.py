"""Download a subset of the ASL alphabet images (the backend of ``aslnb data fetch``).

The images come from a public GitHub mirror of the Kaggle "ASL Alphabet" training set:
``<base>/<CLASS>/<CLASS><n>.jpg`` for the 29 classes and frames ``n = 1..3000``. The
base URL is a setting: the ``base_url`` argument, else ``$ASLNB_DATA_URL``, else
:data:`DEFAULT_BASE_URL`.

:func:`fetch_dataset` downloads ``per_class`` evenly spread frames of each class into
``dest/<CLASS>/``, in parallel, and is resumable: files already there that decode are
kept. Each download is written to a hidden temporary file next to its target
(``.A1008.jpg.part``), checked (HTTP status, Content-Length against the bytes received,
an ``image/*`` content type when the server sends one, a full PIL decode) and only then
moved into place with :func:`os.replace`; a bad download leaves nothing behind and is
reported in :attr:`FetchResult.failed`. ``dest/manifest.json`` maps each good file's
relative path to its ``sha256``, size in ``bytes`` and source ``url``; it is rewritten
atomically at the end of every run (also an interrupted one) and only lists files that
are on disk.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..errors import DownloadError, ParameterError
from ..io import write_json
from ..settings import DATA_ENV, default_data_dir

__all__ = [
    "CLASSES",
    "DATA_URL_ENV",
    "DEFAULT_BASE_URL",
    "FRAMES_PER_CLASS",
    "MANIFEST_NAME",
    "FetchResult",
    "fetch_dataset",
    "frame_url",
    "frames_for",
    "resolve_base_url",
]

#: The 29 class folders, in ``sorted()`` order (upper-case letters sort first).
CLASSES: list[str] = sorted([chr(c) for c in range(ord("A"), ord("Z") + 1)] + ["del", "nothing", "space"])
#: Frames per class in the full training set, numbered ``1..FRAMES_PER_CLASS``.
FRAMES_PER_CLASS = 3000
DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/loicmarie/sign-language-alphabet-recognizer/master/dataset"
)
DATA_URL_ENV = "ASLNB_DATA_URL"
MANIFEST_NAME = "manifest.json"

#: Extra attempts for a 5xx answer, and the first pause between attempts (doubled each time).
RETRIES = 2
RETRY_BACKOFF = 0.25
#: Seconds the reachability probe may take to connect / to get an answer.
PROBE_CONNECT_TIMEOUT = 3.0
PROBE_READ_TIMEOUT = 5.0
_CHUNK = 64 * 1024


@dataclass
class FetchResult:
    """What :func:`fetch_dataset` did.

    ``downloaded`` and ``kept`` are counts (``kept``: already present and valid);
    ``downloaded_files`` / ``kept_files`` list the same files as paths relative to
    ``dest`` (``"A/A1008.jpg"``); ``failed`` holds ``(url, reason)`` pairs.
    """

    dest: Path
    manifest: Path
    downloaded: int = 0
    kept: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    downloaded_files: list[str] = field(default_factory=list)
    kept_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every requested file is on disk and valid."""
        return not self.failed

    @property
    def total(self) -> int:
        return self.downloaded + self.kept + len(self.failed)


def resolve_base_url(base_url: str | None = None) -> str:
    """The image base URL: ``base_url``, else ``$ASLNB_DATA_URL``, else the default."""
    if base_url:
        source, url = "base_url", base_url
    elif os.environ.get(DATA_URL_ENV):
        source, url = DATA_URL_ENV, os.environ[DATA_URL_ENV]
    else:
        source, url = "default", DEFAULT_BASE_URL
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(
            f"data URL {url!r} (from {source}) is not an http(s) URL: set {DATA_URL_ENV} to a "
            f"mirror such as {DEFAULT_BASE_URL}, or use local images with --data DIR or {DATA_ENV}=DIR"
        )
    return url


def frames_for(per_class: int, n_frames: int = FRAMES_PER_CLASS) -> list[int]:
    """``per_class`` distinct frame numbers spread evenly over ``1..n_frames``, ascending.

    Frame ``i`` (0-based) is the middle of the ``i``-th of ``per_class`` equal slices,
    so the choice is deterministic and ``per_class == n_frames`` gives every frame.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int):
        raise ParameterError(f"per_class must be an integer, got {per_class!r}")
    if not 1 <= per_class <= n_frames:
        raise ParameterError(f"per_class={per_class} is out of range: use 1..{n_frames} images per class")
    return [1 + ((2 * i + 1) * n_frames) // (2 * per_class) for i in range(per_class)]


def frame_url(base_url: str, cls: str, n: int) -> str:
    """URL of frame ``n`` of class ``cls`` under ``base_url``."""
    return f"{base_url.rstrip('/')}/{cls}/{cls}{n}.jpg"


# --------------------------------------------------------------------------- helpers


class _Bad(Exception):
    """A download that must be rejected; ``str()`` is the reason."""


def _check_image(data: bytes) -> None:
    """Raise ``_Bad`` unless ``data`` is an image PIL can fully decode."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except UnidentifiedImageError:
        raise _Bad("not a valid image (unrecognised image data)") from None
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        raise _Bad(f"not a valid image ({err})") from None


def _cause(err: BaseException) -> str:
    """The innermost exception wrapped in ``err``'s args, e.g. ``IncompleteRead(100 bytes read, ...)``."""
    seen = 0
    while err.args and isinstance(err.args[-1], BaseException) and seen < 5:
        err, seen = err.args[-1], seen + 1
    text, name = str(err), type(err).__name__
    return text if not seen or text.startswith(name) else f"{name}: {text}"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def _read_manifest(path: Path) -> dict:
    """The existing manifest, or ``{}`` if there is none or it is unreadable (it is rebuilt)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and "bytes" in v and "sha256" in v}


def _download(session: requests.Session, url: str, target: Path, timeout: float) -> tuple[str, int]:
    """Download ``url`` to ``target`` through a temporary file; return (sha256, bytes).

    Raises ``_Bad`` with the reason on any failure, leaving neither the temporary file
    nor ``target`` behind (``target`` is only written by the final ``os.replace``).
    """
    part = _part_path(target)
    try:
        for attempt in range(RETRIES + 1):
            try:
                with session.get(url, stream=True, timeout=timeout) as r:
                    if r.status_code >= 500 and attempt < RETRIES:
                        time.sleep(RETRY_BACKOFF * 2**attempt)
                        continue
                    if r.status_code != 200:
                        tries = f" after {attempt + 1} attempts" if attempt else ""
                        raise _Bad(f"HTTP {r.status_code} {r.reason or ''}".rstrip() + tries)
                    ctype = r.headers.get("Content-Type", "")
                    mime = ctype.split(";")[0].strip().lower()
                    if mime and not mime.startswith("image/"):
                        raise _Bad(f"content type is {mime!r}, not an image (wrong URL or an error page?)")
                    expected = r.headers.get("Content-Length")
                    encoded = r.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
                    h = hashlib.sha256()
                    buf = bytearray()
                    try:
                        with open(part, "wb") as f:
                            for chunk in r.iter_content(_CHUNK):
                                f.write(chunk)
                                h.update(chunk)
                                buf += chunk
                    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as err:
                        want = f" the announced {expected} bytes" if expected else " the end of the body"
                        raise _Bad(f"truncated download: connection closed before{want} ({_cause(err)})") from None
                    if expected is not None and not encoded and expected.isdigit() and int(expected) != len(buf):
                        raise _Bad(f"truncated download: received {len(buf)} of {expected} bytes (Content-Length)")
                    if not buf:
                        raise _Bad("empty response body")
                    _check_image(bytes(buf))
                    os.replace(part, target)
                    return h.hexdigest(), len(buf)
            except requests.exceptions.Timeout:
                raise _Bad(f"timed out after {timeout} s") from None
            except requests.exceptions.ConnectionError as err:
                raise _Bad(f"connection failed ({_cause(err)})") from None
            except requests.exceptions.RequestException as err:
                raise _Bad(f"request failed ({type(err).__name__}: {err})") from None
        raise _Bad("no attempt made")  # unreachable: the last attempt always returns or raises
    finally:
        _unlink(part)


def _probe(session: requests.Session, url: str, host: str) -> None:
    """One quick request to fail fast, with advice, when the host cannot be reached.

    Any HTTP answer (even 404 or 405) counts as reachable; per-file errors are then
    reported by the downloads themselves.
    """
    advice = (
        f"point the project at local images with --data DIR or {DATA_ENV}=DIR, "
        f"or set {DATA_URL_ENV} to a mirror"
    )
    try:
        r = session.head(url, timeout=(PROBE_CONNECT_TIMEOUT, PROBE_READ_TIMEOUT), allow_redirects=True)
        r.close()
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        kind = "timed out" if isinstance(err, requests.exceptions.Timeout) else "connection failed"
        raise DownloadError(f"cannot reach {host} (offline?, {kind}): {advice}") from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"cannot reach {host} ({type(err).__name__}: {err}): {advice}") from err


def _clean_stale_parts(folder: Path) -> None:
    """Remove temporary files left by an earlier run that was killed."""
    if folder.is_dir():
        for p in folder.glob(".*.part"):
            _unlink(p)


# --------------------------------------------------------------------------- main entry


def fetch_dataset(
    dest: str | os.PathLike | None,
    per_class: int,
    base_url: str | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    workers: int = 8,
    timeout: float = 20,
    progress: bool = True,
) -> FetchResult:
    """Download ``per_class`` images of each class into ``dest/<CLASS>/`` (resumable).

    ``dest`` defaults to :func:`aslnb.settings.default_data_dir`; ``classes`` to all
    of :data:`CLASSES`; ``base_url`` to ``$ASLNB_DATA_URL`` or :data:`DEFAULT_BASE_URL`.
    Files already in ``dest`` that decode are kept. Returns a :class:`FetchResult`;
    raises :class:`DownloadError` when the host cannot be reached or when every
    requested download failed.
    """
    dest = Path(dest).expanduser() if dest else default_data_dir()
    base = resolve_base_url(base_url)
    frames = frames_for(per_class)
    if classes is None:
        classes = list(CLASSES)
    else:
        classes = list(dict.fromkeys(classes))
        unknown = [c for c in classes if c not in CLASSES]
        if unknown or not classes:
            raise ParameterError(
                f"unknown class name(s) {unknown or classes}: choose from {', '.join(CLASSES)}"
            )
    if workers < 1:
        raise ParameterError(f"workers={workers} must be at least 1")

    manifest_path = dest / MANIFEST_NAME
    old_manifest = _read_manifest(manifest_path)
    result = FetchResult(dest=dest, manifest=manifest_path)
    tasks = [(cls, n, f"{cls}/{cls}{n}.jpg", frame_url(base, cls, n)) for cls in classes for n in frames]
    entries: dict[str, dict] = {}

    session = requests.Session()
    session.headers.update({"User-Agent": "aslnb-data-fetch", "Accept-Encoding": "identity"})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(workers, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def work(task):
        _cls, _n, rel, url = task
        target = dest / rel
        if target.is_file():
            try:
                data = target.read_bytes()
                _check_image(data)
                return "kept", rel, url, hashlib.sha256(data).hexdigest(), len(data)
            except (OSError, _Bad):
                _unlink(target)  # a corrupt or unreadable file: fetch it again
        sha, size = _download(session, url, target, timeout)
        return "downloaded", rel, url, sha, size

    try:
        # Fail fast when offline, before creating anything; skipped when every file is
        # already there (a corrupt one then fails on its own).
        missing = [t for t in tasks if not (dest / t[2]).is_file()]
        if missing:
            _probe(session, missing[0][3], urlsplit(base).netloc)
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for cls in classes:
                (dest / cls).mkdir(exist_ok=True)
                _clean_stale_parts(dest / cls)
        except OSError as err:
            raise DownloadError(f"cannot create the data folder {dest} ({err}): choose another --dest") from err
        bar = tqdm(total=len(tasks), unit="file", desc="aslnb data fetch", disable=not progress)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aslnb-fetch")
        try:
            futures = {pool.submit(work, t): t for t in tasks}
            for fut in as_completed(futures):
                _cls, _n, rel, url = futures[fut]
                try:
                    status, rel, url, sha, size = fut.result()
                except _Bad as err:
                    result.failed.append((url, str(err)))
                except OSError as err:
                    result.failed.append((url, f"cannot write {dest / rel} ({err})"))
                else:
                    old = old_manifest.get(rel, {})
                    src = old.get("url", url) if old.get("sha256") == sha else url
                    entries[rel] = {"sha256": sha, "bytes": size, "url": src}
                    if status == "kept":
                        result.kept += 1
                        result.kept_files.append(rel)
                    else:
                        result.downloaded += 1
                        result.downloaded_files.append(rel)
                bar.update(1)
                if result.failed:
                    bar.set_postfix(failed=len(result.failed), refresh=False)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
    except BaseException:
        # Interrupted (Ctrl-C) or failed: still record what is good on disk, then re-raise.
        if dest.is_dir():
            try:
                _write_manifest(manifest_path, dest, old_manifest, entries)
            except DownloadError:
                pass
        raise
    finally:
        session.close()
    _write_manifest(manifest_path, dest, old_manifest, entries)

    result.failed.sort()
    result.downloaded_files.sort()
    result.kept_files.sort()
    if result.failed and not (result.downloaded or result.kept):
        url, reason = result.failed[0]
        err = DownloadError(
            f"all {len(result.failed)} downloads from {base} failed (first: {url}: {reason}): check "
            f"{DATA_URL_ENV} or the network, or use local images with --data DIR or {DATA_ENV}=DIR"
        )
        err.result = result  # the full list of failures, for callers that want it
        raise err
    return result


def _write_manifest(path: Path, dest: Path, old: dict, new: dict) -> None:
    """Merge this run's entries into the old manifest, keeping only files that are on disk.

    Old entries survive when their file still exists with the recorded size (files
    this run found corrupt or failed to fetch are gone from disk, so they drop out);
    this run's entries replace old ones.
    """
    merged: dict[str, dict] = {}
    for rel, entry in old.items():
        p = dest / rel
        try:
            if p.is_file() and p.stat().st_size == entry.get("bytes"):
                merged[rel] = entry
        except OSError:
            pass
    for rel, entry in new.items():
        if (dest / rel).is_file():
            merged[rel] = entry
    try:
        write_json(path, merged, indent=1, sort_keys=True)
    except OSError as err:
        raise DownloadError(f"cannot write {path} ({err}): check free space and permissions of the folder") from err

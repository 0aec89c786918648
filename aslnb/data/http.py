"""One careful HTTP download: retries with backoff, a size cap, streaming to a temporary file.

:func:`download` writes ``url`` to a hidden ``.NAME.part`` file next to ``target`` in
chunks, checks it (status, Content-Length, an ``image/*`` type when one is sent, a
size cap, the expected sha256 and size when known, a caller's content check) and only
then moves it into place with :func:`os.replace`. Whatever goes wrong, no ``.part``
file is left. 429 and 5xx answers are retried after the server's ``Retry-After`` (or
an exponential backoff), never longer than ``backoff_cap`` seconds.
"""
from __future__ import annotations

import email.utils
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
from requests.adapters import HTTPAdapter

from ..errors import DownloadError

RETRY_STATUS = (429, 500, 502, 503, 504)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HttpOptions:
    """Limits of one download: timeout (s), body cap (bytes), retries and backoff (s)."""

    timeout: float = 20.0
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 4
    backoff: float = 0.5
    backoff_cap: float = 30.0


class HttpFailure(Exception):
    """A download to reject: ``str()`` is the reason; ``status`` the HTTP status if any."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


def make_session(workers: int) -> requests.Session:
    """A session with one connection per worker and no content encoding (exact bytes)."""
    session = requests.Session()
    session.headers.update({"User-Agent": "aslnb-data-fetch", "Accept-Encoding": "identity"})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(workers, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def retry_delay(retry_after: str | None, attempt: int, opts: HttpOptions) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``Retry-After`` if given, capped."""
    delay = opts.backoff * 2**attempt
    if retry_after:
        value = retry_after.strip()
        try:
            delay = float(value)  # seconds
        except ValueError:
            try:  # or an HTTP date
                when = email.utils.parsedate_to_datetime(value)
                if when.tzinfo is not None:
                    delay = max(0.0, when.timestamp() - time.time())
            except (TypeError, ValueError, IndexError):
                pass  # unreadable: keep the backoff
    return min(max(delay, 0.0), opts.backoff_cap)


def _cause(err: BaseException) -> str:
    """The innermost exception wrapped in ``err``'s args, e.g. ``IncompleteRead(...)``."""
    seen = 0
    while err.args and isinstance(err.args[-1], BaseException) and seen < 5:
        err, seen = err.args[-1], seen + 1
    text, name = str(err), type(err).__name__
    return text if not seen or text.startswith(name) else f"{name}: {text}"


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def _too_big(url: str, opts: HttpOptions, got: str) -> DownloadError:
    return DownloadError(f"{url}: the response is larger than the {opts.max_bytes} byte cap ({got}); "
                         "the URL does not point at one image: check --base-url / ASLNB_DATA_URL")


def _receive(r: requests.Response, url: str, part: Path, opts: HttpOptions) -> tuple[str, int]:
    """Stream the body of ``r`` into ``part``; return (sha256, bytes)."""
    expected = r.headers.get("Content-Length")
    if expected and expected.isdigit() and int(expected) > opts.max_bytes:
        raise _too_big(url, opts, f"Content-Length {expected}")
    h, size = hashlib.sha256(), 0
    try:
        with open(part, "wb") as f:
            for chunk in r.iter_content(_CHUNK):
                size += len(chunk)
                if size > opts.max_bytes:
                    raise _too_big(url, opts, f"more than {size} bytes received, still sending")
                f.write(chunk)
                h.update(chunk)
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as err:
        want = f" the announced {expected} bytes" if expected else " the end of the body"
        raise HttpFailure(f"truncated download: connection closed before{want} ({_cause(err)})") from None
    encoded = r.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if expected is not None and not encoded and expected.isdigit() and int(expected) != size:
        raise HttpFailure(f"truncated download: received {size} of {expected} bytes (Content-Length)")
    if not size:
        raise HttpFailure("empty response body")
    return h.hexdigest(), size


def download(
    session: requests.Session,
    url: str,
    target: Path,
    opts: HttpOptions = HttpOptions(),
    expected: tuple[str, int] | None = None,
    check: Callable[[Path], None] | None = None,
) -> tuple[str, int]:
    """Download ``url`` to ``target``; return (sha256, bytes).

    ``expected`` (sha256, bytes) must match when given; ``check(path)`` may raise
    :class:`HttpFailure` to reject the content. Raises :class:`HttpFailure` for a bad
    file and :class:`DownloadError` for a body over ``opts.max_bytes`` (the URL is wrong).
    """
    part = part_path(target)
    try:
        for attempt in range(opts.retries + 1):
            try:
                with session.get(url, stream=True, timeout=opts.timeout) as r:
                    if r.status_code in RETRY_STATUS and attempt < opts.retries:
                        time.sleep(retry_delay(r.headers.get("Retry-After"), attempt, opts))
                        continue
                    if r.status_code != 200:
                        tries = f" after {attempt + 1} attempts" if attempt else ""
                        raise HttpFailure(f"HTTP {r.status_code} {r.reason or ''}".rstrip() + tries, r.status_code)
                    mime = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    if mime and not mime.startswith("image/"):
                        raise HttpFailure(f"content type is {mime!r}, not an image (wrong URL or an error page?)")
                    sha, size = _receive(r, url, part, opts)
                if expected is not None and (sha, size) != tuple(expected):
                    raise HttpFailure(f"sha256 {sha[:12]}... ({size} bytes) differs from the manifest's "
                                      f"{expected[0][:12]}... ({expected[1]} bytes): the mirror serves other "
                                      "bytes; the file was deleted")
                if check is not None:
                    check(part)
                os.replace(part, target)
                return sha, size
            except requests.exceptions.Timeout:
                raise HttpFailure(f"timed out after {opts.timeout} s") from None
            except requests.exceptions.ConnectionError as err:
                raise HttpFailure(f"connection failed ({_cause(err)})") from None
            except requests.exceptions.RequestException as err:
                raise HttpFailure(f"request failed ({type(err).__name__}: {err})") from None
        raise HttpFailure("no attempt made")  # unreachable: the last attempt returns or raises
    finally:
        part.unlink(missing_ok=True)


def probe(session: requests.Session, url: str, host: str, advice: str, timeout: tuple[float, float] = (3, 5)) -> None:
    """One quick HEAD request to fail fast, with ``advice``, when ``host`` cannot be reached.

    Any HTTP answer (even 404 or 405) counts as reachable.
    """
    try:
        session.head(url, timeout=timeout, allow_redirects=True).close()
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        kind = "timed out" if isinstance(err, requests.exceptions.Timeout) else "connection failed"
        raise DownloadError(f"cannot reach {host} (offline?, {kind}): {advice}") from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"cannot reach {host} ({type(err).__name__}: {err}): {advice}") from err

"""One download with a known sha256, on :mod:`pooch`: what pooch does, and the few limits it lacks.

:func:`retrieve` hands ``url`` to :func:`pooch.retrieve`, which downloads into a temporary
file beside the target, checks the sha256 when one is known and only then moves the file
into place: a file already there with the right hash is not downloaded again (resume), a
differing one is only replaced by a verified copy, and a failed download leaves nothing.
pooch calls :class:`Downloader` for the transfer itself, which adds what pooch lacks: a
total deadline per file (a server sending a byte every few seconds never trips a per-read
timeout), a cap on the response size, image-only content types, retries of 429 and 5xx
after the server's ``Retry-After``, capped and within the deadline (pooch retries every
failure after fixed waits and ignores it; urllib3's ``Retry`` sleeps the whole
``Retry-After``, past the deadline and deaf to Ctrl-C), and :class:`Transfers`, which lets
Ctrl-C cut every transfer off at once.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pooch
import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from ..errors import DownloadError, ParameterError
from ..settings import DOWNLOAD_DEADLINE

RETRY_STATUS = (429, 500, 502, 503, 504)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HttpOptions:
    """Limits of one file's download, in seconds and bytes.

    ``timeout`` bounds the connection and each wait for data; ``deadline`` the whole file,
    retries included; ``max_bytes`` its size. 429/5xx answers are retried ``retries`` times
    after ``Retry-After`` or ``backoff * 2**attempt``, never more than ``backoff_cap``.
    """

    timeout: float = 20.0
    deadline: float = DOWNLOAD_DEADLINE
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 4
    backoff: float = 0.5
    backoff_cap: float = 30.0

    def __post_init__(self) -> None:
        for name in ("timeout", "deadline", "max_bytes"):
            if not getattr(self, name) > 0:
                flag = " (--deadline)" if name == "deadline" else ""
                raise ParameterError(f"{name}{flag}={getattr(self, name)}: must be greater than 0")
        if self.retries < 0:
            raise ParameterError(f"retries={self.retries}: must be 0 or more")


class HttpFailure(Exception):
    """A download to reject: ``str()`` is the reason; ``status`` the HTTP status if any."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


def make_session(workers: int) -> requests.Session:
    """A session with one connection per worker and no content encoding (exact bytes)."""
    session = requests.Session()
    session.headers.update({"User-Agent": "aslnb-data-fetch", "Accept-Encoding": "identity"})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=workers)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def retry_delay(retry_after: str | None, attempt: int, opts: HttpOptions) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``Retry-After`` (seconds or an HTTP date, read by
    urllib3) if given and readable, else ``backoff * 2**attempt``; at most ``backoff_cap``."""
    delay = opts.backoff * 2**attempt
    if retry_after:
        with suppress(InvalidHeader):  # unreadable: keep the backoff
            delay = Retry().parse_retry_after(retry_after)
    return min(max(delay, 0.0), opts.backoff_cap)


def _cut(body) -> None:
    """Stop a response body being read in another thread: its blocked read returns at once."""
    try:
        body.shutdown()  # urllib3 >= 2.3: shuts the socket for reading
    except (ValueError, RuntimeError, OSError):
        pass  # already finished


class Transfers:
    """The transfers in flight: :meth:`abort` (Ctrl-C) cuts them all off and returns their temporary files."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[str, object] = {}  # temporary file -> the response body being read into it

    @contextmanager
    def track(self, tmp: str) -> Iterator[None]:
        with self._lock:
            if self.stopped.is_set():
                raise HttpFailure("interrupted")
            self._live[tmp] = None
        try:
            yield
        finally:
            with self._lock:
                self._live.pop(tmp, None)

    def reading(self, tmp: str, body) -> None:
        with self._lock:
            if self.stopped.is_set():
                raise HttpFailure("interrupted")
            self._live[tmp] = body

    def abort(self) -> list[str]:
        with self._lock:
            self.stopped.set()
            live = dict(self._live)
        for body in live.values():
            if body is not None:
                _cut(body)
        return list(live)


def _cause(err: BaseException) -> str:
    """The innermost exception wrapped in ``err``'s args, e.g. ``IncompleteRead(...)``."""
    seen = 0
    while err.args and isinstance(err.args[-1], BaseException) and seen < 5:
        err, seen = err.args[-1], seen + 1
    text, name = str(err), type(err).__name__
    return text if not seen or text.startswith(name) else f"{name}: {text}"


@dataclass
class Downloader:
    """The callable pooch calls to transfer ``url`` into its temporary file (see the module docstring).

    ``check(path)`` may raise :class:`HttpFailure` to reject the content (e.g. an image that
    does not decode). Raises :class:`HttpFailure` for a file to reject and
    :class:`DownloadError` for a body over ``opts.max_bytes`` (the URL is wrong).
    """

    session: requests.Session
    opts: HttpOptions = HttpOptions()
    transfers: Transfers = field(default_factory=Transfers)
    check: Callable[[Path], None] | None = None
    content_types: tuple[str, ...] | None = ("image/",)  # None: any
    progress: bool = False

    def __call__(self, url: str, output_file: str, pooch_=None) -> None:
        end = time.monotonic() + self.opts.deadline
        with self.transfers.track(output_file):
            for attempt in range(self.opts.retries + 1):
                wait = min(self.opts.timeout, end - time.monotonic())
                if wait <= 0:
                    raise self._stalled()
                try:
                    with self.session.get(url, stream=True, timeout=wait) as r:
                        if r.status_code in RETRY_STATUS and attempt < self.opts.retries:
                            delay = retry_delay(r.headers.get("Retry-After"), attempt, self.opts)
                            if self.transfers.stopped.wait(min(delay, max(0.0, end - time.monotonic()))):
                                raise HttpFailure("interrupted")
                            continue
                        _check_answer(r, attempt, self.content_types)
                        self._receive(r, url, output_file, end)
                    break
                except requests.exceptions.Timeout:
                    if time.monotonic() >= end:
                        raise self._stalled() from None
                    raise HttpFailure(f"timed out after {self.opts.timeout:g} s") from None
                except requests.exceptions.RequestException as err:
                    raise HttpFailure(f"connection failed ({_cause(err)})") from None
        if self.check is not None:
            self.check(Path(output_file))

    def _stalled(self) -> HttpFailure:
        return HttpFailure(f"stalled: not complete within the {self.opts.deadline:g} s deadline; the server is "
                           "too slow: retry later or give a longer --deadline")

    def _receive(self, r: requests.Response, url: str, tmp: str, end: float) -> None:
        """Stream the body of ``r`` into ``tmp``, cut off at ``end`` (monotonic seconds)."""
        expected = r.headers.get("Content-Length")
        expected = int(expected) if expected and expected.isdigit() else None
        if expected is not None and expected > self.opts.max_bytes:
            raise _too_big(url, self.opts, f"Content-Length {expected}")
        self.transfers.reading(tmp, r.raw)
        expired = threading.Event()
        timer = threading.Timer(max(0.0, end - time.monotonic()), lambda: (expired.set(), _cut(r.raw)))
        timer.daemon = True
        timer.start()
        size = 0
        try:
            with open(tmp, "wb") as f, tqdm(total=expected, unit="B", unit_scale=True, leave=False,
                                            desc=url.rsplit("/", 1)[-1], disable=not self.progress) as bar:
                for chunk in r.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > self.opts.max_bytes:
                        raise _too_big(url, self.opts, f"more than {size} bytes received, still sending")
                    f.write(chunk)
                    bar.update(len(chunk))
        except Exception as err:  # noqa: BLE001 - a read cut off on purpose ends in various errors (TLS...)
            if not (expired.is_set() or self.transfers.stopped.is_set()):  # else: said below
                if not isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
                    raise
                # also a body shorter than its Content-Length: urllib3 enforces the length (IncompleteRead)
                want = f" the announced {expected} bytes" if expected else " the end of the body"
                raise HttpFailure(f"truncated download: connection closed before{want} ({_cause(err)})") from None
        finally:
            timer.cancel()
        if expired.is_set():
            raise self._stalled()
        if self.transfers.stopped.is_set():
            raise HttpFailure("interrupted")
        if not size:
            raise HttpFailure("empty response body")


def _check_answer(r: requests.Response, attempt: int, content_types: tuple[str, ...] | None) -> None:
    """Refuse a status other than 200 and, when ``content_types`` are given, a content type not among them."""
    if r.status_code != 200:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        raise HttpFailure(f"HTTP {r.status_code} {r.reason or ''}".rstrip() + tries, r.status_code)
    mime = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if mime and content_types and not mime.startswith(content_types):
        raise HttpFailure(f"content type is {mime!r}, not an image (wrong URL or an error page?)")


def _too_big(url: str, opts: HttpOptions, got: str) -> DownloadError:
    return DownloadError(f"{url}: the response is larger than the {opts.max_bytes} byte cap ({got}); the URL "
                         "does not point at the expected file: check it (data fetch: --base-url / ASLNB_DATA_URL)")


def retrieve(url: str, sha256: str | None, target: Path, downloader: Downloader) -> str:
    """Make ``target`` the file at ``url`` with :func:`pooch.retrieve`; return pooch's action.

    ``"fetch"``: ``target`` already had ``sha256`` (or, with ``sha256=None``, existed) and was
    kept; ``"download"`` / ``"update"``: a (verified) copy was written. A copy whose sha256
    differs raises :class:`HttpFailure`; ``target`` is then as it was.
    """
    try:
        return pooch.retrieve(url, known_hash=sha256, fname=target.name, path=target.parent,
                              downloader=downloader, processor=lambda _path, action, _pooch: action)
    except ValueError as err:  # pooch's hash check
        if "hash" not in str(err):
            raise
        raise HttpFailure(f"sha256 differs from the expected {sha256[:12]}...: the server sends other bytes; "
                          "the download was deleted") from None


@contextmanager
def quiet_pooch() -> Iterator[None]:
    """Silence pooch's per-file "Downloading ..." lines (our progress bar and summary say it)."""
    log = pooch.get_logger()
    level = log.level
    log.setLevel("WARNING")
    try:
        yield
    finally:
        log.setLevel(level)


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

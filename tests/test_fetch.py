"""Tests of ``aslnb.data.fetch`` against real HTTP servers on 127.0.0.1.

Nothing in the code under test is mocked: every test starts a ``http.server`` in a
thread (port 0) whose behaviour per frame is given by a small ``route`` function, and
:func:`fetch_dataset` talks to it through pooch and ``requests`` like it talks to GitHub.
The reliability cases of issue 25 (1: a user's differing file, 2: a stalling server,
3: Ctrl-C, 21: ``--per-class 0``) run the ``aslnb`` command itself where the user sees them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from aslnb.data import fetch as F
from aslnb.data.fetch import (
    CLASSES,
    DEFAULT_BASE_URL,
    FetchResult,
    fetch_dataset,
    frame_url,
    frames_for,
    plan,
    resolve_base_url,
)
from aslnb.data.http import HttpOptions, retry_delay
from aslnb.data.manifest import Manifest, load_manifest
from aslnb.errors import EXIT_INTERRUPTED, DownloadError, ParameterError

# Tiny pauses: the retry tests must not sleep for real.
FAST = HttpOptions(timeout=5, retries=2, backoff=0.01, backoff_cap=0.05)

# --------------------------------------------------------------------------- fixtures


@dataclass
class Reply:
    """What the test server answers to one GET.

    ``length`` is the Content-Length header sent (default: ``len(body)``; larger than
    the body means a truncated response: the server then closes the connection);
    ``ctype=None`` sends no Content-Type; ``drop`` closes the connection without any
    answer (a dying server).
    """

    status: int = 200
    body: bytes = b""
    ctype: str | None = "image/jpeg"
    length: int | None = None
    drop: bool = False
    headers: dict | None = None  # extra headers, e.g. Retry-After
    endless: bool = False  # no Content-Length, then chunks of ``body`` until the client hangs up
    trickle: float = 0.0  # seconds between single bytes of ``body`` (a stalling server); gives up after 30 s


@dataclass
class Server:
    url: str
    gets: Counter  # path -> number of GET requests


Route = Callable[[str, int], Reply]


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1 (port 0) for the test; all stopped afterwards.

    ``serve(route)`` returns a :class:`Server`; ``route(cls, n)`` gives the
    :class:`Reply` to ``GET /<cls>/<cls><n>.jpg``. Other paths get 404. ``HEAD``
    (the reachability probe of ``fetch_dataset``) always gets a bodiless 200, so the
    routes only have to describe the downloads.
    """
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> Server:
        gets: Counter = Counter()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection, closed after the answer

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _parse(self):
                m = re.fullmatch(r"/dataset/([^/]+)/\1(\d+)\.jpg", self.path)
                return (m.group(1), int(m.group(2))) if m else None

            def do_HEAD(self):
                self.send_response(200 if self._parse() else 404)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                with lock:
                    gets[self.path] += 1
                parsed = self._parse()
                reply = route(*parsed) if parsed else Reply(404, b"not found", "text/plain")
                if reply.drop:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                if reply.ctype:
                    self.send_header("Content-Type", reply.ctype)
                for k, v in (reply.headers or {}).items():
                    self.send_header(k, v)
                if reply.endless:  # bounded: stops after 64 MB or 10 s if the client never hangs up
                    self.end_headers()
                    t0 = time.monotonic()
                    try:
                        for _ in range(64 * 1024 * 1024 // len(reply.body)):
                            self.wfile.write(reply.body)
                            if time.monotonic() - t0 > 10:
                                break
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                length = len(reply.body) if reply.length is None else reply.length
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if reply.trickle:  # one byte at a time; bounded so that a client that never gives up is not a hang
                    t0 = time.monotonic()
                    try:
                        for i in range(len(reply.body)):
                            self.wfile.write(reply.body[i:i + 1])
                            self.wfile.flush()
                            if time.monotonic() - t0 > 30:
                                break
                            time.sleep(reply.trickle)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self.wfile.write(reply.body)
                self.wfile.flush()
                self.close_connection = True

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return Server(url=f"http://127.0.0.1:{srv.server_address[1]}/dataset", gets=gets)

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _jpeg(seed: int, size: int = 16) -> bytes:
    """A small real JPEG, different for each seed."""
    im = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _frame_no(name: str) -> int:
    return int(re.search(r"(\d+)\.jpg$", name).group(1))


@pytest.fixture
def sample_server(serve, sample_dir):
    """A server standing in for the upstream mirror: ``GET /dataset/A/A1008.jpg`` answers the
    bytes of ``$ASLNB_DATA/A/A1008.jpg`` (read at request time, no copies), 404 otherwise.

    The sample's files are byte copies of the upstream files, so they match the shipped
    manifest ``asl-alphabet-sample``. ``sample_dir`` (tests/conftest.py) is ``$ASLNB_DATA``.
    """

    def route(cls: str, n: int) -> Reply:
        src = sample_dir / cls / f"{cls}{n}.jpg"
        return Reply(200, src.read_bytes()) if cls in CLASSES and src.is_file() else Reply(404, b"no", "text/plain")

    server = serve(route)
    server.source = lambda cls, n: sample_dir / cls / f"{cls}{n}.jpg"
    return server


def _manifest_of(route, classes, frames) -> Manifest:
    """A reference manifest that vouches for what ``route`` serves (for synthetic servers)."""
    files = {}
    for c in classes:
        for n in frames:
            body = route(c, n).body
            files[f"{c}/{c}{n}.jpg"] = (hashlib.sha256(body).hexdigest(), len(body))
    return Manifest("test", "test", files)


def _files_on_disk(dest: Path) -> set[str]:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*.jpg")}


def assert_consistent(dest: Path) -> dict:
    """The manifest lists exactly the images on disk, with the right sha256 and size,
    every image decodes, and no temporary file is left anywhere."""
    assert not _leftovers(dest), "temporary files left behind"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert set(manifest) == _files_on_disk(dest)
    for rel, entry in manifest.items():
        data = (dest / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), rel
        assert entry["bytes"] == len(data), rel
        assert entry["url"].endswith("/" + rel)
        assert isinstance(entry["verified"], bool)
        with Image.open(dest / rel) as im:
            im.load()
    return manifest


# --------------------------------------------------------------------------- pure functions


def test_classes_and_frames():
    assert len(CLASSES) == 29 and CLASSES == sorted(CLASSES)
    assert CLASSES[:3] == ["A", "B", "C"] and CLASSES[-3:] == ["del", "nothing", "space"]
    for n in (1, 4, 7, 200, 2999, 3000):
        fr = frames_for(n)
        assert len(fr) == n == len(set(fr)), n
        assert fr == sorted(fr) and 1 <= fr[0] and fr[-1] <= 3000
        assert fr == frames_for(n)  # deterministic
    assert frames_for(3000) == list(range(1, 3001))
    assert frames_for(4) == [376, 1126, 1876, 2626]  # evenly spread: the middle of 4 slices
    gaps = {b - a for a, b in zip(frames_for(100), frames_for(100)[1:])}
    assert gaps == {30}
    for bad in (0, -1, 3001, 2.5, "4"):
        with pytest.raises(ParameterError):
            frames_for(bad)


def test_base_url_precedence(monkeypatch):
    monkeypatch.delenv("ASLNB_DATA_URL", raising=False)
    assert resolve_base_url() == DEFAULT_BASE_URL
    assert frame_url(resolve_base_url(), "A", 7) == DEFAULT_BASE_URL + "/A/A7.jpg"
    monkeypatch.setenv("ASLNB_DATA_URL", "http://mirror.example/asl/")
    assert resolve_base_url() == "http://mirror.example/asl"
    assert resolve_base_url("https://other.example/x") == "https://other.example/x"
    with pytest.raises(DownloadError, match="ASLNB_DATA_URL"):
        resolve_base_url("ftp://nope/x")


def test_bad_arguments(tmp_path):
    with pytest.raises(ParameterError, match="unknown class"):
        fetch_dataset(tmp_path, 1, base_url="http://127.0.0.1:9", classes=["a"], progress=False)
    with pytest.raises(ParameterError):
        fetch_dataset(tmp_path, 0, base_url="http://127.0.0.1:9", progress=False)


# --------------------------------------------------------------------------- the shipped manifest


def test_default_plan_is_the_manifest_the_report_used(sample_dir):
    m = load_manifest("asl-alphabet-sample")
    assert len(m.files) == 5800 and set(m.by_class()) == set(CLASSES)
    tasks = plan(m, list(CLASSES), None, "http://x")
    on_disk = {p.relative_to(sample_dir).as_posix() for p in sample_dir.glob("*/*.jpg")}
    assert {t.rel for t in tasks} == on_disk == set(m.files)  # exactly the sample's frames
    assert all(t.expected == m.files[t.rel] for t in tasks)
    four = plan(m, ["A"], 4, "http://x")
    assert len(four) == 4 and all(t.expected for t in four)
    assert [t.rel for t in four] == [m.by_class()["A"][i] for i in (25, 75, 125, 175)]  # evenly spread
    more = plan(m, ["B"], 203, "http://x")
    extra = [t for t in more if t.expected is None]
    assert len(more) == 203 and len(extra) == 3 and len({t.rel for t in more}) == 203
    assert all(t.url == f"http://x/{t.rel}" for t in more)


def test_fetch_verified_resume_and_repair(sample_server, tmp_path):
    dest = tmp_path / "data"
    classes = ["A", "B", "nothing"]
    res = fetch_dataset(dest, 4, base_url=sample_server.url, classes=classes, workers=4, progress=False, http=FAST)
    assert isinstance(res, FetchResult)
    assert (res.downloaded, res.kept, res.failed, res.unverified_files) == (12, 0, [], [])
    expected = {t.rel for t in plan(load_manifest("asl-alphabet-sample"), classes, 4, "")}
    assert set(res.downloaded_files) == expected == _files_on_disk(dest)
    manifest = assert_consistent(dest)
    ref = load_manifest("asl-alphabet-sample").files
    for rel, entry in manifest.items():  # byte-identical to the sample, vouched for by the shipped hash
        assert (dest / rel).read_bytes() == (sample_server.source(*_split(rel))).read_bytes()
        assert (entry["sha256"], entry["bytes"]) == ref[rel] and entry["verified"] is True
    gets_first = sum(sample_server.gets.values())
    assert gets_first == 12

    res2 = fetch_dataset(dest, 4, base_url=sample_server.url, classes=classes, progress=False, http=FAST)
    assert (res2.downloaded, res2.kept, res2.failed) == (0, 12, [])
    assert sum(sample_server.gets.values()) == gets_first  # resumed: no GET at all
    assert assert_consistent(dest) == manifest

    # Delete one file, corrupt another (same size, other bytes): exactly those two come back.
    gone, bad = sorted(expected)[1], sorted(expected)[-1]
    (dest / gone).unlink()
    (dest / bad).write_bytes(b"\0" * (dest / bad).stat().st_size)
    res3 = fetch_dataset(dest, 4, base_url=sample_server.url, classes=classes, progress=False, http=FAST)
    assert (res3.downloaded, res3.kept, res3.failed) == (2, 10, [])
    assert res3.downloaded_files == sorted([gone, bad])
    assert assert_consistent(dest) == manifest


def _split(rel: str) -> tuple[str, int]:
    cls, name = rel.split("/")
    return cls, _frame_no(name)


def test_hash_mismatch_deletes_and_names_the_file(serve, tmp_path):
    frames = frames_for(3)
    good = lambda c, n: Reply(200, _jpeg(n))  # noqa: E731
    ref = _manifest_of(good, ["C"], frames)
    evil = frames[1]
    srv = serve(lambda c, n: Reply(200, _jpeg(n + 1000)) if n == evil else good(c, n))  # a valid JPEG, other bytes
    res = fetch_dataset(tmp_path, None, base_url=srv.url, classes=["C"], progress=False, manifest=ref, http=FAST)
    assert res.downloaded == 2 and len(res.failed) == 1
    url, reason = res.failed[0]
    assert url.endswith(f"/C/C{evil}.jpg") and "sha256" in reason and "differs" in reason and "deleted" in reason
    assert not (tmp_path / "C" / f"C{evil}.jpg").exists()
    assert_consistent(tmp_path)


def test_beyond_the_manifest_unverified_and_gaps_skipped(serve, tmp_path, caplog):
    listed = [376, 1126]
    route0 = lambda c, n: Reply(200, _jpeg(n))  # noqa: E731
    ref = _manifest_of(route0, ["A"], listed)
    tasks = plan(ref, ["A"], 5, "")
    extra = [t.rel for t in tasks if t.expected is None]
    gap = extra[0]  # the server has no such frame, like A1 upstream
    srv = serve(lambda c, n: Reply(404, b"no", "text/plain") if f"{c}/{c}{n}.jpg" == gap else route0(c, n))
    with caplog.at_level("WARNING", logger="aslnb.data"):
        res = fetch_dataset(tmp_path, 5, base_url=srv.url, classes=["A"], progress=False, manifest=ref, http=FAST)
    assert res.ok and res.failed == [] and [u for u, _ in res.skipped] == [f"{srv.url}/{gap}"]
    assert res.downloaded == 4 and sorted(res.unverified_files) == sorted(extra[1:])
    entries = assert_consistent(tmp_path)
    assert {r for r, e in entries.items() if not e["verified"]} == set(extra[1:])
    assert {r for r, e in entries.items() if e["verified"]} == {f"A/A{n}.jpg" for n in listed}
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and gap in lines[0] and "\n" not in lines[0]


# --------------------------------------------------------------------------- failures


def _failed_paths(res: FetchResult, base: str) -> set[str]:
    return {url[len(base) + 1:] for url, _ in res.failed}


def test_http_404_on_a_manifest_frame_is_a_failure(serve, tmp_path):
    frames = frames_for(5)
    route0 = lambda c, n: Reply(200, _jpeg(n))  # noqa: E731
    ref = _manifest_of(route0, ["A", "B"], frames)
    missing = set(frames[1::2])
    srv = serve(lambda c, n: Reply(404, b"Not Found", "text/plain") if n in missing else route0(c, n))
    res = fetch_dataset(tmp_path, None, base_url=srv.url, classes=["A", "B"], progress=True, manifest=ref, http=FAST)
    bad = {f"{c}/{c}{n}.jpg" for c in "AB" for n in missing}
    assert _failed_paths(res, srv.url) == bad and not res.skipped
    assert all("404" in reason for _, reason in res.failed)
    assert res.downloaded == 10 - len(bad) and not res.ok
    assert set(assert_consistent(tmp_path)) == set(res.downloaded_files)


def test_truncated_response(serve, tmp_path):
    cut = frames_for(3)[0]

    def route(c, n):
        body = _jpeg(n, 64)
        if n == cut:  # announce the full size, send half, close
            return Reply(200, body[: len(body) // 2], length=len(body))
        return Reply(200, body)

    srv = serve(route)
    res = fetch_dataset(tmp_path, 3, base_url=srv.url, classes=["C"], progress=False, manifest=None, http=FAST)
    assert _failed_paths(res, srv.url) == {f"C/C{cut}.jpg"}
    assert "truncated" in res.failed[0][1]
    assert not (tmp_path / "C" / f"C{cut}.jpg").exists()
    assert res.downloaded == 2
    assert_consistent(tmp_path)


def test_non_image_content_rejected(serve, tmp_path):
    html, junk, halfjpeg, noctype = frames_for(5)[:4]
    body = _jpeg(1, 64)

    def route(c, n):
        if n == html:  # an error page served with 200
            return Reply(200, b"<html><body>Rate limited</body></html>", "text/html; charset=utf-8")
        if n == junk:  # random bytes that claim to be a JPEG
            return Reply(200, os.urandom(2048), "image/jpeg")
        if n == halfjpeg:  # a JPEG cut in half, with a matching Content-Length
            return Reply(200, body[: len(body) // 2])
        if n == noctype:  # no content type at all: decided by decoding
            return Reply(200, b"just text", None)
        return Reply(200, _jpeg(n), None)  # a real JPEG without content type is fine

    srv = serve(route)
    res = fetch_dataset(tmp_path, 5, base_url=srv.url, classes=["D"], progress=False, manifest=None, http=FAST)
    reasons = {url.rsplit("/", 1)[1]: reason for url, reason in res.failed}
    assert set(reasons) == {f"D{n}.jpg" for n in (html, junk, halfjpeg, noctype)}
    assert "text/html" in reasons[f"D{html}.jpg"]
    for n in (junk, halfjpeg, noctype):
        assert "not a valid image" in reasons[f"D{n}.jpg"]
    assert _files_on_disk(tmp_path) == {f"D/D{frames_for(5)[4]}.jpg"}
    assert_consistent(tmp_path)


def test_server_error_retried_then_reported(serve, tmp_path):
    broken = frames_for(2)[1]
    srv = serve(lambda c, n: Reply(500, b"oops", "text/plain") if n == broken else Reply(200, _jpeg(n)))
    res = fetch_dataset(tmp_path, 2, base_url=srv.url, classes=["E"], progress=False, manifest=None, http=FAST)
    assert srv.gets[f"/dataset/E/E{broken}.jpg"] == FAST.retries + 1  # retried, then given up
    assert _failed_paths(res, srv.url) == {f"E/E{broken}.jpg"}
    assert "HTTP 500" in res.failed[0][1] and "after 3 attempts" in res.failed[0][1]
    assert not (tmp_path / "E" / f"E{broken}.jpg").exists()
    assert res.downloaded == 1
    assert_consistent(tmp_path)


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limit_honours_retry_after(serve, tmp_path, status):
    """429/503 with Retry-After: wait that long (capped), then the file arrives."""
    seen: Counter = Counter()
    lock = threading.Lock()

    def route(c, n):
        with lock:
            seen[n] += 1
            first = seen[n] <= 2
        return Reply(status, b"slow down", "text/plain", headers={"Retry-After": "1"}) \
            if first else Reply(200, _jpeg(n))

    srv = serve(route)
    opts = HttpOptions(timeout=5, retries=3, backoff=0.01, backoff_cap=0.2)
    t0 = time.monotonic()
    res = fetch_dataset(tmp_path, 2, base_url=srv.url, classes=["F"], progress=False, manifest=None, http=opts,
                        workers=2)
    took = time.monotonic() - t0
    assert res.ok and res.downloaded == 2
    assert all(v == 3 for v in seen.values())  # two refusals, then the file
    assert 0.4 <= took < 5  # waited Retry-After=1 s capped to 0.2 s, twice, and not more
    assert_consistent(tmp_path)


def test_retry_delay():
    opts = HttpOptions(backoff=0.5, backoff_cap=30)
    assert [retry_delay(None, a, opts) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]  # exponential
    assert retry_delay(None, 10, opts) == 30  # bounded
    assert retry_delay("7", 0, opts) == 7 and retry_delay("3600", 0, opts) == 30
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 8 <= retry_delay(when, 0, opts) <= 10  # an HTTP date
    assert retry_delay("not a date", 2, opts) == 2.0


def test_endless_body_stops_at_the_cap(serve, tmp_path):
    srv = serve(lambda c, n: Reply(200, b"\xff" * 8192, endless=True))
    opts = HttpOptions(timeout=5, retries=0, max_bytes=256 * 1024)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_dataset(tmp_path, 3, base_url=srv.url, classes=["G"], progress=False, manifest=None, http=opts,
                      workers=2)
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert f"{srv.url}/G/G" in msg and "262144 byte cap" in msg and "\n" not in msg
    assert not list(tmp_path.rglob("*.part")) and not _files_on_disk(tmp_path)


def test_announced_size_over_the_cap(serve, tmp_path):
    srv = serve(lambda c, n: Reply(200, _jpeg(n), length=50_000_000))
    with pytest.raises(DownloadError, match="Content-Length 50000000"):
        fetch_dataset(tmp_path, 1, base_url=srv.url, classes=["H"], progress=False, manifest=None, http=FAST)
    assert not list(tmp_path.rglob("*.part"))


def test_everything_failing_raises(serve, tmp_path):
    srv = serve(lambda c, n: Reply(503, b"down", "text/plain"))
    with pytest.raises(DownloadError) as err:
        fetch_dataset(tmp_path, 2, base_url=srv.url, classes=["F", "G"], progress=False, manifest=None, http=FAST)
    msg = str(err.value)
    assert "all 4 downloads" in msg and "HTTP 503" in msg and "\n" not in msg
    assert len(err.value.result.failed) == 4  # the details travel with the error
    assert not _files_on_disk(tmp_path) and not list(tmp_path.rglob("*.part"))
    assert_consistent(tmp_path)  # an empty manifest


def test_offline_fails_fast(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "never"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_dataset(dest, 10, base_url=f"http://127.0.0.1:{port}/dataset", progress=False)
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert f"cannot reach 127.0.0.1:{port}" in msg and "offline" in msg
    assert "--data" in msg and "ASLNB_DATA=" in msg and "ASLNB_DATA_URL" in msg
    assert "\n" not in msg
    assert not dest.exists()  # nothing created when nothing can be fetched


def test_interrupted_fetch_resumes(serve, tmp_path):
    k = 5
    served = {"n": 0}
    lock = threading.Lock()

    def dying(c, n):  # serves k files, then drops every connection (or dies mid-body)
        with lock:
            served["n"] += 1
            i = served["n"]
        if i <= k:
            return Reply(200, _jpeg(n))
        if i == k + 1:
            body = _jpeg(n, 64)
            return Reply(200, body[:100], length=len(body))
        return Reply(drop=True)

    classes = ["H", "I", "J"]
    ref = _manifest_of(lambda c, n: Reply(200, _jpeg(n)), classes, frames_for(4))
    bad = serve(dying)
    (tmp_path / "H").mkdir(parents=True)  # a temporary file (pooch's) left by a run that was killed earlier
    (tmp_path / "H" / "tmpab_1cd9z").write_bytes(b"partial")
    res = fetch_dataset(tmp_path, None, base_url=bad.url, classes=classes, workers=2, progress=False, manifest=ref,
                        http=FAST)
    assert res.downloaded == k and len(res.failed) == 12 - k
    assert len(_files_on_disk(tmp_path)) == k
    first = assert_consistent(tmp_path)  # also: no temporary files, the stale one included

    good = serve(lambda c, n: Reply(200, _jpeg(n)))
    res2 = fetch_dataset(tmp_path, None, base_url=good.url, classes=classes, progress=False, manifest=ref, http=FAST)
    assert (res2.kept, res2.downloaded, res2.failed) == (k, 12 - k, [])
    assert set(res2.kept_files) == set(first)
    final = assert_consistent(tmp_path)
    assert set(final) == set(ref.files)
    assert all(final[rel] == first[rel] for rel in first)  # kept entries unchanged (url included)


# --------------------------------------------------------------------------- reliability (issue 25, cases 1-3, 21)


def _leftovers(dest: Path) -> list[str]:
    """Files under ``dest`` that are neither an image nor the fetch manifest (temporary files, partial downloads)."""
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")
                  if p.is_file() and p.suffix != ".jpg" and p.name != "manifest.json")


def test_a_users_differing_file_survives_a_failed_download(aslnb_cli, serve, tmp_path):
    """Case 1: a file of the user's that differs from the manifest is never lost when no verified copy arrives."""
    srv = serve(lambda c, n: Reply(404, b"Not Found", "text/plain"))
    dest = tmp_path / "data"
    rel = plan(load_manifest("asl-alphabet-sample"), ["A"], 2, "")[0].rel
    mine = _jpeg(4242)  # a valid image, not the manifest's bytes
    (dest / "A").mkdir(parents=True)
    (dest / rel).write_bytes(mine)
    r = aslnb_cli("data", "fetch", "--base-url", srv.url, "--dest", dest, "--classes", "A", "--per-class", "2",
                  timeout=120)
    assert r.returncode != 0 and srv.gets[f"/dataset/{rel}"] >= 1  # the download was tried and failed (404)
    holders = [p for p in (dest / "A").iterdir() if p.read_bytes() == mine]
    assert len(holders) == 1, "the user's file was deleted"
    if holders[0] != dest / rel:  # moved aside: the user is told where
        assert f"{dest / rel}: " in r.stderr and f"moved to {holders[0].name}" in r.stderr, r.stdout + r.stderr


def test_a_differing_file_is_replaced_only_by_a_verified_copy(serve, tmp_path, caplog):
    frames = frames_for(2)
    good = lambda c, n: Reply(200, _jpeg(n))  # noqa: E731
    ref = _manifest_of(good, ["B"], frames)
    missing = frames[1]
    srv = serve(lambda c, n: Reply(404, b"no", "text/plain") if n == missing else good(c, n))
    replaced, kept = tmp_path / "B" / f"B{frames[0]}.jpg", tmp_path / "B" / f"B{missing}.jpg"
    replaced.parent.mkdir(parents=True)
    replaced.write_bytes(_jpeg(7))
    kept.write_bytes(_jpeg(8))
    with caplog.at_level("WARNING", logger="aslnb.data"):
        res = fetch_dataset(tmp_path, None, base_url=srv.url, classes=["B"], progress=False, manifest=ref, http=FAST)
    assert replaced.read_bytes() == _jpeg(frames[0])  # the verified copy arrived: it replaces the user's file
    assert [u for u, _ in res.failed] == [f"{srv.url}/B/B{missing}.jpg"]
    survivors = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == _jpeg(8)]
    assert len(survivors) == 1 and survivors[0] != kept  # moved aside, not listed as a data file
    said = f"{kept}: differs from the manifest and no verified copy arrived; your file was moved to " \
           f"{survivors[0].name}"
    assert any(said in r.getMessage() for r in caplog.records) and said in res.failed[0][1]
    entries = json.loads((tmp_path / "manifest.json").read_text())
    assert set(entries) == {f"B/B{frames[0]}.jpg"} and entries[f"B/B{frames[0]}.jpg"]["verified"] is True


def test_an_unverified_file_that_does_not_decode_is_moved_aside_not_deleted(serve, tmp_path, caplog):
    srv = serve(lambda c, n: Reply(200, _jpeg(n)))
    (frame,) = frames_for(1)
    target = tmp_path / "L" / f"L{frame}.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"my notes, not a picture")
    with caplog.at_level("WARNING", logger="aslnb.data"):
        res = fetch_dataset(tmp_path, 1, base_url=srv.url, classes=["L"], progress=False, manifest=None, http=FAST)
    assert res.downloaded_files == [f"L/L{frame}.jpg"] and target.read_bytes() == _jpeg(frame)
    aside = target.with_name(target.name + ".mismatch")
    assert aside.read_bytes() == b"my notes, not a picture"
    assert any(f"{target}: not a valid image" in r.getMessage() and aside.name in r.getMessage()
               for r in caplog.records)


def test_a_stalling_server_fails_at_the_files_deadline(serve, tmp_path):
    """Case 2: each file has a total deadline; a server sending a byte every 0.5 s fails it, naming the URL."""
    slow = frames_for(2)[0]
    srv = serve(lambda c, n: Reply(200, _jpeg(n, 64), trickle=0.5) if n == slow else Reply(200, _jpeg(n)))
    opts = HttpOptions(timeout=5, retries=0, deadline=2)
    t0 = time.monotonic()
    res = fetch_dataset(tmp_path, 2, base_url=srv.url, classes=["K"], progress=False, manifest=None, http=opts,
                        workers=2)
    took = time.monotonic() - t0
    assert took < opts.deadline + 4, took  # the server trickles for 30 s: a per-read timeout never fires
    ((url, reason),) = res.failed
    assert url == f"{srv.url}/K/K{slow}.jpg" and "stalled" in reason and "2 s" in reason and "\n" not in reason
    assert res.downloaded == 1 and not _leftovers(tmp_path)
    assert_consistent(tmp_path)


def test_cli_names_the_url_that_stalled(aslnb_cli, serve, tmp_path):
    srv = serve(lambda c, n: Reply(200, _jpeg(n, 64), trickle=0.5))
    r = aslnb_cli("data", "fetch", "--base-url", srv.url, "--dest", tmp_path, "--classes", "C", "--per-class", "1",
                  "--deadline", "2", timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == DownloadError.exit_code and len(lines) == 1, r.stderr
    rel = plan(load_manifest("asl-alphabet-sample"), ["C"], 1, "")[0].rel
    assert lines[0].startswith("aslnb: error: ") and f"{srv.url}/{rel}" in lines[0] and "stalled" in lines[0]
    assert not _leftovers(tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child process on Windows")
def test_ctrl_c_exits_130_within_seconds(serve, tmp_path):
    """Case 3: Ctrl-C while every download is blocked on a trickling server exits 130 at once, leaving no temp file."""
    srv = serve(lambda c, n: Reply(200, _jpeg(n, 64), trickle=0.5))
    dest = tmp_path / "data"
    cmd = [sys.executable, "-m", "aslnb", "data", "fetch", "--base-url", srv.url, "--dest", str(dest),
           "--classes", "D,E", "--per-class", "3", "--workers", "4"]
    # a shell's background job (nohup, `cmd &`) ignores SIGINT and its children inherit that; a terminal's does not
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        end = time.monotonic() + 60
        while sum(srv.gets.values()) < 4 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        assert sum(srv.gets.values()) >= 4, "the downloads never started"
        time.sleep(1)  # every worker is now blocked inside a read
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED, (proc.returncode, err)
    assert took < 5, took
    assert "interrupted" in err and "Traceback" not in err
    assert not _leftovers(dest), _leftovers(dest)


@pytest.mark.parametrize("n", ["0", "-5"])
def test_cli_per_class_must_be_at_least_1(aslnb_cli, closed_port, tmp_path, n):
    """Case 21: --per-class 0 or below is refused as such, before any download."""
    r = aslnb_cli("data", "fetch", "--base-url", f"http://127.0.0.1:{closed_port}/dataset", "--dest",
                  tmp_path / "data", "--per-class", n, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == ParameterError.exit_code and len(lines) == 1, r.stderr
    assert "--per-class" in lines[0] and "at least 1" in lines[0] and n in lines[0]
    with pytest.raises(ParameterError, match="at least 1"):
        fetch_dataset(tmp_path / "lib", int(n), base_url="http://127.0.0.1:9", progress=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "lib").exists()


# --------------------------------------------------------------------------- fetch_file: one file, a known sha256


def test_fetch_file_downloads_once_and_verifies(serve, tmp_path):
    body = os.urandom(300_000)  # not an image: fetch_file takes any content type, the hash decides
    srv = serve(lambda c, n: Reply(200, body, "application/octet-stream"))
    url, sha = f"{srv.url}/W/W1.jpg", hashlib.sha256(body).hexdigest()
    path = F.fetch_file(url, sha, tmp_path / "cache", name="weights.h5", http=FAST)
    assert path == tmp_path / "cache" / "weights.h5" and path.read_bytes() == body
    assert F.fetch_file(url, sha, tmp_path / "cache", name="weights.h5", http=FAST) == path
    assert srv.gets["/dataset/W/W1.jpg"] == 1  # the second call found the verified file
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["weights.h5"]
    path.write_bytes(b"damaged")  # a file that differs is replaced by a verified copy
    assert F.fetch_file(url, sha, tmp_path / "cache", name="weights.h5", http=FAST).read_bytes() == body


@pytest.mark.parametrize("case", ["wrong hash", "404", "stall", "too big"])
def test_fetch_file_fails_in_one_line_naming_the_url(serve, tmp_path, case):
    body = os.urandom(5000)
    reply = {"wrong hash": Reply(200, body, None), "404": Reply(404, b"no", "text/plain"),
             "stall": Reply(200, body, None, trickle=0.5), "too big": Reply(200, body, None, length=10_000_000)}[case]
    srv = serve(lambda c, n: reply)
    url = f"{srv.url}/W/W1.jpg"
    sha = hashlib.sha256(b"other bytes" if case == "wrong hash" else body).hexdigest()
    opts = HttpOptions(timeout=5, retries=0, deadline=2, max_bytes=1_000_000)
    with pytest.raises(DownloadError) as err:
        F.fetch_file(url, sha, tmp_path, name="w.bin", http=opts)
    msg = str(err.value)
    assert url in msg and "\n" not in msg
    assert {"wrong hash": "sha256 differs", "404": "HTTP 404", "stall": "stalled", "too big": "byte cap"}[case] in msg
    assert list(tmp_path.iterdir()) == []  # nothing partial left


def test_cli_deadline_must_be_positive(aslnb_cli, closed_port, tmp_path):
    r = aslnb_cli("data", "fetch", "--base-url", f"http://127.0.0.1:{closed_port}/dataset", "--dest",
                  tmp_path / "data", "--deadline", "0", timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == ParameterError.exit_code and len(lines) == 1, r.stderr
    assert "--deadline" in lines[0] and "greater than 0" in lines[0]
    assert not (tmp_path / "data").exists()

"""Tests of ``aslnb.data.fetch`` against real HTTP servers on 127.0.0.1.

Nothing in the code under test is mocked: every test starts a ``http.server`` in a
thread (port 0) whose behaviour per frame is given by a small ``route`` function, and
:func:`fetch_dataset` talks to it through ``requests`` like it talks to GitHub.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
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
    resolve_base_url,
)
from aslnb.errors import DownloadError, ParameterError

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
                length = len(reply.body) if reply.length is None else reply.length
                self.send_header("Content-Length", str(length))
                self.end_headers()
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
    """A server that stands in for the full data set using the real sample images.

    ``sample_dir`` (tests/conftest.py) is ``$ASLNB_DATA``; the test is skipped when unset.

    The sample keeps only some of the 3000 frames of each class (200 per class, file
    names keep the original frame numbers, e.g. ``A1008.jpg``), so asking it for the
    exact frames chosen by :func:`frames_for` would mostly give 404. Instead the server
    maps frame ``n`` of class ``C`` onto the sample file at the same relative position:
    the files of ``C`` sorted by frame number, index ``(n - 1) * len(files) // 3000``.
    This mapping is monotonic, so frames at least ``3000 / len(files)`` apart (15 here;
    ``frames_for(4)`` spreads them 750 apart) get distinct files, and each answer is the
    real JPEG's bytes, unchanged (read from disk at request time, no copies). Frames
    are served as ``image/jpeg`` with a correct Content-Length. ``server.source(cls, n)``
    names the file that frame ``n`` maps onto, so tests can compare bytes.
    """
    cache: dict[str, list[Path]] = {}

    def files(cls: str) -> list[Path]:
        if cls not in cache:
            cache[cls] = sorted((sample_dir / cls).glob(f"{cls}*.jpg"), key=lambda p: _frame_no(p.name))
        return cache[cls]

    def source(cls: str, n: int) -> Path | None:
        fs = files(cls)
        return fs[(n - 1) * len(fs) // F.FRAMES_PER_CLASS] if fs and 1 <= n <= F.FRAMES_PER_CLASS else None

    def route(cls: str, n: int) -> Reply:
        src = source(cls, n) if cls in CLASSES else None
        return Reply(200, src.read_bytes()) if src else Reply(404, b"no such frame", "text/plain")

    server = serve(route)
    server.source = source
    return server


def _files_on_disk(dest: Path) -> set[str]:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*.jpg")}


def assert_consistent(dest: Path) -> dict:
    """The manifest lists exactly the images on disk, with the right sha256 and size,
    every image decodes, and no temporary file is left anywhere."""
    assert not list(dest.rglob("*.part")), "temporary files left behind"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert set(manifest) == _files_on_disk(dest)
    for rel, entry in manifest.items():
        data = (dest / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), rel
        assert entry["bytes"] == len(data), rel
        assert entry["url"].endswith("/" + rel)
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


# --------------------------------------------------------------------------- real sample data


def test_fetch_sample_resume_and_repair(sample_server, tmp_path):
    dest = tmp_path / "data"
    classes = ["A", "B", "nothing"]
    res = fetch_dataset(dest, 4, base_url=sample_server.url, classes=classes, workers=4, progress=False)
    assert isinstance(res, FetchResult)
    assert (res.downloaded, res.kept, res.failed) == (12, 0, [])
    assert res.ok and res.manifest == dest / "manifest.json"
    expected = {f"{c}/{c}{n}.jpg" for c in classes for n in frames_for(4)}
    assert set(res.downloaded_files) == expected == _files_on_disk(dest)
    manifest = assert_consistent(dest)
    for c in classes:  # the bytes are those of the sample file each frame maps onto
        for n in frames_for(4):
            assert (dest / c / f"{c}{n}.jpg").read_bytes() == sample_server.source(c, n).read_bytes()
            assert manifest[f"{c}/{c}{n}.jpg"]["url"] == f"{sample_server.url}/{c}/{c}{n}.jpg"
    assert len({e["sha256"] for e in manifest.values()}) == 12  # distinct real images
    gets_first = sum(sample_server.gets.values())
    assert gets_first == 12

    # Second run: everything is kept, nothing downloaded, no GET at all.
    res2 = fetch_dataset(dest, 4, base_url=sample_server.url, classes=classes, progress=False)
    assert (res2.downloaded, res2.kept, res2.failed) == (0, 12, [])
    assert sum(sample_server.gets.values()) == gets_first
    assert assert_consistent(dest) == manifest

    # Delete one file, corrupt another (same size, garbage bytes): exactly those two come back.
    gone, bad = f"A/A{frames_for(4)[1]}.jpg", f"nothing/nothing{frames_for(4)[3]}.jpg"
    (dest / gone).unlink()
    size = (dest / bad).stat().st_size
    (dest / bad).write_bytes(b"\0" * size)
    res3 = fetch_dataset(dest, 4, base_url=sample_server.url, classes=classes, progress=False)
    assert (res3.downloaded, res3.kept, res3.failed) == (2, 10, [])
    assert res3.downloaded_files == sorted([gone, bad])
    assert assert_consistent(dest) == manifest

    # Another class later: the manifest is merged, not replaced; stale entries are dropped.
    data = json.loads((dest / "manifest.json").read_text())
    data["Z/Z1.jpg"] = {"sha256": "0" * 64, "bytes": 1, "url": "http://x/Z/Z1.jpg"}
    (dest / "manifest.json").write_text(json.dumps(data))
    res4 = fetch_dataset(dest, 2, base_url=sample_server.url, classes=["space"], progress=False)
    assert (res4.downloaded, res4.kept) == (2, 0)
    merged = assert_consistent(dest)
    assert "Z/Z1.jpg" not in merged
    assert set(merged) == expected | {f"space/space{n}.jpg" for n in frames_for(2)}


# --------------------------------------------------------------------------- failures


def _failed_paths(res: FetchResult, base: str) -> set[str]:
    return {url[len(base) + 1:] for url, _ in res.failed}


def test_http_404_for_some_frames(serve, tmp_path):
    missing = set(frames_for(5)[1::2])
    srv = serve(lambda c, n: Reply(404, b"Not Found", "text/plain") if n in missing else Reply(200, _jpeg(n)))
    res = fetch_dataset(tmp_path, 5, base_url=srv.url, classes=["A", "B"], progress=True)  # bar on stderr
    bad = {f"{c}/{c}{n}.jpg" for c in "AB" for n in missing}
    assert _failed_paths(res, srv.url) == bad
    assert all("404" in reason for _, reason in res.failed)
    assert res.downloaded == 10 - len(bad) and not res.ok
    assert not bad & _files_on_disk(tmp_path)
    assert set(assert_consistent(tmp_path)) == set(res.downloaded_files)


def test_truncated_response(serve, tmp_path):
    cut = frames_for(3)[0]

    def route(c, n):
        body = _jpeg(n, 64)
        if n == cut:  # announce the full size, send half, close
            return Reply(200, body[: len(body) // 2], length=len(body))
        return Reply(200, body)

    srv = serve(route)
    res = fetch_dataset(tmp_path, 3, base_url=srv.url, classes=["C"], progress=False)
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
    res = fetch_dataset(tmp_path, 5, base_url=srv.url, classes=["D"], progress=False)
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
    res = fetch_dataset(tmp_path, 2, base_url=srv.url, classes=["E"], progress=False)
    path = f"/dataset/E/E{broken}.jpg"
    assert srv.gets[path] == F.RETRIES + 1  # retried, then given up
    assert _failed_paths(res, srv.url) == {f"E/E{broken}.jpg"}
    assert "HTTP 500" in res.failed[0][1]
    assert not (tmp_path / "E" / f"E{broken}.jpg").exists()
    assert res.downloaded == 1
    assert_consistent(tmp_path)


def test_everything_failing_raises(serve, tmp_path):
    srv = serve(lambda c, n: Reply(503, b"down", "text/plain"))
    with pytest.raises(DownloadError) as err:
        fetch_dataset(tmp_path, 2, base_url=srv.url, classes=["F", "G"], progress=False)
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
    bad = serve(dying)
    # a temporary file left by a run that was killed earlier
    (tmp_path / "H").mkdir(parents=True)
    (tmp_path / "H" / ".H1.jpg.part").write_bytes(b"partial")
    res = fetch_dataset(tmp_path, 4, base_url=bad.url, classes=classes, workers=2, progress=False)
    assert res.downloaded == k and len(res.failed) == 12 - k
    assert len(_files_on_disk(tmp_path)) == k
    first = assert_consistent(tmp_path)  # also: no .part files, the stale one included

    good = serve(lambda c, n: Reply(200, _jpeg(n)))
    res2 = fetch_dataset(tmp_path, 4, base_url=good.url, classes=classes, progress=False)
    assert (res2.kept, res2.downloaded, res2.failed) == (k, 12 - k, [])
    assert set(res2.kept_files) == set(first)
    final = assert_consistent(tmp_path)
    assert set(final) == {f"{c}/{c}{n}.jpg" for c in classes for n in frames_for(4)}
    assert all(final[rel] == first[rel] for rel in first)  # kept entries unchanged (url included)

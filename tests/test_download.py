"""Downloads against a loopback HTTP server serving synthetic archives: resume, retries,
checksums, file counts, listings, safe extraction and credentials that never reach a log."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from patchcxr.data.download import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download_file,
    fetch_source,
    registration_message,
    safe_extract,
)


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder with Range support; can cut a response short a set number of times."""

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            return super().do_GET()
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self.send_error(416)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cuts = srv.truncate.get(self.path, 0)  # type: ignore[attr-defined]
        if cuts:
            srv.truncate[self.path] = cuts - 1  # type: ignore[attr-defined]
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return None
        self.wfile.write(body)
        return None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, ThreadingHTTPServer]]:
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    httpd.requests = []  # type: ignore[attr-defined]
    httpd.truncate = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, httpd
    httpd.shutdown()
    httpd.server_close()


def payload(n: int = 300_000) -> bytes:
    return os.urandom(n)


def test_download_with_checksum(server: tuple, tmp_path: Path) -> None:
    url, root, _ = server
    data = payload()
    (root / "a.bin").write_bytes(data)
    out = download_file(f"{url}/a.bin", tmp_path / "dl" / "a.bin", hashlib.sha256(data).hexdigest(), backoff=0)
    assert out.read_bytes() == data
    assert not (tmp_path / "dl" / "a.bin.part").exists()


def test_resume_of_a_partial_file(server: tuple, tmp_path: Path) -> None:
    url, root, httpd = server
    data = payload()
    (root / "b.bin").write_bytes(data)
    dest = tmp_path / "b.bin"
    (tmp_path / "b.bin.part").write_bytes(data[:100_000])
    download_file(f"{url}/b.bin", dest, hashlib.sha256(data).hexdigest(), backoff=0)
    assert dest.read_bytes() == data
    assert httpd.requests[-1][1].get("Range") == "bytes=100000-"


def test_truncated_response_is_retried_and_resumed(server: tuple, tmp_path: Path) -> None:
    url, root, httpd = server
    data = payload()
    (root / "c.bin").write_bytes(data)
    httpd.truncate["/c.bin"] = 2
    download_file(f"{url}/c.bin", tmp_path / "c.bin", hashlib.sha256(data).hexdigest(), backoff=0)
    assert (tmp_path / "c.bin").read_bytes() == data
    assert len([r for r in httpd.requests if r[0] == "/c.bin"]) == 3
    assert any("Range" in h for p, h in httpd.requests if p == "/c.bin")


def test_wrong_checksum_leaves_nothing(server: tuple, tmp_path: Path) -> None:
    url, root, _ = server
    (root / "d.bin").write_bytes(payload())
    with pytest.raises(ChecksumError, match="sha256"):
        download_file(f"{url}/d.bin", tmp_path / "d.bin", "0" * 64, backoff=0)
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_missing_file_fails_without_retrying(server: tuple, tmp_path: Path) -> None:
    url, _, httpd = server
    with pytest.raises(DownloadError, match="404"):
        download_file(f"{url}/none.bin", tmp_path / "x", backoff=0)
    assert len(httpd.requests) == 1


def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)


def test_archive_source_with_strip_and_file_count(server: tuple, tmp_path: Path) -> None:
    url, root, _ = server
    members = {f"repo-abc/images/{i}.png": b"x" * 10 for i in range(3)} | {"repo-abc/metadata.csv": b"a,b\n"}
    make_tar(root / "repo.tar.gz", members)
    digest = hashlib.sha256((root / "repo.tar.gz").read_bytes()).hexdigest()
    dest = tmp_path / "raw" / "cohen"
    n = fetch_source(
        "cohen", {"url": f"{url}/repo.tar.gz", "sha256": digest, "strip": 1, "files": 3, "count": "*.png"}, dest
    )
    assert n == 3
    assert (dest / "metadata.csv").is_file() and (dest / "images" / "2.png").is_file()
    assert (dest / ".download.json").is_file()


def test_file_count_mismatch_fails_and_places_nothing(server: tuple, tmp_path: Path) -> None:
    url, root, _ = server
    make_tar(root / "small.tar.gz", {"a.png": b"1"})
    dest = tmp_path / "raw" / "x"
    with pytest.raises(DownloadError, match="expected 5 files"):
        fetch_source("x", {"url": f"{url}/small.tar.gz", "files": 5}, dest)
    assert not dest.exists()


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"../evil.txt": b"x"}, None),
        ({"ok/../../evil.txt": b"x"}, None),
        ({"/tmp/evil-abs.txt": b"x"}, None),
        ({}, {"link": "/etc/passwd"}),
        ({}, {"link": "../../outside"}),
    ],
)
def test_tar_members_cannot_escape(tmp_path: Path, members: dict[str, bytes], links: dict[str, str] | None) -> None:
    archive = tmp_path / "evil.tar.gz"
    make_tar(archive, {"fine.txt": b"ok"} | members, links)
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, target)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil-abs.txt").exists()
    assert not (target / "fine.txt").exists()  # nothing is extracted from a hostile archive


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_zip_members_cannot_escape(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "x")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "target")
    assert not (tmp_path / "evil.txt").exists()


def test_listing_is_crawled_like_the_nlm_release(server: tuple, tmp_path: Path) -> None:
    url, root, _ = server
    base = root / "MontgomerySet"
    for sub, name in [
        ("CXR_png", "MCUCXR_0001_0.png"),
        ("CXR_png", "MCUCXR_0002_1.png"),
        ("ManualMask/leftMask", "MCUCXR_0001_0.png"),
        ("ClinicalReadings", "MCUCXR_0001_0.txt"),
        ("CXR_png", "Thumbs.db"),
    ]:
        (base / sub).mkdir(parents=True, exist_ok=True)
        (base / sub / name).write_bytes(b"data")
    spec = {
        "listing": f"{url}/MontgomerySet/",
        "include": [r"^CXR_png/.*\.png$", r"^ManualMask/.*\.png$", r"^ClinicalReadings/"],
        "files": 4,
    }
    assert fetch_source("montgomery", spec, tmp_path / "mc") == 4
    assert (tmp_path / "mc" / "ManualMask" / "leftMask" / "MCUCXR_0001_0.png").is_file()
    assert not (tmp_path / "mc" / "CXR_png" / "Thumbs.db").exists()


def test_credentials_are_sent_but_never_logged(
    server: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, root, httpd = server
    secret = "s3cr3t-kaggle-key-do-not-log"
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", secret)
    (root / "k.bin").write_bytes(b"abc")
    httpd.truncate["/k.bin"] = 1  # force a logged retry too
    caplog.set_level(logging.DEBUG)
    download_file(f"{url}/k.bin", tmp_path / "k.bin", auth="kaggle", backoff=0)
    assert any(h.get("Authorization", "").startswith("Basic ") for _, h in httpd.requests)
    assert secret not in caplog.text and "someone" not in caplog.text


def test_registration_sources_explain_what_to_do() -> None:
    msg = registration_message("jsrt", "jsrt")
    assert "http://db.jsrt.or.jp/eng.php" in msg and "sources.jsrt.path" in msg

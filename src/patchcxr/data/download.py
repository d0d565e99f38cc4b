"""Downloads that survive real networks: resume, retries with backoff, checksums, atomic
placement and safe archive extraction.

* :func:`download_file` — resumes a partial ``<name>.part`` with an HTTP ``Range``
  request, retries with exponential backoff, checks size and sha256, then renames into
  place (a file under its final name is always complete).
* :func:`safe_extract` — tar and zip archives; no member may land outside the target
  (absolute paths, ``..``, links pointing out are refused), using tarfile's ``data``
  filter where Python has it.
* :func:`fetch_source` — one ``sources.<name>.download`` spec: a single archive or file
  (``url``), a list of files (``urls``) or a crawled directory listing (``listing``, for
  the NLM per-file releases), checked against an expected file count.

Credentials come from the standard places only — ``~/.netrc`` for HTTP(S) hosts and
``~/.kaggle/kaggle.json`` (or ``KAGGLE_USERNAME``/``KAGGLE_KEY``) for Kaggle — and are
never logged: logs show URLs without user information.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import netrc
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from patchcxr.io import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
REGISTRATION = {
    "jsrt": ("JSRT", "http://db.jsrt.or.jp/eng.php", "the 247 JPC*.IMG files"),
    "scr": ("SCR", "https://www.isi.uu.nl/Research/Databases/SCR/download.php", "the fold1/ and fold2/ mask trees"),
}


class DownloadError(RuntimeError):
    """A download that failed after its retries, or whose content is wrong."""


class ChecksumError(DownloadError):
    """Downloaded bytes whose sha256 differs from the expected one."""


class UnsafeArchiveError(DownloadError):
    """An archive member that would land outside the extraction folder."""


def registration_message(fmt: str, name: str) -> str:
    """What a user must do for a source that cannot be downloaded anonymously."""
    title, url, what = REGISTRATION[fmt]
    return (
        f"source {name!r} ({title}) cannot be downloaded without registration. Register at {url}, "
        f"download {what}, and put the folder in resources/raw/{name} or set sources.{name}.path in your "
        "config to the folder holding them."
    )


def redact(url: str) -> str:
    """``url`` without user information or query secrets, for logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _auth_header(url: str, auth: str) -> dict[str, str]:
    host = urllib.parse.urlsplit(url).hostname or ""
    user = secret = None
    if auth == "kaggle":
        user, secret = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
        token = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
        if not (user and secret) and token.is_file():
            data = json.loads(token.read_text())
            user, secret = data.get("username"), data.get("key")
        if not (user and secret):
            raise DownloadError(
                "Kaggle credentials not found: put kaggle.json in ~/.kaggle/ (or set KAGGLE_USERNAME and KAGGLE_KEY)"
            )
    elif auth == "netrc":
        try:
            entry = netrc.netrc().authenticators(host)
        except (FileNotFoundError, netrc.NetrcParseError) as err:
            raise DownloadError(f"~/.netrc unusable for {host}: {type(err).__name__}") from None
        if entry is None:
            raise DownloadError(f"no ~/.netrc entry for {host}")
        user, secret = entry[0], entry[2]
    elif auth != "none":
        raise ValueError(f"unknown auth {auth!r}; expected none, netrc or kaggle")
    if user is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def download_file(
    url: str,
    dest: Path | str,
    sha256: str | None = None,
    retries: int = 4,
    *,
    backoff: float = 1.0,
    timeout: float = 60.0,
    auth: str = "none",
) -> Path:
    """Fetch ``url`` to ``dest``; resume, retry, verify, then rename into place.

    Args:
        url: HTTP(S) or ``file://`` URL.
        dest: final path; a ``.part`` file beside it holds the partial download.
        sha256: expected hex digest; a mismatch deletes the partial file and raises
            :class:`ChecksumError` (after one fresh retry, in case the partial file held
            stale bytes).
        retries: attempts after the first, with ``backoff · 2**attempt`` seconds between.
        timeout: socket timeout per request.
        auth: ``none``, ``netrc`` or ``kaggle``.

    Returns:
        ``dest``.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        log.info("already present: %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    headers = _auth_header(url, auth)
    fresh_retry_done = False
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers=headers | ({"Range": f"bytes={have}-"} if have else {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status = getattr(resp, "status", 200)
                if have and status != 206:
                    have = 0  # the server ignored the range: start over
                total = resp.headers.get("Content-Length")
                expected = (int(total) + have) if total is not None else None
                with open(part, "ab" if have else "wb") as fh:
                    while block := resp.read(CHUNK):
                        fh.write(block)
            got = part.stat().st_size
            if expected is not None and got < expected:
                raise DownloadError(f"truncated: {got} of {expected} bytes")
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():  # range beyond the end: the part is complete
                pass
            elif err.code in (401, 403, 404, 410):
                raise DownloadError(f"{redact(url)}: HTTP {err.code} {err.reason}") from None
            else:
                last = err
                log.warning("%s: HTTP %s (attempt %d/%d)", redact(url), err.code, attempt + 1, retries + 1)
                continue
        except (urllib.error.URLError, http.client.HTTPException, OSError, DownloadError) as err:
            last = err
            log.warning("%s: %s (attempt %d/%d)", redact(url), err, attempt + 1, retries + 1)
            continue
        if sha256 is not None:
            digest = sha256_file(part)
            if digest != sha256:
                part.unlink()
                if not fresh_retry_done and attempt < retries:
                    fresh_retry_done = True
                    last = ChecksumError(f"{redact(url)}: sha256 {digest} != expected {sha256}")
                    log.warning("%s", last)
                    continue
                raise ChecksumError(f"{redact(url)}: sha256 {digest} != expected {sha256}")
        os.replace(part, dest)
        log.info("downloaded %s -> %s (%d bytes)", redact(url), dest, dest.stat().st_size)
        return dest
    raise DownloadError(f"{redact(url)}: failed after {retries + 1} attempts: {last}")


def _inside(root: Path, member: str) -> bool:
    target = (root / member).resolve()
    return target == root or root in target.parents


def safe_extract(archive: Path | str, dest: Path | str, strip: int = 0) -> list[Path]:
    """Extract a tar or zip archive into ``dest``; refuse any member that escapes it.

    Args:
        archive: ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip``.
        dest: target folder (created).
        strip: leading path components to drop (GitHub tarballs wrap everything in one).

    Raises:
        UnsafeArchiveError: a member with an absolute path, ``..``, or a link out of
            ``dest``; nothing is extracted then.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def stripped(name: str) -> str | None:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise UnsafeArchiveError(f"{archive.name}: absolute member path {name!r}")
        if ".." in parts:
            raise UnsafeArchiveError(f"{archive.name}: member {name!r} climbs out with '..'")
        rest = parts[strip:]
        return "/".join(rest) if rest else None

    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            plan = []
            for info in zf.infolist():
                rel = stripped(info.filename)
                if rel is None:
                    continue
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UnsafeArchiveError(f"{archive.name}: symbolic link member {info.filename!r}")
                if not _inside(root, rel):
                    raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} lands outside {dest}")
                plan.append((info, rel))
            for info, rel in plan:
                target = root / rel
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                written.append(target)
        return written
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as err:
        raise DownloadError(f"{archive.name}: not a tar or zip archive ({err})") from None
    with tf:
        members = []
        for m in tf.getmembers():
            rel = stripped(m.name)
            if rel is None:
                continue
            if not _inside(root, rel):
                raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} lands outside {dest}")
            if m.issym() or m.islnk():
                # a symlink resolves from its own folder, a hard link from the archive root
                base = (root / rel).parent if m.issym() else root
                link = m.linkname if m.issym() else (stripped(m.linkname) or "")
                target = Path(os.path.normpath(base / link))
                if Path(m.linkname).is_absolute() or not (target == root or root in target.parents):
                    raise UnsafeArchiveError(f"{archive.name}: link {m.name!r} -> {m.linkname!r} points outside {dest}")
            if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise UnsafeArchiveError(f"{archive.name}: special member {m.name!r} (device or fifo)")
            m.name = rel
            members.append(m)
        # the 'data' filter (PEP 706) re-checks paths, links and permissions
        try:
            tf.extractall(root, members=members, filter="data")
        except tarfile.FilterError as err:
            raise UnsafeArchiveError(f"{archive.name}: {err}") from None
    return [root / m.name for m in members if m.isfile()]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def crawl_listing(
    base: str, include: Sequence[str], timeout: float = 60.0, auth: str = "none", *, depth: int = 4
) -> list[str]:
    """Relative paths of the files under an HTML directory listing matching ``include``."""
    if not base.endswith("/"):
        base += "/"
    patterns = [re.compile(p) for p in include] or [re.compile(".*")]
    found: list[str] = []
    todo = [("", 0)]
    while todo:
        rel, level = todo.pop()
        req = urllib.request.Request(base + rel, headers=_auth_header(base, auth))
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            parser = _Links()
            parser.feed(resp.read().decode("utf-8", errors="replace"))
        for href in parser.hrefs:
            target = urllib.parse.urljoin(base + rel, href)
            if not target.startswith(base) or "?" in href or href.startswith("#"):
                continue  # parent links, sorting links, other sites
            sub = urllib.parse.unquote(target[len(base) :])
            if not sub or sub == rel:
                continue
            if sub.endswith("/"):
                if level < depth:
                    todo.append((sub, level + 1))
            elif any(p.search(sub) for p in patterns):
                found.append(sub)
    return sorted(set(found))


def count_files(root: Path, pattern: str = "*") -> int:
    """Files under ``root`` whose name matches ``pattern`` (hidden files not counted)."""
    return sum(1 for p in root.rglob(pattern) if p.is_file() and not p.name.startswith("."))


def fetch_source(name: str, spec: Mapping[str, Any], dest: Path | str, cache: Path | str | None = None) -> int:
    """Download source ``name`` into ``dest`` as its ``download`` spec says.

    Spec keys: exactly one of ``url`` (a file or an archive), ``urls`` (several files) or
    ``listing`` (a directory listing to crawl, with ``include`` regexes); optional
    ``sha256`` (for ``url``), ``files`` (expected count of files matching the glob
    ``count``, default all, after extraction), ``extract``
    (default: by suffix), ``strip`` (leading components), ``filename``, ``auth``,
    ``retries``, ``timeout``.

    Returns:
        The number of files in ``dest``.
    """
    dest = Path(dest)
    cache = Path(cache) if cache else dest.parent / f".{dest.name}.download"
    auth = spec.get("auth", "none")
    opts = {"retries": int(spec.get("retries", 4)), "timeout": float(spec.get("timeout", 60)), "auth": auth}
    staging = dest.parent / f".{dest.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if "url" in spec:
        url = spec["url"]
        fname = spec.get("filename") or Path(urllib.parse.urlsplit(url).path).name or f"{name}.download"
        local = download_file(url, cache / fname, spec.get("sha256"), **opts)
        extract = spec.get("extract", bool(re.search(r"\.(zip|tar|tgz|tar\.(gz|bz2|xz))$", fname)))
        if extract:
            safe_extract(local, staging, strip=int(spec.get("strip", 0)))
        else:
            shutil.copy2(local, staging / fname)
    else:
        if "urls" in spec:
            base = ""
            rels = list(spec["urls"])
        elif "listing" in spec:
            base = spec["listing"].rstrip("/") + "/"
            rels = crawl_listing(base, spec.get("include", []), opts["timeout"], auth)
        else:
            raise ValueError(f"source {name!r}: download needs url, urls or listing")
        for i, rel in enumerate(rels, start=1):
            url = base + urllib.parse.quote(rel) if base else rel
            target = rel if base else Path(urllib.parse.urlsplit(rel).path).name
            download_file(url, staging / target, None, **opts)
            if i % 50 == 0:
                log.info("%s: %d/%d files", name, i, len(rels))
    n = count_files(staging, spec.get("count", "*"))
    expected = spec.get("files")
    if expected is not None and n != int(expected):
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"source {name!r}: expected {expected} files ({spec.get('count', '*')}), found {n}")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)
    atomic_write_text(
        dest / ".download.json",
        json.dumps(
            {
                "source": name,
                "url": redact(spec.get("url") or spec.get("listing") or ""),
                "files": n,
                "sha256": spec.get("sha256", ""),
                "revision": spec.get("revision", ""),
            },
            indent=2,
            sort_keys=True,
        ),
    )
    log.info("source %s: %d files in %s", name, n, dest)
    return n

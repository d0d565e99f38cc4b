"""Atomic writes: a failed write (disk full, I/O error) leaves neither a truncated file nor a
temporary one, in the helpers and in a whole stage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from patchcxr.io import atomic_write_bytes, atomic_write_text, sha256_file
from tests.helpers import run_data_stage, synthetic_sources


def test_atomic_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["x.txt"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.bin"
    atomic_write_bytes(target, b"complete")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"partial" * 1000)
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_failed_first_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "new.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk=1 << 16) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fail_after", [0, 5, 17])
def test_disk_full_during_the_data_stage_leaves_only_complete_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_tree: Path, test_config: dict[str, Any], fail_after: int
) -> None:
    """The disk fills after ``fail_after`` files: the stage fails with the OSError, every
    file already there equals the one an undisturbed run writes (nothing truncated, no
    temporary left), and a rerun with space again completes identically."""
    sources = {k: v for k, v in synthetic_sources(synthetic_tree).items() if k in ("montgomery", "cohen")}
    run_data_stage(sources, test_config["labels"], tmp_path / "ref")
    written = 0
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        nonlocal written
        if written >= fail_after:
            raise OSError(28, "No space left on device")
        written += 1
        real_fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        with pytest.raises(OSError, match="No space left on device"):
            run_data_stage(sources, test_config["labels"], tmp_path / "out")

    def same(rel: Path) -> bool:  # the tables name their own folder: compare with it replaced
        got = (tmp_path / "out" / rel).read_bytes().replace(str(tmp_path / "out").encode(), b"<run>")
        return got == (tmp_path / "ref" / rel).read_bytes().replace(str(tmp_path / "ref").encode(), b"<run>")

    files = [p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) == fail_after
    assert all(same(p) for p in files)
    run_data_stage(sources, test_config["labels"], tmp_path / "out")
    ref = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*") if p.is_file())
    out = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert out == ref and len(ref) > 20
    assert all(same(p) for p in ref)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_file_the_writers_make_honours_the_umask(
    mask: int, mode: int, synthetic_tree: Path, test_config: dict[str, Any], tmp_path: Path
) -> None:
    """Results on a shared folder are readable as the umask allows (issue 30): the atomic
    writer's temporary file is owner-only, the file it becomes is not."""
    import matplotlib.pyplot as plt

    from patchcxr.figures import _save
    from patchcxr.io import umask, write_png

    old = os.umask(mask)
    try:
        assert umask() == mask
        specs = {k: v for k, v in synthetic_sources(synthetic_tree).items() if k == "montgomery"}
        run_data_stage(specs, test_config["labels"], tmp_path / "out")
        write_png(tmp_path / "out" / "image.png", __import__("numpy").zeros((4, 4), "uint8"))
        fig = plt.figure()
        _save(fig, tmp_path / "out" / "figure.png")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) > 10
    wrong = {
        str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o777 != mode
    }
    assert not wrong, wrong

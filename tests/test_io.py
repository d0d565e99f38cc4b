"""Atomic writes: a failed write leaves neither a truncated file nor a temporary one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from patchcxr.io import atomic_write_bytes, atomic_write_text, sha256_file


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

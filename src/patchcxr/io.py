"""File helpers shared by every stage: atomic writes, content hashes, TSV tables and PNG
images — one home for each, so that every table has the same float format and every PNG
the same encoder settings.

An artefact is either complete or absent: every writer goes through a temporary file in
the destination folder, ``fsync`` and ``os.replace`` (atomic on POSIX within one file
system), so a killed job or a full disk never leaves a truncated file that a later run
could take as finished.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

#: the one float format of every table the package writes: six significant digits (more
#: than any measured figure here carries; integers and text are written as they are)
FLOAT_FORMAT = "%.6g"


def umask() -> int:
    """The process's file-creation mask, read without changing it (Linux reports it in
    ``/proc/self/status``; elsewhere it is set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders. The file gets the
    mode a plain ``open`` would give it (``0o666`` less the umask: readable by the group and
    others under the usual 0022), not the owner-only mode of a temporary file.

    Raises:
        OSError: from the write (e.g. disk full); the temporary file is removed and any
            previous ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """UTF-8 text variant of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (images can be tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- tables
def tsv_text(df: pd.DataFrame) -> str:
    """``df`` as the package writes every table: tab-separated, ``\\n`` line ends, no
    index, floats in :data:`FLOAT_FORMAT`."""
    return df.to_csv(sep="\t", index=False, lineterminator="\n", float_format=FLOAT_FORMAT)


def write_tsv(path: Path | str, df: pd.DataFrame) -> None:
    """Write ``df`` to ``path`` atomically (:func:`tsv_text`)."""
    atomic_write_text(path, tsv_text(df))


def read_tsv(path: Path | str, typed: bool = False) -> pd.DataFrame:
    """A table written by :func:`write_tsv`.

    ``typed=False`` (identifiers, paths, labels): every column as text, empty cells as
    ``""``. ``typed=True`` (measurements): numbers parsed, empty cells as NaN.
    """
    if typed:
        return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- images
def encode_png(image: np.ndarray | Image.Image) -> bytes:
    """PNG bytes of an array (uint8 grey or RGB, uint16 grey, bool as 0/255) or a Pillow
    image, with Pillow's default compression (level 6, no optimisation)."""
    if isinstance(image, np.ndarray):
        if image.dtype == np.bool_:
            image = image.astype(np.uint8) * 255
        if image.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"PNG storage takes uint8 or uint16, got {image.dtype}")
        image = Image.fromarray(image)  # L, RGB or I;16 by dtype and shape
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_png(path: Path | str, image: np.ndarray | Image.Image) -> None:
    """Write :func:`encode_png` of ``image`` to ``path`` atomically."""
    atomic_write_bytes(path, encode_png(image))


def read_png(path: Path | str) -> np.ndarray:
    """The pixels of a PNG this package wrote (harmonised images, masks, inputs)."""
    with Image.open(path) as im:
        return np.asarray(im)

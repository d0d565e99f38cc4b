"""Decode any supported image file to one channel, bones bright, at its original bit depth.

The paper's sources arrive as headerless 12-bit JSRT films, 8-bit and palette PNGs,
RGB(A) JPEGs and PNGs, 16-bit PNGs and DICOM (MONOCHROME1 and MONOCHROME2). Harmonisation
(:mod:`patchcxr.data.harmonise`) needs one representation: a 2-D ``uint8`` or ``uint16``
array in which dense tissue (bone) is bright, and the number of significant bits.

Every failure raises :class:`DecodeError` with a short reason (truncated, corrupt, not an
image, …) that ends up in ``quarantine.tsv``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

JSRT_SHAPE = (2048, 2048)
JSRT_BYTES = JSRT_SHAPE[0] * JSRT_SHAPE[1] * 2
DICOM_SUFFIXES = (".dcm", ".dicom")


class DecodeError(ValueError):
    """An image file that cannot be decoded; ``str(err)`` is the reason."""


@dataclass(frozen=True)
class Decoded:
    """A decoded image.

    Attributes:
        pixels: 2-D ``uint8`` or ``uint16``, bone bright.
        bit_depth: significant bits of the original (12 for JSRT, 8 for 8-bit files,
            ``BitsStored`` for DICOM, the bits needed by the maximum for 16-bit PNG).
        mode: the container's colour mode (``L``, ``P``, ``RGB``, ``RGBA``, ``I;16``,
            ``raw12``, ``MONOCHROME1``, …), recorded for provenance.
    """

    pixels: np.ndarray
    bit_depth: int
    mode: str


def read_jsrt_raw(path: Path | str) -> Decoded:
    """Read a JSRT ``.IMG``: headerless 2048×2048 big-endian 12-bit, inverted on disk.

    The raw values are transmitted signal (air bright), so the display image is
    ``4095 - raw`` (method.md §2.1: the official code inverts JSRT too, §3.2).
    """
    path = Path(path)
    size = path.stat().st_size
    if size != JSRT_BYTES:
        raise DecodeError(f"JSRT raw file must be {JSRT_BYTES} bytes, found {size} (truncated or not JSRT)")
    raw = np.fromfile(path, ">u2").reshape(JSRT_SHAPE)
    if int(raw.max()) > 4095:
        raise DecodeError(f"JSRT raw values exceed 12 bits (max {int(raw.max())}): corrupt or not JSRT")
    return Decoded((4095 - raw).astype(np.uint16), 12, "raw12")


def _significant_bits(pixels: np.ndarray) -> int:
    if pixels.dtype == np.uint8:
        return 8
    return max(9, int(pixels.max()).bit_length())


def read_pil(path: Path | str) -> Decoded:
    """PNG, JPEG, GIF, BMP or TIFF through Pillow, fully decoded (truncation is an error)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                image: Image.Image = opened
                image.load()  # force a full decode: a truncated file fails here, not later
                mode = image.mode
                if mode == "P":
                    # palette images (JSRT PNG conversions, NLM Shenzhen) must be decoded
                    # through the palette: raw indices can be inverted (index 0 = white)
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                if image.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                    # alpha is dropped (CXRs are opaque); colour to luminance, ITU-R 601-2
                    image = image.convert("RGB").convert("L")
                if image.mode in ("I;16", "I;16B", "I;16L"):
                    pixels = np.asarray(image, dtype=np.uint16)
                elif image.mode == "I":
                    arr = np.asarray(image)
                    if arr.min() < 0 or arr.max() > 65535:
                        raise DecodeError(f"32-bit integer image out of 16-bit range ({arr.min()}..{arr.max()})")
                    pixels = arr.astype(np.uint16)
                elif image.mode == "1":
                    pixels = np.asarray(image.convert("L"), dtype=np.uint8)
                elif image.mode == "L":
                    pixels = np.asarray(image, dtype=np.uint8)
                else:
                    raise DecodeError(f"unsupported image mode {image.mode}")
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError("not an image file (unidentified format)") from None
    except Image.DecompressionBombWarning as err:
        raise DecodeError(f"image too large: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        # Pillow raises OSError for truncated data and SyntaxError for broken headers
        raise DecodeError(f"corrupt or truncated image: {err}") from None
    if pixels.ndim != 2 or min(pixels.shape) < 16:
        raise DecodeError(f"not a 2-D radiograph (shape {pixels.shape})")
    return Decoded(np.ascontiguousarray(pixels), _significant_bits(pixels), mode)


def read_dicom(path: Path | str) -> Decoded:
    """A DICOM radiograph; MONOCHROME1 is inverted so that bone is bright.

    Stored values are kept (no VOI window): the paper's histogram equalisation adapts to
    the image's own range (method.md §3.2).
    """
    import pydicom  # imported lazily: only DICOM sources pay for it

    path = Path(path)
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    except Exception as err:  # pydicom raises many types for damaged files
        raise DecodeError(f"unreadable DICOM: {type(err).__name__}: {err}") from None
    if arr.ndim != 2:
        raise DecodeError(f"DICOM pixel data is not a single 2-D frame (shape {arr.shape})")
    bits = int(getattr(ds, "BitsStored", 16 if arr.dtype.itemsize > 1 else 8))
    if arr.dtype.kind == "i":  # signed storage: shift into the unsigned range
        arr = arr.astype(np.int32) - int(arr.min())
    arr = np.clip(arr, 0, (1 << bits) - 1)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":
        arr = (1 << bits) - 1 - arr
    elif photometric != "MONOCHROME2":
        raise DecodeError(f"unsupported DICOM photometric interpretation {photometric}")
    dtype = np.uint8 if bits <= 8 else np.uint16
    return Decoded(np.ascontiguousarray(arr.astype(dtype)), bits, photometric)


def decode(path: Path | str, fmt: str | None = None) -> Decoded:
    """Decode ``path``, choosing the reader by format and suffix.

    Args:
        path: the image file.
        fmt: the source format; ``"jsrt"`` reads ``.IMG`` files as raw JSRT.

    Raises:
        DecodeError: the file is missing, empty, truncated, corrupt or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DecodeError("file not found")
    suffix = path.suffix.lower()
    if suffix == ".img":
        return read_jsrt_raw(path)
    if suffix in DICOM_SUFFIXES or fmt == "dicom":
        return read_dicom(path)
    return read_pil(path)

"""Decode any supported image file to one channel, bones bright, at its original bit depth.

The paper's sources arrive as headerless 12-bit JSRT films, 8-bit and palette PNGs,
RGB(A) JPEGs and PNGs, 16-bit PNGs and DICOM (MONOCHROME1 and MONOCHROME2). Harmonisation
(:mod:`patchcxr.data.harmonise`) needs one representation: a 2-D ``uint8`` or ``uint16``
array in which dense tissue (bone) is bright, and the number of significant bits.

Every failure raises :class:`DecodeError` with a short reason (truncated, corrupt, not an
image, too large, …) that ends up in ``quarantine.tsv``: whatever a file contains, decoding
it either succeeds or names the file's problem, and never stops the other files.

Safety: a file is decoded only when its first bytes are those of an allowed format
(:data:`ALLOWED`: PNG, JPEG, GIF, TIFF, BMP, DICOM; the JSRT raw by its name and size), and
Pillow is told to use that format's reader alone, so no decoder that can call an external
program (PostScript through Ghostscript) is ever reached; a file of several frames (an
animated PNG or GIF, a multi-page TIFF, a multi-frame DICOM) is refused; the pixel count is
checked from the header before any pixel is decoded (``max_pixels``, config
``data.max_pixels``), so a decompression bomb costs no memory; EXIF orientation is applied
(and reported in :attr:`Decoded.orientation`); an alpha channel that makes a small share of
the pixels transparent (``max_transparent``) is flattened over black and noted, a larger
share refused (what a viewer shows is not what is stored); DICOM
pixel data in the compressed transfer syntaxes hospitals send (JPEG Lossless, JPEG-LS,
JPEG 2000, RLE) is decoded through pydicom's GDCM plugin.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: default pixel limit: well above the largest real CXR (Montgomery's 4892 × 4020 = 19.7 M
#: pixels), far below what a decompression bomb declares
MAX_PIXELS = 64_000_000
EXIF_ORIENTATION = 0x0112
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
        orientation: the EXIF orientation that was applied (1: none or no EXIF).
        note: what decoding changed that a reader of the manifest should know (an alpha
            channel flattened), or ``""``.
    """

    pixels: np.ndarray
    bit_depth: int
    mode: str
    orientation: int = 1
    note: str = ""


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


def open_checked(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A Pillow image of an allowed format (:func:`sniff`, read by that format's reader
    alone), of one frame, fully decoded, after its header's pixel count was checked against
    ``max_pixels`` (before any pixel is decoded: a bomb costs no memory).

    Raises:
        DecodeError: not an allowed format, several frames, too large, corrupt or
            truncated, or any decoder error.
    """
    kind = sniff(path)
    if kind not in PILLOW_FORMATS:
        raise DecodeError(_not_allowed(kind))
    limit = Image.MAX_IMAGE_PIXELS
    image: Image.Image | None = None
    try:
        # Image.open reads the header only: the size is checked here, naming it, before a
        # pixel is decoded (Pillow's own check, off for this step, would not name it)
        Image.MAX_IMAGE_PIXELS = None
        image = Image.open(path, formats=[PILLOW_FORMATS[kind]])
        width, height = image.size
        if width * height > max_pixels:
            raise DecodeError(_too_large(width, height, max_pixels))
        frames = int(getattr(image, "n_frames", 1) or 1)
        if frames > 1:
            raise DecodeError(
                f"{frames} frames (an animated or multi-page {kind}): one radiograph per file is accepted"
            )
        # Pillow's check at our limit while decoding: frames and tiles a decoder meets
        # later (GIF frames larger than the screen) are refused too
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()  # a full decode: a truncated file fails here, not later
        return image
    except Exception as err:
        if image is not None:
            image.close()
        raise (err if isinstance(err, DecodeError) else _reason(err, kind, max_pixels)) from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _reason(err: Exception, kind: str, max_pixels: int) -> DecodeError:
    """The quarantine reason of a Pillow failure to open or decode a file whose first bytes
    say ``kind`` (an allowed format: :func:`open_checked` refuses the others first)."""
    if isinstance(err, UnidentifiedImageError):  # the signature, yet the header does not read
        return DecodeError(f"corrupt or truncated image: a {kind} file whose header does not read")
    if isinstance(err, Image.DecompressionBombWarning | Image.DecompressionBombError):
        return DecodeError(f"image too large: {err} (data.max_pixels is {max_pixels})")
    if isinstance(err, OSError | SyntaxError | ValueError):
        # Pillow raises OSError for truncated data and SyntaxError for broken headers
        return DecodeError(f"corrupt or truncated image: {err}")
    return DecodeError(f"decoder error: {type(err).__name__}: {err}")  # any other failure is the file's


#: the first bytes of the image formats the pipeline reads (:data:`ALLOWED`)
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}
#: the first bytes of formats that are refused, to name them in the reason
REFUSED_SIGNATURES = {
    b"%!PS": "PostScript",
    b"\xc5\xd0\xd3\xc6": "EPS",
    b"%PDF": "PDF",
    b"8BPS": "Photoshop (PSD)",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    b"\xff\x4f\xff\x51": "JPEG 2000 codestream",
    b"RIFF": "RIFF (WebP?)",
    b"\x00\x00\x01\x00": "Windows icon",
    b"PK\x03\x04": "ZIP archive",
    b"\x1f\x8b": "gzip archive",
    b"<": "XML, SVG or HTML",
}
#: Pillow's reader of each allowed format, the only one it may use
PILLOW_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "GIF": "GIF", "TIFF": "TIFF", "BMP": "BMP"}
#: every format a film may come in: Pillow's, DICOM (``DICM`` at byte 128) and the JSRT raw
ALLOWED = (*PILLOW_FORMATS, "DICOM", "JSRT raw")


def sniff(path: Path) -> str:
    """The format ``path``'s first bytes say: an :data:`ALLOWED` name, a refused format's
    name (PostScript, PDF, …), or ``""`` when they say nothing known."""
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        return "DICOM"
    for table in (SIGNATURES, REFUSED_SIGNATURES):
        kind = next((kind for magic, kind in table.items() if head.startswith(magic)), "")
        if kind:
            return kind
    return ""


def _not_allowed(kind: str) -> str:
    said = f"its first bytes are those of {kind}" if kind else "its first bytes match no image format"
    return f"not an image file of an allowed format: {said} (allowed: {', '.join(ALLOWED)}); not decoded"


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image too large ({width} × {height} = {width * height} pixels): over the limit of {max_pixels} pixels "
        "(data.max_pixels; a decompression bomb?)"
    )


def _transparent_pixels(image: Image.Image) -> int:
    """How many pixels an alpha channel (or a palette's transparency) hides."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA").getchannel("A"))
        return int((alpha < 255).sum())
    return 0


#: default share of transparent pixels flattened over black (config
#: ``data.max_transparent``); above it the film is refused
MAX_TRANSPARENT = 0.01


def read_pil(path: Path | str, max_pixels: int = MAX_PIXELS, max_transparent: float = MAX_TRANSPARENT) -> Decoded:
    """PNG, JPEG, GIF, BMP or TIFF through Pillow (:func:`open_checked`), EXIF orientation
    applied, to one channel; an alpha channel that hides at most ``max_transparent`` of the
    pixels is flattened over black (and noted), more is refused."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    image = open_checked(path, max_pixels)
    try:
        mode = image.mode
        try:
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
        except Exception:  # an unreadable EXIF block is not worth a film
            orientation = 1
        if orientation not in range(1, 9):
            raise DecodeError(f"invalid EXIF orientation {orientation}")
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        hidden = _transparent_pixels(image)
        note = ""
        if hidden:
            share = hidden / (image.size[0] * image.size[1])
            if share > max_transparent:
                raise DecodeError(
                    f"alpha channel makes {hidden} pixels ({100 * share:.1f} %) transparent, over the "
                    f"{100 * max_transparent:g} % flattened (data.max_transparent): what a viewer shows is not the "
                    "stored image"
                )
            note = f"alpha channel: {hidden} pixels ({100 * share:.2f} %) transparent, flattened over black"
            rgba = image.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            image = Image.alpha_composite(flat, rgba).convert("RGB")
        if image.mode in ("P", "PA"):
            # palette images (JSRT PNG conversions, NLM Shenzhen) must be decoded through
            # the palette: raw indices can be inverted (index 0 = white)
            image = image.convert("RGB")
        if image.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
            # opaque alpha is dropped; colour to luminance, ITU-R 601-2
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
    except Exception as err:  # a conversion that fails is the file's problem too
        raise DecodeError(f"decoder error: {type(err).__name__}: {err}") from None
    finally:
        image.close()
    if pixels.ndim != 2 or min(pixels.shape) < 16:
        raise DecodeError(f"not a 2-D radiograph (shape {pixels.shape})")
    return Decoded(np.ascontiguousarray(pixels), _significant_bits(pixels), mode, orientation, note)


def read_dicom(path: Path | str, max_pixels: int = MAX_PIXELS) -> Decoded:
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
    except Exception as err:  # pydicom raises many types for damaged files
        raise DecodeError(f"unreadable DICOM: {type(err).__name__}: {err}") from None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if rows * cols > max_pixels:
        raise DecodeError(_too_large(cols, rows, max_pixels))
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DecodeError(
            f"DICOM photometric interpretation {photometric} with {samples} sample(s) per pixel: "
            "a radiograph has one (MONOCHROME1 or MONOCHROME2)"
        )
    if frames > 1:
        raise DecodeError(f"multi-frame DICOM ({frames} frames): one radiograph per file is accepted")
    try:
        arr = ds.pixel_array
    except Exception as err:
        if syntax is not None and syntax.is_compressed:
            raise DecodeError(
                f"DICOM transfer syntax {syntax.name} ({syntax}) could not be decoded: {type(err).__name__}: {err}"
            ) from None
        raise DecodeError(f"unreadable DICOM pixel data: {type(err).__name__}: {err}") from None
    if arr.ndim != 2:
        raise DecodeError(f"DICOM pixel data is not a single 2-D frame (shape {arr.shape})")
    bits = int(getattr(ds, "BitsStored", 16 if arr.dtype.itemsize > 1 else 8))
    if arr.dtype.kind == "i":  # signed storage: shift into the unsigned range
        arr = arr.astype(np.int32) - int(arr.min())
    arr = np.clip(arr, 0, (1 << bits) - 1)
    if photometric == "MONOCHROME1":
        arr = (1 << bits) - 1 - arr
    dtype = np.uint8 if bits <= 8 else np.uint16
    return Decoded(np.ascontiguousarray(arr.astype(dtype)), bits, photometric)


def decode(
    path: Path | str,
    fmt: str | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    max_transparent: float = MAX_TRANSPARENT,
) -> Decoded:
    """Decode ``path``, choosing the reader by the file's first bytes (an ``.IMG`` file is
    the JSRT raw, checked by its size; a ``dicom`` source's files are read as DICOM).

    Args:
        path: the image file.
        fmt: the source format.
        max_pixels: refuse images with more pixels (checked before decoding).
        max_transparent: the share of transparent pixels flattened (more is refused).

    Raises:
        DecodeError: the file is missing, empty, not of an allowed format, truncated,
            corrupt, or of several frames.
    """
    path = Path(path)
    if not path.is_file():
        raise DecodeError("file not found")
    if not os.access(path, os.R_OK):
        raise DecodeError("permission denied: the file is not readable by this user")
    suffix = path.suffix.lower()
    if suffix == ".img":
        return read_jsrt_raw(path)
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    kind = sniff(path)
    if kind == "DICOM" or ((suffix in DICOM_SUFFIXES or fmt == "dicom") and kind not in PILLOW_FORMATS):
        return read_dicom(path, max_pixels)
    return read_pil(path, max_pixels, max_transparent)

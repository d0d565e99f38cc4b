"""The paper's universal preprocessing ("data normalisation", method.md §3).

Sources differ in bit depth, compression, size and exposure; the paper maps every image
through one monotone look-up table built from the image's own histogram, then resizes:

1. cast to float32;
2. (public images, optional) crop a blank band at the bottom (:func:`crop_blank_band`);
3. CDF-based histogram equalisation to ``[0, 255]`` (:func:`equalisation_lut`);
4. gamma correction ``γ = 0.5`` (:func:`gamma_lut`);
5. apply the table: ``out = lut[img]``;
6. resize (256 × 256 for segmentation, 1024 × 1024 for classification) (:func:`resize`).

Harmonised images in this project are stored bone-bright (:mod:`patchcxr.data.decode`);
JSRT films were inverted on reading (``4095 - raw``), so :func:`preprocess` turns them back
into raw values before applying the JSRT branch of the equalisation, which reproduces the
official code on the original ``.IMG`` files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

JSRT_FLAG = 10  # the official code adds 10 to the low CDF cut-off for JSRT films (§3.2)
JSRT_MAX = 4095


def equalisation_lut(img: np.ndarray, jsrt: bool = False, max_roi: int | None = None) -> np.ndarray:
    """CDF-based histogram equalisation table, as the official code builds it (§3.2 step 3).

    With integer grey levels ``v ∈ {0, …, M}`` (``M = max(img)``), histogram ``h`` and
    cumulative histogram ``c(v) = Σ_{u ≤ v} h(u)``:

    .. math::

        c_\\text{low} = \\sum_{u \\le \\min(img)} h(u) + f_\\text{JSRT}, \\qquad
        c_\\text{high} = N - \\sum_{u \\ge m_\\text{roi}} h(u)

    (``f_JSRT = 10`` for JSRT, else 0; ``N`` the pixel count; ``m_roi = M + 1`` as in the
    newest official code, for which the paper-era value 4096 is identical up to 12 bits).
    Levels with ``c(v) = 0`` or ``c(v) ∉ [c_low, c_high]`` are masked; the others map to

    .. math::

        L(v) = 255 \\, \\frac{c(v) - \\min c}{\\max c - \\min c}

    (min and max over the unmasked levels), JSRT films then to ``255 - L(v)``, and masked
    levels to 0.

    Args:
        img: non-negative integer image (any bit depth).
        jsrt: apply the JSRT branch (expects *raw* JSRT values, air bright).
        max_roi: the upper cut-off level ``m_roi``; default ``max(img) + 1``.

    Returns:
        float64 table of length ``max(img) + 1``; monotone non-decreasing (non-increasing
        on its unmasked part for JSRT).
    """
    if img.size == 0:
        raise ValueError("empty image")
    if not np.issubdtype(img.dtype, np.integer) or img.min() < 0:
        raise ValueError(f"equalisation needs non-negative integer grey levels, got {img.dtype}")
    num_bin = int(img.max()) + 1
    hist = _histogram(img, num_bin)
    cdf = np.cumsum(hist)
    total = int(cdf[-1])
    lo_level = int(img.min())
    roi = num_bin if max_roi is None else int(max_roi)
    hist_low = int(hist[: lo_level + 1].sum()) + (JSRT_FLAG if jsrt else 0)
    hist_high = total - int(hist[roi:].sum())
    keep = (cdf != 0) & (cdf >= hist_low) & (cdf <= hist_high)
    lut = np.zeros(num_bin, np.float64)
    if keep.any():
        c = cdf[keep].astype(np.float64)
        span = c.max() - c.min()
        scaled = (c - c.min()) * 255.0 / span if span > 0 else np.zeros_like(c)
        lut[keep] = 255.0 - scaled if jsrt else scaled
    return lut


def _histogram(img: np.ndarray, num_bin: int) -> np.ndarray:
    """Counts of every grey level ``0 … num_bin - 1`` (exact)."""
    if img.dtype == np.uint8 and img.ndim == 2:
        # Pillow's C histogram: about 7x faster than numpy's bincount on 8-bit films
        counts = np.asarray(Image.fromarray(img, mode="L").histogram(), dtype=np.int64)
        return counts[:num_bin]
    return np.bincount(img.ravel(), minlength=num_bin).astype(np.int64)


def gamma_lut(lut: np.ndarray, gamma: float = 0.5) -> np.ndarray:
    """Gamma correction of a ``[0, 255]`` table: ``255 · (L / 255) ** γ`` (§3.2 step 4)."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return 255.0 * np.power(np.clip(lut, 0.0, 255.0) / 255.0, gamma)


def blank_band_start(img: np.ndarray) -> int | None:
    """First row of a blank bottom band (see :func:`crop_blank_band`), or ``None``."""
    h, w = img.shape[:2]
    zeros = np.flatnonzero(img[h // 2 :, w // 2] == 0)
    if zeros.size == 0 or h // 2 + int(zeros[0]) == 0:
        return None
    return h // 2 + int(zeros[0])


def band_cut(pixels: np.ndarray, fmt: str, crop_band: bool) -> int | None:
    """Where to cut a harmonised image before preprocessing: the first row of its blank
    bottom band when ``crop_band`` is on and the image is public (never JSRT, whose films
    are raw and have no band), else ``None``. The one place this rule is written."""
    return blank_band_start(pixels) if crop_band and fmt != "jsrt" else None


def crop_blank_band(img: np.ndarray) -> np.ndarray:
    """Crop a blank (zero) band at the bottom (§3.2 step 2; public images only).

    The centre column from mid-height down is searched for a 0; if there is one, every
    row from the first zero on is removed. On a radiograph (the spine keeps the centre
    column bright) a second application changes nothing; it could cut again only if the
    centre column held a 0 between the new and the old mid-height.
    """
    cut = blank_band_start(img)
    return img if cut is None else img[:cut]


def resize(img: np.ndarray, size: int | tuple[int, int], reducing_gap: float | None = 3.0) -> np.ndarray:
    """Bicubic resize of a float image to ``size`` (rows, cols) — PIL's default for float
    images in the official code (§3.2 step 6).

    Args:
        reducing_gap: Pillow's two-step resize for large reductions (a box reduction by an
            integer factor, then bicubic); 3.0, Pillow's "indistinguishable" setting, is
            several times faster on 9-20-megapixel films and differs from the one-step
            bicubic by about 0.1 grey level on average (at most 2) on a radiograph-like
            film (tests check it); ``None`` is the one-step resize of the official code.
    """
    rows, cols = (size, size) if isinstance(size, int) else size
    out = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F").resize(
        (cols, rows), Image.Resampling.BICUBIC, reducing_gap=reducing_gap
    )
    return np.asarray(out, dtype=np.float32)


def preprocess(
    pixels: np.ndarray,
    fmt: str = "",
    gamma: float = 0.5,
    crop_band: bool = False,
    *,
    size: int | tuple[int, int] | None = None,
    equalise: bool = True,
) -> np.ndarray:
    """The whole universal preprocessing of one harmonised image.

    Args:
        pixels: harmonised image (uint8 or uint16, bone bright).
        fmt: source format; ``"jsrt"`` selects the JSRT branch (the image is turned back
            into raw values ``4095 - pixels`` first, see the module docstring).
        gamma: γ of step 4 (paper: 0.5).
        crop_band: crop a blank bottom band first (public images; off for JSRT).
        size: output size, or ``None`` to keep the size.
        equalise: ``False`` gives the *without preprocessing* arm of the paper's ablation
            (§3.1: JI 0.932 → 0.943): a plain min-max scaling to ``[0, 255]``.

    Returns:
        float32 image in ``[0, 255]``.
    """
    img = np.asarray(pixels)
    jsrt = fmt == "jsrt"
    cut = band_cut(img, fmt, crop_band)
    if cut is not None:
        img = img[:cut]
    if not equalise:
        f = img.astype(np.float32)
        lo, hi = float(f.min()), float(f.max())
        out = (f - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(f)
    else:
        # index the table with the image's own unsigned dtype (no 64-bit copy of the film)
        levels = (np.uint16(JSRT_MAX) - img.astype(np.uint16)) if jsrt else img
        lut = gamma_lut(equalisation_lut(levels, jsrt=jsrt), gamma).astype(np.float32)
        out = lut[levels]
    if size is not None:
        out = np.clip(resize(out, size), 0.0, 255.0)
    return out.astype(np.float32)


def resize_labels(labels: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """A label map resized to ``size`` (rows, cols) by nearest neighbour."""
    rows, cols = (size, size) if isinstance(size, int) else size
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((cols, rows), Image.Resampling.NEAREST))


@dataclass(frozen=True, kw_only=True)
class PreprocessSettings:
    """The universal preprocessing as one stage applies it: config ``preprocessing:``, read
    by every stage that preprocesses (segmentation, biomarkers, classifier inputs, saliency,
    ``patchcxr predict``) and recorded in every model file (:meth:`to_dict`).

    Attributes:
        size: the network input side :meth:`image` resizes to (segmentation: config
            ``segmentation.size``, paper 256); ``None`` for the stages that resize on their
            own (classifier inputs, biomarkers: their settings hold their size).
        equalise: the paper's equalisation + gamma; ``False`` = min-max scaling only (the
            segmentation's "without preprocessing" arm, §3.1).
        gamma: γ of step 4 (paper: 0.5).
        crop_band: crop a blank bottom band on public images first (§3.2 step 2).
    """

    # the field order is the order of the keys a segmentation model file records
    size: int | None = None
    equalise: bool = True
    gamma: float = 0.5
    crop_band: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PreprocessSettings:
        """From the ``preprocessing`` section (keys ``gamma``, ``crop_blank_band``)."""
        return cls(gamma=float(cfg["gamma"]), crop_band=bool(cfg["crop_blank_band"]))

    def to_dict(self) -> dict[str, Any]:
        """Every field, in field order: what a segmentation model file records (a classifier
        file records ``gamma`` and ``crop_band`` only, :class:`patchcxr.classification.settings.InputSettings`)."""
        return asdict(self)

    def band(self, pixels: np.ndarray, fmt: str) -> int | None:
        """First row of the blank band cropped from ``pixels`` (:func:`band_cut`), or ``None``."""
        return band_cut(pixels, fmt, self.crop_band)

    def kept_rows(self, pixels: np.ndarray, fmt: str) -> int:
        """How many top rows of ``pixels`` survive the blank-band crop (:func:`band_cut`);
        crop a mask or a box of the same image with the same number."""
        at = self.band(pixels, fmt)
        return int(pixels.shape[0]) if at is None else at

    def image(self, pixels: np.ndarray, fmt: str) -> np.ndarray:
        """Network input in [0, 1], ``size × size`` (the image's own size when ``size`` is
        ``None``)."""
        cut = self.band(pixels, fmt)
        if cut is not None:
            pixels = pixels[:cut]
        out = preprocess(pixels, fmt, gamma=self.gamma, size=self.size, equalise=self.equalise)
        return out / np.float32(255.0)

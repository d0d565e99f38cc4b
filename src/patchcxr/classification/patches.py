"""Random lung-centred patches (method.md §5.2–5.3).

The classifier sees ``patch × patch`` crops (paper: 224 on a 1024² masked image) whose
centre lies in the lung. Two ways to draw the centre:

* ``joint`` (default): a lung pixel drawn uniformly, so the centre is always in the lung;
* ``independent`` (the official code, kept to reproduce it): a row drawn from the rows of
  the lung pixels and, independently, a column from their columns (each weighted by its
  pixel count) — the centre may fall outside the lung, inside its bounding band.

Border handling, for a centre closer than ``patch / 2`` to the edge:

* ``shift`` (default): the window is moved inside the image, so every patch is a full
  ``patch × patch`` crop at the image's own scale;
* ``clip`` (the official code): the window is clipped at the border; the smaller crop is
  later resized to ``patch × patch`` (:func:`extract`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

CENTRES = ("joint", "independent")
BORDERS = ("shift", "clip")


def film_rng(seed: int, image_id: str) -> np.random.Generator:
    """The generator of one film's patches: seeded by the run's seed and the film's id, so a
    film gets the same patches wherever it stands in a table (the test split, a held-out
    source's split, a probe's view) and in every model of the same seed."""
    return np.random.default_rng([int(seed), zlib.crc32(str(image_id).encode())])


def sample_centres(lung: np.ndarray, k: int, rng: np.random.Generator, mode: str = "joint") -> np.ndarray:
    """``k`` patch centres ``(row, col)`` for a boolean lung mask.

    Raises:
        ValueError: an empty mask (no lung to sample from) or an unknown mode.
    """
    rows, cols = np.nonzero(lung)
    if rows.size == 0:
        raise ValueError("empty lung mask: no patch centre can be drawn")
    if mode == "joint":
        idx = rng.integers(0, rows.size, k)
        return np.stack([rows[idx], cols[idx]], axis=1)
    if mode == "independent":
        return np.stack([rows[rng.integers(0, rows.size, k)], cols[rng.integers(0, cols.size, k)]], axis=1)
    raise ValueError(f"centre mode must be one of {CENTRES}, got {mode!r}")


def windows(centres: np.ndarray, shape: Sequence[int], patch: int, border: str = "shift") -> np.ndarray:
    """Windows ``(top, left, bottom, right)`` (end-exclusive) of the patches around ``centres``."""
    h, w = int(shape[0]), int(shape[1])
    if patch > min(h, w):
        raise ValueError(f"patch {patch} larger than the image {h}x{w}")
    half = patch // 2
    top, left = centres[:, 0] - half, centres[:, 1] - half
    if border == "shift":
        top, left = np.clip(top, 0, h - patch), np.clip(left, 0, w - patch)
        return np.stack([top, left, top + patch, left + patch], axis=1)
    if border == "clip":
        return np.stack(
            [np.clip(top, 0, h), np.clip(left, 0, w), np.clip(top + patch, 0, h), np.clip(left + patch, 0, w)], axis=1
        )
    raise ValueError(f"border mode must be one of {BORDERS}, got {border!r}")


def extract(image: torch.Tensor, wins: np.ndarray, patch: int) -> torch.Tensor:
    """Crops of ``image`` (C, H, W) at ``wins`` as a batch (K, C, patch, patch); clipped
    (smaller) crops are resized bilinearly to ``patch`` as in the official code. A uint8
    image (a cached input held compact) gives float crops in [0, 1]."""
    crops = []
    for top, left, bottom, right in wins.tolist():
        crop = image[:, top:bottom, left:right]
        if crop.dtype == torch.uint8:
            crop = crop.to(torch.float32) / 255.0
        if crop.shape[-2:] != (patch, patch):
            crop = F.interpolate(crop[None], size=(patch, patch), mode="bilinear", align_corners=False)[0]
        crops.append(crop)
    return torch.stack(crops)

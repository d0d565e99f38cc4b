"""Segmentation inputs: harmonised image → preprocessed network input, mask → target.

Targets use the label map values (0 background, 1 heart, 2 left lung, 3 right lung) and
one more, :data:`BG_OR_HEART`, for pixels of lung-only annotations (Montgomery, Shenzhen)
that are not lung: they may be background or heart, and the loss treats them so
(:func:`patchcxr.segmentation.train.partial_cross_entropy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from patchcxr.data.labels import N_LABEL_VALUES
from patchcxr.io import read_png
from patchcxr.preprocess import band_cut, preprocess, resize_labels

#: target value of a not-lung pixel in a lung-only annotation (one past the label values)
BG_OR_HEART = N_LABEL_VALUES
#: the network's output classes: the label-map values
N_CLASSES = N_LABEL_VALUES


@dataclass(frozen=True)
class Preprocessing:
    """How images are prepared for the network (config ``segmentation``).

    Attributes:
        size: square input size (paper: 256).
        equalise: the paper's equalisation + gamma; ``False`` = min-max scaling only
            (the "without preprocessing" arm).
        gamma: γ (paper: 0.5).
        crop_band: crop a blank bottom band on public images (§3.2 step 2).
    """

    size: int = 256
    equalise: bool = True
    gamma: float = 0.5
    crop_band: bool = True

    def band(self, pixels: np.ndarray, fmt: str) -> int | None:
        return band_cut(pixels, fmt, self.crop_band)

    def image(self, pixels: np.ndarray, fmt: str) -> np.ndarray:
        """Network input in [0, 1], ``size × size``."""
        cut = self.band(pixels, fmt)
        if cut is not None:
            pixels = pixels[:cut]
        out = preprocess(pixels, fmt, gamma=self.gamma, size=self.size, equalise=self.equalise)
        return out / np.float32(255.0)


def load_examples(rows: pd.DataFrame, prep: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(N, 1, S, S)`` float32 and targets ``(N, S, S)`` int64 for manifest rows
    with masks (loaded once: a training job keeps them in memory)."""
    xs, ys = [], []
    for row in rows.itertuples():
        pixels = read_png(row.image_path)
        labels = read_png(row.mask_path)
        cut = prep.band(pixels, row.format)
        if cut is not None:
            labels = labels[:cut]
        target = resize_labels(labels, prep.size).astype(np.int64)
        if str(row.has_heart_mask) != "1":
            target[target == 0] = BG_OR_HEART
        xs.append(prep.image(pixels, row.format))
        ys.append(target)
    if not xs:
        return torch.zeros((0, 1, prep.size, prep.size)), torch.zeros((0, prep.size, prep.size), dtype=torch.int64)
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))


def split_rows(manifest: pd.DataFrame, split: pd.DataFrame, which: Sequence[str]) -> pd.DataFrame:
    """Manifest rows of the segmentation split parts ``which`` (with masks)."""
    ids = split.loc[split["split"].isin(list(which)), "image_id"]
    rows = manifest[manifest["image_id"].isin(ids) & (manifest["mask_path"] != "")]
    return rows.sort_values("image_id").reset_index(drop=True)

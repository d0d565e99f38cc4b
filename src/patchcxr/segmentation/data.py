"""Segmentation inputs: harmonised image → preprocessed network input, mask → target.

Targets use the label map values (0 background, 1 heart, 2 left lung, 3 right lung) and
one more, :data:`BG_OR_HEART`, for pixels of lung-only annotations (Montgomery, Shenzhen)
that are not lung: they may be background or heart, and the loss treats them so
(:func:`patchcxr.segmentation.train.partial_cross_entropy`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from patchcxr.data.labels import N_LABEL_VALUES
from patchcxr.io import read_png
from patchcxr.preprocess import PreprocessSettings, resize_labels

#: target value of a not-lung pixel in a lung-only annotation (one past the label values)
BG_OR_HEART = N_LABEL_VALUES
#: the network's output classes: the label-map values
N_CLASSES = N_LABEL_VALUES


def network_size(prep: PreprocessSettings) -> int:
    """The network input side of segmentation preprocessing settings (``prep.size``).

    Raises:
        ValueError: settings without a size (those of a stage that resizes on its own).
    """
    if prep.size is None:
        raise ValueError("segmentation needs preprocessing settings with a network input size (size=None given)")
    return prep.size


def load_examples(rows: pd.DataFrame, prep: PreprocessSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(N, 1, S, S)`` float32 and targets ``(N, S, S)`` int64 for manifest rows
    with masks (loaded once: a training job keeps them in memory), at ``prep.size``."""
    size = network_size(prep)
    xs, ys = [], []
    for row in rows.itertuples():
        pixels = read_png(row.image_path)
        labels = read_png(row.mask_path)
        cut = prep.band(pixels, row.format)
        if cut is not None:
            labels = labels[:cut]
        target = resize_labels(labels, size).astype(np.int64)
        if str(row.has_heart_mask) != "1":
            target[target == 0] = BG_OR_HEART
        xs.append(prep.image(pixels, row.format))
        ys.append(target)
    if not xs:
        return torch.zeros((0, 1, size, size)), torch.zeros((0, size, size), dtype=torch.int64)
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))


def split_rows(manifest: pd.DataFrame, split: pd.DataFrame, which: Sequence[str]) -> pd.DataFrame:
    """Manifest rows of the segmentation split parts ``which`` (with masks)."""
    ids = split.loc[split["split"].isin(list(which)), "image_id"]
    rows = manifest[manifest["image_id"].isin(ids) & (manifest["mask_path"] != "")]
    return rows.sort_values("image_id").reset_index(drop=True)

"""Classifier inputs (method.md §3.3, §5.2): each image preprocessed, resized to 1024²
and multiplied by its lung mask — built once per image and cached as PNG, never
recomputed per epoch or per patch.

The cached input is the masked image rounded to 8 bits (the paper's preprocessed range is
[0, 255]; rounding moves a value by at most half a grey level) and the lung mask at the
same size; the patch centres are drawn from that mask.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from patchcxr.classification.settings import InputSettings
from patchcxr.data.labels import LUNG_VALUES
from patchcxr.io import read_png, write_png
from patchcxr.masks import ATLAS, PREDICTED, atlas_labels, choose_mask
from patchcxr.models.classifier import backbone
from patchcxr.preprocess import preprocess, resize_labels

log = logging.getLogger(__name__)

INPUT_COLUMNS = [
    *("image_id", "input_path", "lung_path", "mask_source", "label5", "label4", "patient_id", "source"),
    "paediatric",
]


def masked_input(
    pixels: np.ndarray, fmt: str, labels: np.ndarray, settings: InputSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(masked image uint8, lung mask bool), both ``size × size``."""
    prep = settings.preprocessing
    rows = prep.kept_rows(pixels, fmt)
    pixels, labels = pixels[:rows], labels[:rows]
    img = preprocess(pixels, fmt, gamma=prep.gamma, size=settings.size)
    lung = np.isin(resize_labels(labels, settings.size), LUNG_VALUES)
    return np.round(img * lung).astype(np.uint8), lung


def lung_input(
    pixels: np.ndarray, labels: np.ndarray, settings: InputSettings, *, fmt: str, kind: str = PREDICTED
) -> tuple[np.ndarray, np.ndarray, str]:
    """(masked input uint8, lung mask bool, mask source) of a film and its label map
    (``kind``: where the map came from), as the classifier's ``settings`` make inputs.

    The empty-lung policy, the one statement of it: a map without lung gives way to the
    atlas lung field (:func:`patchcxr.masks.atlas_labels`) and the source says ``atlas``; a
    film is never dropped (the workflow's inputs and ``patchcxr predict`` alike)."""
    img, lung = masked_input(pixels, fmt, labels, settings)
    if lung.any():
        return img, lung, kind
    img, lung = masked_input(pixels, fmt, atlas_labels(pixels.shape[:2]), settings)
    return img, lung, ATLAS


def build_inputs(
    manifest: pd.DataFrame, cohort: pd.DataFrame, masks: pd.DataFrame, out_dir: Path | str, *, settings: InputSettings
) -> pd.DataFrame:
    """Cached inputs for the cohort images among ``masks`` (one prediction shard).

    The lung mask is the predicted one, or with ``settings.mask_source``
    ``truth_where_available`` the source's ground truth where it has one
    (:func:`patchcxr.masks.choose_mask`). An image whose mask has no lung gets the atlas lung
    field instead, ``mask_source`` ``atlas`` in its row and a warning: every image keeps an
    input, and the evaluation counts the fallbacks.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # also for a shard without a cohort image
    rows = manifest[manifest["image_id"].isin(masks["image_id"]) & manifest["image_id"].isin(cohort["image_id"])]
    rows = rows.drop(columns=["label5", "label4"]).merge(cohort[["image_id", "label5", "label4"]], on="image_id")
    predicted = dict(zip(masks["image_id"], masks["mask_path"], strict=True))
    out = []
    for row in rows.itertuples():
        path, kind = choose_mask(
            str(row.has_lung_mask) == "1", row.mask_path, predicted[row.image_id], settings.mask_source
        )
        img, lung, made_from = lung_input(read_png(row.image_path), read_png(path), settings, fmt=row.format, kind=kind)
        if made_from == ATLAS:
            log.warning("%s: no lung in its %s mask: the atlas lung field makes its input", row.image_id, kind)
        kind = made_from
        ip, lp = out_dir / f"{row.image_id}.png", out_dir / f"{row.image_id}.lung.png"
        write_png(ip, img)
        write_png(lp, lung)
        out.append(
            {
                "image_id": row.image_id,
                "input_path": str(ip),
                "lung_path": str(lp),
                "mask_source": kind,
                "label5": row.label5,
                "label4": row.label4,
                "patient_id": row.patient_id,
                "source": row.source,
                "paediatric": int(str(row.paediatric) == "1"),
            }
        )
    return pd.DataFrame(out, columns=INPUT_COLUMNS)


def load_input(input_path: str, lung_path: str, *, compact: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """A cached input as a float tensor (1, S, S) in [0, 1] and its lung mask; ``compact``:
    the tensor as stored, uint8 in [0, 255] (a quarter of the memory, for the training
    films held in memory: :func:`as_unit` converts patches as they are drawn, to the same
    values)."""
    pixels = read_png(input_path)
    img = torch.from_numpy(pixels.astype(np.uint8) if compact else pixels.astype(np.float32) / 255.0)[None]
    return img, read_png(lung_path) > 0


def as_unit(x: torch.Tensor) -> torch.Tensor:
    """A cached input or crop as float in [0, 1] (uint8 tensors divided by 255, as
    :func:`load_input` does; float tensors unchanged)."""
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x


def memory_format(model: torch.nn.Module) -> torch.memory_format:
    """The layout a model's inputs should have: ``channels_last`` when its convolutions
    are stored so (inference models, :func:`patchcxr.classification.predict.load_classifier`:
    1.32x faster on this CPU, bench/RESULTS.md), else the default."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    if weight is not None and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def to_network(patches: torch.Tensor, backbone_name: str) -> torch.Tensor:
    """Grey patches (K, 1, S, S) in [0, 1] → 3 channels normalised as the backbone's
    (ImageNet) weights expect (:class:`patchcxr.models.classifier.Backbone`)."""
    spec = backbone(backbone_name)
    mean = torch.tensor(spec.mean, dtype=patches.dtype).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=patches.dtype).view(1, 3, 1, 1)
    return (patches.expand(-1, 3, -1, -1) - mean) / std

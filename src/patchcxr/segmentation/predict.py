"""Masks for every image (method.md §4.4).

Prediction follows the official code: preprocess, resize to the network size, arg-max,
back to the image's own size by nearest neighbour (after a blank-band crop the cropped
rows are background). Clean-up (largest connected component per lung, holes filled) is an
option, off as in the paper. Each image also gets a QC overlay and a row of ``qc.tsv``
(lung-area fraction, component count, flag on implausible masks).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from patchcxr.data.labels import LUNG_VALUES, LabelValue
from patchcxr.faults import fault_point
from patchcxr.figures import mask_overlay_png
from patchcxr.io import atomic_write_bytes, read_png, read_tsv, write_png, write_tsv
from patchcxr.masks import largest_component
from patchcxr.models.segmentation import build_segmentation_model
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime, load_state, resolve_device
from patchcxr.preprocess import PreprocessSettings, resize_labels
from patchcxr.shards import shard_rows

log = logging.getLogger(__name__)

QC_COLUMNS = [
    "image_id",
    "mask_path",
    "overlay_path",
    "lung_fraction",
    "left_components",
    "right_components",
    "heart_fraction",
    "flag",
    "mask_fold",
]


def predict_batches(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int) -> np.ndarray:
    """Arg-max labels for inputs ``x`` (N, 1, S, S), in batches, on ``device``."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model(x[i : i + batch].to(device)).argmax(1).to("cpu", torch.uint8).numpy())
    return np.concatenate(out) if out else np.zeros((0, *x.shape[2:]), np.uint8)


def load_segmenter(path: Path | str, device: str = "auto") -> tuple[torch.nn.Module, PreprocessSettings, torch.device]:
    """A saved segmentation model (``weights_only`` load), in eval mode on ``device``, with
    the preprocessing it was trained with (the model file's record: size, equalise, gamma,
    crop_band)."""
    state = load_state(path)
    dev = resolve_device(device)
    model = build_segmentation_model(state["arch"], int(state["n_classes"]), **json.loads(state["options"]))
    model.load_state_dict(state["state_dict"])
    return model.to(dev).eval(), PreprocessSettings(**json.loads(state["preprocessing"])), dev


def back_project(labels: np.ndarray, shape: tuple[int, int], band_start: int | None) -> np.ndarray:
    """Network-size labels to the image's size (nearest); rows of a cropped band are 0."""
    rows = band_start if band_start is not None else shape[0]
    out = np.zeros(shape, np.uint8)
    out[:rows] = resize_labels(labels, (rows, shape[1]))
    return out


def clean_up(labels: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of each lung and of the heart; fill holes."""
    out = np.zeros_like(labels)
    for value in (LabelValue.HEART, *LUNG_VALUES):
        keep = ndimage.binary_fill_holes(largest_component(labels == value))
        out[keep & (out == 0)] = value
    return out


def qc_row(labels: np.ndarray, lung_range: tuple[float, float]) -> dict[str, Any]:
    """Plausibility of a mask: lung area share, components per lung, heart share, flag."""
    n = labels.size
    lung = float(np.isin(labels, LUNG_VALUES).sum() / n)
    left = int(ndimage.label(labels == LabelValue.LEFT_LUNG)[1])
    right = int(ndimage.label(labels == LabelValue.RIGHT_LUNG)[1])
    reasons = []
    if not lung_range[0] <= lung <= lung_range[1]:
        reasons.append(f"lung fraction {lung:.3f} outside [{lung_range[0]}, {lung_range[1]}]")
    if left == 0 or right == 0:
        reasons.append("a lung is missing")
    if left > 3 or right > 3:
        reasons.append(f"fragmented lungs ({left} left, {right} right components)")
    return {
        "lung_fraction": round(lung, 5),
        "left_components": left,
        "right_components": right,
        "heart_fraction": round(float((labels == LabelValue.HEART).sum() / n), 5),
        "flag": "; ".join(reasons),
    }


def film_labels(
    rows: pd.DataFrame, path: Path | str, device: str, batch_size: int
) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """The segmenter of ``path`` over manifest ``rows`` (``image_path``, ``format``), one
    batch decoded at a time: ``(row, pixels, labels)`` per film, the labels back at the
    film's own size (:func:`back_project`)."""
    model, prep, dev = load_segmenter(path, device)
    for start in range(0, len(rows), batch_size):
        part = rows.iloc[start : start + batch_size]
        pixels = [read_png(p) for p in part["image_path"]]
        x = torch.from_numpy(
            np.stack([prep.image(px, f) for px, f in zip(pixels, part["format"], strict=True)])[:, None]
        )
        for row, px, lab in zip(part.itertuples(), pixels, predict_batches(model, x, dev, batch_size), strict=True):
            yield row, px, back_project(lab, px.shape[:2], prep.band(px, row.format))


def _mask_fold_of(films: pd.DataFrame, mask_folds: pd.DataFrame | None) -> pd.Series:
    """Each film's segmenter: its own row of ``mask_folds``, else its patient's fold (a
    classified patient's film outside the cohort, e.g. a second rendition, whose tracing may
    have trained the other folds' networks), else 0."""
    if mask_folds is None or mask_folds.empty:
        return pd.Series(0, index=films.index, dtype=int)
    by_image = {str(i): int(f) for i, f in zip(mask_folds["image_id"], mask_folds["fold"], strict=True)}
    by_patient = {str(p): int(f) for p, f in zip(mask_folds["patient_id"], mask_folds["fold"], strict=True)}
    return pd.Series(
        [
            by_image.get(str(i), by_patient.get(str(p), 0))
            for i, p in zip(films["image_id"], films["patient_id"], strict=True)
        ],
        index=films.index,
        dtype=int,
    )


def predict_shard(
    *,
    manifest_path: Path | str,
    shard: int,
    shard_size: int,
    model_paths: Sequence[Path | str],
    out_dir: Path | str,
    rows_out: Path | str,
    mask_folds: pd.DataFrame | None = None,
    batch_size: int = 8,
    cleanup: bool = False,
    lung_range: Sequence[float] = (0.05, 0.6),
    runtime: Runtime = DEFAULT_RUNTIME,
) -> pd.DataFrame:
    """Masks, overlays and QC rows for one block of the manifest.

    ``model_paths`` holds one segmenter, or one per cross-fitting fold in fold order; a film
    of ``mask_folds`` (``image_id, patient_id, fold``: :func:`patchcxr.data.splits.mask_folds`)
    or of one of its patients is masked by that fold's segmenter, which never trained on the
    patient's tracings; any other film by the first. The fold is each QC row's ``mask_fold``.
    Images are decoded and preprocessed one batch at a time, so memory stays bounded whatever
    the shard size.
    """
    manifest = read_tsv(manifest_path)
    block = shard_rows(manifest, shard, shard_size)
    folds = _mask_fold_of(block, mask_folds)
    if len(folds) and int(folds.max()) >= len(model_paths):
        raise ValueError(
            f"a film of mask fold {int(folds.max())} needs a segmenter of that fold; {len(model_paths)} given"
        )
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for fold, path in enumerate(model_paths):
        mine = block[folds == fold]
        if mine.empty:
            continue
        for done, (row, px, labels) in enumerate(film_labels(mine, path, runtime.device, batch_size), start=1):
            if cleanup:
                labels = clean_up(labels)
            # image ids are <source>/<stem>: two sources may share a stem (two renditions)
            mask_path, overlay_path = (
                out_dir / "masks" / f"{row.image_id}.png",
                out_dir / "overlays" / f"{row.image_id}.png",
            )
            write_png(mask_path, labels)
            atomic_write_bytes(overlay_path, mask_overlay_png(px, labels))
            fault_point(f"mask:{len(rows) + 1}", out_dir)
            rows.append(
                {
                    "image_id": row.image_id,
                    "mask_path": str(mask_path),
                    "overlay_path": str(overlay_path),
                    **qc_row(labels, (float(lung_range[0]), float(lung_range[1]))),
                    "mask_fold": fold,
                }
            )
            if done % batch_size == 0 or done == len(mine):
                log.info("shard %d, fold %d: %d/%d images", shard, fold, done, len(mine))
    df = pd.DataFrame(rows, columns=QC_COLUMNS)
    order = {i: k for k, i in enumerate(block["image_id"])}
    df = df.sort_values("image_id", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    write_tsv(rows_out, df)
    return df


def collect_qc(parts: Sequence[Path | str], out: Path | str) -> pd.DataFrame:
    """Join the shards' QC rows into ``results/masks/qc.tsv``."""
    df = pd.concat([read_tsv(p) for p in parts], ignore_index=True) if parts else pd.DataFrame(columns=QC_COLUMNS)
    df = df.sort_values("image_id").reset_index(drop=True)
    write_tsv(out, df)
    flagged = int((df["flag"] != "").sum())
    log.info("masks for %d images; %d flagged as implausible", len(df), flagged)
    return df

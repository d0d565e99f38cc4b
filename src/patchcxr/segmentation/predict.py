"""Masks for every image, and the evaluation of trained networks (method.md §4.4–4.5).

Prediction follows the official code: preprocess, resize to the network size, arg-max,
back to the image's own size by nearest neighbour (after a blank-band crop the cropped
rows are background). Clean-up (largest connected component per lung, holes filled) is an
option, off as in the paper. Each image also gets a QC overlay and a row of ``qc.tsv``
(lung-area fraction, component count, flag on implausible masks).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy import ndimage, stats

from patchcxr.data.harmonise import read_tsv
from patchcxr.faults import fault_point
from patchcxr.io import atomic_write_bytes, atomic_write_text
from patchcxr.models.segmentation import build_segmentation_model
from patchcxr.segmentation.data import Preprocessing, read_png, resize_labels, split_rows
from patchcxr.segmentation.metrics import structure_scores
from patchcxr.segmentation.train import predict_batches
from patchcxr.training import load_state, resolve_device

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
]


def load_segmenter(path: Path | str, device: str = "auto") -> tuple[torch.nn.Module, Preprocessing, torch.device]:
    """A saved segmentation model (``weights_only`` load), in eval mode on ``device``."""
    state = load_state(path)
    dev = resolve_device(device)
    model = build_segmentation_model(state["arch"], int(state["n_classes"]), **json.loads(state["options"]))
    model.load_state_dict(state["state_dict"])
    return model.to(dev).eval(), Preprocessing(**json.loads(state["preprocessing"])), dev


def back_project(labels: np.ndarray, shape: tuple[int, int], band_start: int | None) -> np.ndarray:
    """Network-size labels to the image's size (nearest); rows of a cropped band are 0."""
    rows = band_start if band_start is not None else shape[0]
    out = np.zeros(shape, np.uint8)
    out[:rows] = resize_labels(labels, (rows, shape[1]))
    return out


def clean_up(labels: np.ndarray) -> np.ndarray:
    """Keep the largest connected component of each lung and of the heart; fill holes."""
    out = np.zeros_like(labels)
    for value in (1, 2, 3):
        comp, n = ndimage.label(labels == value)
        if n == 0:
            continue
        sizes = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1))
        keep = ndimage.binary_fill_holes(comp == (1 + int(np.argmax(sizes))))
        out[keep & (out == 0)] = value
    return out


def qc_row(labels: np.ndarray, lung_range: tuple[float, float]) -> dict[str, Any]:
    """Plausibility of a mask: lung area share, components per lung, heart share, flag."""
    n = labels.size
    lung = float(np.isin(labels, (2, 3)).sum() / n)
    left = int(ndimage.label(labels == 2)[1])
    right = int(ndimage.label(labels == 3)[1])
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
        "heart_fraction": round(float((labels == 1).sum() / n), 5),
        "flag": "; ".join(reasons),
    }


def _overlay(pixels: np.ndarray, labels: np.ndarray, size: int = 256) -> bytes:
    """A small RGB picture: the image in grey, heart red, left lung green, right lung blue."""
    img = pixels.astype(np.float32)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1.0)
    scale = size / max(img.shape)
    shape = (max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale)))
    small = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize(shape[::-1], Image.Resampling.BILINEAR))
    lab = resize_labels(labels, shape)
    rgb = np.repeat(small[..., None], 3, axis=2).astype(np.float32)
    for value, colour in ((1, (255, 60, 60)), (2, (60, 220, 60)), (3, (60, 120, 255))):
        m = lab == value
        rgb[m] = 0.6 * rgb[m] + 0.4 * np.array(colour)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def predict_shard(
    manifest_path: Path | str,
    shard: int,
    shard_size: int,
    model_path: Path | str,
    out_dir: Path | str,
    rows_out: Path | str,
    batch_size: int = 8,
    cleanup: bool = False,
    lung_range: Sequence[float] = (0.05, 0.6),
    device: str = "auto",
) -> pd.DataFrame:
    """Masks, overlays and QC rows for one block of the manifest.

    Images are decoded and preprocessed one batch at a time, so memory stays bounded
    whatever the shard size.
    """
    manifest = read_tsv(manifest_path)
    block = manifest.iloc[shard * shard_size : (shard + 1) * shard_size]
    model, prep, dev = load_segmenter(model_path, device)
    out_dir = Path(out_dir)
    rows = []
    for start in range(0, len(block), batch_size):
        part = block.iloc[start : start + batch_size]
        pixels = [read_png(p) for p in part["image_path"]]
        x = torch.from_numpy(
            np.stack([prep.image(px, f) for px, f in zip(pixels, part["format"], strict=True)])[:, None]
        )
        labels_small = predict_batches(model, x, dev, batch_size)
        for row, px, lab in zip(part.itertuples(), pixels, labels_small, strict=True):
            labels = back_project(lab, px.shape[:2], prep.band(px, row.format))
            if cleanup:
                labels = clean_up(labels)
            # image ids are <source>/<stem>: two sources may share a stem (two renditions)
            mask_path, overlay_path = (
                out_dir / "masks" / f"{row.image_id}.png",
                out_dir / "overlays" / f"{row.image_id}.png",
            )
            buf = io.BytesIO()
            Image.fromarray(labels).save(buf, format="PNG")
            atomic_write_bytes(mask_path, buf.getvalue())
            atomic_write_bytes(overlay_path, _overlay(px, labels))
            fault_point(f"mask:{len(rows) + 1}", out_dir)
            rows.append(
                {
                    "image_id": row.image_id,
                    "mask_path": str(mask_path),
                    "overlay_path": str(overlay_path),
                    **qc_row(labels, (float(lung_range[0]), float(lung_range[1]))),
                }
            )
        log.info("shard %d: %d/%d images", shard, min(start + batch_size, len(block)), len(block))
    df = pd.DataFrame(rows, columns=QC_COLUMNS)
    atomic_write_text(rows_out, df.to_csv(sep="\t", index=False, lineterminator="\n"))
    return df


def collect_qc(parts: Sequence[Path | str], out: Path | str) -> pd.DataFrame:
    """Join the shards' QC rows into ``results/masks/qc.tsv``."""
    df = pd.concat([read_tsv(p) for p in parts], ignore_index=True) if parts else pd.DataFrame(columns=QC_COLUMNS)
    df = df.sort_values("image_id").reset_index(drop=True)
    atomic_write_text(out, df.to_csv(sep="\t", index=False, lineterminator="\n"))
    flagged = int((df["flag"] != "").sum())
    log.info("masks for %d images; %d flagged as implausible", len(df), flagged)
    return df


# --------------------------------------------------------------------------- evaluation
SCORE_COLUMNS = ["model", "preprocessing", "dataset", "image_id", "structure", "jaccard", "dice"]


def evaluate_models(
    manifest_path: Path | str,
    split_path: Path | str,
    models: Mapping[str, Path | str],
    scores_out: Path | str,
    summary_out: Path | str,
    tests_out: Path | str,
    device: str = "auto",
    batch_size: int = 8,
) -> pd.DataFrame:
    """Jaccard and Dice of every model on every held-out image with a mask.

    Args:
        models: ``"<model>/<preprocessing>"`` → model file.

    Writes per-image scores, a summary (mean, sd, n per model, preprocessing, data set and
    structure) and paired tests: Wilcoxon signed-rank on per-image Jaccard of both lungs,
    with vs without preprocessing (the paper's 0.932 → 0.943) and between architectures.
    """
    manifest, split = read_tsv(manifest_path), read_tsv(split_path)
    test_rows = split_rows(manifest, split, ["test"])
    truths = {r.image_id: read_png(r.mask_path) for r in test_rows.itertuples()}
    rows = []
    for key, path in models.items():
        name, prep_name = key.split("/", 1)
        model, prep, dev = load_segmenter(path, device)
        for start in range(0, len(test_rows), batch_size):
            part = test_rows.iloc[start : start + batch_size]
            pixels = [read_png(p) for p in part["image_path"]]
            x = torch.from_numpy(
                np.stack([prep.image(px, f) for px, f in zip(pixels, part["format"], strict=True)])[:, None]
            )
            for row, px, lab in zip(part.itertuples(), pixels, predict_batches(model, x, dev, batch_size), strict=True):
                pred = back_project(lab, px.shape[:2], prep.band(px, row.format))
                for structure, (j, d) in structure_scores(
                    pred, truths[row.image_id], row.has_heart_mask == "1"
                ).items():
                    rows.append(
                        {
                            "model": name,
                            "preprocessing": prep_name,
                            "dataset": row.source,
                            "image_id": row.image_id,
                            "structure": structure,
                            "jaccard": j,
                            "dice": d,
                        }
                    )
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    summary = (
        scores.groupby(["model", "preprocessing", "dataset", "structure"])
        .agg(
            jaccard_mean=("jaccard", "mean"),
            jaccard_sd=("jaccard", "std"),
            dice_mean=("dice", "mean"),
            dice_sd=("dice", "std"),
            n=("image_id", "nunique"),
        )
        .reset_index()
    )
    tests = paired_tests(scores)
    for df, path in ((scores, scores_out), (summary, summary_out), (tests, tests_out)):
        atomic_write_text(path, df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))
    return summary


def paired_tests(scores: pd.DataFrame, structure: str = "both lungs") -> pd.DataFrame:
    """Wilcoxon signed-rank tests on paired per-image Jaccard (scipy)."""
    s = scores[scores["structure"] == structure]
    wide = s.pivot_table(index=["dataset", "image_id"], columns=["model", "preprocessing"], values="jaccard")
    out = []
    pairs = []
    models = sorted({m for m, _ in wide.columns})
    preps = sorted({p for _, p in wide.columns})
    for m in models:
        if (m, "equalised") in wide.columns and (m, "minmax") in wide.columns:
            pairs.append(((m, "equalised"), (m, "minmax"), "preprocessing"))
    for p in preps:
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                if (a, p) in wide.columns and (b, p) in wide.columns:
                    pairs.append(((a, p), (b, p), "architecture"))
    for dataset, part in wide.groupby(level="dataset"):
        for a, b, kind in pairs:
            x, y = part[a].to_numpy(), part[b].to_numpy()
            ok = ~(np.isnan(x) | np.isnan(y))
            x, y = x[ok], y[ok]
            p = float(stats.wilcoxon(x, y).pvalue) if len(x) >= 2 and np.any(x != y) else float("nan")
            out.append(
                {
                    "comparison": kind,
                    "dataset": dataset,
                    "structure": structure,
                    "a": "/".join(a),
                    "b": "/".join(b),
                    "n": len(x),
                    "mean_a": float(np.mean(x)) if len(x) else float("nan"),
                    "mean_b": float(np.mean(y)) if len(y) else float("nan"),
                    "test": "wilcoxon signed-rank",
                    "p_value": p,
                }
            )
    return pd.DataFrame(
        out, columns=["comparison", "dataset", "structure", "a", "b", "n", "mean_a", "mean_b", "test", "p_value"]
    )

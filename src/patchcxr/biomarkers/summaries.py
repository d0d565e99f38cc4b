"""Summaries of the biomarker features for the figures (method.md §7): the per-source
histograms of lung intensity before and after the paper's preprocessing (counted per
shard while :mod:`patchcxr.biomarkers.features` computes the features, then summed and
normalised), and the images of the segmentation example grid (the paper's Fig. 3)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

HIST_BINS = 64


HIST_EDGES = np.linspace(0, 255, HIST_BINS + 1)


def add_histograms(acc: dict[tuple[str, str], np.ndarray], source: str, values: Mapping[str, np.ndarray]) -> None:
    """Add one image's lung intensities, ``before`` (min-max scaling only) and ``after``
    the paper's preprocessing, to the per-source counts in ``acc``."""
    for stage, v in values.items():
        counts, _ = np.histogram(v, bins=HIST_EDGES)
        acc[(source, stage)] = acc.get((source, stage), np.zeros(HIST_BINS, np.int64)) + counts


def histogram_table(acc: Mapping[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """Counts of lung intensities per source and stage (what harmonisation does to the
    sources). Counts add up across shards; :func:`histogram_density` normalises them."""
    out = [
        {"source": source, "stage": stage, "bin_low": HIST_EDGES[b], "bin_high": HIST_EDGES[b + 1], "count": int(c[b])}
        for (source, stage), c in sorted(acc.items())
        for b in range(HIST_BINS)
    ]
    return pd.DataFrame(out, columns=["source", "stage", "bin_low", "bin_high", "count"])


def histogram_density(counts: pd.DataFrame) -> pd.DataFrame:
    """Sum shard counts and normalise per (source, stage) to a density per bin."""
    total = counts.groupby(["source", "stage", "bin_low", "bin_high"], as_index=False)["count"].sum()
    total["density"] = total["count"] / total.groupby(["source", "stage"])["count"].transform("sum").clip(lower=1)
    return total


def examples_per_class(
    features: pd.DataFrame,
    manifest: pd.DataFrame,
    qc: pd.DataFrame,
    per_class: int = 2,
) -> pd.DataFrame:
    """Images for the segmentation example grid (the paper's Fig. 3): the first
    ``per_class`` images of each class (by id) with their predicted masks."""
    pred = dict(zip(qc["image_id"], qc["mask_path"], strict=True))
    paths = dict(zip(manifest["image_id"], manifest["image_path"], strict=True))
    chosen = (
        features[features["mask_source"].isin(["truth", "predicted"])]
        .sort_values("image_id")
        .groupby("label5")
        .head(per_class)
    )
    return pd.DataFrame(
        {
            "label5": chosen["label5"],
            "image_id": chosen["image_id"],
            "image_path": chosen["image_id"].map(paths),
            "mask_path": chosen["image_id"].map(pred),
        }
    )

"""Figures, drawn from the workflow's tables only (never from models).

Matplotlib runs headless (Agg); every function writes one file and returns nothing.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from patchcxr.io import atomic_write_bytes


def _save(fig: plt.Figure, out: Path | str) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(
        buf,
        format=Path(out).suffix.lstrip(".") or "png",
        dpi=150,
        bbox_inches="tight",
        metadata={"Software": None} if str(out).endswith(".png") else None,
    )
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())


def plot_segmentation_scores(scores_path: Path | str, out: Path | str) -> None:
    """Box plots of per-image Jaccard: one panel per held-out data set, one box per
    structure × model × preprocessing (the paper's segmentation comparison, §4.5)."""
    scores = pd.read_csv(scores_path, sep="\t")
    datasets = sorted(scores["dataset"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = scores[scores["dataset"] == dataset]
        groups = part.groupby(["structure", "model", "preprocessing"])["jaccard"]
        labels = [f"{s}\n{m}/{p}" for (s, m, p) in groups.groups]
        ax.boxplot([g.to_numpy() for _, g in groups], tick_labels=labels, showfliers=True)
        ax.set_title(f"{dataset} (n = {part['image_id'].nunique()})")
        ax.set_ylabel("Jaccard index")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Segmentation on held-out images")
    _save(fig, out)

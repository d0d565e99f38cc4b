"""Evaluation of trained segmentation networks on held-out images (method.md §4.5):
Jaccard and Dice per image and structure, a summary per model, preprocessing, data set and
structure, and paired tests between preprocessings and architectures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from patchcxr.io import read_png, read_tsv, write_tsv
from patchcxr.segmentation.data import split_rows
from patchcxr.segmentation.metrics import structure_scores
from patchcxr.segmentation.predict import back_project, load_segmenter, predict_batches

SCORE_COLUMNS = ["model", "preprocessing", "dataset", "image_id", "structure", "jaccard", "dice", "paper_scope"]


def evaluate_models(
    *,
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
                            "paper_scope": int(in_paper_scope(row.format, row.image_id, row.label5)),
                        }
                    )
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    summary = summarise(scores)
    tests = paired_tests(scores)
    for df, path in ((scores, scores_out), (summary, summary_out), (tests, tests_out)):
        write_tsv(path, df)
    return summary


#: the scope of the paper's Table I beside "all": JSRT test films without a nodule (the
#: official evaluation filtered nodule cases out) and Montgomery's normal films (its 73
#: cross-database films are normals); the 0.932 -> 0.943 comparison is on these
PAPER_SCOPE = "paper (Table I)"


def in_paper_scope(fmt: str, image_id: str, label5: str) -> bool:
    """Whether a held-out film belongs to the paper's segmentation evaluation set."""
    if fmt == "jsrt":
        return image_id.split("/", 1)[-1].upper().startswith("JPCNN")
    if fmt == "montgomery":
        return label5 == "normal"
    return False


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd of Jaccard and Dice and the image count per model, preprocessing, data
    set, scope (``all``, and :data:`PAPER_SCOPE` where a data set has films in it) and
    structure."""
    parts = [scores.assign(scope="all"), scores[scores["paper_scope"] == 1].assign(scope=PAPER_SCOPE)]
    both = pd.concat(parts, ignore_index=True)
    return (
        both.groupby(["model", "preprocessing", "dataset", "scope", "structure"])
        .agg(
            jaccard_mean=("jaccard", "mean"),
            jaccard_sd=("jaccard", "std"),
            dice_mean=("dice", "mean"),
            dice_sd=("dice", "std"),
            n=("image_id", "nunique"),
        )
        .reset_index()
    )


def paired_tests(scores: pd.DataFrame, structure: str = "both lungs") -> pd.DataFrame:
    """Wilcoxon signed-rank tests on paired per-image Jaccard (scipy), on all held-out films
    of each data set and on the paper's Table I set (:data:`PAPER_SCOPE`) where it has films."""
    s = scores[scores["structure"] == structure]
    all_films = s.assign(scope="all")
    s = pd.concat([all_films, s[s["paper_scope"] == 1].assign(scope=PAPER_SCOPE)], ignore_index=True)
    wide = s.pivot_table(index=["dataset", "scope", "image_id"], columns=["model", "preprocessing"], values="jaccard")
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
    for (dataset, scope), part in wide.groupby(level=["dataset", "scope"]):
        for a, b, kind in pairs:
            x, y = part[a].to_numpy(), part[b].to_numpy()
            ok = ~(np.isnan(x) | np.isnan(y))
            x, y = x[ok], y[ok]
            p = float(stats.wilcoxon(x, y).pvalue) if len(x) >= 2 and np.any(x != y) else float("nan")
            out.append(
                {
                    "comparison": kind,
                    "dataset": dataset,
                    "scope": scope,
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
        out,
        columns=["comparison", "dataset", "scope", "structure", "a", "b", "n", "mean_a", "mean_b", "test", "p_value"],
    )

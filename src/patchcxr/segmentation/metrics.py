"""Overlap metrics per structure (method.md §4.5).

``J = |A ∩ B| / |A ∪ B|`` (Jaccard index) and ``D = 2 |A ∩ B| / (|A| + |B|)`` (Dice); both
1 when the structure is absent from prediction and truth. (The official code smooths
with +1 in numerator and denominator; on whole images the difference is below 1e-5.)
"""

from __future__ import annotations

import numpy as np

from patchcxr.data.labels import LUNG_VALUES, LabelValue

STRUCTURES: dict[str, tuple[int, ...]] = {
    "left lung": (int(LabelValue.LEFT_LUNG),),
    "right lung": (int(LabelValue.RIGHT_LUNG),),
    "both lungs": LUNG_VALUES,
    "heart": (int(LabelValue.HEART),),
}


def jaccard(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, truth).sum() / total)


def structure_scores(pred: np.ndarray, truth: np.ndarray, has_heart: bool) -> dict[str, tuple[float, float]]:
    """``{structure: (jaccard, dice)}``; the heart only where the truth annotates it."""
    out = {}
    for name, values in STRUCTURES.items():
        if name == "heart" and not has_heart:
            continue
        p, t = np.isin(pred, values), np.isin(truth, values)
        out[name] = (jaccard(p, t), dice(p, t))
    return out


def mean_jaccard(pred: np.ndarray, truth: np.ndarray, has_heart: bool) -> float:
    """The official model-selection score: mean J over heart, left and right lung."""
    s = structure_scores(pred, truth, has_heart)
    keys = ["left lung", "right lung"] + (["heart"] if has_heart else [])
    return float(np.mean([s[k][0] for k in keys]))

"""Classification metrics (method.md §5.5, §8): confusion matrices, per-class precision,
recall (sensitivity), F1 and specificity, accuracy and macro averages, one-vs-rest ROC AUC
from the mean patch probabilities, each with a 95 % interval from a bootstrap over patients
(the unit of the split; :mod:`patchcxr.stats`).

scikit-learn computes the metrics; specificity, which it lacks, is ``TN / (TN + FP)`` per
class from its confusion matrix (one-vs-rest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from patchcxr.stats import (
    bootstrap_interval,
    bootstrap_resamples,
    interval_columns,
    percentile_interval,
    with_intervals,
)


def per_class_table(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, names: Sequence[str]
) -> pd.DataFrame:
    """Precision, recall, F1, specificity and support per class, then the macro averages
    and accuracy.

    A class absent from ``y_true`` has no recall and no F1 (NaN, not 0), and a precision
    only if it was predicted (then 0: every such prediction is wrong). The macro averages
    run over the classes present in ``y_true``: a perfect classifier on a two-class source
    scores 1, whatever the other classes of the model.
    """
    labels = list(range(len(names)))
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    present = n > 0
    predicted = cm.sum(axis=0) > 0
    p = np.where(present | predicted, p, np.nan)
    r = np.where(present, r, np.nan)
    f = np.where(present, f, np.nan)
    total = cm.sum()
    spec = []
    for k in labels:
        tn = total - cm[k, :].sum() - cm[:, k].sum() + cm[k, k]
        fp = cm[:, k].sum() - cm[k, k]
        spec.append(tn / (tn + fp) if tn + fp else np.nan)
    spec_arr = np.array(spec, dtype=float)
    rows = pd.DataFrame({"class": list(names), "precision": p, "recall": r, "f1": f, "specificity": spec, "support": n})

    def over_present(values: np.ndarray) -> float:
        kept = values[present]
        return float(np.nanmean(kept)) if np.isfinite(kept).any() else float("nan")

    macro = {
        "class": "macro",
        "precision": over_present(p),  # a present class never predicted has precision 0, not NaN
        "recall": over_present(r),
        "f1": over_present(f),
        "specificity": over_present(spec_arr),
        "support": int(n.sum()),
    }
    acc = {
        "class": "accuracy",
        "precision": np.nan,
        "recall": accuracy_score(y_true, y_pred) if len(y_true) else np.nan,
        "f1": np.nan,
        "specificity": np.nan,
        "support": int(n.sum()),
    }
    return pd.concat([rows, pd.DataFrame([macro, acc])], ignore_index=True)


def auc_by_class(y_true: np.ndarray, scores: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """One-vs-rest ROC AUC of each class from ``scores`` (images × classes, e.g. the mean
    patch probabilities), and their mean over the classes that have both positives and
    negatives (``"macro"``). A class without positives or without negatives has no AUC
    (NaN). With two classes present, each class's AUC is the binary AUC of its score."""
    out: dict[str, float] = {}
    for k, name in enumerate(names):
        positive = y_true == k
        if positive.all() or not positive.any():
            out[name] = float("nan")
            continue
        out[name] = float(roc_auc_score(positive, scores[:, k]))
    finite = [v for v in out.values() if np.isfinite(v)]
    out["macro"] = float(np.mean(finite)) if finite else float("nan")
    return out


def accuracy_and_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Accuracy and macro-F1 over the classes present in ``y_true`` (as
    :func:`per_class_table`, without its other cells: fast enough for bootstraps of many
    strata)."""
    if not len(y_true):
        return float("nan"), float("nan")
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    true = np.bincount(y_true, minlength=n_classes)
    pred = np.bincount(y_pred, minlength=n_classes)
    present = true > 0
    f1 = 2 * tp[present] / (true[present] + pred[present])
    return float(np.mean(y_true == y_pred)), float(np.mean(f1))


def balanced_accuracy_and_macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[float, float, float]:
    """Accuracy, balanced accuracy (mean recall over the classes present) and macro-F1 over
    the classes present (:func:`accuracy_and_macro_f1`)."""
    if not len(y_true):
        return float("nan"), float("nan"), float("nan")
    true = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = true > 0
    acc, f1 = accuracy_and_macro_f1(y_true, y_pred, n_classes)
    return acc, float(np.mean(hits[present] / true[present])), f1


def group_columns(names: Sequence[str]) -> list[str]:
    """Columns of :func:`group_figures` for the classes ``names``."""
    return [
        *("n", "n_patients", "classes", "no_skill_accuracy"),
        *("accuracy", *interval_columns("accuracy")),
        *("balanced_accuracy", *interval_columns("balanced_accuracy")),
        *("macro_f1", *interval_columns("macro_f1")),
        *(f"recall_{c}" for c in names),
        "note",
    ]


def group_figures(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    patients: np.ndarray,
    names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    min_patients: int,
) -> dict[str, object]:
    """The figures of one group of test films (a stratum's group, a held-out source),
    comparable across groups whose class mixes differ (:func:`group_columns`):

    * ``no_skill_accuracy``: the share of the group's commonest class, what answering that
      class for every film would score (a one-class group: 1 for the right constant);
    * accuracy and balanced accuracy (chance: one over the classes present), each with a
      95 % interval resampling the group's patients;
    * macro-F1 only when every class of ``names`` is present (on fewer classes it is a
      different scale: 2·acc/(1+acc) on one class), else NaN with the reason;
    * ``recall_<class>``: each present class's recall (NaN when absent).

    Fewer than ``min_patients`` patients: the counts and NaN, with the reason."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    patients = np.asarray(patients).astype(str)
    n_classes = len(names)
    counts = np.bincount(y_true, minlength=n_classes)
    n_patients = len(np.unique(patients))
    row: dict[str, object] = {
        "n": len(y_true),
        "n_patients": n_patients,
        "classes": ",".join(names[int(c)] for c in np.flatnonzero(counts)),
        "no_skill_accuracy": float(counts.max() / counts.sum()) if counts.sum() else float("nan"),
        "note": "",
    }
    if n_patients < min_patients:
        return row | {"note": f"{n_patients} patients < statistics.min_patients ({min_patients}): no figures"}

    def figures(idx: np.ndarray) -> tuple[float, float, float]:
        return balanced_accuracy_and_macro_f1(y_true[idx], y_pred[idx], n_classes)

    values = figures(np.arange(len(y_true)))
    lo, hi = bootstrap_interval(figures, len(y_true), patients, n_boot=n_boot, seed=seed, width=3)
    row |= with_intervals(("accuracy", "balanced_accuracy", "macro_f1"), values, lo, hi)
    if (counts > 0).sum() < n_classes:
        row |= dict.fromkeys(("macro_f1", *interval_columns("macro_f1")), float("nan"))
        row["note"] = f"macro-F1 only over all {n_classes} classes: {int((counts > 0).sum())} present"
    for c, name in enumerate(names):
        row[f"recall_{name}"] = float(np.mean(y_pred[y_true == c] == c)) if counts[c] else float("nan")
    return row


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    names: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """95 % percentile intervals of every cell of :func:`per_class_table`, resampling the
    unit that was split: ``groups`` (patient ids; the split is by patient, and the images
    of one patient are not independent) with all their images, or images when ``None``.
    A class absent from a resample contributes NaN to that resample, not 0."""
    draws = [
        per_class_table(y_true[idx], y_pred[idx], names).set_index("class")
        for idx in bootstrap_resamples(len(y_true), groups, n_boot=n_boot, seed=seed)
    ]
    stack = np.stack([d[["precision", "recall", "f1", "specificity"]].to_numpy(float) for d in draws])
    # cells that are NaN by construction (precision of the accuracy row) stay NaN
    lo, hi = percentile_interval(stack)
    index = draws[0].index
    out = []
    for i, cls in enumerate(index):
        for j, metric in enumerate(("precision", "recall", "f1", "specificity")):
            out.append({"class": cls, "metric": metric, "ci_low": lo[i, j], "ci_high": hi[i, j]})
    return pd.DataFrame(out)


#: the columns of :func:`metrics_long` (one row per class and metric)
LONG_COLUMNS = ["class", "metric", "value", "ci_low", "ci_high", "support", "note"]


def metrics_long(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    names: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    scores: np.ndarray | None = None,
    min_patients: int = 1,
) -> pd.DataFrame:
    """Every metric as ``class, metric, value, ci_low, ci_high, support, note`` (long
    format, TSV-ready), intervals by :func:`bootstrap_intervals` over ``groups``; no rows
    when there are no images (an empty subset). With ``scores`` (images × classes) also the
    ``auc`` of each class and their macro mean (:func:`auc_long`: none below
    ``min_patients``), its interval from the same patient resampling."""
    if len(y_true) == 0:
        return pd.DataFrame(columns=LONG_COLUMNS)
    table = per_class_table(y_true, y_pred, names)
    long = table.melt(id_vars=["class", "support"], var_name="metric", value_name="value").dropna(subset=["value"])
    ci = bootstrap_intervals(y_true, y_pred, names, groups=groups, n_boot=n_boot, seed=seed)
    out = long.merge(ci, on=["class", "metric"], how="left").assign(note="")[LONG_COLUMNS]
    if scores is None:
        return out
    auc = auc_long(y_true, scores, names, groups=groups, n_boot=n_boot, seed=seed, min_patients=min_patients)
    return pd.concat([out, auc], ignore_index=True)


def auc_long(
    y_true: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    min_patients: int = 1,
) -> pd.DataFrame:
    """:func:`auc_by_class` as ``metrics_long`` rows (metric ``auc``) with 95 % percentile
    intervals from a bootstrap over ``groups`` (patients; images when ``None``). A
    resample in which a class lacks positives or negatives gives that class NaN, left out
    of its percentiles. A class present in the films whose positives or negatives come from
    fewer than ``min_patients`` patients gets NaN with the reason, and so does the macro
    AUC (a mean over fewer classes is another figure)."""
    groups_ = np.asarray(groups).astype(str) if groups is not None else np.arange(len(y_true)).astype(str)
    value = auc_by_class(y_true, scores, names)
    draws = [
        auc_by_class(y_true[idx], scores[idx], names)
        for idx in bootstrap_resamples(len(y_true), groups, n_boot=n_boot, seed=seed)
    ]
    support = {name: int((y_true == k).sum()) for k, name in enumerate(names)} | {"macro": len(y_true)}
    short: dict[str, str] = {}
    for k, name in enumerate(names):
        positive = y_true == k
        n_pos, n_neg = len(np.unique(groups_[positive])), len(np.unique(groups_[~positive]))
        if positive.any() and min(n_pos, n_neg) < min_patients:
            short[name] = (
                f"{n_pos} positive and {n_neg} negative patients: fewer than statistics.min_patients ({min_patients})"
            )
    if short:
        short["macro"] = f"no AUC for {', '.join(short)}: no macro AUC"
    rows = []
    for name, v in value.items():
        if not np.isfinite(v) and name not in short:
            continue
        lo, hi = percentile_interval([b[name] for b in draws])
        figures = (float("nan"),) * 3 if name in short else (v, float(lo), float(hi))
        rows.append(
            {"class": name, "metric": "auc", "support": support[name], "note": short.get(name, "")}
            | dict(zip(("value", "ci_low", "ci_high"), figures, strict=True))
        )
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def confusion_long(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Confusion matrix as ``true, predicted, count, row_fraction``."""
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(names))))
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    return pd.DataFrame(
        [
            {"true": names[i], "predicted": names[j], "count": int(cm[i, j]), "row_fraction": frac[i, j]}
            for i in range(len(names))
            for j in range(len(names))
        ]
    )

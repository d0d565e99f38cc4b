"""Classification metrics (method.md §5.5, §8): confusion matrices, per-class precision,
recall (sensitivity), F1 and specificity, accuracy and macro averages, bootstrap 95 %
intervals, a per-source breakdown and the global-versus-local comparison.

scikit-learn computes the metrics; specificity, which it lacks, is ``TN / (TN + FP)`` per
class from its confusion matrix (one-vs-rest).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def per_class_table(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, names: Sequence[str]
) -> pd.DataFrame:
    """Precision, recall, F1, specificity and support per class, then the macro averages
    and accuracy."""
    labels = list(range(len(names)))
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    total = cm.sum()
    spec = []
    for k in labels:
        tn = total - cm[k, :].sum() - cm[:, k].sum() + cm[k, k]
        fp = cm[:, k].sum() - cm[k, k]
        spec.append(tn / (tn + fp) if tn + fp else np.nan)
    rows = pd.DataFrame({"class": list(names), "precision": p, "recall": r, "f1": f, "specificity": spec, "support": n})
    macro = {
        "class": "macro",
        "precision": p.mean(),
        "recall": r.mean(),
        "f1": f.mean(),
        "specificity": float(np.nanmean(spec)),
        "support": int(n.sum()),
    }
    acc = {
        "class": "accuracy",
        "precision": np.nan,
        "recall": accuracy_score(y_true, y_pred),
        "f1": np.nan,
        "specificity": np.nan,
        "support": int(n.sum()),
    }
    return pd.concat([rows, pd.DataFrame([macro, acc])], ignore_index=True)


def bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str], n_boot: int = 1000, *, seed: int = 0
) -> pd.DataFrame:
    """95 % percentile intervals of every cell of :func:`per_class_table` over images
    resampled with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), len(y_true))
        draws.append(per_class_table(y_true[idx], y_pred[idx], names).set_index("class"))
    stack = np.stack([d[["precision", "recall", "f1", "specificity"]].to_numpy(float) for d in draws])
    with warnings.catch_warnings():
        # cells that are NaN by construction (precision of the accuracy row) stay NaN
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        lo, hi = np.nanpercentile(stack, 2.5, axis=0), np.nanpercentile(stack, 97.5, axis=0)
    index = draws[0].index
    out = []
    for i, cls in enumerate(index):
        for j, metric in enumerate(("precision", "recall", "f1", "specificity")):
            out.append({"class": cls, "metric": metric, "ci_low": lo[i, j], "ci_high": hi[i, j]})
    return pd.DataFrame(out)


def metrics_long(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str], n_boot: int = 1000, *, seed: int = 0
) -> pd.DataFrame:
    """Every metric as ``class, metric, value, ci_low, ci_high`` (long format, TSV-ready)."""
    table = per_class_table(y_true, y_pred, names)
    long = table.melt(id_vars=["class", "support"], var_name="metric", value_name="value").dropna(subset=["value"])
    ci = bootstrap_intervals(y_true, y_pred, names, n_boot, seed=seed)
    return long.merge(ci, on=["class", "metric"], how="left")[
        ["class", "metric", "value", "ci_low", "ci_high", "support"]
    ]


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


def per_source(predictions: pd.DataFrame, names: Sequence[str], vote: str = "hard") -> pd.DataFrame:
    """Accuracy and macro-F1 per source (sources are almost collinear with classes in the
    paper's data: a per-source view exposes it)."""
    out = []
    for source, part in predictions.groupby("source"):
        y, p = part["true_index"].to_numpy(), part[f"pred_{vote}_index"].to_numpy()
        t = per_class_table(y, p, names).set_index("class")
        out.append(
            {
                "source": source,
                "n": len(part),
                "accuracy": t.loc["accuracy", "recall"],
                "macro_f1": t.loc["macro", "f1"],
                "classes": ",".join(sorted(part["true"].unique())),
            }
        )
    return pd.DataFrame(out)


def compare_models(metrics: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The global-versus-local table: macro and accuracy rows of each model side by side."""
    rows = []
    for model, m in metrics.items():
        for r in m[m["class"].isin(["macro", "accuracy"]) | m["metric"].eq("recall")].itertuples():
            rows.append(
                {
                    "model": model,
                    "class": r[1],
                    "metric": r.metric,
                    "value": r.value,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                }
            )
    return pd.DataFrame(rows).pivot_table(index=["class", "metric"], columns="model", values="value").reset_index()

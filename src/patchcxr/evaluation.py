"""Classification metrics (method.md §5.5, §8): confusion matrices, per-class precision,
recall (sensitivity), F1 and specificity, accuracy and macro averages, one-vs-rest ROC
AUC from the mean patch probabilities, bootstrap 95 % intervals over patients (the unit
of the split), a per-source breakdown and the global-versus-local comparison with paired
tests.

scikit-learn computes the metrics; specificity, which it lacks, is ``TN / (TN + FP)`` per
class from its confusion matrix (one-vs-rest).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score


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


def group_members(groups: np.ndarray) -> list[np.ndarray]:
    """The image indices of each group (patient), computed once per bootstrap."""
    _, inverse = np.unique(groups, return_inverse=True)
    return [np.flatnonzero(inverse == g) for g in range(int(inverse.max()) + 1)] if len(groups) else []


def resample_groups(members: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Indices of one cluster bootstrap resample: as many groups (patients) as there are,
    drawn with replacement, each with all its images (``members``: :func:`group_members`)."""
    picks = rng.integers(0, len(members), len(members))
    return np.concatenate([members[g] for g in picks])


def bootstrap_resamples(n: int, groups: np.ndarray | None, *, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Indices of ``n_boot`` bootstrap resamples of ``n`` images: whole groups (patients)
    with all their images (:func:`resample_groups`), or images when ``groups`` is None.
    The same seed gives the same resamples, whatever statistic is computed on them."""
    rng = np.random.default_rng(seed)
    members = group_members(groups) if groups is not None else None
    for _ in range(n_boot):
        yield resample_groups(members, rng) if members is not None else rng.integers(0, n, n)


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


#: the columns of :func:`metrics_long` (one row per class and metric)
LONG_COLUMNS = ["class", "metric", "value", "ci_low", "ci_high", "support"]


def metrics_long(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    names: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every metric as ``class, metric, value, ci_low, ci_high, support`` (long format,
    TSV-ready), intervals by :func:`bootstrap_intervals` over ``groups``; no rows when
    there are no images (an empty subset). With ``scores`` (images × classes) also the
    ``auc`` of each class and their macro mean (:func:`auc_by_class`), its interval from
    the same patient resampling."""
    if len(y_true) == 0:
        return pd.DataFrame(columns=LONG_COLUMNS)
    table = per_class_table(y_true, y_pred, names)
    long = table.melt(id_vars=["class", "support"], var_name="metric", value_name="value").dropna(subset=["value"])
    ci = bootstrap_intervals(y_true, y_pred, names, groups=groups, n_boot=n_boot, seed=seed)
    out = long.merge(ci, on=["class", "metric"], how="left")[LONG_COLUMNS]
    if scores is None:
        return out
    return pd.concat([out, auc_long(y_true, scores, names, groups=groups, n_boot=n_boot, seed=seed)], ignore_index=True)


def auc_long(
    y_true: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`auc_by_class` as ``metrics_long`` rows (metric ``auc``) with 95 % percentile
    intervals from a bootstrap over ``groups`` (patients; images when ``None``). A
    resample in which a class lacks positives or negatives gives that class NaN, left out
    of its percentiles."""
    value = auc_by_class(y_true, scores, names)
    draws = [
        auc_by_class(y_true[idx], scores[idx], names)
        for idx in bootstrap_resamples(len(y_true), groups, n_boot=n_boot, seed=seed)
    ]
    support = {name: int((y_true == k).sum()) for k, name in enumerate(names)} | {"macro": len(y_true)}
    rows = []
    for name, v in value.items():
        if not np.isfinite(v):
            continue
        d = np.array([b[name] for b in draws], dtype=float)
        d = d[np.isfinite(d)]
        lo, hi = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))) if len(d) else (np.nan, np.nan)
        rows.append({"class": name, "metric": "auc", "value": v, "ci_low": lo, "ci_high": hi, "support": support[name]})
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


def per_source(predictions: pd.DataFrame, names: Sequence[str], vote: str = "hard") -> pd.DataFrame:
    """Accuracy and macro-F1 per source (sources are almost collinear with classes in the
    paper's data: a per-source view exposes it). The macro-F1 averages over the classes
    the source holds (:func:`per_class_table`)."""
    return per_group(predictions, names, "source", vote)


def per_group(predictions: pd.DataFrame, names: Sequence[str], column: str, vote: str = "hard") -> pd.DataFrame:
    """Accuracy and macro-F1 (over the classes present) of the predictions grouped by
    ``column`` (``source``, ``mask_source``, …), with the group's size."""
    out = []
    for group, part in predictions.groupby(column):
        y, p = part["true_index"].to_numpy(), part[f"pred_{vote}_index"].to_numpy()
        t = per_class_table(y, p, names).set_index("class")
        out.append(
            {
                column: group,
                "n": len(part),
                "accuracy": t.loc["accuracy", "recall"],
                "macro_f1": t.loc["macro", "f1"],
                "classes": ",".join(sorted(part["true"].unique())),
            }
        )
    return pd.DataFrame(out)


def compare_models(metrics: dict[str, pd.DataFrame], paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """The global-versus-local table: macro and accuracy rows of each model side by side;
    with ``paired`` (:func:`paired_comparison`), its difference, interval, p-value and test
    on the accuracy and macro-F1 rows."""
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
    table = pd.DataFrame(rows).pivot_table(index=["class", "metric"], columns="model", values="value").reset_index()
    table.columns.name = None
    if paired is None:
        return table
    where = {"accuracy difference": ("accuracy", "recall"), "macro-F1 difference": ("macro", "f1")}
    extra = paired.assign(
        **{
            "class": paired["statistic"].map(lambda s: where[s][0]),
            "metric": paired["statistic"].map(lambda s: where[s][1]),
        }
    ).rename(columns={"value": "difference", "comparison": "difference_of"})
    keep = ["class", "metric", "difference_of", "difference", "ci_low", "ci_high", "p_value", "test"]
    return table.merge(extra[keep], on=["class", "metric"], how="left")


PAIRED_COLUMNS = ["comparison", "statistic", "value", "ci_low", "ci_high", "p_value", "n_images", "n_patients", "test"]


def paired_comparison(
    a: pd.DataFrame,
    b: pd.DataFrame,
    names: Sequence[str],
    *,
    labels: tuple[str, str] = ("a", "b"),
    vote: str = "hard",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Model ``a`` against model ``b`` on the same test images (predictions tables with
    ``image_id``, ``patient_id``, ``true_index``, ``pred_<vote>_index``):

    * accuracy difference with the exact McNemar test on the discordant images (``b01``:
      only ``a`` right, ``b10``: only ``b`` right; two-sided binomial test, p = 0.5);
    * macro-F1 difference ``a − b`` with a 95 % interval and a two-sided p-value from a
      paired bootstrap that resamples patients (both models see the same resample).

    McNemar treats images as independent; the patient bootstrap does not.
    """
    from scipy.stats import binomtest

    m = a.merge(b, on="image_id", suffixes=("_a", "_b"))
    if len(m) != len(a) or len(m) != len(b):
        raise ValueError("the two models were not evaluated on the same images")
    y = m["true_index_a"].to_numpy(int)
    pa, pb = m[f"pred_{vote}_index_a"].to_numpy(int), m[f"pred_{vote}_index_b"].to_numpy(int)
    groups = m["patient_id_a"].to_numpy()
    right_a, right_b = pa == y, pb == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p_mcnemar = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0

    def macro_f1(idx: np.ndarray, pred: np.ndarray) -> float:
        t = per_class_table(y[idx], pred[idx], names).set_index("class")
        return float(t.loc["macro", "f1"])

    everything = np.arange(len(y))
    diff = macro_f1(everything, pa) - macro_f1(everything, pb)
    d = np.array(
        [macro_f1(idx, pa) - macro_f1(idx, pb) for idx in bootstrap_resamples(len(y), groups, n_boot=n_boot, seed=seed)]
    )
    p_boot = float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean())))
    n_img, n_pat = len(y), len(np.unique(groups))
    return pd.DataFrame(
        [
            {
                "comparison": f"{labels[0]} - {labels[1]}",
                "statistic": "accuracy difference",
                "value": float(right_a.mean() - right_b.mean()),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "p_value": float(p_mcnemar),
                "n_images": n_img,
                "n_patients": n_pat,
                "test": f"exact McNemar (only {labels[0]} right {only_a}, only {labels[1]} right {only_b})",
            },
            {
                "comparison": f"{labels[0]} - {labels[1]}",
                "statistic": "macro-F1 difference",
                "value": diff,
                "ci_low": float(np.percentile(d, 2.5)),
                "ci_high": float(np.percentile(d, 97.5)),
                "p_value": p_boot,
                "n_images": n_img,
                "n_patients": n_pat,
                "test": f"paired bootstrap over patients ({n_boot} resamples)",
            },
        ],
        columns=PAIRED_COLUMNS,
    )


SEED_COLUMNS = ["model", "class", "metric", "mean", "sd", "min", "max", "n_seeds", "seeds", "values", "support"]


def over_seeds(metrics: Mapping[str, Mapping[int, pd.DataFrame]]) -> pd.DataFrame:
    """Each metric of each model over its training seeds (``metrics``: model → seed →
    :func:`metrics_long` table): mean, sd (NaN with one seed), range, the number of seeds
    and each seed's value, for every class and metric the seeds report. The spread is
    between training runs on one split; the patient intervals of each run are in its
    own table."""
    rows = []
    for model, by_seed in metrics.items():
        seeds = sorted(by_seed)
        long = pd.concat([by_seed[s].assign(seed=s) for s in seeds], ignore_index=True)
        for (cls, metric), part in long.groupby(["class", "metric"], sort=False):
            values = part.set_index("seed")["value"].reindex(seeds).to_numpy(float)
            kept = values[np.isfinite(values)]
            rows.append(
                {
                    "model": model,
                    "class": cls,
                    "metric": metric,
                    "mean": float(kept.mean()) if len(kept) else np.nan,
                    "sd": float(kept.std(ddof=1)) if len(kept) > 1 else np.nan,
                    "min": float(kept.min()) if len(kept) else np.nan,
                    "max": float(kept.max()) if len(kept) else np.nan,
                    "n_seeds": len(kept),
                    "seeds": ",".join(str(s) for s in seeds),
                    "values": ",".join(f"{v:.4f}" for v in values),
                    "support": int(part["support"].iloc[0]),
                }
            )
    return pd.DataFrame(rows, columns=SEED_COLUMNS)

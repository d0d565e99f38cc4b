"""Classification metrics (method.md §5.5, §8): confusion matrices, per-class precision,
recall (sensitivity), F1 and specificity, accuracy and macro averages, one-vs-rest ROC
AUC from the mean patch probabilities, bootstrap 95 % intervals over patients (the unit
of the split), a per-source breakdown and the global-versus-local comparison with paired
tests.

scikit-learn computes the metrics; specificity, which it lacks, is ``TN / (TN + FP)`` per
class from its confusion matrix (one-vs-rest).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

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


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float | Sequence[float]],
    n: int,
    groups: np.ndarray,
    *,
    n_boot: int,
    seed: int,
    width: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """95 % percentile interval (low, high), each of ``width`` values, of
    ``statistic(indices)`` over ``n_boot`` resamples of ``n`` images by ``groups``
    (patients, :func:`bootstrap_resamples`). Resamples whose statistic is NaN are left out;
    no image gives NaN (there is nothing to resample)."""
    if not n or not n_boot:
        return np.full(width, np.nan), np.full(width, np.nan)
    draws = np.array([statistic(i) for i in bootstrap_resamples(n, groups, n_boot=n_boot, seed=seed)], float)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        lo, hi = np.nanpercentile(draws.reshape(n_boot, width), [2.5, 97.5], axis=0)
    return lo, hi


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


#: the strata of :func:`strata_table`: columns of the predictions (``source``,
#: ``mask_source``, ``age_group``) and of the manifest (``view``, ``sex``), and ``age_band``
STRATA = ("source", "view", "age_group", "age_band", "sex", "mask_source")
#: the adult age bands (years; lower bounds after the first) of the ``age_band`` stratum
ADULT_AGE_BANDS = (40, 60)
#: the value of a stratum a film does not record (no view, sex or age in its source)
UNKNOWN = "unknown"
STRATA_COLUMNS = [
    *("stratum", "group", "n", "n_patients", "classes"),
    *("accuracy", "accuracy_lo", "accuracy_hi", "macro_f1", "macro_f1_lo", "macro_f1_hi"),
]


def age_band(age: object, paediatric: object) -> str:
    """``paediatric`` for a film flagged so (its age or its source), else the adult band of
    its age (:data:`ADULT_AGE_BANDS`), else ``adult, age unknown``."""
    if str(paediatric) == "1":
        return "paediatric"
    try:
        years = float(str(age))
    except ValueError:
        return f"adult, age {UNKNOWN}"
    if not np.isfinite(years):
        return f"adult, age {UNKNOWN}"
    low, high = ADULT_AGE_BANDS
    return f"adult <{low}" if years < low else f"adult {low}-{high - 1}" if years < high else f"adult {high}+"


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


def _accuracy_and_macro_f1_at(y: np.ndarray, p: np.ndarray, n_classes: int, idx: np.ndarray) -> tuple[float, float]:
    return accuracy_and_macro_f1(y[idx], p[idx], n_classes)


def _mean_at(values: np.ndarray, idx: np.ndarray) -> float:
    return float(np.mean(values[idx]))


def strata_table(
    predictions: pd.DataFrame,
    manifest: pd.DataFrame,
    names: Sequence[str],
    *,
    vote: str = "hard",
    n_boot: int,
    seed: int,
    min_patients: int,
) -> pd.DataFrame:
    """Accuracy and macro-F1 (over the classes present) of the test predictions in each
    group of each stratum (:data:`STRATA`), with n, the patients and 95 % intervals from a
    bootstrap over the group's patients. A group of fewer than ``min_patients`` patients
    gets its n and NaN for every figure: too few to say anything. Films whose source does
    not record a view, sex or age fall in the group ``unknown``."""
    extra = manifest.set_index("image_id")[["view", "sex", "age", "paediatric"]]
    df = predictions.join(extra, on="image_id")
    df["age_band"] = [age_band(a, c) for a, c in zip(df["age"], df["paediatric"], strict=True)]
    for column in ("view", "sex"):
        df[column] = df[column].astype(str).str.strip().replace({"": UNKNOWN, "nan": UNKNOWN, "<NA>": UNKNOWN})
    rows = []
    for stratum in STRATA:
        for group, part in df.groupby(stratum, sort=True):
            y, p = part["true_index"].to_numpy(int), part[f"pred_{vote}_index"].to_numpy(int)
            patients = part["patient_id"].astype(str).to_numpy()
            n_patients = len(np.unique(patients))
            row: dict[str, object] = {
                "stratum": stratum,
                "group": str(group),
                "n": len(part),
                "n_patients": n_patients,
                "classes": ",".join(sorted(part["true"].astype(str).unique())),
            }
            figures = dict.fromkeys(STRATA_COLUMNS[5:], float("nan"))
            if n_patients >= min_patients:
                acc, f1 = accuracy_and_macro_f1(y, p, len(names))
                lo, hi = bootstrap_interval(
                    functools.partial(_accuracy_and_macro_f1_at, y, p, len(names)),
                    len(y),
                    patients,
                    n_boot=n_boot,
                    seed=seed,
                    width=2,
                )
                figures = {
                    "accuracy": acc,
                    "accuracy_lo": float(lo[0]),
                    "accuracy_hi": float(hi[0]),
                    "macro_f1": f1,
                    "macro_f1_lo": float(lo[1]),
                    "macro_f1_hi": float(hi[1]),
                }
            rows.append(row | figures)
    return pd.DataFrame(rows, columns=STRATA_COLUMNS)


#: columns of the leave-one-source-out summary (:func:`external_table`)
EXTERNAL_COLUMNS = [
    *("source", "model", "scheme", "n", "n_patients"),
    *("accuracy", "accuracy_lo", "accuracy_hi", "macro_f1", "macro_f1_lo", "macro_f1_hi", "note"),
]
_FIGURES = ("n", "n_patients", "accuracy", "accuracy_lo", "accuracy_hi", "macro_f1", "macro_f1_lo", "macro_f1_hi")


def external_table(
    plan: pd.DataFrame,
    external: Mapping[tuple[str, str], pd.DataFrame],
    internal: Mapping[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]],
) -> pd.DataFrame:
    """Leave-one-source-out validation beside the internal test split.

    For each source of the ``plan`` and each model: ``external``, the model trained
    without the source and tested on all of it (its ``strata.tsv`` row of that source), and
    ``internal``, the workflow's classifier on the source's films of the internal test
    split (its strata row; none when the source sent no film to the test split); a
    source not held out gets one row saying why. Last, each model's internal test split as
    a whole (``all sources``, from its ``metrics.tsv``; its patients counted from the
    predictions, since one patient's films may come from two sources, as Montgomery's
    full-size and 512² renditions do). ``external`` maps (source, model) to strata tables,
    ``internal`` maps model to (metrics, strata, predictions) of the internal run.
    """

    def source_row(strata: pd.DataFrame, source: str) -> dict[str, object]:
        hit = strata[(strata["stratum"] == "source") & (strata["group"].astype(str) == source)]
        return {k: hit.iloc[0][k] for k in _FIGURES} if len(hit) else {"n": 0, "n_patients": 0}

    rows: list[dict[str, object]] = []
    models = list(internal)
    for r in plan.itertuples():
        source = str(r.source)
        if str(r.held_out) != "1":
            rows.append({"source": source, "model": "", "scheme": "external", "note": f"not held out: {r.reason}"})
            continue
        for model in models:
            if (source, model) in external:
                rows.append(
                    {"source": source, "model": model, "scheme": "external"}
                    | source_row(external[(source, model)], source)
                )
            inner = source_row(internal[model][1], source)
            note = "" if inner["n"] else "no film of the source in the internal test split"
            rows.append({"source": source, "model": model, "scheme": "internal", "note": note} | inner)
    for model, (metrics, _, predictions) in internal.items():
        get = metrics.set_index(["class", "metric"])
        acc, f1 = get.loc[("accuracy", "recall")], get.loc[("macro", "f1")]
        rows.append(
            {
                "source": "all sources",
                "model": model,
                "scheme": "internal",
                "n": int(acc["support"]),
                "n_patients": int(predictions["patient_id"].nunique()),
                "accuracy": acc["value"],
                "accuracy_lo": acc["ci_low"],
                "accuracy_hi": acc["ci_high"],
                "macro_f1": f1["value"],
                "macro_f1_lo": f1["ci_low"],
                "macro_f1_hi": f1["ci_high"],
            }
        )
    return pd.DataFrame(rows, columns=EXTERNAL_COLUMNS)


SANITY_COLUMNS = ["check", "n", "n_patients", "value", "ci_low", "ci_high"]


def saliency_sanity(
    randomisation: pd.DataFrame, saliency: pd.DataFrame, patients: Mapping[str, str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """The saliency checks with 95 % intervals from a bootstrap over patients: mean
    Spearman correlation of the trained map with each randomised one (randomisation test;
    ``randomised <layers>``), the pointing game's hit rate where lesion boxes are known, and
    the mean share of the map's mass inside the lung, and the share of randomised maps
    left empty (counted as correlation 0). ``patients``: image → patient."""
    checks: list[tuple[str, pd.DataFrame, str]] = []
    for layers, part in randomisation.groupby("randomised", sort=False):
        checks += [(f"spearman, randomised {layers}", part, "spearman")]
        # a randomised Grad-CAM the ReLU emptied counts as rank correlation 0: say how often
        checks += [(f"empty maps, randomised {layers}", part, "empty")]
    hits = saliency[saliency["pointing_hit"].astype(str).isin(["0", "1"])]
    checks += [("pointing game hit rate", hits.assign(hit=hits["pointing_hit"].astype(float)), "hit")]
    checks += [("lung mass", saliency.assign(mass=pd.to_numeric(saliency["lung_mass"], errors="coerce")), "mass")]
    rows = []
    for name, part, column in checks:
        values = part[column].to_numpy(float)
        keep = np.isfinite(values)
        values, ids = values[keep], part["image_id"].astype(str).to_numpy()[keep]
        groups = np.array([patients.get(i, i) for i in ids])
        lo, hi = bootstrap_interval(
            functools.partial(_mean_at, values),
            len(values),
            groups,
            n_boot=n_boot,
            seed=seed,
        )
        rows.append(
            {
                "check": name,
                "n": len(values),
                "n_patients": len(np.unique(groups)),
                "value": float(np.mean(values)) if len(values) else float("nan"),
                "ci_low": float(lo[0]),
                "ci_high": float(hi[0]),
            }
        )
    return pd.DataFrame(rows, columns=SANITY_COLUMNS)


#: columns of the calibration table (:func:`calibration_tables`)
CALIBRATION_COLUMNS = [
    *("calibration", "temperature", "n", "n_patients", "ece", "ece_lo", "ece_hi", "nll", "brier", "accuracy"),
]
#: columns of the reliability table: one row per confidence bin and calibration
RELIABILITY_COLUMNS = ["calibration", "bin", "lower", "upper", "n", "confidence", "accuracy"]
_EPS = 1e-12


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Film probabilities (rows summing to 1: the K-patch soft vote) rescaled by a
    temperature: ``softmax(log p / T)``. T > 1 softens, T < 1 sharpens; the order of the
    classes in each row, and so the soft-vote class, does not change."""
    z = np.log(np.clip(probs, _EPS, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature (in [0.05, 20]) that minimises the negative log-likelihood of the
    true classes under :func:`temper` (Guo et al., ICML 2017, applied to the soft vote's
    film probabilities): fitted on validation films, applied to the test films."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        return negative_log_likelihood(temper(probs, float(np.exp(log_t))), y_true)

    if not len(y_true):
        return 1.0
    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def _confidence_bins(probs: np.ndarray, y_true: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each film's confidence (the soft-vote class's probability), whether that class is
    right, and its equal-width confidence bin."""
    conf = probs.max(axis=1)
    return conf, probs.argmax(axis=1) == y_true, np.minimum((conf * bins).astype(int), bins - 1)


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (NaN without films)."""
    if not len(y_true):
        return float("nan")
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], _EPS, 1.0))))


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int) -> float:
    """ECE: the film-weighted mean gap between confidence (the soft-vote class's
    probability) and accuracy over ``bins`` equal-width confidence bins."""
    if not len(y_true):
        return float("nan")
    conf, right, which = _confidence_bins(probs, y_true, bins)
    gaps = [abs(conf[which == b].mean() - right[which == b].mean()) * (which == b).sum() for b in np.unique(which)]
    return float(np.sum(gaps) / len(y_true))


def _ece_at(probs: np.ndarray, y_true: np.ndarray, bins: int, idx: np.ndarray) -> float:
    return expected_calibration_error(probs[idx], y_true[idx], bins)


def reliability_rows(probs: np.ndarray, y_true: np.ndarray, bins: int) -> list[dict[str, float]]:
    """The reliability diagram's points: per confidence bin, its films, mean confidence and
    accuracy (NaN for an empty bin)."""
    conf, right, which = _confidence_bins(probs, y_true, bins)
    rows = []
    for b in range(bins):
        inside = which == b
        rows.append(
            {
                "bin": b,
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "n": int(inside.sum()),
                "confidence": float(conf[inside].mean()) if inside.any() else float("nan"),
                "accuracy": float(right[inside].mean()) if inside.any() else float("nan"),
            }
        )
    return rows


def calibration_tables(
    validation: pd.DataFrame, test: pd.DataFrame, names: Sequence[str], *, bins: int, n_boot: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibration of the soft vote's film probabilities (``prob_<class>`` columns) on the
    test films, as they come and after temperature scaling fitted on the validation films:
    ECE with a 95 % interval from a bootstrap over patients, negative log-likelihood, Brier
    score and soft-vote accuracy (unchanged by the temperature); and the reliability
    diagram's bins. Returns (summary, reliability)."""
    columns = [f"prob_{n}" for n in names]
    temperature = fit_temperature(validation[columns].to_numpy(float), validation["true_index"].to_numpy(int))
    y = test["true_index"].to_numpy(int)
    groups = test["patient_id"].astype(str).to_numpy()
    summary, reliability = [], []
    for label, t in (("uncalibrated", 1.0), ("temperature", temperature)):
        probs = temper(test[columns].to_numpy(float), t) if t != 1.0 else test[columns].to_numpy(float)
        lo, hi = bootstrap_interval(
            functools.partial(_ece_at, probs, y, bins), len(y), groups, n_boot=n_boot, seed=seed
        )
        onehot = np.eye(len(names))[y] if len(y) else np.zeros((0, len(names)))
        summary.append(
            {
                "calibration": label,
                "temperature": t,
                "n": len(y),
                "n_patients": len(np.unique(groups)),
                "ece": expected_calibration_error(probs, y, bins),
                "ece_lo": float(lo[0]),
                "ece_hi": float(hi[0]),
                "nll": negative_log_likelihood(probs, y),
                "brier": float(np.mean(((probs - onehot) ** 2).sum(axis=1))) if len(y) else np.nan,
                "accuracy": float(np.mean(probs.argmax(axis=1) == y)) if len(y) else np.nan,
            }
        )
        reliability += [{"calibration": label, **r} for r in reliability_rows(probs, y, bins)]
    return pd.DataFrame(summary, columns=CALIBRATION_COLUMNS), pd.DataFrame(reliability, columns=RELIABILITY_COLUMNS)


def compare_models(metrics: dict[str, pd.DataFrame], paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """The global-versus-local table: macro and accuracy rows of each model side by side;
    with ``paired`` (:func:`paired_comparison`), its difference, interval, p-value (and
    Holm's over the three) and test on the accuracy, macro-F1 and macro AUC rows."""
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
    where = {
        "accuracy difference": ("accuracy", "recall"),
        "macro-F1 difference": ("macro", "f1"),
        "macro AUC difference": ("macro", "auc"),
    }
    extra = paired.assign(
        **{
            "class": paired["statistic"].map(lambda s: where[s][0]),
            "metric": paired["statistic"].map(lambda s: where[s][1]),
        }
    ).rename(columns={"value": "difference", "comparison": "difference_of"})
    keep = ["class", "metric", "difference_of", "difference", "ci_low", "ci_high", "p_value", "p_holm", "test"]
    return table.merge(extra[keep], on=["class", "metric"], how="left")


PAIRED_COLUMNS = [
    "comparison",
    "statistic",
    "role",
    "value",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "n_images",
    "n_patients",
    "test",
]


def _paired_arrays(a: pd.DataFrame, b: pd.DataFrame, names: Sequence[str], vote: str) -> dict[str, np.ndarray]:
    """Two predictions tables of the same test images, aligned: true class, each model's
    decision, its mean class probabilities, the patient of each image."""
    m = a.merge(b, on="image_id", suffixes=("_a", "_b"))
    if len(m) != len(a) or len(m) != len(b):
        raise ValueError("the two models were not evaluated on the same images")
    if (m["true_index_a"] != m["true_index_b"]).any() or (m["patient_id_a"] != m["patient_id_b"]).any():
        raise ValueError("the two predictions tables disagree on the true class or the patient of an image")
    return {
        "y": m["true_index_a"].to_numpy(int),
        "pa": m[f"pred_{vote}_index_a"].to_numpy(int),
        "pb": m[f"pred_{vote}_index_b"].to_numpy(int),
        "sa": m[[f"prob_{n}_a" for n in names]].to_numpy(float),
        "sb": m[[f"prob_{n}_b" for n in names]].to_numpy(float),
        "groups": m["patient_id_a"].to_numpy(),
        "image_id": m["image_id"].to_numpy(),
    }


def _differences(d: Mapping[str, np.ndarray], names: Sequence[str], idx: np.ndarray) -> tuple[float, float, float]:
    """Accuracy, macro-F1 and macro ROC AUC of model a minus model b on images ``idx``."""
    y = d["y"][idx]

    def macro_f1(pred: np.ndarray) -> float:
        return float(per_class_table(y, pred[idx], names).set_index("class").loc["macro", "f1"])

    acc = float(np.mean(d["pa"][idx] == y) - np.mean(d["pb"][idx] == y))
    f1 = macro_f1(d["pa"]) - macro_f1(d["pb"])
    auc = auc_by_class(y, d["sa"][idx], names)["macro"] - auc_by_class(y, d["sb"][idx], names)["macro"]
    return acc, f1, auc


#: the paired statistics, in :func:`_differences`' order; the macro AUC difference is the
#: primary one (threshold-free, the paper's ROC comparison), the other two are secondary
PAIRED_STATISTICS = ("accuracy difference", "macro-F1 difference", "macro AUC difference")
PRIMARY_STATISTIC = "macro AUC difference"


def _bootstrap_summary(draws: np.ndarray) -> tuple[float, float, float, int]:
    """95 % percentile interval and two-sided p-value of a difference from its bootstrap
    draws (non-finite draws, e.g. a resample holding one class, dropped and counted): p is
    twice the smaller share of draws on either side of 0, with the +1 correction
    ``(1 + #) / (1 + B)`` so that it is never 0 with finitely many resamples."""
    col = draws[np.isfinite(draws)]
    if not len(col):
        return np.nan, np.nan, np.nan, 0
    tail = min(int((col <= 0).sum()), int((col >= 0).sum()))
    p = min(1.0, 2 * (1 + tail) / (1 + len(col)))
    return float(np.percentile(col, 2.5)), float(np.percentile(col, 97.5)), p, len(col)


def _holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of one family of p-values (NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method="holm")[1]
    return out.tolist()


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
    ``image_id``, ``patient_id``, ``true_index``, ``pred_<vote>_index`` and ``prob_<class>``):

    * accuracy difference with the exact McNemar test on the discordant images (``b01``:
      only ``a`` right, ``b10``: only ``b`` right; two-sided binomial test, p = 0.5);
    * macro-F1 difference and macro one-vs-rest ROC AUC difference ``a − b`` (AUC from the
      mean patch probabilities), each with a 95 % interval and a two-sided p-value from a
      paired bootstrap that resamples patients (both models see the same resample).

    The accuracy difference also gets the patient-bootstrap interval. McNemar treats images
    as independent; the patient bootstrap does not (the ``test`` column says so where a
    patient has several images). ``p_holm``: Holm over the three statistics (one family);
    ``role``: the macro AUC difference is the primary statistic.
    """
    from scipy.stats import binomtest

    d = _paired_arrays(a, b, names, vote)
    y, pa, pb = d["y"], d["pa"], d["pb"]
    right_a, right_b = pa == y, pb == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p_mcnemar = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    everything = np.arange(len(y))
    point = _differences(d, names, everything)
    draws = np.array(
        [_differences(d, names, idx) for idx in bootstrap_resamples(len(y), d["groups"], n_boot=n_boot, seed=seed)]
    )
    n_img, n_pat = len(y), len(np.unique(d["groups"]))
    rows = []
    for k, statistic in enumerate(PAIRED_STATISTICS):
        low, high, p_boot, used = _bootstrap_summary(draws[:, k])
        boot = f"paired bootstrap over patients ({used} of {n_boot} resamples usable)"
        if k == 0:
            p = float(p_mcnemar)
            test = f"exact McNemar (only {labels[0]} right {only_a}, only {labels[1]} right {only_b}); interval: {boot}"
            if n_img > n_pat:
                test += f"; McNemar counts the {n_img} images of {n_pat} patients as independent"
        else:
            p, test = p_boot, boot
        rows.append(
            {
                "comparison": f"{labels[0]} - {labels[1]}",
                "statistic": statistic,
                "role": "primary" if statistic == PRIMARY_STATISTIC else "secondary",
                "value": point[k],
                "ci_low": low,
                "ci_high": high,
                "p_value": p,
                "n_images": n_img,
                "n_patients": n_pat,
                "test": test,
            }
        )
    table = pd.DataFrame(rows)
    table["p_holm"] = _holm(table["p_value"].tolist())
    return table[PAIRED_COLUMNS]


POOLED_COLUMNS = [*PAIRED_COLUMNS[:8], "n_seeds", "per_seed", "seed_sd", "seed_t_p", *PAIRED_COLUMNS[8:]]


def pooled_comparison(
    pairs: Mapping[int, tuple[pd.DataFrame, pd.DataFrame]],
    names: Sequence[str],
    *,
    labels: tuple[str, str] = ("a", "b"),
    vote: str = "hard",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Model ``a`` against model ``b`` pooled over training seeds (``pairs``: seed → the two
    models' predictions of the same test images; every seed on the same images). For each
    statistic of :func:`paired_comparison`: the mean over seeds of the per-seed difference,
    its 95 % interval and two-sided p-value from a patient bootstrap that applies one
    resample of patients to every seed (the test films' sampling), and, at the run level,
    each seed's difference, their sd and a one-sample t-test of the seeds' differences
    against 0 (the training runs' spread; n − 1 degrees of freedom, so little power with
    three seeds; not computed below three seeds).

    The two answer different questions, and each leaves out the other's variation: the
    bootstrap interval is conditional on these training runs, the t-test on these test
    films. ``p_holm``: Holm over the three statistics' bootstrap p-values; ``role``: the
    macro AUC difference is the primary statistic. One seed: the rows repeat that seed's
    paired comparison (its bootstrap), and the ``test`` column says so."""
    from scipy.stats import ttest_1samp

    seeds = sorted(pairs)
    data = [_paired_arrays(*pairs[s], names, vote) for s in seeds]
    order = [np.argsort(d["image_id"]) for d in data]
    data = [{k: v[o] for k, v in d.items()} for d, o in zip(data, order, strict=True)]
    if any(not np.array_equal(d["image_id"], data[0]["image_id"]) for d in data):
        raise ValueError("the seeds were not evaluated on the same images")
    if any(not np.array_equal(d["groups"], data[0]["groups"]) for d in data):
        raise ValueError("the seeds' predictions disagree on the patient of an image")
    n = len(data[0]["y"])

    def mean_differences(idx: np.ndarray) -> np.ndarray:
        return np.mean([_differences(d, names, idx) for d in data], axis=0)

    per_seed = np.array([_differences(d, names, np.arange(n)) for d in data])
    draws = np.array(
        [mean_differences(idx) for idx in bootstrap_resamples(n, data[0]["groups"], n_boot=n_boot, seed=seed)]
    )
    rows = []
    for k, statistic in enumerate(PAIRED_STATISTICS):
        low, high, p_boot, used = _bootstrap_summary(draws[:, k])
        values = per_seed[:, k]
        t_p = float(ttest_1samp(values, 0.0).pvalue) if len(values) >= 3 and np.ptp(values) > 0 else np.nan
        if len(seeds) == 1:
            test = f"one seed ({seeds[0]}): its paired patient bootstrap ({used} of {n_boot} resamples usable)"
        else:
            test = (
                f"mean over {len(seeds)} seeds; interval and p: patient bootstrap, one resample for every seed "
                f"({used} of {n_boot} usable), conditional on these training runs; "
                + (
                    "seed_t_p: t-test of the seeds' differences, conditional on these test films"
                    if len(seeds) >= 3
                    else "no t-test below three seeds"
                )
            )
        rows.append(
            {
                "comparison": f"{labels[0]} - {labels[1]}",
                "statistic": statistic,
                "role": "primary" if statistic == PRIMARY_STATISTIC else "secondary",
                "value": float(values.mean()),
                "ci_low": low,
                "ci_high": high,
                "p_value": p_boot,
                "n_seeds": len(seeds),
                "per_seed": ",".join(f"{s}:{v:.4f}" for s, v in zip(seeds, values, strict=True)),
                "seed_sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                "seed_t_p": t_p,
                "n_images": n,
                "n_patients": len(np.unique(data[0]["groups"])),
                "test": test,
            }
        )
    table = pd.DataFrame(rows)
    table["p_holm"] = _holm(table["p_value"].tolist())
    return table[POOLED_COLUMNS]


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

"""Comparisons of classifiers and of training runs: the global-versus-local table, the
paired comparison of two models on the same test films (McNemar; paired patient bootstrap
of the accuracy, macro-F1 and macro AUC differences, Holm over the three), its pooling over
training seeds (with the run-level t-test), and each metric over the seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from patchcxr.evaluation.metrics import auc_by_class, per_class_table
from patchcxr.stats import bootstrap_resamples, bootstrap_summary, holm


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
        low, high, p_boot, used = bootstrap_summary(draws[:, k])
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
    table["p_holm"] = holm(table["p_value"].tolist())
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
        low, high, p_boot, used = bootstrap_summary(draws[:, k])
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
    table["p_holm"] = holm(table["p_value"].tolist())
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

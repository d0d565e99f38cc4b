"""The between-class tests of the lung biomarkers (method.md §7): omnibus and pairwise
tests of each feature across classes (:func:`compare_groups`), on patients, over all images,
within each source, without AP-supine films and on PA films only (:func:`compare_classes`),
with the paper's claims as a primary family under Holm and every other test exploratory
under Benjamini–Hochberg (:func:`adjust_for_multiplicity`). Statistics use scipy and
statsmodels only (the intervals and the multiplicity adjustments through
:mod:`patchcxr.stats`); the features come from :mod:`patchcxr.biomarkers.features`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from patchcxr.stats import adjust_p, two_sample_interval

#: the features compared across classes by default (the paper's four, and the patch analysis)
TESTED = [
    "intensity_mean",
    "intensity_std",
    "intensity_skew",
    "intensity_kurtosis",
    "ctr",
    "lung_thorax_ratio",
    "left_right_ratio",
    "intra_patch_var",
    "inter_patch_var",
    "intra_inter_ratio",
    "minmax_mean",
    "minmax_std",
]


TEST_COLUMNS = [
    "feature",
    "scope",
    "test",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "statistic",
    "p_value",
    "family",
    "p_adjusted",
    "adjustment",
    "effect",
    "effect_value",
    "ci_low",
    "ci_high",
    "note",
]


def _row(feature: str, scope: str, test: str, **kw: Any) -> dict[str, Any]:
    return {
        "feature": feature,
        "scope": scope,
        "test": test,
        "group_a": "",
        "group_b": "",
        "n_a": np.nan,
        "n_b": np.nan,
        "statistic": np.nan,
        "p_value": np.nan,
        "family": "",
        "p_adjusted": np.nan,
        "adjustment": "",
        "effect": "",
        "effect_value": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "note": "",
    } | kw


def _superiority(a: np.ndarray, b: np.ndarray, seed: int, n_boot: int) -> tuple[float, float, float]:
    """Probability of superiority P(A > B) + ½P(A = B) = U / (n_a n_b), from scipy's
    Mann–Whitney U, with a 95 % percentile interval from a bootstrap of the two groups'
    patients (:func:`patchcxr.stats.two_sample_interval`)."""

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        u = stats.mannwhitneyu(x, y, axis=axis).statistic
        return u / (x.shape[axis] * y.shape[axis])

    value = float(stat(a, b))
    if len(a) < 3 or len(b) < 3:
        return value, np.nan, np.nan
    return value, *two_sample_interval(a, b, stat, n_boot=n_boot, seed=seed)


def compare_groups(
    values: Mapping[str, np.ndarray], feature: str, scope: str, seed: int = 0, *, min_n: int = 3, n_boot: int = 999
) -> list[dict[str, Any]]:
    """Omnibus and pairwise tests of one feature across classes.

    Omnibus: Kruskal–Wallis, and one-way ANOVA with its assumption checks (Shapiro–Wilk per
    group, Levene across groups; reported in ``note``). Pairwise: Mann–Whitney U (effect:
    probability of superiority with a bootstrap CI) and Welch's t (effect: difference of
    means with its t-based CI). The p-values are adjusted for multiplicity over the whole
    table by :func:`compare_classes`.
    """
    groups = {k: np.asarray(v, float)[~np.isnan(np.asarray(v, float))] for k, v in values.items()}
    groups = {k: v for k, v in groups.items() if len(v) >= min_n}
    rows: list[dict[str, Any]] = []
    if len(groups) < 2:
        return [_row(feature, scope, "none", note=f"fewer than two classes with >= {min_n} images")]
    arrays = list(groups.values())
    names = ",".join(groups)
    kw = stats.kruskal(*arrays)
    rows.append(
        _row(
            feature,
            scope,
            "kruskal-wallis",
            group_a=names,
            statistic=kw.statistic,
            p_value=kw.pvalue,
            n_a=sum(len(a) for a in arrays),
        )
    )
    an = stats.f_oneway(*arrays)
    normal = {k: stats.shapiro(v).pvalue for k, v in groups.items() if 3 <= len(v) <= 5000}
    lev = stats.levene(*arrays).pvalue
    note = "shapiro p: " + ", ".join(f"{k}={p:.3g}" for k, p in normal.items()) + f"; levene p={lev:.3g}"
    rows.append(
        _row(
            feature,
            scope,
            "anova",
            group_a=names,
            statistic=an.statistic,
            p_value=an.pvalue,
            n_a=sum(len(a) for a in arrays),
            note=note,
        )
    )
    pairs = list(itertools.combinations(groups, 2))
    for test in ("mann-whitney", "welch-t"):
        block = []
        for a, b in pairs:
            x, y = groups[a], groups[b]
            if test == "mann-whitney":
                res = stats.mannwhitneyu(x, y, alternative="two-sided")
                effect, (value, lo, hi) = "P(a>b)", _superiority(x, y, seed, n_boot)
            else:
                res = stats.ttest_ind(x, y, equal_var=False)
                ci = res.confidence_interval(0.95)
                effect, value, lo, hi = "mean(a)-mean(b)", float(np.mean(x) - np.mean(y)), float(ci.low), float(ci.high)
            block.append(
                _row(
                    feature,
                    scope,
                    test,
                    group_a=a,
                    group_b=b,
                    n_a=len(x),
                    n_b=len(y),
                    statistic=res.statistic,
                    p_value=res.pvalue,
                    effect=effect,
                    effect_value=value,
                    ci_low=lo,
                    ci_high=hi,
                )
            )
        rows.extend(block)
    return rows


#: the paper's claims (method.md §7.1), tested as one family: lower mean and higher spread of
#: lung intensity and a different CTR for COVID-19 than each other class, over all images
PRIMARY_FEATURES = ("intensity_mean", "intensity_std", "ctr")
PRIMARY_TEST = "mann-whitney"


def adjust_for_multiplicity(tests: pd.DataFrame, reference: str) -> pd.DataFrame:
    """``family``, ``p_adjusted`` and ``adjustment`` for every tested row.

    The primary family, declared before looking at the data, holds the paper's claims
    (:data:`PRIMARY_FEATURES`, scope ``all``, :data:`PRIMARY_TEST`, each class against
    ``reference``): Holm's method controls the family-wise error over it. Every other
    p-value of the table (other features, scopes, tests, pairs, the omnibus tests) is
    exploratory: the Benjamini–Hochberg procedure controls the false discovery rate over all
    of them together.
    """
    out = tests.copy()
    tested = out["p_value"].notna()
    primary = (
        tested
        & out["feature"].isin(PRIMARY_FEATURES)
        & (out["scope"] == "all")
        & (out["test"] == PRIMARY_TEST)
        & ((out["group_a"] == reference) | (out["group_b"] == reference))
    )
    exploratory = tested & ~primary
    out["family"] = np.where(primary, "primary", np.where(exploratory, "exploratory", ""))
    out["p_adjusted"] = np.nan
    out["adjustment"] = ""
    for mask, method, label in ((primary, "holm", "Holm"), (exploratory, "fdr_bh", "Benjamini-Hochberg FDR")):
        if mask.any():
            out.loc[mask, "p_adjusted"] = adjust_p(out.loc[mask, "p_value"].to_numpy(float), method)
            out.loc[mask, "adjustment"] = f"{label} over the {int(mask.sum())} {out.loc[mask, 'family'].iloc[0]} tests"
    return out


def per_patient(images: pd.DataFrame, tested: Sequence[str], label: str) -> pd.DataFrame:
    """One row per patient and class: the mean of each feature over the patient's images
    (repeated films of a patient are not independent observations)."""
    keys = [label, "patient_id"]
    return images.groupby(keys, as_index=False, sort=True)[list(tested)].mean()


def compare_classes(
    features: pd.DataFrame,
    tested: Sequence[str] = TESTED,
    label: str = "label5",
    seed: int = 0,
    *,
    reference: str = "covid19",
    n_boot: int = 999,
) -> pd.DataFrame:
    """Tests across classes on patients (each patient's images averaged first, so ``n_a``,
    ``n_b`` count patients and the bootstrap intervals resample patients): over all images,
    within each source (source confounding), without AP-supine films (the paper's extra
    analysis of the scanning protocol) and on PA films only (an AP projection magnifies the
    heart, and AP films come from some classes more than others); multiplicity controlled
    by :func:`adjust_for_multiplicity` with ``reference`` the class of the paper's claims."""
    df = features[features[label].astype(str) != ""]
    views = df["view"].astype(str).str.upper()
    scopes = [("all", df)]
    scopes += [(f"source:{s}", part) for s, part in df.groupby("source")]
    scopes.append(("without AP supine", df[views != "AP SUPINE"]))
    scopes.append(("PA only", df[views == "PA"]))
    rows = []
    for scope, part in scopes:
        patients = per_patient(part, tested, label)
        for feature in tested:
            values = {str(k): g[feature].to_numpy(float) for k, g in patients.groupby(label)}
            rows.extend(compare_groups(values, feature, scope, seed, n_boot=n_boot))
    return adjust_for_multiplicity(pd.DataFrame(rows, columns=TEST_COLUMNS), reference)

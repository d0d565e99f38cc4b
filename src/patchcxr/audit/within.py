"""The confound audit's within-class, across-source table (:mod:`patchcxr.audit`): does the
*disease* classifier's call depend on the film's source once the class is fixed? (DeGrave,
Janizek & Lee, Nat Mach Intell 2021: COVID-19 classifiers answered by hospital.) For every
class whose test films come from two or more sources, each source's films of the class:
their recall and the distribution of the predicted classes, with a patient-level permutation
test of "the prediction is independent of the source given the class": the sources are
shuffled between the class's patients, the statistic is the chi-square of the source ×
predicted-class table; Holm across the classes, and one test over all of them (the sum of
the classes' statistics, sources shuffled within each class)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from patchcxr.stats import adjust_p, cluster_permutation_p


def within_columns(names: Sequence[str]) -> list[str]:
    """Columns of :func:`within_class_table` for the classifier's classes ``names``."""
    return [
        *("model", "class", "source", "n", "n_patients", "recall"),
        *(f"predicted_{c}" for c in names),
        *("chi2", "p_permutation", "p_holm", "note"),
    ]


def _chi2(source: np.ndarray, predicted: np.ndarray) -> float:
    """Pearson's chi-square of the source × predicted-class table (0 for one row or column)."""
    _, s = np.unique(source, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    table = np.zeros((s.max() + 1, p.max() + 1))
    np.add.at(table, (s, p), 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())


def within_class_table(
    predictions: pd.DataFrame,
    names: Sequence[str],
    *,
    model: str,
    n_perm: int,
    seed: int,
    min_patients: int,
) -> pd.DataFrame:
    """The within-class, across-source table of one classifier's test ``predictions``
    (``true``, ``pred_hard``, ``source``, ``patient_id``; module docstring). One row per
    (class, source) of every class found in two or more sources, then the class's row
    (``source`` ``all``) with its chi-square, permutation p and Holm p; last, the row
    ``all classes`` with the one test over every class. A class whose sources hold fewer
    than ``min_patients`` patients all told is listed without a test, with the reason."""
    df = predictions.assign(
        true=predictions["true"].astype(str),
        pred_hard=predictions["pred_hard"].astype(str),
        source=predictions["source"].astype(str),
        patient_id=predictions["patient_id"].astype(str),
    )
    rows: list[dict[str, object]] = []
    tested: list[tuple[int, str]] = []  # (row index of the class's summary, class)
    for cls in [c for c in names if c in set(df["true"])]:
        part = df[df["true"] == cls]
        if part["source"].nunique() < 2:
            continue
        for source, films in part.groupby("source", sort=True):
            shares = films["pred_hard"].value_counts(normalize=True)
            rows.append(
                {
                    "model": model,
                    "class": cls,
                    "source": source,
                    "n": len(films),
                    "n_patients": films["patient_id"].nunique(),
                    "recall": float((films["pred_hard"] == cls).mean()),
                    **{f"predicted_{c}": float(shares.get(c, 0.0)) for c in names},
                }
            )
        summary: dict[str, object] = {
            "model": model,
            "class": cls,
            "source": "all",
            "n": len(part),
            "n_patients": part["patient_id"].nunique(),
            "recall": float((part["pred_hard"] == cls).mean()),
        }
        if part["patient_id"].nunique() < min_patients:
            rows.append(
                summary | {"note": f"{part['patient_id'].nunique()} patients < statistics.min_patients: no test"}
            )
            continue
        predicted = part["pred_hard"].to_numpy()
        summary["chi2"] = _chi2(part["source"].to_numpy(), predicted)
        summary["p_permutation"] = cluster_permutation_p(
            partial(_chi2, predicted=predicted),
            part["source"].to_numpy(),
            part["patient_id"].to_numpy() + "\x1f" + part["source"].to_numpy(),
            n_perm=n_perm,
            seed=seed,
        )
        summary["note"] = f"sources shuffled between the class's patients, {part['source'].nunique()} sources"
        rows.append(summary)
        tested.append((len(rows) - 1, cls))
    for (i, _), p in zip(tested, adjust_p([float(rows[i]["p_permutation"]) for i, _ in tested], "holm"), strict=True):  # type: ignore[arg-type]
        rows[i]["p_holm"] = p
    if tested:
        classes = [c for _, c in tested]
        pool = df[df["true"].isin(classes)]
        true, predicted = pool["true"].to_numpy(), pool["pred_hard"].to_numpy()

        def total(sources: np.ndarray) -> float:
            return sum(_chi2(sources[true == c], predicted[true == c]) for c in classes)

        rows.append(
            {
                "model": model,
                "class": "all classes",
                "source": "all",
                "n": len(pool),
                "n_patients": pool["patient_id"].nunique(),
                "chi2": total(pool["source"].to_numpy()),
                "p_permutation": cluster_permutation_p(
                    total,
                    pool["source"].to_numpy(),
                    # a patient's films of one class and source: one unit (its class fixed)
                    pool["patient_id"].to_numpy() + "\x1f" + pool["source"].to_numpy() + "\x1f" + true,
                    n_perm=n_perm,
                    seed=seed,
                    strata=true,
                ),
                "note": f"sources shuffled within each of {len(classes)} classes: {', '.join(classes)}",
            }
        )
    return pd.DataFrame(rows, columns=within_columns(names))

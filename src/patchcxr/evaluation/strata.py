"""Accuracy and macro-F1 of the test predictions by stratum (source, view, age group and
band, sex, mask source), each group with n, its patients and a 95 % patient-bootstrap
interval (:mod:`patchcxr.stats`); a group of too few patients gets no figures."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from patchcxr.evaluation.metrics import accuracy_and_macro_f1
from patchcxr.stats import bootstrap_interval, interval_columns, with_intervals

#: the strata of :func:`strata_table`: columns of the predictions (``source``,
#: ``mask_source``, ``age_group``) and of the manifest (``view``, ``sex``), and ``age_band``
STRATA = ("source", "view", "age_group", "age_band", "sex", "mask_source")


#: the adult age bands (years; lower bounds after the first) of the ``age_band`` stratum
ADULT_AGE_BANDS = (40, 60)


#: the value of a stratum a film does not record (no view, sex or age in its source)
UNKNOWN = "unknown"


STRATA_COLUMNS = [
    *("stratum", "group", "n", "n_patients", "classes"),
    *("accuracy", *interval_columns("accuracy"), "macro_f1", *interval_columns("macro_f1")),
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


def _accuracy_and_macro_f1_at(y: np.ndarray, p: np.ndarray, n_classes: int, idx: np.ndarray) -> tuple[float, float]:
    return accuracy_and_macro_f1(y[idx], p[idx], n_classes)


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
                figures = with_intervals(("accuracy", "macro_f1"), (acc, f1), lo, hi)
            rows.append(row | figures)
    return pd.DataFrame(rows, columns=STRATA_COLUMNS)

"""The test predictions' figures by stratum (source, view, age group and band, sex, mask
source): each group's n, patients, no-skill accuracy, accuracy and balanced accuracy with a
95 % patient-bootstrap interval, per-class recall, macro-F1 only where every class is
present (:func:`patchcxr.evaluation.metrics.group_figures`); a group of too few patients
gets no figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from patchcxr.evaluation.metrics import group_columns, group_figures

#: the strata of :func:`strata_table`: columns of the predictions (``source``,
#: ``mask_source``, ``age_group``) and of the manifest (``view``, ``sex``), and ``age_band``
STRATA = ("source", "view", "age_group", "age_band", "sex", "mask_source")


#: the adult age bands (years; lower bounds after the first) of the ``age_band`` stratum
ADULT_AGE_BANDS = (40, 60)


#: the value of a stratum a film does not record (no view, sex or age in its source)
UNKNOWN = "unknown"


def strata_columns(names: Sequence[str]) -> list[str]:
    """Columns of :func:`strata_table` for the classes ``names``."""
    return ["stratum", "group", *group_columns(names)]


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
    """The figures of :func:`~patchcxr.evaluation.metrics.group_figures` for the test
    predictions in each group of each stratum (:data:`STRATA`): n, patients, no-skill and
    balanced accuracy, per-class recall, 95 % intervals from a bootstrap over the group's
    patients, macro-F1 only where every class is present. A group of fewer than
    ``min_patients`` patients gets its n and NaN for every figure, with the reason. Films
    whose source does not record a view, sex or age fall in the group ``unknown``."""
    extra = manifest.set_index("image_id")[["view", "sex", "age", "paediatric"]]
    df = predictions.join(extra, on="image_id")
    df["age_band"] = [age_band(a, c) for a, c in zip(df["age"], df["paediatric"], strict=True)]
    for column in ("view", "sex"):
        df[column] = df[column].astype(str).str.strip().replace({"": UNKNOWN, "nan": UNKNOWN, "<NA>": UNKNOWN})
    rows = []
    for stratum in STRATA:
        for group, part in df.groupby(stratum, sort=True):
            figures = group_figures(
                part["true_index"].to_numpy(int),
                part[f"pred_{vote}_index"].to_numpy(int),
                part["patient_id"].astype(str).to_numpy(),
                names,
                n_boot=n_boot,
                seed=seed,
                min_patients=min_patients,
            )
            rows.append({"stratum": stratum, "group": str(group)} | figures)
    return pd.DataFrame(rows, columns=strata_columns(names))

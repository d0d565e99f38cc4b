"""Leave-one-source-out validation beside the internal test split, in one table scored from
the external models' and the internal run's predictions: each held-out source whole, the
external and the internal model on the same films (the source's films of the internal test
split) with their paired difference, a class-matched internal control, each group's no-skill
accuracy, balanced accuracy and per-class recall (:func:`patchcxr.evaluation.metrics.group_figures`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from patchcxr.evaluation.metrics import group_columns, group_figures
from patchcxr.stats import bootstrap_interval, interval_columns, percentile_interval


def class_names(predictions: pd.DataFrame) -> list[str]:
    """The classifier's classes in index order, from the predictions' ``prob_<class>`` columns."""
    return [c.removeprefix("prob_") for c in predictions.columns if c.startswith("prob_")]


def external_columns(names: Sequence[str]) -> list[str]:
    """Columns of :func:`external_table` for the classes ``names``."""
    figures = [c for c in group_columns(names) if c != "note"]
    return ["source", "model", "scheme", *figures, "difference", *interval_columns("difference"), "note"]


#: the schemes of :func:`external_table`, in its order
SCHEMES = ("external", "external, shared films", "internal, shared films", "internal, class-matched control")


def _paired_difference(a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same films (rows aligned by image),
    with a 95 % interval resampling patients (both models in each resample)."""
    hit = (a["pred_hard_index"].to_numpy(int) == a["true_index"].to_numpy(int)).astype(float)
    hit_b = (b["pred_hard_index"].to_numpy(int) == b["true_index"].to_numpy(int)).astype(float)
    diff = hit - hit_b
    (lo,), (hi,) = bootstrap_interval(
        lambda idx: float(diff[idx].mean()), len(diff), a["patient_id"].astype(str).to_numpy(), n_boot=n_boot, seed=seed
    )
    return float(diff.mean()), float(lo), float(hi)


def _matched_control(group: pd.DataFrame, pool: pd.DataFrame, *, n_draws: int, seed: int) -> dict[str, object]:
    """The internal model's accuracy on draws of the internal test films of the other
    sources with the held-out group's class counts (films of a class drawn without
    replacement while the pool holds enough, else with): the mean over draws and the 2.5
    and 97.5 percentiles. A class the pool lacks: no control."""
    need = group["true_index"].value_counts()
    have = pool["true_index"].value_counts()
    missing = [int(c) for c in need.index if c not in have.index]
    if missing:
        return {"note": f"no class-matched control: no internal test film of another source in class(es) {missing}"}
    rng = np.random.default_rng(seed)
    hits = (pool["pred_hard_index"].to_numpy(int) == pool["true_index"].to_numpy(int)).astype(float)
    members = {c: np.flatnonzero(pool["true_index"].to_numpy(int) == c) for c in need.index}
    replace = any(need[c] > len(members[c]) for c in need.index)
    draws = np.array(
        [
            np.concatenate(
                [hits[rng.choice(members[c], size=int(need[c]), replace=replace)] for c in need.index]
            ).mean()
            for _ in range(n_draws)
        ]
    )
    lo, hi = percentile_interval(draws[:, None])
    how = "with" if replace else "without"
    return {
        "n": int(need.sum()),
        "n_patients": int(pool["patient_id"].nunique()),
        "accuracy": float(draws.mean()),
        "accuracy_ci_low": float(lo[0]),
        "accuracy_ci_high": float(hi[0]),
        "note": f"{n_draws} draws {how} replacement of the other sources' internal test films "
        "with the source's class counts: the range a group of this size and class mix gets internally",
    }


def external_table(
    plan: pd.DataFrame,
    external: Mapping[tuple[str, str], pd.DataFrame],
    internal: Mapping[str, pd.DataFrame],
    *,
    n_boot: int,
    seed: int,
    min_patients: int,
) -> pd.DataFrame:
    """Leave-one-source-out validation beside the internal test split.

    ``external`` maps (source, model) to the test predictions of the model trained without
    the source (the source whole, and the other sources' test films), ``internal`` maps
    model to the internal run's test predictions. For each held-out source of the ``plan``
    and each model, rows of the :data:`SCHEMES`:

    * ``external``: the external model on all the source's films;
    * ``external, shared films`` and ``internal, shared films``: both models on the
      source's films of the internal test split, the same films, with the external minus
      internal accuracy and its patient-bootstrap interval (``difference``);
    * ``internal, class-matched control``: the internal model on the other sources'
      internal test films drawn to the class counts of the external group (the whole
      source; its internal test films where no external model ran), also when the source
      has no internal test film (:func:`_matched_control`).

    Every group carries its no-skill accuracy, balanced accuracy and per-class recall; a
    source not held out gets one row saying why. Last, each model's internal test split as
    a whole (``all sources``)."""
    names = class_names(next(iter(internal.values()))) if internal else []
    columns = external_columns(names)

    def figures(df: pd.DataFrame) -> dict[str, object]:
        return group_figures(
            df["true_index"].to_numpy(int),
            df["pred_hard_index"].to_numpy(int),
            df["patient_id"].astype(str).to_numpy(),
            names,
            n_boot=n_boot,
            seed=seed,
            min_patients=min_patients,
        )

    rows: list[dict[str, object]] = []
    for r in plan.itertuples():
        source = str(r.source)
        if str(r.held_out) != "1":
            rows.append({"source": source, "model": "", "scheme": "external", "note": f"not held out: {r.reason}"})
            continue
        for model, inner in internal.items():
            key = {"source": source, "model": model}
            outer = external.get((source, model))
            whole = outer[outer["source"].astype(str) == source] if outer is not None else None
            if whole is not None:
                rows.append(key | {"scheme": SCHEMES[0]} | figures(whole))
            mine = inner[inner["source"].astype(str) == source].sort_values("image_id")
            if not len(mine):
                rows.append(
                    key | {"scheme": SCHEMES[2], "n": 0, "note": "no film of the source in the internal test split"}
                )
            else:
                if outer is not None:
                    shared = outer.set_index("image_id").loc[mine["image_id"]].reset_index()
                    diff = _paired_difference(shared, mine.reset_index(drop=True), n_boot=n_boot, seed=seed)
                    row = key | {"scheme": SCHEMES[1]} | figures(shared)
                    if row["n_patients"] >= min_patients:  # type: ignore[operator]
                        row |= dict(zip(("difference", *interval_columns("difference")), diff, strict=True))
                    rows.append(row)
                rows.append(key | {"scheme": SCHEMES[2]} | figures(mine))
            # the external group's size and class mix (the whole source), drawn internally
            target = whole if whole is not None and len(whole) else mine
            pool = inner[inner["source"].astype(str) != source]
            rows.append(key | {"scheme": SCHEMES[3]} | _matched_control(target, pool, n_draws=n_boot, seed=seed))
    for model, inner in internal.items():
        rows.append({"source": "all sources", "model": model, "scheme": "internal"} | figures(inner))
    return pd.DataFrame(rows, columns=columns)

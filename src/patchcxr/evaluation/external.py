"""Leave-one-source-out validation beside the internal test split: one table from the
external models' and the internal run's strata and metrics tables."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from patchcxr.stats import interval_columns

#: columns of the leave-one-source-out summary (:func:`external_table`)
EXTERNAL_COLUMNS = [
    *("source", "model", "scheme", "n", "n_patients"),
    *("accuracy", *interval_columns("accuracy"), "macro_f1", *interval_columns("macro_f1"), "note"),
]


_FIGURES = ("n", "n_patients", "accuracy", *interval_columns("accuracy"), "macro_f1", *interval_columns("macro_f1"))


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
                "accuracy_ci_low": acc["ci_low"],
                "accuracy_ci_high": acc["ci_high"],
                "macro_f1": f1["value"],
                "macro_f1_ci_low": f1["ci_low"],
                "macro_f1_ci_high": f1["ci_high"],
            }
        )
    return pd.DataFrame(rows, columns=EXTERNAL_COLUMNS)

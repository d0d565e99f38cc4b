"""The source-only baseline (not in the paper): what the film's source alone predicts. The
rule is learnt on the training films (train and val of the classification split): each
source's main class (ties: the first class by name; a source without training films: the
training films' main class); it is scored on the test films as a classifier is
(:func:`patchcxr.evaluation.metrics.metrics_long`: per-class figures, accuracy and macro
averages with patient-bootstrap intervals), so table 5 sets it beside the classifiers. A
classifier no better than it has not been shown to read more than the source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: the baseline's name where a classifier's would stand (table 5, metrics.json)
SOURCE_ONLY = "source_only"


def source_only_rule(films: pd.DataFrame, labels: str) -> tuple[dict[str, str], str]:
    """Each source's main class among ``films`` (``source``, ``labels``) and the main class
    of all of them (for a source the films lack)."""
    counts = films.groupby(["source", labels]).size().rename("n").reset_index()
    main = counts.sort_values(["source", "n", labels], ascending=[True, False, True]).drop_duplicates("source")
    overall = films[labels].value_counts()
    fallback = sorted(overall.index[overall == overall.max()])[0]
    return dict(zip(main["source"].astype(str), main[labels].astype(str), strict=True)), str(fallback)


def source_only_predictions(
    split: pd.DataFrame, cohort: pd.DataFrame, labels: str, names: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The rule of :func:`source_only_rule` learnt on the split's train and val films and
    applied to its test films: predictions in the classifier's columns (``image_id``,
    ``patient_id``, ``source``, ``true``, ``true_index``, ``pred_hard``,
    ``pred_hard_index``), and the rule (source → class; ``*``: a source unseen in training)."""
    films = split[["image_id", "split"]].merge(cohort[["image_id", "patient_id", "source", labels]], on="image_id")
    rule, fallback = source_only_rule(films[films["split"].isin(["train", "val"])], labels)
    test = films[films["split"] == "test"].sort_values("image_id").reset_index(drop=True)
    pred = test["source"].astype(str).map(rule).fillna(fallback)
    index = {c: i for i, c in enumerate(names)}
    out = pd.DataFrame(
        {
            "image_id": test["image_id"],
            "patient_id": test["patient_id"],
            "source": test["source"],
            "true": test[labels].astype(str),
            "true_index": test[labels].astype(str).map(index).to_numpy(int),
            "pred_hard": pred,
            "pred_hard_index": pred.map(index).to_numpy(int),
        }
    )
    return out, rule | {"*": fallback}


def rule_text(rule: dict[str, str]) -> str:
    """``a → normal; b → tb; other → normal``: the rule in one line."""
    return "; ".join(
        f"{'other' if s == '*' else s} → {c}" for s, c in sorted(rule.items(), key=lambda kv: kv[0] == "*")
    )


def accuracy_of(predictions: pd.DataFrame) -> float:
    """The share of test films the rule gets right."""
    return float(np.mean(predictions["true_index"].to_numpy(int) == predictions["pred_hard_index"].to_numpy(int)))

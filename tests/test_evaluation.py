"""Classification metrics on hand-checked confusion matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from patchcxr.evaluation import compare_models, confusion_long, metrics_long, per_class_table, per_source

NAMES = ["normal", "bacterial", "tb", "viral_covid19"]


def test_per_class_metrics_and_specificity() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    p = np.array([0, 0, 1, 1, 1, 2, 3, 0])
    t = per_class_table(y, p, NAMES).set_index("class")
    # normal: TP 2, FP 1 (a viral film), FN 1 -> precision 2/3, recall 2/3; TN 4, FP 1 -> specificity 4/5
    assert t.loc["normal", "precision"] == pytest.approx(2 / 3)
    assert t.loc["normal", "recall"] == pytest.approx(2 / 3)
    assert t.loc["normal", "specificity"] == pytest.approx(4 / 5)
    assert t.loc["bacterial", "specificity"] == pytest.approx(5 / 6)
    assert t.loc["accuracy", "recall"] == pytest.approx(6 / 8)
    assert t.loc["macro", "recall"] == pytest.approx(np.mean([2 / 3, 1, 1, 0.5]))


def test_bootstrap_intervals_bracket_the_estimate_and_confusion_rows_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.uniform(size=200) < 0.7, y, rng.integers(0, 4, 200))
    m = metrics_long(y, p, NAMES, n_boot=200, seed=1)
    acc = m[(m["class"] == "accuracy") & (m["metric"] == "recall")].iloc[0]
    assert acc["ci_low"] < acc["value"] < acc["ci_high"] and acc["ci_high"] - acc["ci_low"] < 0.2
    c = confusion_long(y, p, NAMES)
    assert c["count"].sum() == 200
    assert np.allclose(c.groupby("true")["row_fraction"].sum(), 1.0)


def test_per_source_and_model_comparison() -> None:
    pred = pd.DataFrame(
        {
            "source": ["a", "a", "b", "b"],
            "true": ["normal", "tb", "tb", "tb"],
            "true_index": [0, 2, 2, 2],
            "pred_hard_index": [0, 2, 0, 2],
        }
    )
    ps = per_source(pred, NAMES).set_index("source")
    assert ps.loc["a", "accuracy"] == 1.0 and ps.loc["b", "accuracy"] == 0.5
    y = np.array([0, 1, 2, 3] * 5)
    local = metrics_long(y, y, NAMES, 20, seed=0)
    glob = metrics_long(y, np.roll(y, 1), NAMES, 20, seed=0)
    table = compare_models({"local": local, "global": glob}).set_index(["class", "metric"])
    assert table.loc[("accuracy", "recall"), "local"] == 1.0 and table.loc[("accuracy", "recall"), "global"] == 0.0

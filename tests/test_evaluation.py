"""Classification metrics on hand-checked confusion matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from patchcxr.evaluation import (
    compare_models,
    confusion_long,
    metrics_long,
    paired_comparison,
    per_class_table,
    per_source,
)

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
    local = metrics_long(y, y, NAMES, n_boot=20, seed=0)
    glob = metrics_long(y, np.roll(y, 1), NAMES, n_boot=20, seed=0)
    table = compare_models({"local": local, "global": glob}).set_index(["class", "metric"])
    assert table.loc[("accuracy", "recall"), "local"] == 1.0 and table.loc[("accuracy", "recall"), "global"] == 0.0


def test_a_perfect_classifier_on_a_two_class_source_scores_one() -> None:
    # a Montgomery-like source holds normal and TB only: its macro-F1 averages over those two
    pred = pd.DataFrame(
        {
            "source": ["m"] * 4,
            "true": ["normal", "normal", "tb", "tb"],
            "true_index": [0, 0, 2, 2],
            "pred_hard_index": [0, 0, 2, 2],
        }
    )
    assert per_source(pred, NAMES).set_index("source").loc["m", "macro_f1"] == 1.0
    t = per_class_table(np.array([0, 0, 2, 2]), np.array([0, 0, 2, 1]), NAMES).set_index("class")
    assert np.isnan(t.loc["viral_covid19", "recall"]) and np.isnan(t.loc["viral_covid19", "f1"])
    assert np.isnan(t.loc["viral_covid19", "precision"])  # never predicted, never true
    assert t.loc["bacterial", "precision"] == 0.0  # predicted once, never true: a real error
    assert t.loc["macro", "recall"] == pytest.approx((1 + 0.5) / 2)  # normal and TB only


def test_intervals_resample_patients_not_images() -> None:
    # 12 patients with 10 images each, every image of a patient right or wrong together:
    # the evidence is 12 patients, not 120 independent images
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 10)
    y = np.repeat(rng.integers(0, 4, 12), 10)
    p = np.where(np.repeat(rng.uniform(size=12) < 0.6, 10), y, (y + 1) % 4)
    by_image = metrics_long(y, p, NAMES, n_boot=300, seed=1).set_index(["class", "metric"])
    by_patient = metrics_long(y, p, NAMES, groups=groups, n_boot=300, seed=1).set_index(["class", "metric"])
    width = lambda m: m.loc[("accuracy", "recall"), "ci_high"] - m.loc[("accuracy", "recall"), "ci_low"]  # noqa: E731
    assert width(by_patient) > 2 * width(by_image)
    # the patient interval matches a bootstrap of 12 patient outcomes
    right = (p == y).reshape(12, 10)[:, 0]
    draws = np.random.default_rng(7).choice(right, (4000, 12)).mean(axis=1)
    assert width(by_patient) == pytest.approx(np.percentile(draws, 97.5) - np.percentile(draws, 2.5), abs=0.12)


def test_paired_comparison_mcnemar_and_patient_bootstrap() -> None:
    n = 20
    y = np.arange(n) % 4
    a = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "patient_id": [f"p{k // 2}" for k in range(n)]})
    a = a.assign(true_index=y, pred_hard_index=y)
    b = a.copy()
    wrong = [0, 1, 2, 3, 4, 5, 6]  # b misses 7 images that a gets right
    b.loc[wrong, "pred_hard_index"] = (y[wrong] + 1) % 4
    a.loc[9, "pred_hard_index"] = (y[9] + 1) % 4  # a misses one that b gets right
    t = paired_comparison(a, b, NAMES, labels=("local", "global"), n_boot=200, seed=0).set_index("statistic")
    assert t.loc["accuracy difference", "value"] == pytest.approx((19 - 13) / 20)
    assert t.loc["accuracy difference", "p_value"] == pytest.approx(18 / 256)  # 2 P(X <= 1), X ~ Bin(8, 1/2)
    assert t.loc["macro-F1 difference", "value"] > 0 and t.loc["macro-F1 difference", "n_patients"] == 10
    same = paired_comparison(a, a, NAMES, n_boot=50, seed=0).set_index("statistic")
    assert same.loc["macro-F1 difference", "value"] == 0 and same.loc["macro-F1 difference", "p_value"] == 1.0
    assert same.loc["macro-F1 difference", "ci_low"] == same.loc["macro-F1 difference", "ci_high"] == 0
    table = compare_models(
        {
            "local": metrics_long(y, a["pred_hard_index"].to_numpy(), NAMES, n_boot=10),
            "global": metrics_long(y, b["pred_hard_index"].to_numpy(), NAMES, n_boot=10),
        },
        t.reset_index(),
    ).set_index(["class", "metric"])
    assert table.loc[("accuracy", "recall"), "p_value"] == pytest.approx(18 / 256)
    assert table.loc[("macro", "f1"), "difference_of"] == "local - global"


def test_over_seeds_gives_each_metric_mean_sd_and_the_runs_values() -> None:
    from patchcxr.evaluation import over_seeds

    y = np.array([0, 0, 1, 1, 2, 2])
    runs = {1: metrics_long(y, y, NAMES, n_boot=5), 2: metrics_long(y, np.array([0, 0, 1, 1, 2, 0]), NAMES, n_boot=5)}
    t = over_seeds({"local": runs}).set_index(["class", "metric"])
    acc = t.loc[("accuracy", "recall")]
    assert acc["mean"] == pytest.approx((1 + 5 / 6) / 2) and acc["sd"] == pytest.approx(np.std([1, 5 / 6], ddof=1))
    assert acc["n_seeds"] == 2 and acc["values"] == "1.0000,0.8333" and acc["seeds"] == "1,2"
    assert acc["min"] == pytest.approx(5 / 6) and acc["max"] == 1.0
    one = over_seeds({"local": {1: runs[1]}}).set_index(["class", "metric"])
    assert np.isnan(one.loc[("accuracy", "recall"), "sd"]) and one.loc[("accuracy", "recall"), "n_seeds"] == 1


def test_auc_on_known_rankings_with_patient_intervals() -> None:
    from patchcxr.evaluation import auc_by_class, auc_long

    names = ["normal", "tb"]
    y = np.array([0, 0, 0, 1, 1, 1])
    # tb scores: one of the nine (negative, positive) pairs is ranked wrong -> AUC 8/9
    tb = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    scores = np.column_stack([1 - tb, tb])
    auc = auc_by_class(y, scores, names)
    assert auc["tb"] == pytest.approx(8 / 9) and auc["normal"] == pytest.approx(8 / 9)
    assert auc["macro"] == pytest.approx(8 / 9)
    # a class without films has no AUC and stays out of the macro mean
    three = auc_by_class(y, np.column_stack([scores, np.zeros(6)]), [*names, "viral"])
    assert np.isnan(three["viral"]) and three["macro"] == pytest.approx(8 / 9)
    # intervals resample patients: with each patient's two films scored alike the
    # interval is that of 6 units, wider than the image bootstrap of 12 "independent" films
    y2, s2 = np.repeat(y, 2), np.repeat(scores, 2, axis=0)
    groups = np.repeat(np.arange(6), 2)
    by_patient = auc_long(y2, s2, names, groups=groups, n_boot=400, seed=0).set_index("class")
    by_image = auc_long(y2, s2, names, n_boot=400, seed=0).set_index("class")
    assert by_patient.loc["tb", "value"] == pytest.approx(8 / 9) and by_patient.loc["tb", "support"] == 6
    width = by_patient["ci_high"] - by_patient["ci_low"]
    assert by_patient.loc["tb", "ci_low"] < 8 / 9 <= by_patient.loc["tb", "ci_high"]
    assert width["tb"] > (by_image["ci_high"] - by_image["ci_low"])["tb"]
    # metrics_long carries the AUC rows when given scores
    m = metrics_long(y, (tb > 0.5).astype(int), names, n_boot=50, scores=scores)
    assert set(m.loc[m["metric"] == "auc", "class"]) == {"normal", "tb", "macro"}

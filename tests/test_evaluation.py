"""Classification metrics on hand-checked confusion matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from patchcxr.evaluation.comparisons import compare_models, paired_comparison
from patchcxr.evaluation.metrics import confusion_long, metrics_long, per_class_table
from patchcxr.evaluation.strata import strata_table

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


def _strata(pred: pd.DataFrame, min_patients: int = 1, **manifest: list[str]) -> pd.DataFrame:
    n = len(pred)
    films = {"view": [""] * n, "sex": [""] * n, "age": [""] * n, "paediatric": ["0"] * n} | manifest
    pred = pred.assign(
        image_id=[f"f{i}" for i in range(n)],
        patient_id=pred.get("patient_id", pd.Series([f"p{i}" for i in range(n)])),
        mask_source="predicted",
        age_group="adult",
    )
    table = strata_table(
        pred,
        pd.DataFrame({"image_id": pred["image_id"], **films}),
        NAMES,
        n_boot=200,
        seed=0,
        min_patients=min_patients,
    )
    return table.set_index(["stratum", "group"])


def test_strata_by_source_view_sex_and_age_with_patient_intervals() -> None:
    # source a: 12 right of 12; source b: 6 right of 12 (TB called normal); one film per patient
    true = [0, 2] * 6 + [2] * 12
    pred = pd.DataFrame(
        {
            "source": ["a"] * 12 + ["b"] * 12,
            "true": [NAMES[t] for t in true],
            "true_index": true,
            "pred_hard_index": true[:12] + [0, 2] * 6,
        }
    )
    t = _strata(
        pred,
        min_patients=5,
        view=["PA"] * 12 + ["AP"] * 8 + [""] * 4,
        sex=["M", "F"] * 12,
        age=["25"] * 6 + ["45"] * 6 + ["70"] * 6 + [""] * 6,
    )
    assert t.loc[("source", "a"), "accuracy"] == 1.0 and np.isnan(t.loc[("source", "a"), "macro_f1"])  # 2 of 4 classes
    b = t.loc[("source", "b")]
    assert b["accuracy"] == 0.5 and b["n"] == 12 and b["n_patients"] == 12 and b["classes"] == "tb"
    # TB only: macro-F1 would be the F1 of TB, 2·acc/(1+acc), another scale: not given
    assert np.isnan(b["macro_f1"]) and "macro-F1 only over all 4 classes: 1 present" in b["note"]
    assert b["balanced_accuracy"] == 0.5 and b["recall_tb"] == 0.5 and np.isnan(b["recall_normal"])
    assert b["no_skill_accuracy"] == 1.0  # answering TB for every film would score 1
    a = t.loc[("source", "a")]
    assert a["no_skill_accuracy"] == 0.5 and a["recall_normal"] == a["recall_tb"] == 1.0
    assert b["accuracy_ci_low"] < 0.5 < b["accuracy_ci_high"] and a["accuracy_ci_low"] == 1.0
    assert t.loc[("view", "PA"), "n"] == 12 and t.loc[("view", "unknown"), "n"] == 4
    # four patients without a view are too few to say anything (min_patients 5): n, no figures
    unknown = t.loc[("view", "unknown")]
    assert np.isnan(unknown["accuracy"]) and np.isnan(unknown["balanced_accuracy_ci_high"])
    assert unknown["note"] == "4 patients < statistics.min_patients (5): no figures"
    assert t.loc[("sex", "M"), "n"] == t.loc[("sex", "F"), "n"] == 12
    bands = t.loc["age_band"]["n"].to_dict()
    assert bands == {"adult <40": 6, "adult 40-59": 6, "adult 60+": 6, "adult, age unknown": 6}
    assert set(t.index.get_level_values("stratum")) == {"source", "view", "age_group", "age_band", "sex", "mask_source"}


def test_the_strata_count_patients_and_flag_children() -> None:
    # six patients with four films each: n counts films, n_patients patients
    true = [0] * 12 + [2] * 12
    pred = pd.DataFrame(
        {
            "source": "a",
            "true": [NAMES[t] for t in true],
            "true_index": true,
            "pred_hard_index": [0, 0, 0, 2] * 3 + [2] * 12,
            "patient_id": [f"p{i // 4}" for i in range(24)],
        }
    )
    t = _strata(pred, min_patients=6, paediatric=["1"] * 4 + ["0"] * 20, age=[""] * 4 + ["30"] * 20)
    row = t.loc[("source", "a")]
    assert row["n"] == 24 and row["n_patients"] == 6 and row["accuracy"] == pytest.approx(21 / 24)
    assert t.loc[("age_band", "paediatric"), "n"] == 4 and np.isnan(t.loc[("age_band", "paediatric"), "accuracy"])


def test_model_comparison() -> None:
    y = np.array([0, 1, 2, 3] * 5)
    local = metrics_long(y, y, NAMES, n_boot=20, seed=0)
    glob = metrics_long(y, np.roll(y, 1), NAMES, n_boot=20, seed=0)
    table = compare_models({"local": local, "global": glob}).set_index(["class", "metric"])
    assert table.loc[("accuracy", "recall"), "local"] == 1.0 and table.loc[("accuracy", "recall"), "global"] == 0.0


def test_a_perfect_classifier_on_a_two_class_source_scores_one() -> None:
    # a Montgomery-like source holds normal and TB only: its balanced accuracy averages the
    # recalls of those two (macro-F1 is given only for the full class set)
    pred = pd.DataFrame(
        {
            "source": ["m"] * 4,
            "true": ["normal", "normal", "tb", "tb"],
            "true_index": [0, 0, 2, 2],
            "pred_hard_index": [0, 0, 2, 2],
        }
    )
    row = _strata(pred).loc[("source", "m")]
    assert row["balanced_accuracy"] == 1.0 and np.isnan(row["macro_f1"])
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


def predictions_of(pred: np.ndarray, y: np.ndarray, patients: int = 2) -> pd.DataFrame:
    """A predictions table: images ``i<k>``, ``patients`` images per patient, the class
    probabilities 0.7 on the decision and 0.1 on the others."""
    n = len(y)
    probs = np.full((n, len(NAMES)), 0.1)
    probs[np.arange(n), pred] = 0.7
    return pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(n)],
            "patient_id": [f"p{k // patients}" for k in range(n)],
            "true_index": y,
            "pred_hard_index": pred,
            **{f"prob_{c}": probs[:, j] for j, c in enumerate(NAMES)},
        }
    )


def test_paired_comparison_mcnemar_and_patient_bootstrap() -> None:
    n = 20
    y = np.arange(n) % 4
    pred_a, pred_b = y.copy(), y.copy()
    wrong = [0, 1, 2, 3, 4, 5, 6]  # b misses 7 images that a gets right
    pred_b[wrong] = (y[wrong] + 1) % 4
    pred_a[9] = (y[9] + 1) % 4  # a misses one that b gets right
    a, b = predictions_of(pred_a, y), predictions_of(pred_b, y)
    t = paired_comparison(a, b, NAMES, labels=("local", "global"), n_boot=200, seed=0).set_index("statistic")
    # the AUC of each model from its probabilities: a ranks better
    from patchcxr.evaluation.metrics import auc_by_class

    auc = {
        m: auc_by_class(y, df[[f"prob_{c}" for c in NAMES]].to_numpy(), NAMES)["macro"]
        for m, df in (("a", a), ("b", b))
    }
    assert t.loc["macro AUC difference", "value"] == pytest.approx(auc["a"] - auc["b"]) and auc["a"] > auc["b"]
    assert t.loc["macro AUC difference", "ci_low"] <= t.loc["macro AUC difference", "value"]
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
    assert table.loc[("macro", "f1"), "p_holm"] == t.loc["macro-F1 difference", "p_holm"]
    # the accuracy difference gets the patient interval too, and McNemar's caveat: 20 images of 10 patients
    assert t.loc["accuracy difference", "ci_low"] < 0.3 < t.loc["accuracy difference", "ci_high"]
    assert "counts the 20 images of 10 patients as independent" in t.loc["accuracy difference", "test"]
    # Holm over the family of three, the macro AUC difference primary
    p = t["p_value"].sort_values()
    assert t.loc[p.index[0], "p_holm"] == pytest.approx(min(1.0, 3 * p.iloc[0]))
    assert (t["p_holm"] >= t["p_value"]).all() and t.loc["macro AUC difference", "role"] == "primary"
    relabelled = b.assign(true_index=(b["true_index"] + 1) % 4)
    with pytest.raises(ValueError, match="disagree on the true class"):
        paired_comparison(a, relabelled, NAMES, n_boot=10)


def test_bootstrap_p_values_are_never_zero_and_holm_steps_down() -> None:
    from patchcxr.stats import bootstrap_summary, holm

    low, high, p, used = bootstrap_summary(np.array([0.1] * 99 + [np.nan]))
    assert (low, high, used) == (pytest.approx(0.1), pytest.approx(0.1), 99) and p == pytest.approx(2 / 100)
    assert bootstrap_summary(np.array([np.nan]))[3] == 0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([0.2, np.nan])[1]) and holm([0.2, np.nan])[0] == pytest.approx(0.2)


def test_pooled_comparison_averages_the_seeds_and_resamples_patients_once() -> None:
    from scipy.stats import ttest_1samp

    from patchcxr.evaluation.comparisons import pooled_comparison

    n = 40
    y = np.arange(n) % 2
    worse = y.copy()
    worse[:4] = 1 - y[:4]  # 4 of 40 wrong: accuracy 0.9
    much_worse = y.copy()
    much_worse[:12] = 1 - y[:12]  # 12 of 40 wrong: accuracy 0.7
    right = predictions_of(y, y)
    pairs = {1: (right, predictions_of(worse, y)), 2: (right, predictions_of(much_worse, y))}
    t = pooled_comparison(pairs, NAMES, labels=("local", "global"), n_boot=300, seed=0).set_index("statistic")
    acc = t.loc["accuracy difference"]
    assert acc["value"] == pytest.approx((0.1 + 0.3) / 2) and acc["n_seeds"] == 2
    assert acc["per_seed"] == "1:0.1000,2:0.3000" and acc["seed_sd"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert acc["ci_low"] > 0 and acc["p_value"] < 0.05 and acc["n_patients"] == 20
    # two seeds: no t-test (one degree of freedom); three: a t-test of the seeds' differences
    assert np.isnan(acc["seed_t_p"]) and "no t-test below three seeds" in acc["test"]
    three = {**pairs, 3: (right, predictions_of(worse, y))}
    t3 = pooled_comparison(three, NAMES, n_boot=50, seed=0).set_index("statistic").loc["accuracy difference"]
    assert t3["seed_t_p"] == pytest.approx(ttest_1samp([0.1, 0.3, 0.1], 0.0).pvalue)
    assert "conditional on these training runs" in t3["test"]
    one = pooled_comparison({7: pairs[1]}, NAMES, n_boot=50, seed=0).set_index("statistic")
    assert (one["n_seeds"] == 1).all() and one["test"].str.startswith("one seed (7)").all()
    same = pooled_comparison({1: (right, right), 2: (right, right)}, NAMES, n_boot=50).set_index("statistic")
    assert (same["value"] == 0).all() and (same["p_value"] == 1.0).all()
    with pytest.raises(ValueError, match="not evaluated on the same images"):
        pooled_comparison({1: (right, right), 2: (right.iloc[:-2], right.iloc[:-2])}, NAMES, n_boot=10)


def test_over_seeds_gives_each_metric_mean_sd_and_the_runs_values() -> None:
    from patchcxr.evaluation.comparisons import over_seeds

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
    from patchcxr.evaluation.metrics import auc_by_class, auc_long

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


def test_expected_calibration_error_on_hand_checked_bins() -> None:
    from patchcxr.evaluation.calibration import expected_calibration_error, reliability_rows

    # five films at confidence 0.8, four right: calibrated (gap 0); two at 0.95, both wrong
    probs = np.array([[0.8, 0.2]] * 5 + [[0.05, 0.95]] * 2)
    y = np.array([0, 0, 0, 0, 1, 0, 0])
    assert expected_calibration_error(probs, y, 10) == pytest.approx((5 * 0 + 2 * 0.95) / 7)
    rows = {r["bin"]: r for r in reliability_rows(probs, y, 10)}
    assert rows[8]["n"] == 5 and rows[8]["accuracy"] == pytest.approx(0.8) and rows[9]["accuracy"] == 0.0
    assert rows[0]["n"] == 0 and np.isnan(rows[0]["confidence"])


def test_temperature_scaling_recovers_a_known_overconfidence() -> None:
    from patchcxr.evaluation.calibration import calibration_tables, fit_temperature, temper

    # a calibrated model's probabilities, with the true class drawn from them, then made
    # overconfident by a temperature of 0.5: the fit must find T = 2 (the inverse) again
    rng = np.random.default_rng(0)

    def films(n: int) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(0, 1.5, (n, 4))
        calibrated = temper(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1.0)
        y = np.array([rng.choice(4, p=row) for row in calibrated])
        return temper(calibrated, 0.5), y

    p = np.array([[0.7, 0.2, 0.1]])
    assert np.allclose(temper(p, 1.0), p) and temper(p, 3.0).argmax() == 0 and temper(p, 3.0)[0, 0] < 0.7
    val_p, val_y = films(3000)
    assert fit_temperature(val_p, val_y) == pytest.approx(2.0, rel=0.1)
    test_p, test_y = films(1000)

    def table(probs: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        cols = {f"prob_{n}": probs[:, k] for k, n in enumerate(NAMES)}
        return pd.DataFrame({"true_index": y, "patient_id": [f"p{i // 2}" for i in range(len(y))], **cols})

    summary, reliability = calibration_tables(
        table(val_p, val_y), table(test_p, test_y), NAMES, bins=10, n_boot=50, seed=0, min_patients=10
    )
    before, after = (
        summary.set_index("calibration").loc["uncalibrated"],
        summary.set_index("calibration").loc["temperature"],
    )
    assert before["ece"] > 0.1 and after["ece"] < 0.05 and after["ece_ci_high"] < before["ece_ci_low"]
    assert after["nll"] < before["nll"] and after["accuracy"] == before["accuracy"]
    # NLL and Brier lead, with paired differences: the scaling helps on the same resamples
    assert after["nll_difference_ci_high"] < 0 and after["brier_difference_ci_high"] < 0
    assert np.isnan(before["nll_difference"])
    # the scaled model is calibrated: its ECE sits in the band of a calibrated model; the raw one does not
    assert after["ece"] <= after["ece_null_high"] and before["ece"] > before["ece_null_high"]
    assert after["n"] == 1000 and after["n_patients"] == 500 and before["temperature"] == 1.0
    assert set(reliability["calibration"]) == {"uncalibrated", "temperature"} and len(reliability) == 20


def _predictions(source: list[str], true: list[int], pred: list[int], patients: list[str]) -> pd.DataFrame:
    """Test predictions of a 4-class model (one-hot probabilities)."""
    probs = {f"prob_{n}": [float(p == k) for p in pred] for k, n in enumerate(NAMES)}
    return pd.DataFrame(
        {
            "image_id": [f"{s}/{p}/{i}" for i, (s, p) in enumerate(zip(source, patients, strict=True))],
            "patient_id": patients,
            "source": source,
            "true_index": true,
            "pred_hard_index": pred,
            **probs,
        }
    )


def test_the_external_table_scores_both_models_on_the_same_films_beside_no_skill_and_a_matched_control() -> None:
    from patchcxr.evaluation.external import external_table

    plan = pd.DataFrame(
        [
            {"source": "a", "held_out": 1, "reason": ""},
            {"source": "b", "held_out": 1, "reason": ""},
            {"source": "c", "held_out": 0, "reason": "no other source holds covid19"},
        ]
    )
    # source a: 40 films, 10 normal (0) and 30 TB (2), one per patient; the external model
    # calls everything normal (no skill: 0.25 = the normal share); internal test split: 12
    # of a's films (3 normal, 9 TB), all right internally; other sources' test films: 20
    # normal and 20 TB at 0.8 internally
    a_true = [0] * 10 + [2] * 30
    a_pat = [f"a{i}" for i in range(40)]
    outer = _predictions(["a"] * 40, a_true, [0] * 40, a_pat)
    shared = outer.iloc[[0, 1, 2, *range(10, 19)]]
    c_true = [0] * 20 + [2] * 20
    c_pred = [0] * 16 + [2] * 4 + [2] * 16 + [0] * 4
    inner = pd.concat(
        [
            shared.assign(pred_hard_index=shared["true_index"]),
            _predictions(["c"] * 40, c_true, c_pred, [f"c{i}" for i in range(40)]),
        ],
        ignore_index=True,
    )
    b_outer = _predictions(["b"] * 12, [0] * 12, [0] * 12, [f"b{i}" for i in range(12)])
    t = external_table(
        plan, {("a", "global"): outer, ("b", "global"): b_outer}, {"global": inner}, n_boot=200, seed=0, min_patients=5
    ).set_index(["source", "scheme"])
    ext = t.loc[("a", "external")]
    assert ext["n"] == 40 and ext["accuracy"] == 0.25 and ext["no_skill_accuracy"] == 0.75
    assert ext["balanced_accuracy"] == 0.5 and ext["recall_normal"] == 1.0 and ext["recall_tb"] == 0.0
    both = t.loc[("a", "external, shared films")]
    assert both["n"] == t.loc[("a", "internal, shared films"), "n"] == 12
    assert t.loc[("a", "internal, shared films"), "accuracy"] == 1.0 and both["accuracy"] == 0.25
    assert both["difference"] == -0.75 and both["difference_ci_high"] < 0  # the same films: paired
    # the control has the external group's size and class mix: 40 films, 10 normal, 30 TB
    # (more TB than the pool's 20: drawn with replacement)
    control = t.loc[("a", "internal, class-matched control")]
    assert control["n"] == 40 and control["accuracy"] == pytest.approx(0.8, abs=0.03)
    assert control["accuracy_ci_low"] < 0.8 < control["accuracy_ci_high"] and "draws with " in control["note"]
    # b sent no film to the internal test split: said so, no figures; its control still drawn
    assert (
        t.loc[("b", "internal, shared films"), "n"] == 0 and "no film" in t.loc[("b", "internal, shared films"), "note"]
    )
    b_control = t.loc[("b", "internal, class-matched control")]
    assert b_control["n"] == 12 and b_control["accuracy"] == pytest.approx(0.8, abs=0.05)
    assert "draws without" in b_control["note"]
    assert t.loc[("c", "external"), "note"] == "not held out: no other source holds covid19"
    whole = t.loc[("all sources", "internal")]
    assert whole["n"] == 52 and whole["n_patients"] == 52


def test_a_temperature_that_runs_to_its_bound_is_not_applied_and_the_table_says_why() -> None:
    from patchcxr.evaluation.calibration import calibration_tables, fit_temperature

    # every validation film right: the likelihood rises without end as T falls, the fit
    # stops at the bound 0.05, and applied it would make a test film's true-class
    # probability of 0.3 about 1e-6
    val = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.2, 0.1, 0.6, 0.1], [0.1, 0.1, 0.2, 0.6]])
    val_y = np.arange(4)
    assert fit_temperature(val, val_y) == pytest.approx(0.05, rel=0.02)
    test = np.array([[0.5, 0.3, 0.1, 0.1], [0.3, 0.5, 0.1, 0.1]])
    test_y = np.array([1, 1])

    def table(probs: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        cols = {f"prob_{n}": probs[:, k] for k, n in enumerate(NAMES)}
        return pd.DataFrame({"true_index": y, "patient_id": [f"p{i}" for i in range(len(y))], **cols})

    summary, _ = calibration_tables(
        table(val, val_y), table(test, test_y), NAMES, bins=10, n_boot=20, seed=0, min_patients=1
    )
    rows = summary.set_index("calibration")
    assert rows.loc["temperature", "temperature"] == 1.0
    assert rows.loc["temperature", "nll"] == pytest.approx(rows.loc["uncalibrated", "nll"])  # nothing applied
    assert (
        "not fitted: the fit ran to its bound T = 0.05 (4 of 4 validation films right"
        in rows.loc["temperature", "note"]
    )
    assert rows.loc["uncalibrated", "note"] == ""


def test_the_source_only_baseline_learns_each_sources_main_class_on_training_films_only() -> None:
    from patchcxr.evaluation.baselines import rule_text, source_only_predictions
    from patchcxr.paper.tables import source_only_rows

    # source a: normals (train) and 4 TB test films; source b: TB; source c only in test
    rows = [("a", "normal", "train")] * 10 + [("a", "tb", "train")] * 2 + [("b", "tb", "train")] * 8
    rows += [("a", "normal", "test")] * 4 + [("a", "tb", "test")] * 4 + [("b", "tb", "test")] * 4
    rows += [("c", "tb", "test")] * 2
    cohort = pd.DataFrame(rows, columns=["source", "label4", "split"]).assign(
        image_id=[f"f{i}" for i in range(len(rows))], patient_id=[f"p{i}" for i in range(len(rows))]
    )
    pred, rule = source_only_predictions(cohort[["image_id", "split"]], cohort, "label4", NAMES)
    # the test films never teach the rule: a's test films are half TB, its training films mostly normal
    # c, unseen in training, gets the training films' main class (10 normal, 10 TB: a tie, by name)
    assert rule == {"a": "normal", "b": "tb", "*": "normal"}
    assert len(pred) == 14 and (pred.loc[pred["source"] == "c", "pred_hard"] == "normal").all()
    assert float((pred["true_index"] == pred["pred_hard_index"]).mean()) == pytest.approx(8 / 14)
    assert rule_text(rule) == "a → normal; b → tb; other → normal"
    m = metrics_long(pred["true_index"].to_numpy(), pred["pred_hard_index"].to_numpy(), NAMES, n_boot=50)
    table = source_only_rows(m.assign(rule=rule_text(rule))).set_index("class")
    assert table.loc["tb", "recall"].startswith("0.400") and "a → normal" in table.loc["tb", "initialisation"]


def _films(probs: np.ndarray, y: np.ndarray, prefix: str) -> pd.DataFrame:
    """Films with their soft-vote probabilities, one patient each."""
    cols = {f"prob_{n}": probs[:, k] for k, n in enumerate(NAMES)}
    return pd.DataFrame({"true_index": y, "patient_id": [f"{prefix}{i}" for i in range(len(y))], **cols})


def _calibrated(rng: np.random.Generator, n: int, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior probabilities of ``n`` films under the class ``prior`` and true classes
    drawn from them (a perfectly calibrated model)."""
    likelihood = np.exp(rng.normal(0, 1.5, (n, len(prior))))
    posterior = likelihood * prior / (likelihood * prior).sum(axis=1, keepdims=True)
    return posterior, np.array([rng.choice(len(prior), p=row) for row in posterior])


def test_ece_of_a_calibrated_model_on_few_films_lies_in_its_null_band_and_small_n_gets_no_figures() -> None:
    from patchcxr.evaluation.calibration import calibration_tables, ece_null_band, expected_calibration_error

    rng = np.random.default_rng(1)
    prior = np.full(4, 0.25)
    eces, inside = [], []
    for _ in range(200):
        probs, y = _calibrated(rng, 17, prior)
        ece = expected_calibration_error(probs, y, 10)
        eces.append(ece)
        inside.append(ece <= ece_null_band(probs, 10, n_draws=200, seed=0)[1])
    # the review's figure: about 0.2 at n = 17 for a perfectly calibrated model
    assert 0.15 < np.mean(eces) < 0.3 and np.mean(inside) >= 0.9
    probs, y = _calibrated(rng, 30, prior)
    films = _films(probs, y, "p").assign(patient_id=[f"p{i // 3}" for i in range(30)])
    summary, reliability = calibration_tables(films, films, NAMES, bins=10, n_boot=20, seed=0, min_patients=11)
    assert summary["ece"].isna().all() and summary["nll"].isna().all()
    assert summary["note"].str.startswith("10 patients < statistics.min_patients (11)").all()
    assert len(reliability) == 20  # the diagram's bins still drawn


def test_the_training_prior_restores_what_class_balanced_training_removed() -> None:
    from patchcxr.evaluation.calibration import calibration_tables, prior_corrected, training_prior

    # a cohort 70 % normal; the model, trained on class-balanced draws, reports the posterior
    # under equal classes; restoring the prior gives back the true posterior exactly
    rng = np.random.default_rng(2)
    prior = np.array([0.7, 0.1, 0.1, 0.1])
    posterior, y = _calibrated(rng, 4000, prior)
    balanced = posterior / prior / (posterior / prior).sum(axis=1, keepdims=True)
    assert np.allclose(prior_corrected(balanced, prior), posterior)
    val, test = _films(balanced[:2000], y[:2000], "v"), _films(balanced[2000:], y[2000:], "t")

    summary, _ = calibration_tables(val, test, NAMES, bins=10, n_boot=50, seed=0, min_patients=10, prior=list(prior))
    rows = summary.set_index("calibration")
    # a temperature alone cannot move the classes' balance; the prior can
    assert rows.loc["prior + temperature", "nll"] < rows.loc["temperature", "nll"] - 0.05
    assert rows.loc["prior + temperature", "temperature"] == pytest.approx(1.0, abs=0.1)
    assert rows.loc["prior + temperature", "nll_difference_ci_high"] < 0
    assert "training prior (normal 0.70" in rows.loc["prior + temperature", "note"]
    split = pd.DataFrame(
        {"split": ["train"] * 10 + ["test"], "label4": ["normal"] * 7 + ["tb", "bacterial", "viral_covid19", "tb"]}
    )
    assert training_prior(split, "label4", NAMES) == pytest.approx([0.7, 0.1, 0.1, 0.1])
    assert training_prior(split.iloc[:7], "label4", NAMES) is None  # a class without training films


def test_no_auc_below_the_minimum_patients_and_no_macro_over_fewer_classes() -> None:
    from patchcxr.evaluation.metrics import auc_long

    # 40 films: 30 normal (30 patients), 10 TB from 3 patients; perfect scores
    y = np.array([0] * 30 + [2] * 10)
    scores = np.eye(4)[y] * 0.9 + 0.025
    groups = np.array([f"n{i}" for i in range(30)] + [f"t{i % 3}" for i in range(10)])
    table = auc_long(y, scores, NAMES, groups=groups, n_boot=50, min_patients=5).set_index("class")
    assert np.isnan(table.loc["tb", "value"]) and table.loc["tb", "note"].startswith("3 positive and 30 negative")
    assert np.isnan(table.loc["normal", "value"])  # its negatives are the 3 TB patients
    assert np.isnan(table.loc["macro", "value"]) and "no macro AUC" in table.loc["macro", "note"]
    enough = auc_long(y, scores, NAMES, groups=groups, n_boot=50, min_patients=3).set_index("class")
    assert enough.loc["tb", "value"] == 1.0 and enough.loc["macro", "value"] == 1.0 and enough.loc["tb", "note"] == ""

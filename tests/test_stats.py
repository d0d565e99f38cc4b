"""The statistics core (patchcxr.stats) on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from patchcxr.stats import (
    adjust_p,
    bootstrap_interval,
    bootstrap_p,
    bootstrap_resamples,
    cluster_mean_interval,
    cluster_permutation_p,
    interval_columns,
    percentile_interval,
    run_level_difference,
    two_sample_interval,
    with_intervals,
)


def test_percentile_interval_is_vectorised_and_leaves_out_what_does_not_exist() -> None:
    draws = np.column_stack([np.arange(101.0), np.full(101, np.nan), np.r_[np.arange(100.0), np.inf]])
    lo, hi = percentile_interval(draws)
    assert lo[0] == pytest.approx(2.5) and hi[0] == pytest.approx(97.5)
    assert np.isnan(lo[1]) and np.isnan(hi[1])  # no finite draw: no interval
    assert lo[2] == pytest.approx(np.percentile(np.arange(100.0), 2.5))  # the infinite draw is left out
    assert interval_columns("accuracy") == ("accuracy_ci_low", "accuracy_ci_high")
    assert with_intervals(("a", "b"), (0.5, 0.7), (0.4, 0.6), (0.6, 0.8)) == {
        **{"a": 0.5, "a_ci_low": 0.4, "a_ci_high": 0.6},
        **{"b": 0.7, "b_ci_low": 0.6, "b_ci_high": 0.8},
    }


def test_bootstrap_resamples_keep_each_patient_whole() -> None:
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    for idx in bootstrap_resamples(len(groups), groups, n_boot=50, seed=1):
        drawn = groups[idx]
        for g in "abc":  # a patient comes with all its images, as many times as it was drawn
            assert (drawn == g).sum() % (groups == g).sum() == 0
    a = [i.tolist() for i in bootstrap_resamples(6, groups, n_boot=5, seed=3)]
    assert a == [i.tolist() for i in bootstrap_resamples(6, groups, n_boot=5, seed=3)]


def test_cluster_mean_interval_draws_the_same_resamples_as_the_loop() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), rng.integers(1, 4, 30))
    values = rng.normal(size=len(groups)) + groups % 3
    fast = cluster_mean_interval(values, groups, n_boot=500, seed=7)
    lo, hi = bootstrap_interval(lambda i: float(values[i].mean()), len(values), groups, n_boot=500, seed=7)
    assert fast == pytest.approx((lo[0], hi[0]))


def test_the_patient_interval_is_wider_than_the_image_interval_when_patients_repeat() -> None:
    # 20 patients, 10 films each, films of a patient nearly identical: 20 independent values, not 200
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(20), 10)
    values = rng.normal(size=20)[groups] + rng.normal(scale=0.01, size=200)
    by_patient = np.subtract(*cluster_mean_interval(values, groups, n_boot=1000, seed=0)[::-1])
    by_image = np.subtract(*cluster_mean_interval(values, np.arange(200), n_boot=1000, seed=0)[::-1])
    assert by_patient > 2.5 * by_image


def test_bootstrap_p_is_never_zero_and_symmetric() -> None:
    assert bootstrap_p(np.full(99, 0.3)) == pytest.approx(2 / 100)
    assert bootstrap_p(np.r_[np.full(50, -1.0), np.full(50, 1.0)]) == 1.0
    assert np.isnan(bootstrap_p(np.array([np.nan])))


def test_adjust_p_holm_and_benjamini_hochberg() -> None:
    assert adjust_p([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_p([0.01, 0.04, 0.03], "fdr_bh") == pytest.approx([0.03, 0.04, 0.04])
    out = adjust_p([0.2, np.nan])
    assert out[0] == pytest.approx(0.2) and np.isnan(out[1])


def test_two_sample_interval_covers_a_known_difference() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)

    def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(x.mean(axis=axis) - y.mean(axis=axis))

    lo, hi = two_sample_interval(a, b, mean_difference, n_boot=999, seed=0)
    assert lo < 1.0 < hi and hi - lo < 0.6


def test_the_run_level_test_holds_its_level_with_three_runs_and_says_nothing_with_one() -> None:
    # a true null: two conditions whose training runs scatter alike (sd 0.03 of mean Jaccard),
    # three runs each; 4,000 simulated comparisons reject at 5 % within 5 % +- 2 %
    from scipy import stats as st

    rng = np.random.default_rng(0)
    runs = rng.normal(0.0, 0.03, (4000, 2, 3))
    p = np.array([run_level_difference(a, b)[3] for a, b in runs])
    assert 0.03 <= float(np.mean(p < 0.05)) <= 0.07
    # the same p and interval as Welch's t (scipy), and a real difference found
    a, b = np.array([0.91, 0.93, 0.92]), np.array([0.88, 0.87, 0.89])
    diff, lo, hi, p_ab = run_level_difference(a, b)
    welch = st.ttest_ind(a, b, equal_var=False)
    assert diff == pytest.approx(0.04) and p_ab == pytest.approx(welch.pvalue) and 0 < lo < 0.04 < hi and p_ab < 0.01
    # one run (or no spread at all): no interval, no p
    assert np.isnan(run_level_difference(a[:1], b)[3]) and np.isnan(run_level_difference(a[:1], b)[1])
    assert np.isnan(run_level_difference(np.full(3, 0.9), np.full(3, 0.8))[3])


def test_cluster_permutation_p_finds_a_real_label_and_not_a_random_one() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 3)
    labels = np.repeat(rng.permutation(np.r_[np.zeros(20), np.ones(20)]), 3)
    signal = labels + rng.normal(scale=0.3, size=len(labels))  # the label can be read from the film

    def separation(values: np.ndarray) -> object:
        return lambda lab: float(values[lab == 1].mean() - values[lab == 0].mean())

    assert cluster_permutation_p(separation(signal), labels, groups, n_perm=199, seed=0) == pytest.approx(1 / 200)
    # films that say nothing of the label: p-values spread over (0, 1], mean near 1/2
    null = [
        cluster_permutation_p(separation(rng.normal(size=len(labels))), labels, groups, n_perm=99, seed=k)
        for k in range(40)
    ]
    assert 0.35 < float(np.mean(null)) < 0.65 and np.mean(np.array(null) <= 0.05) <= 0.15
    mixed = labels.copy()
    mixed[0] = 1 - mixed[0]
    with pytest.raises(ValueError, match="one label each"):
        cluster_permutation_p(separation(signal), mixed, groups, n_perm=9, seed=0)

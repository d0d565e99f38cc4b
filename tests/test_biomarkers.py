"""Biomarkers: features on known masks, and the statistics on planted effects — an effect
is found where one is planted (power) and not where none is (false-positive rate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from patchcxr.biomarkers.features import FeatureSettings, geometry, image_features, widest
from patchcxr.biomarkers.statistics import compare_classes, compare_groups
from patchcxr.classification.settings import InputSettings
from patchcxr.preprocess import PreprocessSettings
from patchcxr.synthetic import Effect, render, sample_spec
from patchcxr.synthetic.exposure import EXPOSURES, expose

SETTINGS = FeatureSettings(size=128, patches=16, preprocessing=PreprocessSettings(crop_band=False))


def test_widest_and_ctr_on_a_drawn_mask() -> None:
    lab = np.zeros((100, 100), np.uint8)
    lab[20:80, 10:40] = 3  # right lung (image left), 30 wide
    lab[20:80, 60:90] = 2  # left lung, 30 wide
    lab[60:85, 35:70] = 1  # heart, 35 wide
    assert widest(lab == 1) == 35
    g = geometry(lab)
    assert g["ctr"] == pytest.approx(35 / 80)  # thorax from column 10 to 89
    # the heart (rows 60-84) overwrote 20 rows of 5 right-lung and 10 left-lung columns
    assert g["lung_area_px"] == 3600 - 100 - 200
    assert g["left_right_ratio"] == pytest.approx(1600 / 1700)
    assert g["lung_thorax_ratio"] == pytest.approx(3300 / (60 * 80))


def phantom_features(label: str, effect: Effect, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    r = render(sample_spec(rng, label, effect), 160, 160)
    pixels = np.round(expose(r.density, rng, EXPOSURES["cohen"]) * 255).astype(np.uint8)
    return image_features(pixels, "cohen", r.labels, None, settings=SETTINGS, seed=seed)


def cohort(effect: Effect, seed: int, feature: str, n: int = 15) -> dict[str, np.ndarray]:
    """Two groups of ``n`` normal-looking phantoms; the second carries ``effect``."""
    a = [phantom_features("normal", Effect(), seed * 1000 + i)[feature] for i in range(n)]
    b = [phantom_features("normal", effect, seed * 1000 + 500 + i)[feature] for i in range(n)]
    return {"control": np.array(a), "case": np.array(b)}


def kruskal_p(values: dict[str, np.ndarray], feature: str) -> float:
    rows = compare_groups(values, feature, "all", seed=0)
    return next(r["p_value"] for r in rows if r["test"] == "kruskal-wallis")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("effect", "feature"),
    [
        (Effect(lung_std_scale=1.5), "minmax_std"),
        (Effect(lung_mean_shift=-0.05), "minmax_mean"),
        # equalisation is rank-based: the paper's feature sees a spread of lung intensities
        # only once it overlaps other tissues (a scale of 1.5 leaves it unchanged)
        (Effect(lung_std_scale=4.0), "intensity_std"),
    ],
)
def test_planted_effect_is_detected(effect: Effect, feature: str) -> None:
    hits = [kruskal_p(cohort(effect, seed, feature), feature) < 0.05 for seed in range(10)]
    assert sum(hits) >= 8  # power >= 80 % at n = 15 per group


@pytest.mark.slow
@pytest.mark.parametrize("feature", ["minmax_mean", "intensity_std"])
def test_no_planted_effect_gives_about_alpha_false_positives(feature: str) -> None:
    p = np.array([kruskal_p(cohort(Effect(), seed, feature), feature) for seed in range(40)])
    # under the null the p-values are uniform: about 5 % below 0.05, and not piled up
    assert (p < 0.05).mean() <= 0.125
    assert 0.3 < np.median(p) < 0.7


def test_tests_table_covers_scopes_tests_and_holm() -> None:
    rng = np.random.default_rng(0)
    n = 60
    feats = pd.DataFrame(
        {
            "image_id": [f"s/{i}" for i in range(n)],
            "patient_id": [f"s:{i}" for i in range(n)],
            "source": np.where(np.arange(n) % 2, "a", "b"),
            "view": np.where(np.arange(n) % 5 == 0, "AP Supine", "PA"),
            "label5": np.repeat(["normal", "covid19", "tb"], n // 3),
        }
    )
    for f in ("intensity_mean", "intensity_std", "ctr"):
        feats[f] = rng.normal(size=n)
    feats.loc[feats["label5"] == "covid19", "intensity_std"] += 3  # a planted shift
    t = compare_classes(feats, tested=["intensity_mean", "intensity_std", "ctr"])
    assert set(t["scope"]) == {"all", "source:a", "source:b", "without AP supine", "PA only"}
    pa = t[(t["scope"] == "PA only") & (t["test"] == "welch-t") & (t["feature"] == "ctr")]
    pa = pa[(pa["group_a"] == "covid19") & (pa["group_b"] == "normal")].iloc[0]
    in_pa = feats[(feats["view"] == "PA") & feats["label5"].isin(["covid19", "normal"])]
    assert pa["n_a"] + pa["n_b"] == len(in_pa) < (feats["label5"].isin(["covid19", "normal"])).sum()
    assert {"kruskal-wallis", "anova", "mann-whitney", "welch-t"} <= set(t["test"])
    pair = t[
        (t["scope"] == "all")
        & (t["feature"] == "intensity_std")
        & (t["test"] == "welch-t")
        & (t["group_a"] == "covid19")
        & (t["group_b"] == "normal")
    ].iloc[0]
    assert pair["p_adjusted"] < 0.001 and pair["ci_low"] < 3 < pair["ci_high"]  # the planted difference
    assert pair["family"] == "exploratory"  # Welch's test is not the declared primary test
    mw = t[(t["test"] == "mann-whitney") & (t["scope"] == "all") & (t["feature"] == "intensity_std")]
    assert (mw["p_adjusted"] >= mw["p_value"]).all()
    # the primary family: 3 features x the 2 classes against covid19, Holm over those 6
    primary = t[t["family"] == "primary"]
    assert len(primary) == 6 and set(primary["feature"]) == {"intensity_mean", "intensity_std", "ctr"}
    assert ((primary["group_a"] == "covid19") | (primary["group_b"] == "covid19")).all()
    from statsmodels.stats.multitest import multipletests

    assert np.allclose(primary["p_adjusted"], multipletests(primary["p_value"], method="holm")[1])
    rest = t[t["family"] == "exploratory"]
    assert len(rest) > 50 and np.allclose(rest["p_adjusted"], multipletests(rest["p_value"], method="fdr_bh")[1])
    assert t.loc[t["test"] == "anova", "note"].str.contains("levene").all()


def test_every_computed_feature_is_in_the_table_and_tested() -> None:
    from patchcxr.biomarkers.features import FEATURES
    from patchcxr.biomarkers.statistics import TESTED

    computed = phantom_features("normal", Effect(), 0)
    assert set(FEATURES) - {"lung_area_mm2"} == set(computed)
    assert set(TESTED) <= set(FEATURES)
    assert {"minmax_mean", "minmax_std", "intensity_mean", "intensity_std", "ctr"} <= set(TESTED)


def test_patch_analysis_draws_the_classifiers_patches_at_its_size() -> None:
    from patchcxr.biomarkers.features import patch_stats
    from patchcxr.classification.patches import sample_centres, windows
    from patchcxr.classification.settings import ClassifierSettings

    # the classifier: 64² patches on 256² inputs -> 32² patches on a 128² analysis image
    fs = FeatureSettings(size=128, patches=40, sampler=ClassifierSettings(patch=64), classifier_input=256)
    assert fs.patch == 32
    # a lung touching the bottom-right corner: windows there are shifted inside the image
    # and keep their full 32² size, exactly as the classifier's patches
    rng = np.random.default_rng(3)
    img = rng.normal(100, 20, (128, 128))
    lungs = np.zeros((128, 128), bool)
    lungs[70:, 80:] = True
    got = patch_stats(img, lungs, fs, np.random.default_rng(5))
    wins = windows(sample_centres(lungs, 40, np.random.default_rng(5), "joint"), img.shape, 32, "shift")
    assert ((wins[:, 2] - wins[:, 0]) == 32).all() and (wins[:, 2] == 128).any()
    parts = [img[t:b, left:r][lungs[t:b, left:r]] for t, left, b, r in wins.tolist()]
    assert got["intra_patch_var"] == pytest.approx(np.mean([p.var() for p in parts]), rel=1e-12)
    assert got["inter_patch_var"] == pytest.approx(np.var([p.mean() for p in parts]), rel=1e-12)


def test_feature_settings_take_the_patch_from_the_classification_section() -> None:
    inputs = InputSettings.from_config(
        {"input_size": 256, "mask_source": "truth_where_available"}, {"gamma": 0.4, "crop_blank_band": False}
    )
    fs = FeatureSettings.from_config(
        {"size": 1024, "patches": 32, "seed": 1}, {"patch": 64, "centre": "independent", "border": "clip"}, inputs
    )
    assert fs.patch == 256 and fs.sampler.centre == "independent" and fs.sampler.border == "clip"
    # the input settings come whole from the classifier's (results/classification/inputs.json)
    assert fs.classifier_input == 256 and fs.mask_source == "truth_where_available"
    assert fs.preprocessing.gamma == 0.4 and not fs.preprocessing.crop_band


@pytest.mark.parametrize(
    ("source", "kind", "area"),
    [("predicted", "predicted", 2 * 30 * 30), ("truth_where_available", "truth", 2 * 40 * 35)],
)
def test_features_read_the_predicted_mask_unless_ground_truth_is_asked_for(
    tmp_path: Path, source: str, kind: str, area: int
) -> None:
    from patchcxr.biomarkers.features import features_for
    from tests.helpers import film_with_two_masks

    rows, _, masks = film_with_two_masks(tmp_path)
    fs = FeatureSettings(size=64, patches=4, preprocessing=PreprocessSettings(crop_band=False), mask_source=source)
    row = features_for(rows, dict(zip(masks["image_id"], masks["mask_path"], strict=True)), fs).iloc[0]
    assert row["mask_source"] == kind and row["lung_area_px"] == area


def test_patch_positions_follow_the_image_not_its_place_in_the_shard(tmp_path: Path) -> None:
    from patchcxr.biomarkers.features import features_for
    from tests.helpers import film_with_two_masks

    rows, _, masks = film_with_two_masks(tmp_path)
    other = rows.assign(image_id="montgomery/b")  # the same film under another id, listed first
    predicted = {"montgomery/a": masks["mask_path"].iloc[0], "montgomery/b": masks["mask_path"].iloc[0]}
    fs = FeatureSettings(size=64, patches=4, preprocessing=PreprocessSettings(crop_band=False))
    alone = features_for(rows, predicted, fs).set_index("image_id")
    second = features_for(pd.concat([other, rows]), predicted, fs).set_index("image_id")
    assert alone.loc["montgomery/a", "intra_patch_var"] == second.loc["montgomery/a", "intra_patch_var"]


def test_repeated_films_of_a_patient_count_once() -> None:
    # 6 covid19 patients with 5 films each against 6 normal patients with one film: the
    # tests see 6 against 6 patients, not 30 against 6 images
    rng = np.random.default_rng(1)
    covid = pd.DataFrame({"patient_id": np.repeat([f"c{i}" for i in range(6)], 5), "label5": "covid19"})
    normal = pd.DataFrame({"patient_id": [f"n{i}" for i in range(6)], "label5": "normal"})
    feats = pd.concat([covid, normal], ignore_index=True).assign(source="s", view="PA")
    feats["image_id"] = [f"s/{i}" for i in range(len(feats))]
    feats["intensity_std"] = rng.normal(size=len(feats))
    t = compare_classes(feats, tested=["intensity_std"])
    mw = t[(t["scope"] == "all") & (t["test"] == "mann-whitney")].iloc[0]
    assert (mw["n_a"], mw["n_b"]) == (6, 6)
    means = feats.groupby("patient_id")["intensity_std"].mean()
    from scipy import stats

    x = means[means.index.str.startswith("c")].to_numpy()
    y = means[means.index.str.startswith("n")].to_numpy()
    assert mw["p_value"] == pytest.approx(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def test_ctr_takes_the_hearts_full_horizontal_extent_not_its_widest_row() -> None:
    # a heart slanting down to the left: its right border is widest at the top rows and its
    # left border at the bottom rows; no single row spans both
    lab = np.zeros((100, 100), np.uint8)
    lab[20:80, 10:40] = 3
    lab[20:80, 60:90] = 2
    lab[50:60, 40:55] = 1  # upper part: columns 40-54
    lab[60:70, 48:66] = 1  # lower part: columns 48-65
    assert widest(lab == 1) == 18
    assert geometry(lab)["ctr"] == pytest.approx((66 - 40) / 80)  # 26 columns over the 80-wide thorax
    # stray pixels of a predicted mask, far from the organs, set no extent
    stray = lab.copy()
    stray[5, 95] = 1  # a "heart" pixel at the far right
    stray[95, 2] = 3  # a "lung" pixel beyond the left border
    assert geometry(stray)["ctr"] == pytest.approx((66 - 40) / 80)

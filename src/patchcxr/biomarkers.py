"""Lung biomarkers and their statistical comparison across classes (method.md §7).

The paper motivates its patch-based design with a statistical analysis of candidate
biomarkers: lung morphology, mean and variance of lung intensity, and the cardiothoracic
ratio (CTR); COVID-19 showed lower mean and (with viral pneumonia) higher variance of lung
intensity, and an intra- versus inter-patch analysis suggested that the *global*
distribution of intensity matters more than local texture. No public code implements it.

Features (one row per image, :func:`image_features`) are computed on the preprocessed image
(the paper's universal preprocessing, resized to ``size``) inside the lung mask — the
source's ground-truth mask where it has one, the predicted one otherwise (recorded in
``mask_source``):

* ``lung_area_px`` (at the image's own resolution) and ``lung_area_mm2`` where the pixel
  spacing is known (JSRT 0.175 mm at 2048², Montgomery 0.0875 mm at 4020×4892);
* ``lung_thorax_ratio``: lung area over the area of the thorax box (widest extent of the
  lungs × their height);
* ``left_right_ratio``: left over right lung area;
* ``intensity_mean``, ``intensity_std``, ``intensity_skew``, ``intensity_kurtosis`` of the
  lung pixels (scipy.stats for the higher moments; kurtosis is Fisher's, 0 for a normal);
* ``ctr``: the transverse cardiac diameter (the heart's full horizontal extent, MRD + MLD)
  over the thoracic width (the outer borders of the two lungs), the radiographic definition
  (Danzer 1919), both measured on the largest connected component of the heart and of each
  lung: a predicted mask (not cleaned up, as the paper's) can hold stray pixels far from
  the organ, and one of them would set an extent;
* ``minmax_mean``, ``minmax_std``: the same statistics on the image only min-max scaled.
  Histogram equalisation is rank-based: a shift or a spread of lung intensities that does
  not change their rank among the other tissues leaves the equalised image unchanged, so
  the paper's features cannot see it; these two can (the synthetic planted effects show
  the difference, tests/test_biomarkers.py);
* ``intra_patch_var`` (mean within-patch variance of lung intensity over ``patches``
  patches drawn as the classifier draws them, at its patch size), ``inter_patch_var``
  (variance of the patch means) and their ratio — the paper's intra- versus inter-patch
  comparison.

Statistics (:func:`compare_classes`) use scipy and statsmodels only.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from patchcxr.classification.patches import sample_centres, windows
from patchcxr.classification.settings import ClassifierSettings, InputSettings, settings_from
from patchcxr.data.labels import LUNG_VALUES, LabelValue
from patchcxr.io import read_png
from patchcxr.masks import TRUTH, choose_mask, largest_component
from patchcxr.preprocess import PreprocessSettings, preprocess, resize_labels
from patchcxr.stats import adjust_p, two_sample_interval

log = logging.getLogger(__name__)

#: native pixel spacing (mm) of sources whose films keep their original size
PIXEL_SPACING = {("jsrt", 2048, 2048): 0.175, ("montgomery", 4892, 4020): 0.0875, ("montgomery", 4020, 4892): 0.0875}
FEATURES = [
    "lung_area_px",
    "lung_area_mm2",
    "lung_thorax_ratio",
    "left_right_ratio",
    "intensity_mean",
    "intensity_std",
    "intensity_skew",
    "intensity_kurtosis",
    "ctr",
    "intra_patch_var",
    "inter_patch_var",
    "intra_inter_ratio",
    "minmax_mean",
    "minmax_std",
]
#: the features compared across classes by default (the paper's four, and the patch analysis)
TESTED = [
    "intensity_mean",
    "intensity_std",
    "intensity_skew",
    "intensity_kurtosis",
    "ctr",
    "lung_thorax_ratio",
    "left_right_ratio",
    "intra_patch_var",
    "inter_patch_var",
    "intra_inter_ratio",
    "minmax_mean",
    "minmax_std",
]


@dataclass(frozen=True)
class FeatureSettings:
    """Config ``biomarkers`` (analysis size, patch analysis) and ``preprocessing``.

    The intra- versus inter-patch analysis draws its patches as the classifier does
    (:mod:`patchcxr.classification.patches`: ``sampler``'s centre and border modes), at the
    classifier's patch size scaled from the classifier's input size to ``size``."""

    size: int = 1024
    patches: int = 32
    seed: int = 2020
    preprocessing: PreprocessSettings = field(default_factory=PreprocessSettings)
    sampler: ClassifierSettings = field(default_factory=ClassifierSettings)
    classifier_input: int = InputSettings().size
    #: predicted (every image, the default) or truth_where_available (:mod:`patchcxr.masks`)
    mask_source: str = "predicted"

    @property
    def patch(self) -> int:
        """The classifier's patch side on the analysis image (at least 8 pixels)."""
        return max(8, round(self.sampler.patch * self.size / self.classifier_input))

    @classmethod
    def from_config(
        cls, biomarkers: Mapping[str, Any], classifier_train: Mapping[str, Any], inputs: InputSettings
    ) -> FeatureSettings:
        """From the ``biomarkers`` section, the classifier's training settings
        (``classification.train``: its patch sampler) and its input settings (the
        workflow's ``results/classification/inputs.json``: size, preprocessing, mask
        source)."""
        return cls(
            size=int(biomarkers["size"]),
            patches=int(biomarkers["patches"]),
            seed=int(biomarkers["seed"]),
            preprocessing=inputs.preprocessing,
            sampler=settings_from(classifier_train),
            classifier_input=inputs.size,
            mask_source=inputs.mask_source,
        )


def widest(mask: np.ndarray) -> int:
    """The largest horizontal extent (columns, inclusive) of ``mask`` over its rows."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0
    sub = mask[rows]
    first = sub.argmax(axis=1)
    last = sub.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    return int((last - first + 1).max())


def horizontal_extent(mask: np.ndarray) -> int:
    """Columns from the leftmost to the rightmost pixel of ``mask`` (inclusive): for the
    heart, its right and left borders' greatest distances from the midline added (MRD +
    MLD), whichever rows they lie on — the transverse cardiac diameter of Danzer's
    cardiothoracic ratio (Danzer, Am J Med Sci 1919), not the widest single row."""
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[-1] - cols[0] + 1) if cols.size else 0


def geometry(labels: np.ndarray) -> dict[str, float]:
    """Area and shape features of a label map at the image's own resolution (areas count
    every pixel; the extents of the CTR take each organ's largest component)."""
    left, right, heart = labels == LabelValue.LEFT_LUNG, labels == LabelValue.RIGHT_LUNG, labels == LabelValue.HEART
    lungs = left | right
    area = int(lungs.sum())
    out: dict[str, float] = {"lung_area_px": float(area)}
    if area == 0:
        return out | {"lung_thorax_ratio": np.nan, "left_right_ratio": np.nan, "ctr": np.nan}
    rows = np.flatnonzero(lungs.any(axis=1))
    cols = np.flatnonzero(lungs.any(axis=0))
    out["lung_thorax_ratio"] = area / ((rows[-1] - rows[0] + 1) * float(cols[-1] - cols[0] + 1))
    out["left_right_ratio"] = float(left.sum()) / float(right.sum()) if right.any() else np.nan
    # outer border of one lung to that of the other, each lung by its largest component
    body = largest_component(left, diagonal=True) | largest_component(right, diagonal=True)
    body_cols = np.flatnonzero(body.any(axis=0))
    thorax_width = float(body_cols[-1] - body_cols[0] + 1)
    out["ctr"] = horizontal_extent(largest_component(heart, diagonal=True)) / thorax_width if heart.any() else np.nan
    return out


def patch_stats(
    img: np.ndarray, lungs: np.ndarray, settings: FeatureSettings, rng: np.random.Generator
) -> dict[str, float]:
    """Intra- and inter-patch variance of lung intensity over ``settings.patches`` patches
    drawn by the classifier's sampler (lung-centred, its border mode); the variances are
    of the lung pixels inside each window."""
    if not lungs.any():
        return {"intra_patch_var": np.nan, "inter_patch_var": np.nan, "intra_inter_ratio": np.nan}
    s = settings.sampler
    centres = sample_centres(lungs, settings.patches, rng, s.centre)
    means, variances = [], []
    for top, left, bottom, right in windows(centres, img.shape, settings.patch, s.border).tolist():
        window = img[top:bottom, left:right][lungs[top:bottom, left:right]]
        if window.size > 1:
            means.append(window.mean())
            variances.append(window.var())
    intra = float(np.mean(variances)) if variances else np.nan
    inter = float(np.var(means)) if len(means) > 1 else np.nan
    return {
        "intra_patch_var": intra,
        "inter_patch_var": inter,
        "intra_inter_ratio": intra / inter if inter and not np.isnan(inter) else np.nan,
    }


def intensity_features(
    img: np.ndarray, labels: np.ndarray, settings: FeatureSettings, rng: np.random.Generator
) -> dict[str, float]:
    """Lung intensity statistics of a preprocessed image and its label map (same size)."""
    lungs = np.isin(labels, LUNG_VALUES)
    values = img[lungs].astype(np.float64)
    if values.size < 3:
        return {
            k: np.nan
            for k in (
                "intensity_mean",
                "intensity_std",
                "intensity_skew",
                "intensity_kurtosis",
                "intra_patch_var",
                "inter_patch_var",
                "intra_inter_ratio",
            )
        }
    out = {
        "intensity_mean": float(values.mean()),
        "intensity_std": float(values.std(ddof=1)),
        "intensity_skew": float(stats.skew(values)),
        "intensity_kurtosis": float(stats.kurtosis(values)),
    }
    return out | patch_stats(img, lungs, settings, rng)


def image_features(
    pixels: np.ndarray,
    fmt: str,
    labels: np.ndarray,
    heart_labels: np.ndarray | None,
    *,
    settings: FeatureSettings,
    seed: int,
    lung_pixels: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Every feature of one image.

    Args:
        pixels: harmonised image.
        fmt: source format (JSRT branch of the preprocessing).
        labels: label map at the image's size (lungs from it).
        heart_labels: a label map whose heart is used for the CTR when ``labels`` has none
            (lung-only ground truth: the predicted heart), or ``None``.
        seed: seed of the patch positions.
        lung_pixels: when given, filled with the lung intensities of the analysis images,
            ``before`` (min-max scaled) and ``after`` (the paper's preprocessing), for the
            per-source histograms — computed here once, not again.
    """
    heart = LabelValue.HEART
    if heart_labels is not None and not (labels == heart).any():
        labels = np.where((heart_labels == heart) & ~np.isin(labels, LUNG_VALUES), heart, labels).astype(np.uint8)
    feats = geometry(labels)
    rows = settings.preprocessing.kept_rows(pixels, fmt)
    px, lab = pixels[:rows], labels[:rows]
    img = preprocess(px, fmt, gamma=settings.preprocessing.gamma, size=settings.size)
    small = resize_labels(lab, settings.size)
    feats |= intensity_features(img, small, settings, np.random.default_rng([settings.seed, seed]))
    lungs = np.isin(small, LUNG_VALUES)
    plain = preprocess(px, fmt, size=settings.size, equalise=False)[lungs]
    if lung_pixels is not None:
        lung_pixels["before"], lung_pixels["after"] = plain, img[lungs]
    feats["minmax_mean"] = float(plain.mean()) if plain.size else np.nan
    feats["minmax_std"] = float(plain.std(ddof=1)) if plain.size > 1 else np.nan
    return feats


def image_seed(image_id: str) -> int:
    """The seed of an image's patch positions: from its id (CRC-32), so its features do not
    depend on which shard it lands in or where."""
    return zlib.crc32(image_id.encode("utf-8"))


def features_for(
    rows: pd.DataFrame,
    predicted: Mapping[str, str],
    settings: FeatureSettings,
    histograms: dict[tuple[str, str], np.ndarray] | None = None,
) -> pd.DataFrame:
    """Feature rows for manifest ``rows`` inside the mask ``settings.mask_source`` chooses
    (:func:`patchcxr.masks.choose_mask`: predicted for every image by default), recorded in
    ``mask_source``; ``label5``/``label4`` are taken from ``rows`` (the cohort's labels). With
    ``histograms``, the per-source lung-intensity counts are added to it in the same pass
    (:func:`add_histograms`)."""
    out = []
    for i, row in enumerate(rows.itertuples()):
        pixels = read_png(row.image_path)
        pred_path = predicted.get(row.image_id, "")
        has_truth = bool(row.mask_path) and str(row.has_lung_mask) == "1"
        path, kind = choose_mask(has_truth, row.mask_path, pred_path, settings.mask_source)
        if not path:
            log.warning("%s: no %s mask; features left empty", row.image_id, settings.mask_source)
            out.append({"image_id": row.image_id, "mask_source": "none"})
            continue
        truth = kind == TRUTH
        labels = read_png(path)
        heart = read_png(pred_path) if truth and str(row.has_heart_mask) != "1" and pred_path else None
        values: dict[str, np.ndarray] = {}
        feats = image_features(
            pixels, row.format, labels, heart, settings=settings, seed=image_seed(row.image_id), lung_pixels=values
        )
        if histograms is not None:
            add_histograms(histograms, row.source, values)
        h, w = pixels.shape[:2]
        spacing = PIXEL_SPACING.get((row.format, h, w))
        feats["lung_area_mm2"] = feats["lung_area_px"] * spacing**2 if spacing else np.nan
        out.append(
            {
                "image_id": row.image_id,
                "mask_source": kind,
                "heart_source": "truth"
                if str(row.has_heart_mask) == "1" and truth
                else ("predicted" if pred_path else "none"),
                **feats,
            }
        )
        if (i + 1) % 25 == 0:
            log.info("features: %d/%d images", i + 1, len(rows))
    # every column, NaN where no image has it (also for a shard without cohort films)
    df = (pd.DataFrame(out) if out else pd.DataFrame(columns=["image_id"], dtype=str)).reindex(
        columns=["image_id", "mask_source", "heart_source", *FEATURES]
    )
    meta = rows[["image_id", "source", "format", "patient_id", "view", "label5", "label4"]]
    return meta.merge(df[["image_id", "mask_source", "heart_source", *FEATURES]], on="image_id", how="left")


HIST_BINS = 64


HIST_EDGES = np.linspace(0, 255, HIST_BINS + 1)


def add_histograms(acc: dict[tuple[str, str], np.ndarray], source: str, values: Mapping[str, np.ndarray]) -> None:
    """Add one image's lung intensities, ``before`` (min-max scaling only) and ``after``
    the paper's preprocessing, to the per-source counts in ``acc``."""
    for stage, v in values.items():
        counts, _ = np.histogram(v, bins=HIST_EDGES)
        acc[(source, stage)] = acc.get((source, stage), np.zeros(HIST_BINS, np.int64)) + counts


def histogram_table(acc: Mapping[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """Counts of lung intensities per source and stage (what harmonisation does to the
    sources). Counts add up across shards; :func:`histogram_density` normalises them."""
    out = [
        {"source": source, "stage": stage, "bin_low": HIST_EDGES[b], "bin_high": HIST_EDGES[b + 1], "count": int(c[b])}
        for (source, stage), c in sorted(acc.items())
        for b in range(HIST_BINS)
    ]
    return pd.DataFrame(out, columns=["source", "stage", "bin_low", "bin_high", "count"])


def histogram_density(counts: pd.DataFrame) -> pd.DataFrame:
    """Sum shard counts and normalise per (source, stage) to a density per bin."""
    total = counts.groupby(["source", "stage", "bin_low", "bin_high"], as_index=False)["count"].sum()
    total["density"] = total["count"] / total.groupby(["source", "stage"])["count"].transform("sum").clip(lower=1)
    return total


# --------------------------------------------------------------------------- statistics
TEST_COLUMNS = [
    "feature",
    "scope",
    "test",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "statistic",
    "p_value",
    "family",
    "p_adjusted",
    "adjustment",
    "effect",
    "effect_value",
    "ci_low",
    "ci_high",
    "note",
]


def _row(feature: str, scope: str, test: str, **kw: Any) -> dict[str, Any]:
    return {
        "feature": feature,
        "scope": scope,
        "test": test,
        "group_a": "",
        "group_b": "",
        "n_a": np.nan,
        "n_b": np.nan,
        "statistic": np.nan,
        "p_value": np.nan,
        "family": "",
        "p_adjusted": np.nan,
        "adjustment": "",
        "effect": "",
        "effect_value": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "note": "",
    } | kw


def _superiority(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[float, float, float]:
    """Probability of superiority P(A > B) + ½P(A = B) = U / (n_a n_b), from scipy's
    Mann–Whitney U, with a 95 % percentile interval from a bootstrap of the two groups'
    patients (:func:`patchcxr.stats.two_sample_interval`)."""

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        u = stats.mannwhitneyu(x, y, axis=axis).statistic
        return u / (x.shape[axis] * y.shape[axis])

    value = float(stat(a, b))
    if len(a) < 3 or len(b) < 3:
        return value, np.nan, np.nan
    return value, *two_sample_interval(a, b, stat, n_boot=999, seed=seed)


def compare_groups(
    values: Mapping[str, np.ndarray], feature: str, scope: str, seed: int = 0, *, min_n: int = 3
) -> list[dict[str, Any]]:
    """Omnibus and pairwise tests of one feature across classes.

    Omnibus: Kruskal–Wallis, and one-way ANOVA with its assumption checks (Shapiro–Wilk per
    group, Levene across groups; reported in ``note``). Pairwise: Mann–Whitney U (effect:
    probability of superiority with a bootstrap CI) and Welch's t (effect: difference of
    means with its t-based CI). The p-values are adjusted for multiplicity over the whole
    table by :func:`compare_classes`.
    """
    groups = {k: np.asarray(v, float)[~np.isnan(np.asarray(v, float))] for k, v in values.items()}
    groups = {k: v for k, v in groups.items() if len(v) >= min_n}
    rows: list[dict[str, Any]] = []
    if len(groups) < 2:
        return [_row(feature, scope, "none", note=f"fewer than two classes with >= {min_n} images")]
    arrays = list(groups.values())
    names = ",".join(groups)
    kw = stats.kruskal(*arrays)
    rows.append(
        _row(
            feature,
            scope,
            "kruskal-wallis",
            group_a=names,
            statistic=kw.statistic,
            p_value=kw.pvalue,
            n_a=sum(len(a) for a in arrays),
        )
    )
    an = stats.f_oneway(*arrays)
    normal = {k: stats.shapiro(v).pvalue for k, v in groups.items() if 3 <= len(v) <= 5000}
    lev = stats.levene(*arrays).pvalue
    note = "shapiro p: " + ", ".join(f"{k}={p:.3g}" for k, p in normal.items()) + f"; levene p={lev:.3g}"
    rows.append(
        _row(
            feature,
            scope,
            "anova",
            group_a=names,
            statistic=an.statistic,
            p_value=an.pvalue,
            n_a=sum(len(a) for a in arrays),
            note=note,
        )
    )
    pairs = list(itertools.combinations(groups, 2))
    for test in ("mann-whitney", "welch-t"):
        block = []
        for a, b in pairs:
            x, y = groups[a], groups[b]
            if test == "mann-whitney":
                res = stats.mannwhitneyu(x, y, alternative="two-sided")
                effect, (value, lo, hi) = "P(a>b)", _superiority(x, y, seed)
            else:
                res = stats.ttest_ind(x, y, equal_var=False)
                ci = res.confidence_interval(0.95)
                effect, value, lo, hi = "mean(a)-mean(b)", float(np.mean(x) - np.mean(y)), float(ci.low), float(ci.high)
            block.append(
                _row(
                    feature,
                    scope,
                    test,
                    group_a=a,
                    group_b=b,
                    n_a=len(x),
                    n_b=len(y),
                    statistic=res.statistic,
                    p_value=res.pvalue,
                    effect=effect,
                    effect_value=value,
                    ci_low=lo,
                    ci_high=hi,
                )
            )
        rows.extend(block)
    return rows


#: the paper's claims (method.md §7.1), tested as one family: lower mean and higher spread of
#: lung intensity and a different CTR for COVID-19 than each other class, over all images
PRIMARY_FEATURES = ("intensity_mean", "intensity_std", "ctr")
PRIMARY_TEST = "mann-whitney"


def adjust_for_multiplicity(tests: pd.DataFrame, reference: str) -> pd.DataFrame:
    """``family``, ``p_adjusted`` and ``adjustment`` for every tested row.

    The primary family, declared before looking at the data, holds the paper's claims
    (:data:`PRIMARY_FEATURES`, scope ``all``, :data:`PRIMARY_TEST`, each class against
    ``reference``): Holm's method controls the family-wise error over it. Every other
    p-value of the table (other features, scopes, tests, pairs, the omnibus tests) is
    exploratory: the Benjamini–Hochberg procedure controls the false discovery rate over all
    of them together.
    """
    out = tests.copy()
    tested = out["p_value"].notna()
    primary = (
        tested
        & out["feature"].isin(PRIMARY_FEATURES)
        & (out["scope"] == "all")
        & (out["test"] == PRIMARY_TEST)
        & ((out["group_a"] == reference) | (out["group_b"] == reference))
    )
    exploratory = tested & ~primary
    out["family"] = np.where(primary, "primary", np.where(exploratory, "exploratory", ""))
    out["p_adjusted"] = np.nan
    out["adjustment"] = ""
    for mask, method, label in ((primary, "holm", "Holm"), (exploratory, "fdr_bh", "Benjamini-Hochberg FDR")):
        if mask.any():
            out.loc[mask, "p_adjusted"] = adjust_p(out.loc[mask, "p_value"].to_numpy(float), method)
            out.loc[mask, "adjustment"] = f"{label} over the {int(mask.sum())} {out.loc[mask, 'family'].iloc[0]} tests"
    return out


def per_patient(images: pd.DataFrame, tested: Sequence[str], label: str) -> pd.DataFrame:
    """One row per patient and class: the mean of each feature over the patient's images
    (repeated films of a patient are not independent observations)."""
    keys = [label, "patient_id"]
    return images.groupby(keys, as_index=False, sort=True)[list(tested)].mean()


def compare_classes(
    features: pd.DataFrame,
    tested: Sequence[str] = TESTED,
    label: str = "label5",
    seed: int = 0,
    *,
    reference: str = "covid19",
) -> pd.DataFrame:
    """Tests across classes on patients (each patient's images averaged first, so ``n_a``,
    ``n_b`` count patients and the bootstrap intervals resample patients): over all images,
    within each source (source confounding), without AP-supine films (the paper's extra
    analysis of the scanning protocol) and on PA films only (an AP projection magnifies the
    heart, and AP films come from some classes more than others); multiplicity controlled
    by :func:`adjust_for_multiplicity` with ``reference`` the class of the paper's claims."""
    df = features[features[label].astype(str) != ""]
    views = df["view"].astype(str).str.upper()
    scopes = [("all", df)]
    scopes += [(f"source:{s}", part) for s, part in df.groupby("source")]
    scopes.append(("without AP supine", df[views != "AP SUPINE"]))
    scopes.append(("PA only", df[views == "PA"]))
    rows = []
    for scope, part in scopes:
        patients = per_patient(part, tested, label)
        for feature in tested:
            values = {str(k): g[feature].to_numpy(float) for k, g in patients.groupby(label)}
            rows.extend(compare_groups(values, feature, scope, seed))
    return adjust_for_multiplicity(pd.DataFrame(rows, columns=TEST_COLUMNS), reference)


def shard_features(
    manifest: pd.DataFrame,
    cohort: pd.DataFrame,
    qc: pd.DataFrame,
    settings: FeatureSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and histogram counts of the cohort images among ``qc``'s images (one
    prediction shard), labelled as the cohort labels them."""
    rows = manifest[manifest["image_id"].isin(qc["image_id"]) & manifest["image_id"].isin(cohort["image_id"])]
    rows = rows.drop(columns=["label5", "label4"]).merge(cohort[["image_id", "label5", "label4"]], on="image_id")
    predicted = dict(zip(qc["image_id"], qc["mask_path"], strict=True))
    histograms: dict[tuple[str, str], np.ndarray] = {}
    features = features_for(rows, predicted, settings, histograms)
    return features, histogram_table(histograms)


def examples_per_class(
    features: pd.DataFrame,
    manifest: pd.DataFrame,
    qc: pd.DataFrame,
    per_class: int = 2,
) -> pd.DataFrame:
    """Images for the segmentation example grid (the paper's Fig. 3): the first
    ``per_class`` images of each class (by id) with their predicted masks."""
    pred = dict(zip(qc["image_id"], qc["mask_path"], strict=True))
    paths = dict(zip(manifest["image_id"], manifest["image_path"], strict=True))
    chosen = (
        features[features["mask_source"].isin(["truth", "predicted"])]
        .sort_values("image_id")
        .groupby("label5")
        .head(per_class)
    )
    return pd.DataFrame(
        {
            "label5": chosen["label5"],
            "image_id": chosen["image_id"],
            "image_path": chosen["image_id"].map(paths),
            "mask_path": chosen["image_id"].map(pred),
        }
    )

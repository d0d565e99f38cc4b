"""Lung biomarker features, one row per image (method.md §7).

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

The per-source histograms of lung intensity are counted in the same pass
(:mod:`patchcxr.biomarkers.summaries`); the between-class tests are in
:mod:`patchcxr.biomarkers.statistics`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from patchcxr.biomarkers.summaries import add_histograms, histogram_table
from patchcxr.classification.patches import sample_centres, windows
from patchcxr.classification.settings import ClassifierSettings, InputSettings, settings_from
from patchcxr.data.labels import LUNG_VALUES, LabelValue
from patchcxr.io import read_png
from patchcxr.masks import TRUTH, choose_mask, largest_component
from patchcxr.preprocess import PreprocessSettings, preprocess, resize_labels

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

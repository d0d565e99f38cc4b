"""The statistics core: every interval, bootstrap p-value and multiplicity adjustment of the
package goes through here (evaluation, segmentation, biomarkers, audit, saliency checks).

* Resampling: the unit is the patient (the unit of every split): :func:`bootstrap_resamples`
  draws whole groups with all their images, or images when no groups are given. The same
  seed gives the same resamples, whatever statistic is computed on them.
* Intervals: 95 % percentile intervals (:func:`percentile_interval`, NaN-aware and
  vectorised over any number of statistics); :func:`bootstrap_interval` for a statistic of
  the resampled indices, :func:`cluster_mean_interval` for a mean over images resampling
  patients (vectorised), :func:`two_sample_interval` for a statistic of two independent
  samples, :func:`run_level_difference` for a difference between two conditions' training
  runs (Welch).
* p-values: :func:`bootstrap_p` (two-sided, from bootstrap draws of a difference, with the
  +1 correction), :func:`cluster_permutation_p` (labels permuted between patients) and
  :func:`adjust_p` (one family: Holm, or Benjamini–Hochberg).
* Names: an interval is written ``ci_low``/``ci_high`` in a long table and
  ``<figure>_ci_low``/``<figure>_ci_high`` beside its figure in a wide one
  (:func:`interval_columns`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

#: the level of every interval of the package
LEVEL = 0.95
#: the percentiles of a two-sided percentile interval at :data:`LEVEL`
PERCENTILES = (100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2)


def interval_columns(figure: str) -> tuple[str, str]:
    """The two columns of ``figure``'s interval in a wide table."""
    return f"{figure}_ci_low", f"{figure}_ci_high"


def with_intervals(
    figures: Sequence[str],
    values: Sequence[float],
    low: Sequence[float] | np.ndarray,
    high: Sequence[float] | np.ndarray,
) -> dict[str, float]:
    """Each figure with its interval, as a wide table's row writes them:
    ``{figure: value, <figure>_ci_low: low, <figure>_ci_high: high}`` (:func:`interval_columns`)."""
    row: dict[str, float] = {}
    for figure, v, lo, hi in zip(figures, values, low, high, strict=True):
        columns = interval_columns(figure)
        row |= {figure: float(v), columns[0]: float(lo), columns[1]: float(hi)}
    return row


def group_members(groups: np.ndarray) -> list[np.ndarray]:
    """The image indices of each group (patient), computed once per bootstrap."""
    _, inverse = np.unique(groups, return_inverse=True)
    return [np.flatnonzero(inverse == g) for g in range(int(inverse.max()) + 1)] if len(groups) else []


def resample_groups(members: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Indices of one cluster bootstrap resample: as many groups (patients) as there are,
    drawn with replacement, each with all its images (``members``: :func:`group_members`)."""
    picks = rng.integers(0, len(members), len(members))
    return np.concatenate([members[g] for g in picks])


def bootstrap_resamples(n: int, groups: np.ndarray | None, *, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Indices of ``n_boot`` bootstrap resamples of ``n`` images: whole groups (patients)
    with all their images (:func:`resample_groups`), or images when ``groups`` is None.
    The same seed gives the same resamples, whatever statistic is computed on them."""
    rng = np.random.default_rng(seed)
    members = group_members(groups) if groups is not None else None
    for _ in range(n_boot):
        yield resample_groups(members, rng) if members is not None else rng.integers(0, n, n)


def percentile_interval(draws: np.ndarray | Sequence[float], *, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 95 % percentile interval (low, high) of bootstrap ``draws`` along ``axis``, each
    statistic on its own: non-finite draws (a resample where the statistic does not exist,
    e.g. an AUC without negatives) are left out; a statistic without a finite draw gets NaN."""
    values = np.asarray(draws, dtype=float)
    values = np.where(np.isfinite(values), values, np.nan)
    if values.size == 0:
        shape = list(values.shape)
        del shape[axis]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        lo, hi = np.nanpercentile(values, PERCENTILES, axis=axis)
    return np.asarray(lo), np.asarray(hi)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float | Sequence[float]],
    n: int,
    groups: np.ndarray | None,
    *,
    n_boot: int,
    seed: int,
    width: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """95 % percentile interval (low, high), each of ``width`` values, of
    ``statistic(indices)`` over ``n_boot`` resamples of ``n`` images by ``groups``
    (patients, :func:`bootstrap_resamples`). Resamples whose statistic is NaN are left out;
    no image gives NaN (there is nothing to resample)."""
    if not n or not n_boot:
        return np.full(width, np.nan), np.full(width, np.nan)
    draws = np.array([statistic(i) for i in bootstrap_resamples(n, groups, n_boot=n_boot, seed=seed)], float)
    return percentile_interval(draws.reshape(n_boot, width))


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided p-value of "the difference is 0" from bootstrap draws of the difference
    (finite draws only): twice the smaller share of draws on either side of 0, with the +1
    correction ``(1 + #) / (1 + B)`` so that it is never 0 with finitely many resamples."""
    col = np.asarray(draws, dtype=float)
    col = col[np.isfinite(col)]
    if not len(col):
        return float("nan")
    tail = min(int((col <= 0).sum()), int((col >= 0).sum()))
    return min(1.0, 2 * (1 + tail) / (1 + len(col)))


def bootstrap_summary(draws: np.ndarray) -> tuple[float, float, float, int]:
    """95 % percentile interval, two-sided p-value (:func:`bootstrap_p`) and the number of
    usable (finite) draws of a difference from its bootstrap draws."""
    col = np.asarray(draws, dtype=float)
    used = int(np.isfinite(col).sum())
    if not used:
        return np.nan, np.nan, np.nan, 0
    lo, hi = percentile_interval(col)
    return float(lo), float(hi), bootstrap_p(col), used


def cluster_mean_interval(values: np.ndarray, groups: np.ndarray, *, n_boot: int, seed: int) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``values`` over images, resampling groups
    (patients) with all their images; vectorised (the resamples are those of
    :func:`bootstrap_resamples` with the same seed, drawn at once)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return float("nan"), float("nan")
    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(float)
    idx = np.random.default_rng(seed).integers(0, len(sums), (n_boot, len(sums)))
    lo, hi = percentile_interval(sums[idx].sum(axis=1) / counts[idx].sum(axis=1))
    return float(lo), float(hi)


def two_sample_interval(
    a: np.ndarray,
    b: np.ndarray,
    statistic: Callable[..., np.ndarray],
    *,
    n_boot: int,
    seed: int,
) -> tuple[float, float]:
    """95 % percentile interval of ``statistic(a, b, axis=-1)`` (vectorised) from a bootstrap
    that resamples each of the two independent samples on its own (each value one patient):
    scipy.stats.bootstrap."""
    from scipy import stats

    ci = stats.bootstrap(
        (a, b),
        statistic,
        n_resamples=n_boot,
        vectorized=True,
        random_state=seed,
        method="percentile",
        confidence_level=LEVEL,
    )
    return float(ci.confidence_interval.low), float(ci.confidence_interval.high)


def run_level_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Difference of means ``a − b`` between two conditions' training runs (``a``, ``b``:
    one value per run, e.g. each run's mean Jaccard over the same films), with Welch's
    95 % interval and two-sided p (unequal variances, Welch–Satterthwaite degrees of
    freedom). The unit is the run: inference on whether another training run would keep the
    difference, conditional on the films scored. NaN interval and p below two runs in either
    condition, or when no run differs from another (no run-to-run variance to judge by).
    Returns (difference, low, high, p)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    difference = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return difference, float("nan"), float("nan"), float("nan")
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(LEVEL)
    return difference, float(ci.low), float(ci.high), float(result.pvalue)


def cluster_permutation_p(
    statistic: Callable[[np.ndarray], float],
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    n_perm: int,
    seed: int,
    strata: np.ndarray | None = None,
) -> float:
    """One-sided permutation p-value of "``statistic(labels)`` is no larger than chance",
    permuting the labels between groups (patients): each patient keeps one label for all
    its images (labels must be constant within a group), and the patients' labels are
    shuffled — within each stratum of ``strata`` when given (constant within a group too:
    e.g. the class, for "the source does not matter given the class").
    ``(1 + #{permuted ≥ observed}) / (1 + n_perm)``."""
    labels = np.asarray(labels)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    per_group = labels[first]
    if not np.array_equal(per_group[inverse], labels):
        raise ValueError("a patient's images carry different labels: a patient-level permutation needs one label each")
    blocks = [np.arange(len(per_group))]
    if strata is not None:
        strata = np.asarray(strata)
        per_stratum = strata[first]
        if not np.array_equal(per_stratum[inverse], strata):
            raise ValueError("a patient's images lie in different strata: a stratified permutation needs one each")
        blocks = [np.flatnonzero(per_stratum == s) for s in np.unique(per_stratum)]
    observed = statistic(labels)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_perm):
        shuffled = per_group.copy()
        for block in blocks:
            shuffled[block] = per_group[rng.permutation(block)]
        hits += statistic(shuffled[inverse]) >= observed
    return (1 + int(hits)) / (1 + n_perm)


def adjust_p(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """One family of p-values adjusted for multiplicity by statsmodels' ``multipletests``
    (``holm``: Holm's step-down, the family-wise error; ``fdr_bh``: Benjamini–Hochberg, the
    false discovery rate). NaN stays NaN and is not counted in the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method=method)[1]
    return out.tolist()


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of one family of p-values (:func:`adjust_p`)."""
    return adjust_p(p_values, "holm")

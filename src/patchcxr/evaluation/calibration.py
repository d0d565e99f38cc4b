"""Calibration of the soft vote's film probabilities: negative log-likelihood and Brier
score with patient-bootstrap intervals (:mod:`patchcxr.stats`) and their paired
differences, ECE with the band of a perfectly calibrated model, reliability bins,
temperature scaling fitted on the validation films (Guo et al., ICML 2017), and the
training prior restored before it (the classifier trains on class-balanced draws)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from patchcxr.stats import bootstrap_interval, interval_columns, with_intervals

log = logging.getLogger(__name__)

#: columns of the calibration table (:func:`calibration_tables`): NLL and Brier first, with
#: their paired differences from the uncalibrated probabilities; ECE with the band a
#: perfectly calibrated model of the same confidences would show on as many films
CALIBRATION_COLUMNS = [
    *("calibration", "temperature", "n", "n_patients"),
    *("nll", *interval_columns("nll"), "nll_difference", *interval_columns("nll_difference")),
    *("brier", *interval_columns("brier"), "brier_difference", *interval_columns("brier_difference")),
    *("ece", *interval_columns("ece"), "ece_null_mean", "ece_null_high"),
    *("accuracy", "note"),
]


#: columns of the reliability table: one row per confidence bin and calibration
RELIABILITY_COLUMNS = ["calibration", "bin", "lower", "upper", "n", "confidence", "accuracy"]


_EPS = 1e-12


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Film probabilities (rows summing to 1: the K-patch soft vote) rescaled by a
    temperature: ``softmax(log p / T)``. T > 1 softens, T < 1 sharpens; the order of the
    classes in each row, and so the soft-vote class, does not change."""
    z = np.log(np.clip(probs, _EPS, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: the temperatures a fit may take; a fit that runs to either bound found no optimum
TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature (in :data:`TEMPERATURE_BOUNDS`) that minimises the negative log-likelihood of the
    true classes under :func:`temper` (Guo et al., ICML 2017, applied to the soft vote's
    film probabilities): fitted on validation films, applied to the test films."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        return negative_log_likelihood(temper(probs, float(np.exp(log_t))), y_true)

    if not len(y_true):
        return 1.0
    low, high = TEMPERATURE_BOUNDS
    best = minimize_scalar(nll, bounds=(np.log(low), np.log(high)), method="bounded")
    return float(np.exp(best.x))


def usable_temperature(probs: np.ndarray, y_true: np.ndarray) -> tuple[float, str]:
    """The validation films' temperature (:func:`fit_temperature`) and ``""``, or 1 (no
    scaling) and the reason when the fit found no optimum: no validation films, or a fit
    that ran to a bound of :data:`TEMPERATURE_BOUNDS` — as it does when every validation
    film's soft vote is right (the likelihood then rises without end as T falls, and T =
    0.05 would turn a test film's true-class probability 0.3 into about 1e-6)."""
    if not len(y_true):
        return 1.0, "not fitted: no validation films; T = 1 kept"
    t = fit_temperature(probs, y_true)
    low, high = TEMPERATURE_BOUNDS
    if t <= low * 1.01 or t >= high / 1.01:
        right = int((probs.argmax(axis=1) == y_true).sum())
        bound = low if t <= low * 1.01 else high
        return 1.0, (
            f"not fitted: the fit ran to its bound T = {bound:g} ({right} of {len(y_true)} validation films "
            "right by the soft vote); T = 1 kept"
        )
    return t, ""


def _confidence_bins(probs: np.ndarray, y_true: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each film's confidence (the soft-vote class's probability), whether that class is
    right, and its equal-width confidence bin."""
    conf = probs.max(axis=1)
    return conf, probs.argmax(axis=1) == y_true, np.minimum((conf * bins).astype(int), bins - 1)


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (NaN without films)."""
    if not len(y_true):
        return float("nan")
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], _EPS, 1.0))))


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int) -> float:
    """ECE: the film-weighted mean gap between confidence (the soft-vote class's
    probability) and accuracy over ``bins`` equal-width confidence bins."""
    if not len(y_true):
        return float("nan")
    conf, right, which = _confidence_bins(probs, y_true, bins)
    gaps = [abs(conf[which == b].mean() - right[which == b].mean()) * (which == b).sum() for b in np.unique(which)]
    return float(np.sum(gaps) / len(y_true))


def brier_score(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean over films of the squared distance between the probabilities and the one-hot
    true class (NaN without films)."""
    if not len(y_true):
        return float("nan")
    onehot = np.eye(probs.shape[1])[y_true]
    return float(np.mean(((probs - onehot) ** 2).sum(axis=1)))


def ece_null_band(probs: np.ndarray, bins: int, *, n_draws: int, seed: int) -> tuple[float, float]:
    """The ECE a *perfectly calibrated* model with these probabilities would show on as many
    films: true classes drawn from each film's own probabilities, ``n_draws`` times; the mean
    and the 95th percentile. Equal-width ECE is biased upwards on few films (0.21 at n = 17
    for a calibrated model): an ECE inside this band is what calibration itself gives."""
    if not len(probs):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    draws = []
    for _ in range(n_draws):
        u = rng.uniform(size=(len(probs), 1))
        y = np.minimum((u > cumulative).sum(axis=1), probs.shape[1] - 1)
        draws.append(expected_calibration_error(probs, y, bins))
    return float(np.mean(draws)), float(np.quantile(draws, 0.95))


def prior_corrected(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Probabilities of a model trained on class-balanced draws (a uniform prior) moved to
    the training films' class ``prior``: ``p·π / Σ p·π`` (Saerens et al., Neural Comput 2002,
    with the known training prior). A temperature cannot make this shift: it keeps each
    film's class order, the prior changes it."""
    weighted = probs * np.asarray(prior, float)[None, :]
    return weighted / np.clip(weighted.sum(axis=1, keepdims=True), _EPS, None)


def reliability_rows(probs: np.ndarray, y_true: np.ndarray, bins: int) -> list[dict[str, float]]:
    """The reliability diagram's points: per confidence bin, its films, mean confidence and
    accuracy (NaN for an empty bin)."""
    conf, right, which = _confidence_bins(probs, y_true, bins)
    rows = []
    for b in range(bins):
        inside = which == b
        rows.append(
            {
                "bin": b,
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "n": int(inside.sum()),
                "confidence": float(conf[inside].mean()) if inside.any() else float("nan"),
                "accuracy": float(right[inside].mean()) if inside.any() else float("nan"),
            }
        )
    return rows


def training_prior(split: pd.DataFrame, labels: str, names: Sequence[str]) -> list[float] | None:
    """The class shares of the classification split's training films (``labels`` column) in
    the order of ``names``; None when a class has no training film (no prior to restore)."""
    counts = split.loc[split["split"] == "train", labels].astype(str).value_counts()
    shares = [float(counts.get(n, 0)) for n in names]
    total = sum(shares)
    return None if not total or min(shares) == 0 else [c / total for c in shares]


def calibration_tables(
    validation: pd.DataFrame,
    test: pd.DataFrame,
    names: Sequence[str],
    *,
    bins: int,
    n_boot: int,
    seed: int,
    min_patients: int,
    prior: Sequence[float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibration of the soft vote's film probabilities (``prob_<class>`` columns) on the
    test films: as they come (``uncalibrated``), temperature-scaled with T fitted on the
    validation films (``temperature``), and, with the training films' class ``prior``,
    moved to that prior before a temperature is fitted (``prior + temperature``,
    :func:`prior_corrected`: the classifier trains on class-balanced draws).

    Per row: NLL and Brier score with 95 % intervals resampling patients, and their paired
    differences from the uncalibrated probabilities on the same resamples (negative: better);
    ECE with its interval and the band a perfectly calibrated model would show
    (:func:`ece_null_band`); soft-vote accuracy. Fewer than ``min_patients`` test patients:
    the counts and NaN with the reason. The temperature and the classifier's epoch are both
    chosen on the same validation films (said in the note). Returns (summary, reliability)."""
    columns = [f"prob_{n}" for n in names]
    val_probs, val_y = validation[columns].to_numpy(float), validation["true_index"].to_numpy(int)
    y = test["true_index"].to_numpy(int)
    groups = test["patient_id"].astype(str).to_numpy()
    raw = test[columns].to_numpy(float)
    n_patients = len(np.unique(groups))
    variants: list[tuple[str, np.ndarray, float, str]] = [("uncalibrated", raw, 1.0, "")]
    same_films = "T fitted on the validation films that also chose the classifier's epoch"
    t, note = usable_temperature(val_probs, val_y)
    if note:
        log.warning("temperature scaling %s", note)
    variants.append(("temperature", temper(raw, t) if t != 1.0 else raw, t, note or same_films))
    if prior is not None:
        val_prior = prior_corrected(val_probs, np.asarray(prior))
        tp, note_p = usable_temperature(val_prior, val_y)
        moved = prior_corrected(raw, np.asarray(prior))
        shown = ", ".join(f"{n} {p:.2f}" for n, p in zip(names, prior, strict=True))
        variants.append(
            (
                "prior + temperature",
                temper(moved, tp) if tp != 1.0 else moved,
                tp,
                f"training prior ({shown}), then {note_p or same_films}",
            )
        )
    summary, reliability = [], []
    for label, probs, temperature, why in variants:
        row: dict[str, object] = {
            "calibration": label,
            "temperature": temperature,
            "n": len(y),
            "n_patients": n_patients,
            "note": why,
        }
        if n_patients < min_patients:
            summary.append(
                row | {"note": f"{n_patients} patients < statistics.min_patients ({min_patients}): no figures"}
            )
            reliability += [{"calibration": label, **r} for r in reliability_rows(probs, y, bins)]
            continue

        def figures(idx: np.ndarray, probs: np.ndarray = probs) -> tuple[float, ...]:
            nll, brier = negative_log_likelihood(probs[idx], y[idx]), brier_score(probs[idx], y[idx])
            return (
                nll,
                nll - negative_log_likelihood(raw[idx], y[idx]),
                brier,
                brier - brier_score(raw[idx], y[idx]),
                expected_calibration_error(probs[idx], y[idx], bins),
            )

        values = figures(np.arange(len(y)))
        lo, hi = bootstrap_interval(figures, len(y), groups, n_boot=n_boot, seed=seed, width=5)
        named = ("nll", "nll_difference", "brier", "brier_difference", "ece")
        row |= with_intervals(named, values, lo, hi)
        if label == "uncalibrated":  # its difference from itself is no figure
            row |= dict.fromkeys(("nll_difference", "brier_difference"), float("nan"))
            row |= dict.fromkeys(
                (*interval_columns("nll_difference"), *interval_columns("brier_difference")), float("nan")
            )
        null_mean, null_high = ece_null_band(probs, bins, n_draws=n_boot, seed=seed)
        row |= {
            "ece_null_mean": null_mean,
            "ece_null_high": null_high,
            "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        }
        summary.append(row)
        reliability += [{"calibration": label, **r} for r in reliability_rows(probs, y, bins)]
    return pd.DataFrame(summary, columns=CALIBRATION_COLUMNS), pd.DataFrame(reliability, columns=RELIABILITY_COLUMNS)

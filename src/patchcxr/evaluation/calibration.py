"""Calibration of the soft vote's film probabilities: ECE (with its patient-bootstrap
interval, :mod:`patchcxr.stats`), negative log-likelihood, Brier score, reliability bins,
and temperature scaling fitted on the validation films (Guo et al., ICML 2017)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from patchcxr.stats import bootstrap_interval, interval_columns, with_intervals

log = logging.getLogger(__name__)

#: columns of the calibration table (:func:`calibration_tables`)
CALIBRATION_COLUMNS = [
    *(
        "calibration",
        "temperature",
        "n",
        "n_patients",
        "ece",
        *interval_columns("ece"),
        "nll",
        "brier",
        "accuracy",
        "note",
    ),
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


def _ece_at(probs: np.ndarray, y_true: np.ndarray, bins: int, idx: np.ndarray) -> float:
    return expected_calibration_error(probs[idx], y_true[idx], bins)


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


def calibration_tables(
    validation: pd.DataFrame, test: pd.DataFrame, names: Sequence[str], *, bins: int, n_boot: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibration of the soft vote's film probabilities (``prob_<class>`` columns) on the
    test films, as they come and after temperature scaling fitted on the validation films:
    ECE with a 95 % interval from a bootstrap over patients, negative log-likelihood, Brier
    score and soft-vote accuracy (unchanged by the temperature); and the reliability
    diagram's bins. Returns (summary, reliability)."""
    columns = [f"prob_{n}" for n in names]
    temperature, note = usable_temperature(validation[columns].to_numpy(float), validation["true_index"].to_numpy(int))
    if note:
        log.warning("temperature scaling %s", note)
    y = test["true_index"].to_numpy(int)
    groups = test["patient_id"].astype(str).to_numpy()
    summary, reliability = [], []
    for label, t, why in (("uncalibrated", 1.0, ""), ("temperature", temperature, note)):
        probs = temper(test[columns].to_numpy(float), t) if t != 1.0 else test[columns].to_numpy(float)
        lo, hi = bootstrap_interval(
            functools.partial(_ece_at, probs, y, bins), len(y), groups, n_boot=n_boot, seed=seed
        )
        onehot = np.eye(len(names))[y] if len(y) else np.zeros((0, len(names)))
        summary.append(
            {
                "calibration": label,
                "temperature": t,
                "n": len(y),
                "n_patients": len(np.unique(groups)),
                **with_intervals(("ece",), (expected_calibration_error(probs, y, bins),), lo, hi),
                "nll": negative_log_likelihood(probs, y),
                "brier": float(np.mean(((probs - onehot) ** 2).sum(axis=1))) if len(y) else np.nan,
                "accuracy": float(np.mean(probs.argmax(axis=1) == y)) if len(y) else np.nan,
                "note": why,
            }
        )
        reliability += [{"calibration": label, **r} for r in reliability_rows(probs, y, bins)]
    return pd.DataFrame(summary, columns=CALIBRATION_COLUMNS), pd.DataFrame(reliability, columns=RELIABILITY_COLUMNS)

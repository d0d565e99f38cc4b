"""How each synthetic source turns density into its written 8-bit image: its exposure
(:data:`EXPOSURES`, :func:`expose`) and the artefact it may carry burnt in
(:func:`plant_artefact`: the confound audit's ground truth)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Exposure:
    """How a source turns density into display intensity.

    ``I = clip(((D - lo) / (hi - lo)) ** gamma + brightness + noise, 0, 1)``; a different
    exposure per source is what the paper's universal preprocessing must harmonise.
    """

    lo: float
    hi: float
    gamma: float
    noise: float


EXPOSURES = {
    "jsrt": Exposure(0.02, 1.00, 1.00, 0.006),
    "montgomery": Exposure(0.00, 0.95, 0.85, 0.010),
    "shenzhen": Exposure(0.05, 1.00, 1.15, 0.010),
    "kermany": Exposure(0.00, 0.90, 1.25, 0.015),
    "cohen": Exposure(0.03, 0.98, 0.95, 0.012),
}


def expose(density: np.ndarray, rng: np.random.Generator, exposure: Exposure) -> np.ndarray:
    """Display intensity in [0, 1] (bone bright) from a density map, with per-image jitter."""
    gamma = exposure.gamma * float(rng.uniform(0.92, 1.08))
    brightness = float(rng.uniform(-0.03, 0.03))
    x = np.clip((density - exposure.lo) / (exposure.hi - exposure.lo), 0.0, 1.0) ** gamma
    x = x + brightness + exposure.noise * rng.standard_normal(density.shape, dtype=np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _to_uint8(intensity: np.ndarray) -> np.ndarray:
    return np.round(intensity * 255.0).astype(np.uint8)


#: source artefacts the generator can burn in (config ``synthetic.<source>.artefact``)
ARTEFACTS = ("none", "marker", "border")


def plant_artefact(gray: np.ndarray, artefact: Mapping[str, Any] | None) -> np.ndarray:
    """Burn a source artefact into a display image (uint8), as hospitals' films carry them
    (DeGrave et al. 2021: laterality markers, text, borders read instead of the lungs).

    ``marker``: a white square of side ``size`` × the short side in the top-left corner,
    outside the lung field (a burnt-in marker); ``border``: a white frame ``size`` × the
    short side wide. ``none`` (or no artefact) leaves the image as it is. The lung field is
    never touched, so the planted source signal lies outside the lung mask.
    """
    spec = dict(artefact or {})
    kind = str(spec.get("kind", "none"))
    if kind not in ARTEFACTS:
        raise ValueError(f"synthetic artefact kind must be one of {ARTEFACTS}, got {kind!r}")
    if kind == "none":
        return gray
    side = max(1, round(float(spec.get("size", 0.06)) * min(gray.shape[:2])))
    out = gray.copy()
    if kind == "marker":
        out[side : 2 * side, side : 2 * side] = 255
    else:
        out[:side], out[-side:], out[:, :side], out[:, -side:] = 255, 255, 255, 255
    return out


def display(density: np.ndarray, rng: np.random.Generator, source: str, cfg: Mapping[str, Any]) -> np.ndarray:
    """The written 8-bit image of a source: its exposure (or, with ``exposure_as``, another
    source's: two sources then differ only in their artefact) and its artefact."""
    exposure = EXPOSURES[str(cfg.get("exposure_as") or source)]
    return plant_artefact(_to_uint8(expose(density, rng, exposure)), cfg.get("artefact"))

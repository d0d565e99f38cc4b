"""Classifier inputs for the benchmarks: synthetic films made into the workflow's masked
inputs (preprocessed, resized, multiplied by the lung mask) and cached as the workflow
caches them (8-bit PNGs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from patchcxr.classification.data import masked_input
from patchcxr.classification.settings import InputSettings
from patchcxr.synthetic import render, sample_spec
from patchcxr.synthetic.sources import EXPOSURES, expose


def masked_film(size: int, seed: int, label: str = "covid19") -> tuple[np.ndarray, np.ndarray]:
    """(masked input uint8, lung mask bool) of one synthetic film at ``size``²."""
    rng = np.random.default_rng(seed)
    d = render(sample_spec(rng, label), size, size)
    pixels = np.round(expose(d.density, rng, EXPOSURES["cohen"]) * 255).astype(np.uint8)
    return masked_input(pixels, "cohen", d.labels, InputSettings(size=size))


def cached_film(root: Path, size: int, seed: int, label: str = "covid19") -> tuple[str, str]:
    """The same, written as the workflow's cached PNG pair; returns their paths."""
    img, lung = masked_film(size, seed, label)
    ip, lp = root / f"film{seed}.png", root / f"film{seed}.lung.png"
    Image.fromarray(img).save(ip)
    Image.fromarray(lung.astype(np.uint8) * 255).save(lp)
    return str(ip), str(lp)

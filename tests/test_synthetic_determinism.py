"""Same seed, same bytes; planted effects move the lung statistics they claim to move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from patchcxr.data.labels import LabelValue
from patchcxr.synthetic import Effect, generate_source, render, sample_spec
from tests.helpers import tree_digest


@pytest.mark.parametrize("source", ["jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"])
def test_same_seed_gives_identical_bytes(
    tmp_path: Path, synthetic_tree: Path, test_config: dict[str, Any], source: str
) -> None:
    params = test_config["synthetic"]
    generate_source(source, params, tmp_path / source, tmp_path / "truth")
    assert tree_digest(tmp_path / source) == tree_digest(synthetic_tree / source)
    assert tree_digest(tmp_path / "truth") == tree_digest(synthetic_tree / "ground_truth" / source)


def test_another_seed_gives_other_images(tmp_path: Path, synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    params = dict(test_config["synthetic"], seed=test_config["synthetic"]["seed"] + 1)
    generate_source("montgomery", params, tmp_path / "m", tmp_path / "t")
    a, b = tree_digest(tmp_path / "m"), tree_digest(synthetic_tree / "montgomery")
    assert a.keys() == b.keys()
    pngs = [k for k in a if k.endswith(".png") and "CXR_png" in k]
    assert all(a[k] != b[k] for k in pngs)


def lung_stats(effect: Effect, seed: int) -> tuple[float, float]:
    spec = sample_spec(np.random.default_rng(seed), "normal", effect)
    r = render(spec, 256, 256)
    lungs = (r.labels == LabelValue.LEFT_LUNG) | (r.labels == LabelValue.RIGHT_LUNG)
    return float(r.density[lungs].mean()), float(r.density[lungs].std())


def test_planted_effects_shift_lung_mean_and_std() -> None:
    # paired by seed: the same anatomy and noise with and without the effect
    for seed in range(5):
        m0, s0 = lung_stats(Effect(), seed)
        m1, s1 = lung_stats(Effect(lung_mean_shift=-0.03), seed)
        m2, s2 = lung_stats(Effect(lung_std_scale=1.5), seed)
        assert m1 == pytest.approx(m0 - 0.03, abs=0.004)
        assert s1 == pytest.approx(s0, rel=0.05)
        assert s2 > 1.1 * s0
        assert m2 == pytest.approx(m0, abs=0.005)


def test_patient_follow_up_films_share_anatomy() -> None:
    rng = np.random.default_rng(3)
    first = sample_spec(rng, "covid19")
    second = sample_spec(rng, "covid19", base=first)
    other = sample_spec(rng, "covid19")
    assert (second.heart_scale, second.scale) == (first.heart_scale, first.scale)
    assert other.heart_scale != first.heart_scale

"""Ground truth for the confound audit (patchcxr.audit): two synthetic NLM sources rendered
alike (same size, same exposure) that differ only in what the test plants.

* planted: every normal film is Montgomery, every TB film Shenzhen, and Shenzhen films carry
  a burnt-in marker outside the lung. The probe must read the source from outside the lung
  almost perfectly and the audit must call the labels confounded.
* independent: both sources hold normal and TB films alike and no artefact. The probe must
  not read the source and the audit must not call the labels confounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from patchcxr.audit import audit, class_source_table, cramers_v
from patchcxr.classification.data import build_inputs
from patchcxr.classification.settings import ClassifierSettings, InputSettings
from patchcxr.data.splits import classification_split
from patchcxr.io import read_png, write_tsv
from patchcxr.synthetic.sources import ARTEFACTS, plant_artefact

SIZE = 128
PROBE = ClassifierSettings(
    mode="global", patch=64, batch_size=16, epochs=16, lr=2e-3, weight_decay=0.0, l1=0.0, k_val=1, seed=3, draws=64
)
INPUTS = InputSettings(size=SIZE, mask_source="truth_where_available")
MARGIN, ASSOCIATION = 0.2, 0.5


def _cohort(root: Path, test_config: dict[str, Any], planted: bool) -> None:
    """manifest, cohort, split and cached inputs (ground-truth masks) under ``root``."""
    from patchcxr.synthetic import generate_source
    from tests.conftest import merge
    from tests.helpers import run_data_stage

    shape = {"height": 256, "width": 210}
    if planted:
        counts = {"montgomery": {"normal": 24, "tb": 0}, "shenzhen": {"normal": 0, "tb": 24}}
        artefact = {"kind": "marker", "size": 0.1}
    else:
        counts = {"montgomery": {"normal": 12, "tb": 12}, "shenzhen": {"normal": 12, "tb": 12}}
        artefact = {"kind": "none"}
    params = merge(
        test_config["synthetic"],
        {
            "montgomery": {**shape, "counts": counts["montgomery"]},
            "shenzhen": {
                **shape,
                "counts": counts["shenzhen"],
                "mask_fraction": 1.0,
                "exposure_as": "montgomery",
                "artefact": artefact,
            },
        },
    )
    for source in ("montgomery", "shenzhen"):
        generate_source(source, params, root / source, root / "gt" / source)
    sources = {s: {"format": s, "path": str(root / s)} for s in ("montgomery", "shenzhen")}
    manifest, _ = run_data_stage(sources, test_config["labels"], root / "data")
    cohort = manifest[manifest["label4"] != ""].copy()
    split = classification_split(cohort, {"train": 0.6, "val": 0.1, "test": 0.3}, seed=1)
    write_tsv(root / "split.tsv", split[["image_id", "patient_id", "label5", "label4", "split"]])
    write_tsv(root / "cohort.tsv", cohort)
    masks = manifest[["image_id", "mask_path"]]  # every film has its tracing: no segmenter needed
    write_tsv(root / "inputs.tsv", build_inputs(manifest, cohort, masks, root / "inputs", settings=INPUTS))


def _audit(root: Path, test_config: dict[str, Any], planted: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    _cohort(root, test_config, planted)
    _, probes, v = audit(
        inputs_path=root / "inputs.tsv",
        manifest_path=root / "data" / "manifest.tsv",
        cohort_path=root / "cohort.tsv",
        split_path=root / "split.tsv",
        settings={"global": PROBE},
        input_settings=INPUTS,
        out_dir=root / "audit",
        views=("outside", "lung"),
        k=1,
        n_boot=200,
        margin=MARGIN,
        association=ASSOCIATION,
        device="cpu",
    )
    return probes, v


def test_the_marker_is_planted_outside_the_lung_only() -> None:
    from patchcxr.synthetic.phantom import render, sample_spec

    r = render(sample_spec(np.random.default_rng(0), "normal"), 256, 210)
    gray = np.full((256, 210), 100, np.uint8)
    marked = plant_artefact(gray, {"kind": "marker", "size": 0.1})
    changed = marked != gray
    assert changed.sum() > 0 and not (changed & (r.labels >= 2)).any()
    assert (plant_artefact(gray, {"kind": "none"}) == gray).all() and ARTEFACTS[0] == "none"
    with pytest.raises(ValueError, match="artefact kind"):
        plant_artefact(gray, {"kind": "watermark"})


def test_cramers_v_is_one_for_a_class_given_by_its_source_and_zero_when_independent() -> None:
    tied = pd.DataFrame({"label4": ["normal"] * 6 + ["tb"] * 6, "source": ["a"] * 6 + ["b"] * 6})
    free = pd.DataFrame({"label4": ["normal", "tb"] * 6, "source": ["a"] * 6 + ["b"] * 6})
    assert cramers_v(class_source_table(tied)) == pytest.approx(1.0)
    assert cramers_v(class_source_table(free)) == pytest.approx(0.0)
    assert set(class_source_table(tied)["main_share"]) == {1.0}


@pytest.mark.slow
def test_the_audit_flags_a_planted_source_artefact(tmp_path: Path, test_config: dict[str, Any]) -> None:
    probes, v = _audit(tmp_path, test_config, planted=True)
    outside = probes.set_index("view").loc["outside"]
    # the marker is outside the lung: the probe of the film outside the lung reads it
    assert outside["balanced_accuracy"] >= 0.95 and outside["n"] >= 12, probes
    assert v["confounded"] and "outside" in v["views_reading_source"], v
    assert v["cramers_v"] == pytest.approx(1.0) and v["main_source"]["tb"] == {"source": "shenzhen", "share": 1.0}


@pytest.mark.slow
def test_the_audit_does_not_flag_independent_class_and_source(tmp_path: Path, test_config: dict[str, Any]) -> None:
    probes, v = _audit(tmp_path, test_config, planted=False)
    assert not v["confounded"] and v["cramers_v"] < 0.1, (probes, v)
    # sources rendered alike: no view reads the source beyond chance + margin
    assert (probes["balanced_accuracy_lo"] <= probes["chance"] + MARGIN).all(), probes
    assert (probes["n"] >= 12).all()
    # the outside view blacks out the lung and draws its patches outside it
    assert read_png(next((tmp_path / "audit" / "views" / "outside").rglob("*.outside.png"))).any()

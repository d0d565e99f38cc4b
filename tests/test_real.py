"""Real films end to end (issue 17): a slice of the NLM Shenzhen set of
``../shared/data/cxr-shenzhen512`` with the sample's JSRT/SCR and Montgomery films runs the
workflow of ``config/real.yaml`` from manifest to evaluation, at a size of minutes, and is
held to real properties. Skips when ``../shared`` is absent (a user's fresh clone)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, SHARED_SAMPLE
from tests.workflow_runs import copy_workflow, snakemake

SHENZHEN = ROOT.parent / "shared" / "data" / "cxr-shenzhen512" / "shenzhen-512"

#: films of each class in the slice: with a lung mask, and without one
WITH_MASK, WITHOUT_MASK = 40, 4
#: the floors the slice is held to (measured on this slice: docs/results.md)
DICE_FLOOR = 0.90  # mean both-lungs Dice of the held-out Shenzhen films
AUC_FLOOR = 0.70  # TB-vs-normal AUC of the better model (chance 0.5)
LUNG_MASS_FLOOR = 0.5  # share of each saliency map's mass inside the lung

# the slice's sizes on top of config/real.yaml: the same sources, roles and methods,
# smaller networks and inputs (seconds per training instead of minutes)
SLICE = """
sources:
  jsrt: {{path: {root}/jsrt}}
  scr: {{path: {root}/scr}}
  montgomery: {{path: {root}/montgomery-512}}
  shenzhen: {{path: {root}/shenzhen-512}}
splits:
  classification: {{train: 0.6, val: 0.1, test: 0.3}}
segmentation:
  size: 128
  train: {{epochs: 8, batch_size: 4, lr: 3.0e-3, milestones: [6], augment: false}}
biomarkers: {{size: 256, patches: 8}}
classification:
  input_size: 256
  train: {{patch: 56, epochs: 20, batch_size: 16, k_val: 5}}
  inference: {{k: 50, bootstrap: 200}}
saliency: {{k: 20, max_images: 4, batch: 20}}
"""


def _copy_slice(root: Path) -> list[str]:
    """The slice's source folders under ``root`` (copies: a source may not link outside
    itself); returns the names of the Shenzhen films copied."""
    jsrt = root / "jsrt" / "images"
    jsrt.mkdir(parents=True)
    for f in sorted((SHARED_SAMPLE / "jsrt" / "images").iterdir()):
        shutil.copy2(f, jsrt / f.name)
    shutil.copytree(SHARED_SAMPLE / "scr", root / "scr")
    shutil.copytree(SHARED_SAMPLE / "montgomery-512", root / "montgomery-512")
    (root / "shenzhen-512" / "CXR_png").mkdir(parents=True)
    (root / "shenzhen-512" / "mask").mkdir()
    names = []
    for cls in ("0", "1"):
        films = sorted(SHENZHEN.glob(f"CXR_png/CHNCXR_*_{cls}.png"))
        masked = [f for f in films if (SHENZHEN / "mask" / f"{f.stem}_mask.png").is_file()]
        bare = [f for f in films if f not in masked]
        for f in masked[:WITH_MASK]:
            shutil.copy2(f, root / "shenzhen-512" / "CXR_png" / f.name)
            shutil.copy2(SHENZHEN / "mask" / f"{f.stem}_mask.png", root / "shenzhen-512" / "mask")
            names.append(f.name)
        for f in bare[:WITHOUT_MASK]:
            shutil.copy2(f, root / "shenzhen-512" / "CXR_png" / f.name)
            names.append(f.name)
    return names


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not (SHENZHEN / "CXR_png").is_dir() or not (SHARED_SAMPLE / "jsrt").is_dir():
        pytest.skip("the real data (../shared/data/cxr-shenzhen512, ../shared/data/cxr-sample) is not here")
    base = tmp_path_factory.mktemp("real")
    names = _copy_slice(base / "data")
    workdir = copy_workflow(base / "run")
    (workdir / "slice.yaml").write_text(SLICE.format(root=base / "data"))
    config = ("--configfile", "config/config.yaml", "config/real.yaml", "slice.yaml")
    proc = snakemake(workdir, "--cores", "2", *config, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return workdir, names, config


@pytest.mark.slow
def test_real_slice_every_film_is_in_the_manifest_or_the_quarantine(real_slice: Any) -> None:
    from patchcxr.io import read_tsv

    workdir, names, _ = real_slice
    results = workdir / "results"
    manifest = read_tsv(results / "data" / "manifest.tsv")
    quarantine = read_tsv(results / "data" / "quarantine.tsv")
    shenzhen = manifest[manifest["source"] == "shenzhen"]
    seen = {Path(p).name for p in shenzhen["source_path"]} | {
        Path(p).name for p in quarantine.loc[quarantine["source"] == "shenzhen", "file"]
    }
    assert seen == set(names) and len(shenzhen) + (quarantine["source"] == "shenzhen").sum() == len(names)
    # the cohort is the Shenzhen films, every one with a predicted mask and an input
    cohort = read_tsv(results / "data" / "cohort.tsv")
    assert set(cohort["source"]) == {"shenzhen"} and len(cohort) == len(shenzhen)
    inputs = read_tsv(results / "classification" / "inputs.tsv")
    assert sorted(inputs["image_id"]) == sorted(cohort["image_id"])
    assert set(inputs["mask_source"]) <= {"predicted", "atlas"}
    assert (inputs["mask_source"] == "predicted").mean() >= 0.95
    # Shenzhen patients keep their classification split in segmentation (no test film's
    # mask comes from a network trained on its annotation)
    seg = read_tsv(results / "splits" / "segmentation.tsv")
    cls = read_tsv(results / "splits" / "classification.tsv").set_index("image_id")["split"]
    sz = seg[seg["source"] == "shenzhen"]
    assert (sz["split"] == sz["image_id"].map(cls)).all()


@pytest.mark.slow
def test_real_slice_segmenter_finds_the_lungs_of_held_out_patients(real_slice: Any) -> None:
    from patchcxr.io import read_tsv

    workdir, _, _ = real_slice
    scores = read_tsv(workdir / "results" / "segmentation" / "scores.tsv", typed=True)
    lungs = scores[scores["structure"] == "both lungs"]
    held_out = lungs[lungs["dataset"] == "shenzhen"]
    assert len(held_out) >= 20
    assert held_out["dice"].mean() >= DICE_FLOOR, held_out["dice"].describe()
    # cross-database: Montgomery, never seen in training, still far above an empty mask
    assert lungs.loc[lungs["dataset"] == "montgomery", "dice"].mean() >= 0.8


@pytest.mark.slow
def test_real_slice_classifier_separates_tb_from_normal_above_chance(real_slice: Any) -> None:
    from patchcxr.io import read_tsv

    workdir, _, _ = real_slice
    auc = {}
    for model in ("local", "global"):
        m = read_tsv(workdir / "results" / "evaluation" / model / "seed_2020" / "metrics.tsv", typed=True)
        row = m[(m["class"] == "tb") & (m["metric"] == "auc")].iloc[0]
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
        auc[model] = float(row["value"])
    assert max(auc.values()) >= AUC_FLOOR, auc


@pytest.mark.slow
def test_real_slice_saliency_lies_in_the_lung_and_a_rerun_does_nothing(real_slice: Any) -> None:
    from patchcxr.io import read_tsv

    workdir, _, config = real_slice
    sal = read_tsv(workdir / "results" / "saliency" / "local" / "saliency.tsv", typed=True)
    assert len(sal) >= 1
    assert (sal["lung_mass"] >= LUNG_MASS_FLOOR).all(), sal["lung_mass"].tolist()
    maps = [np.load(workdir / "results" / "saliency" / "local" / "maps" / f"{i}.npy") for i in sal["image_id"]]
    assert all(m.shape == (256, 256) and np.isfinite(m).all() for m in maps)
    again = snakemake(workdir, "-n", "--cores", "2", *config)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_the_gpu_check_says_it_did_not_run_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: bench/gpu.sh would run the full-size check")
    proc = subprocess.run(["bash", "bench/gpu.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "no CUDA device on this machine" in proc.stdout and "nothing run" in proc.stdout

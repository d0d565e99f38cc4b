"""Running the workflow from tests: a copy of the workflow in a fresh folder, the CI
configuration, and the digest of the tables a run must reproduce exactly."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

WORKFLOW_FILES = ["Snakefile", "workflow", "config", ".test", "profiles", "envs"]
CI_CONFIG = ("--configfile", "config/config.yaml", ".test/config.yaml")

#: tables (and the figures' source tables) that two runs of one configuration must
#: reproduce byte for byte (CPU, fixed seeds); logs, models (their metadata carries
#: times) and PNGs (their encoder may differ between library builds) are left out
REPRODUCIBLE = [
    "data/manifest.tsv",
    "data/cohort.tsv",
    "data/quarantine.tsv",
    "splits/*.tsv",
    "segmentation/summary.tsv",
    "segmentation/scores.tsv",
    "masks/qc.tsv",
    "biomarkers/features.tsv",
    "biomarkers/tests.tsv",
    "biomarkers/histograms.tsv",
    "classification/inputs.tsv",
    "segmentation/tests.tsv",
    "classification/*/seed_*/history.tsv",
    "evaluation/*/seed_*/predictions.tsv",
    "evaluation/*/seed_*/metrics.tsv",
    "evaluation/*/seed_*/confusion.tsv",
    "evaluation/*/seed_*/predictions_val.tsv",
    "evaluation/*/seed_*/strata.tsv",
    "evaluation/*/seed_*/calibration.tsv",
    "evaluation/global_vs_local.tsv",
    "evaluation/global_vs_local_pooled.tsv",
    "evaluation/over_seeds.tsv",
    "saliency/local/saliency.tsv",
    "saliency/local/randomisation.tsv",
    "saliency/local/sanity.tsv",
    "audit/*.tsv",
    "audit/verdict.json",
    "audit/*/*/predictions.tsv",
    "external/plan.tsv",
    "paper/*.tsv",
    "paper/metrics.json",
]


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def copy_workflow(dest: Path) -> Path:
    """The workflow's files in a fresh folder: runs there do not see this checkout's results."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def reproducible_digest(workdir: Path) -> dict[str, str]:
    """sha256 of every file of :data:`REPRODUCIBLE` under ``workdir/results``; the history
    tables without their wall-clock column."""
    results = workdir / "results"
    out = {}
    for pattern in REPRODUCIBLE:
        for path in sorted(results.glob(pattern)):
            data = path.read_bytes()
            if path.name == "history.tsv":  # drop the `seconds` column (wall clock)
                rows = [line.split(b"\t") for line in data.splitlines()]
                col = rows[0].index(b"seconds")
                data = b"\n".join(b"\t".join(r[:col] + r[col + 1 :]) for r in rows)
            out[str(path.relative_to(results))] = hashlib.sha256(data).hexdigest()
    return out

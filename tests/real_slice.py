"""The real-data slice of tests/test_real.py: its films copied from ``../shared``, its
overlay and its workflow run (about 3 minutes on 2 cores)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, SHARED_SAMPLE

SHENZHEN = ROOT.parent / "shared" / "data" / "cxr-shenzhen512" / "shenzhen-512"

#: set (by .ci/run) to skip the slice's workflow run: CI's time budget (see .ci/run)
SKIP_ENV = "PATCHCXR_SKIP_REAL_SLICE"

#: films of each class in the slice: with a lung mask, and without one
WITH_MASK, WITHOUT_MASK = 40, 4

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
classification:
  input_size: 256
  train: {{patch: 56, epochs: 12, batch_size: 16, k_val: 5}}
  inference: {{k: 50, bootstrap: 100}}
saliency: {{k: 20, max_images: 3, batch: 20}}
"""

#: what the tests read: the workflow runs up to these (no biomarkers, figures or paper
#: tables: CI time); targets are named before --configfile
TARGETS = (
    "results/data/quarantine.tsv",
    "results/classification/inputs.tsv",
    "results/segmentation/summary.tsv",
    "results/evaluation/local/seed_2020/metrics.tsv",
    "results/evaluation/global/seed_2020/metrics.tsv",
    "results/saliency/local/saliency.tsv",
)
CONFIG = ("--configfile", "config/config.yaml", "config/real.yaml", "slice.yaml")


def available() -> bool:
    """The real data is beside the repository."""
    return (SHENZHEN / "CXR_png").is_dir() and (SHARED_SAMPLE / "jsrt").is_dir()


def copy_slice(root: Path) -> list[str]:
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


@dataclass
class SliceRun:
    """The slice's workflow run: its folder, the films copied, and the process."""

    workdir: Path
    names: list[str]
    proc: subprocess.Popen[str]
    started: float = field(default_factory=time.monotonic)

    def wait(self, timeout: float = 1800) -> tuple[int, str]:
        """Exit status and output of the run, waiting for it if need be."""
        out, _ = self.proc.communicate(timeout=timeout)
        return int(self.proc.returncode), out


def start(base: Path) -> SliceRun:
    """Copy the slice and the workflow under ``base`` and start the run."""
    from tests.workflow_runs import copy_workflow

    names = copy_slice(base / "data")
    workdir = copy_workflow(base / "run")
    (workdir / "slice.yaml").write_text(SLICE.format(root=base / "data"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *TARGETS, "--cores", "2", *CONFIG],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    return SliceRun(workdir, names, proc)

"""Benchmark (issue 8 e): Snakemake's own overhead on a large cohort.

Plain script: ``python bench/bench_workflow.py [--images 20000]`` (a few minutes: it builds
the cohort and runs the data stage for real once).

A copy of the workflow in a temporary folder gets the demo's synthetic JSRT/SCR (the
segmentation training set) and a ``csv`` source of ``--images`` small unique PNG films
(labels cycling through the five classes). The data stage runs once (index, harmonisation
shards of ``data.shard_size`` images, manifest, cohort, splits); then it times

1. ``snakemake -n`` of the whole workflow: the DAG over the full manifest, every mask,
   biomarker and classifier-input shard included (goal < 5 s);
2. ``snakemake -n stage_data``, a no-op rerun of the finished data stage (goal < 5 s).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine
from PIL import Image

from patchcxr.data.labels import LABEL5_BY_LABEL4

ROOT = Path(__file__).resolve().parents[1]
CLASSES = LABEL5_BY_LABEL4


def run(workdir: Path, *args: str) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=3600
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def main(n_images: int, shard_size: int) -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "workflow", "config", "envs", "profiles"):
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        films = work / "resources" / "big"
        films.mkdir(parents=True)
        rng = np.random.default_rng(0)
        rows = ["path,label,patient_id"]
        t = time.perf_counter()
        for i in range(n_images):
            Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(films / f"f{i:05d}.png")
            rows.append(f"f{i:05d}.png,{CLASSES[i % 5]},p{i}")
        (films / "images.csv").write_text("\n".join(rows) + "\n")
        print(f"{n_images} films written in {time.perf_counter() - t:.1f} s")
        (work / "big.yaml").write_text(
            "synthetic: {sources: [jsrt, scr], jsrt: {non_nodule: 4, nodule: 2}}\n"
            "sources:\n"
            "  jsrt: {format: jsrt, path: results/synthetic/jsrt, masks: scr}\n"
            "  scr: {format: scr, path: results/synthetic/scr}\n"
            "  montgomery: {enabled: false}\n  shenzhen: {enabled: false}\n"
            "  kermany: {enabled: false}\n  cohen: {enabled: false}\n"
            "  big: {format: csv, path: resources/big}\n"
            "splits: {segmentation: {sources: {jsrt: split}}}\n"
            f"data: {{cohort: all, shard_size: {shard_size}}}\n"
            "tracking: {enabled: false}\n"
        )
        cfg = ("--configfile", "config/config.yaml", "big.yaml")
        seconds, _ = run(work, "--cores", "2", "stage_data", *cfg)
        manifest = work / "results" / "data" / "manifest.tsv"
        n = sum(1 for _ in manifest.open()) - 1
        shards = -(-n_images // shard_size)
        print(f"data stage (index, {shards} harmonisation shards, manifest, splits): {seconds:.1f} s")
        print(f"manifest: {n} images")
        seconds, out = run(work, "-n", "--cores", "2", *cfg)
        total = re.search(r"^total\s+(\d+)", out, re.M)
        print(f"1. snakemake -n, whole workflow ({total.group(1) if total else '?'} jobs): {seconds:.2f} s (goal < 5)")
        seconds, out = run(work, "-n", "--cores", "2", "stage_data", *cfg)
        assert "Nothing to be done" in out
        print(f"2. no-op rerun of the data stage (snakemake -n stage_data): {seconds:.2f} s (goal < 5)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--shard-size", type=int, default=400)
    a = ap.parse_args()
    main(a.images, a.shard_size)

"""Benchmark (issue 19 §4): how the workflow's cost grows with the cohort.

Plain script: ``python bench/bench_scaling.py [--images 100 400 1600] [--cores 2]``
(about 25 minutes on 2 cores for the default sizes).

For each size N a copy of the workflow in a temporary folder runs the CI configuration
(``.test/config.yaml``: small films, tiny networks, one epoch) end to end, paper target
included, with its synthetic Montgomery, Shenzhen, Kermany and Cohen sources scaled so that
the manifest holds about N films; what must not grow with N stays fixed (the JSRT/SCR
segmentation training set, the saliency and sanity images, the bootstrap). The
harmonisation and mask shards keep their size, so their number grows with N as a large
cohort's would. The classifiers train on every training film once per epoch
(``classification.train.draws: null``, the paper's epoch), so their cost should grow
linearly.

From each run's Snakemake benchmark files (``benchmarks/<stage>/``) it prints, per stage:
job seconds summed over the stage's jobs and the largest peak resident memory of one of its
jobs, at each N; then the exponent b of the least-squares fit ``seconds ∝ N^b`` over the
sizes (1: linear; 0: constant) and the ratio of peak memories between the largest and the
smallest N (1: flat). And the run's wall time. Stages whose jobs all take under a second
are listed but not fitted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from machine import machine
from rule_timings import collect  # bench/rule_timings.py

ROOT = Path(__file__).resolve().parents[1]

#: the synthetic sources scaled with N and their classes (.test/config.yaml's layout)
SCALED = {
    "montgomery": ("normal", "tb"),
    "shenzhen": ("normal", "tb"),
    "kermany": ("normal", "bacterial", "viral"),
    "cohen": ("normal", "bacterial", "viral", "covid19"),
}


def overlay(n_images: int, shard_size: int) -> dict[str, object]:
    """The CI configuration's synthetic sources at about ``n_images`` films in all."""
    per_class = max(2, round(n_images / sum(len(c) for c in SCALED.values())))
    return {
        "synthetic": {src: {"counts": dict.fromkeys(classes, per_class)} for src, classes in SCALED.items()},
        "data": {"shard_size": shard_size},
        "segmentation": {"predict": {"shard_size": shard_size}},
        "classification": {"train": {"draws": None}},
    }


def run_size(n_images: int, shard_size: int, cores: int) -> tuple[pd.DataFrame, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "workflow", "config", "envs", "profiles", ".test"):
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        (work / "scale.yaml").write_text(yaml.safe_dump(overlay(n_images, shard_size)))
        t = time.perf_counter()
        configs = ("config/config.yaml", ".test/config.yaml", "scale.yaml")
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", *configs],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=7200,
        )
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"the run of {n_images} films failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
        films = sum(1 for _ in (work / "results" / "data" / "manifest.tsv").open()) - 1
        return collect(work), wall, films


def exponent(n: np.ndarray, s: np.ndarray) -> float:
    """Slope of log(seconds) on log(N), least squares."""
    return float(np.polyfit(np.log(n), np.log(s), 1)[0])


def main(sizes: list[int], shard_size: int, cores: int) -> None:
    print(f"machine: {machine()}; {cores} cores; shards of {shard_size} films")
    per_size, walls, films = [], [], []
    for n in sizes:
        jobs, wall, count = run_size(n, shard_size, cores)
        print(f"N = {n}: {count} films in the manifest, {len(jobs)} jobs, wall {wall:.0f} s")
        stages = jobs.groupby("stage").agg(jobs=("s", "size"), s=("s", "sum"), rss=("max_rss_mb", "max"))
        per_size.append(stages)
        walls.append(wall)
        films.append(count)
    n = np.array(films, float)
    head = " | ".join(f"N={c}: jobs, s, peak MB" for c in films)
    print(f"\n| stage | {head} | exponent of s | memory ratio |")
    print("|---|" + "---|" * len(films) + "---:|---:|")
    stages = sorted(set().union(*(s.index for s in per_size)))
    for stage in stages:
        cells, secs, rss = [], [], []
        for s in per_size:
            if stage in s.index:
                r = s.loc[stage]
                cells.append(f"{int(r['jobs'])}, {r['s']:.1f}, {r['rss']:.0f}")
                secs.append(float(r["s"]))
                rss.append(float(r["rss"]))
            else:
                cells.append("—")
        fitted = len(secs) == len(films) and min(secs) >= 1.0
        b = f"{exponent(n, np.array(secs)):.2f}" if fitted else "—"
        ratio = f"{rss[-1] / rss[0]:.2f}" if len(rss) == len(films) and rss[0] > 0 else "—"
        print(f"| {stage} | " + " | ".join(cells) + f" | {b} | {ratio} |")
    total = [float(s["s"].sum()) for s in per_size]
    print("| all jobs | " + " | ".join(f"{t:.0f} s" for t in total) + f" | {exponent(n, np.array(total)):.2f} | |")
    print("| wall | " + " | ".join(f"{w:.0f} s" for w in walls) + f" | {exponent(n, np.array(walls)):.2f} | |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[100, 400, 1600])
    ap.add_argument("--shard-size", type=int, default=50, help="films per harmonisation and mask shard")
    ap.add_argument("--cores", type=int, default=2)
    a = ap.parse_args()
    main(a.images, a.shard_size, a.cores)

"""Wall time and peak memory of a workflow run, per stage and rule, from its Snakemake
benchmark files (``benchmarks/<stage>/<job>.tsv``: ``s`` seconds, ``max_rss`` MB).

    python bench/rule_timings.py [RUN_FOLDER]      # default: this checkout

Prints a Markdown table (stage, job kind, jobs, total and longest seconds, peak resident
memory) and the totals. The job kind is the benchmark file's name without its shard or
seed suffix. A job that was killed and rerun has the rerun's figures (the benchmark file
is rewritten).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd


def collect(run: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((run / "benchmarks").rglob("*.tsv")):
        b = pd.read_csv(path, sep="\t")
        kind = re.sub(r"(_seed)?_\d+$", "", path.stem)
        rows.append(
            {
                "stage": path.parent.relative_to(run / "benchmarks").as_posix(),
                "job": kind,
                "s": float(b["s"].iloc[-1]),
                "max_rss_mb": float(pd.to_numeric(b["max_rss"], errors="coerce").iloc[-1]),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "job", "s", "max_rss_mb"])


def main(run: Path) -> None:
    jobs = collect(run)
    if jobs.empty:
        sys.exit(f"no benchmark files under {run / 'benchmarks'}")
    table = (
        jobs.groupby(["stage", "job"], sort=False)
        .agg(jobs=("s", "size"), total_s=("s", "sum"), longest_s=("s", "max"), peak_rss_mb=("max_rss_mb", "max"))
        .reset_index()
        .sort_values("total_s", ascending=False)
    )
    print("| stage | job | jobs | total s | longest s | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    for r in table.itertuples():
        print(f"| {r.stage} | {r.job} | {r.jobs} | {r.total_s:.0f} | {r.longest_s:.0f} | {r.peak_rss_mb:.0f} |")
    print(
        f"\n{len(jobs)} jobs, {jobs['s'].sum():.0f} s of job time in all, "
        f"peak resident memory of one job {jobs['max_rss_mb'].max():.0f} MB"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])

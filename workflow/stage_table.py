"""Print the workflow's stages (workflow/stages.yaml) with their result folders and, from
Snakemake's benchmark files (``benchmarks/<folder>/…tsv``, one per job), the jobs each
stage ran and their summed wall time: what `make demo` shows when it finishes.

    python workflow/stage_table.py [RUN_FOLDER]
"""

import csv
import sys
from pathlib import Path

import yaml


def job_seconds(benchmarks: Path, folders: list[str]) -> tuple[int, float]:
    """Jobs and summed seconds of the benchmark files under the stage's folders' names
    (``results/evaluation`` → ``benchmarks/evaluation/``)."""
    jobs, seconds = 0, 0.0
    for folder in folders:
        for path in sorted((benchmarks / Path(folder).name).rglob("*.tsv")):
            with open(path) as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            if rows:
                jobs += 1
                seconds += float(rows[-1]["s"])
    return jobs, seconds


def main(run: Path) -> None:
    stages = yaml.safe_load((Path(__file__).parent / "stages.yaml").read_text())
    total = 0.0
    print(f"  {'stage':<13} {'jobs':>4} {'job s':>7}  {'folders':<40} summary")  # noqa: T201
    for name, spec in stages.items():
        jobs, seconds = job_seconds(run / "benchmarks", spec["folders"])
        total += seconds
        folders = ", ".join(spec["folders"])
        print(f"  {name:<13} {jobs:>4} {seconds:>7.0f}  {folders:<40} {spec['summary']}")  # noqa: T201
    print(f"  {'all':<13} {'':>4} {total:>7.0f}  (job seconds; jobs run side by side on several cores)")  # noqa: T201


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())

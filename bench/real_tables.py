"""The tables of docs/results.md from finished runs, printed as they are pasted there.

    python bench/real_tables.py RUN [RUN ...] [--positive tb]

For each run folder (its ``results/``): every classifier run (model, seed) with its
backbone, recipe and initialisation, n films and patients, accuracy, macro-F1, macro AUC
and, with ``--positive``, that class's sensitivity, specificity and AUC, each with its 95 %
patient-bootstrap interval; the mean ± sd over seeds; local against global per seed and
pooled over seeds (results/evaluation/global_vs_local*.tsv).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from patchcxr.io import read_tsv
from patchcxr.paper.tables import initialisation_columns


def interval(row: pd.Series) -> str:
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def runs_table(run: Path, positive: str | None) -> pd.DataFrame:
    rows = []
    for metrics_path in sorted((run / "results" / "evaluation").glob("*/seed_*/metrics.tsv")):
        model, seed = metrics_path.parts[-3], int(metrics_path.parts[-2].removeprefix("seed_"))
        m = read_tsv(metrics_path, typed=True).set_index(["class", "metric"])
        pred = read_tsv(metrics_path.parent / "predictions.tsv")
        meta = json.loads((run / "results" / "classification" / model / f"seed_{seed}" / "metadata.json").read_text())
        init = initialisation_columns(meta)
        row = {
            "model": model,
            "seed": seed,
            "backbone": init["backbone"],
            "recipe": init["recipe"],
            "init": init["initialisation"].split(" (")[0],
            "n (patients)": f"{len(pred)} ({pred['patient_id'].nunique()})",
            "accuracy": interval(m.loc[("accuracy", "recall")]),
            "macro-F1": interval(m.loc[("macro", "f1")]),
            "macro AUC": interval(m.loc[("macro", "auc")]),
        }
        if positive:
            row |= {
                f"{positive} sensitivity": interval(m.loc[(positive, "recall")]),
                f"{positive} specificity": interval(m.loc[(positive, "specificity")]),
                f"{positive} AUC": interval(m.loc[(positive, "auc")]),
            }
        row["epoch kept"] = f"{meta['best_epoch']}/{meta['epochs_run']}"
        row["precision"] = meta.get("precision", "")
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--positive", default=None, help="a class whose sensitivity, specificity and AUC to print")
    args = p.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)
    for run in args.runs:
        print(f"## {run}\n")
        print(runs_table(run, args.positive).to_markdown(index=False))
        ev = run / "results" / "evaluation"
        seeds = read_tsv(ev / "over_seeds.tsv", typed=True)
        wanted = [("accuracy", "recall"), ("macro", "f1"), ("macro", "auc")]
        if args.positive:
            wanted += [(args.positive, "recall"), (args.positive, "specificity"), (args.positive, "auc")]
        keep = seeds[[(c, m) in wanted for c, m in zip(seeds["class"], seeds["metric"], strict=True)]]
        print("\nover seeds (mean, sd, range; n seeds):\n")
        columns = ["model", "class", "metric", "mean", "sd", "min", "max", "n_seeds", "values"]
        print(keep[columns].to_markdown(index=False))
        comparison = read_tsv(ev / "global_vs_local.tsv", typed=True)
        diff = comparison.dropna(subset=["difference"])
        print("\nlocal - global, per seed:\n")
        cols = ["seed", "class", "metric", "local", "global", "difference"]
        cols += ["ci_low", "ci_high", "p_value", "p_holm", "test"]
        print(diff[cols].to_markdown(index=False))
        pooled = ev / "global_vs_local_pooled.tsv"
        if pooled.is_file():
            print("\nlocal - global, pooled over seeds:\n")
            print(read_tsv(pooled, typed=True).drop(columns=["comparison"]).to_markdown(index=False))
        print()


if __name__ == "__main__":
    main()

"""Summary of an accelerator run (bench/gpu.sh): throughput from the training histories
and the headline metrics, with the device named.

    python bench/gpu_summary.py RUN_FOLDER DEVICE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def throughput(history: Path, per_epoch: int) -> str:
    """Epochs per second and items (images or patches) per second of one training."""
    h = pd.read_csv(history, sep="\t")
    seconds = float(h["seconds"].sum())
    return f"{len(h)} epochs in {seconds:.0f} s: {len(h) / seconds:.3f} epochs/s, {per_epoch * len(h) / seconds:.1f}/s"


def main(run: Path, device: str) -> None:
    print(f"device: {device}")
    for model_dir in sorted((run / "results" / "segmentation").glob("*/*/seed_*")):
        meta = json.loads((model_dir / "metadata.json").read_text())
        n = int(meta.get("n_train", 0))
        where = f"{model_dir.relative_to(run)} ({meta.get('precision', 'fp32')})"
        print(f"segmentation {where}: {throughput(model_dir / 'history.tsv', n)} images")
    for model_dir in sorted((run / "results" / "classification").glob("*/seed_*")):
        meta = json.loads((model_dir / "metadata.json").read_text())
        settings = meta.get("config", {}).get("classifier", {})
        n = int(settings.get("draws") or meta.get("n_train", 0))
        where = f"{model_dir.relative_to(run)} ({meta.get('precision', 'fp32')})"
        print(f"classifier {where}: {throughput(model_dir / 'history.tsv', n)} patches")
    summary = pd.read_csv(run / "results" / "segmentation" / "summary.tsv", sep="\t")
    print(summary[summary["structure"] == "both lungs"].to_string(index=False))
    for metrics in sorted((run / "results" / "evaluation").glob("*/seed_*/metrics.tsv")):
        m = pd.read_csv(metrics, sep="\t")
        keep = m[(m["class"].isin(["accuracy", "macro", "tb"])) & m["metric"].isin(["recall", "specificity", "auc"])]
        print(metrics.relative_to(run))
        print(keep[["class", "metric", "value", "ci_low", "ci_high", "support"]].to_string(index=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])

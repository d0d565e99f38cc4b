"""What limits a classifier of a finished run: retrain it with one setting changed and
score it on the same test films (docs/results.md, "What limits the classifier").

    python bench/real_limits.py RUN MODEL_FILE OUT [--fraction F] [--epochs N] [--draws N]
                                [--seed S] [--mode local|global] [--patch P] [--lr LR] [--label NAME]

``RUN`` is the run folder (its ``results/classification/inputs.tsv`` and
``results/splits/classification.tsv``), ``MODEL_FILE`` the classifier whose settings are
the starting point (``results/classification/<model>/seed_<s>/model.pt``). ``--fraction``
keeps that share of the training films of each class (seeded, whole patients; validation
and test films unchanged): with ``--draws`` fixed, every arm takes the same number of
steps, so the arms differ in the films they see only. Prints one line per arm: test
accuracy and TB-vs-normal ROC AUC with 95 % patient-bootstrap intervals, n, and the
training time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from patchcxr.classification.predict import predict_split
from patchcxr.classification.settings import settings_of_model_file
from patchcxr.classification.train import train_classifier
from patchcxr.evaluation.metrics import metrics_long
from patchcxr.models.state import Runtime, load_state
from patchcxr.training import TrainingFiles


def thinned_split(split: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The split with only ``fraction`` of each class's training patients left in train
    (the others dropped), validation and test untouched."""
    rng = np.random.default_rng(seed)
    keep = []
    train = split[split["split"] == "train"]
    for _, part in train.groupby("label4"):
        patients = sorted(part["patient_id"].unique())
        n = max(1, round(fraction * len(patients)))
        keep += list(rng.choice(patients, n, replace=False))
    kept = split[(split["split"] != "train") | split["patient_id"].isin(keep)]
    return kept.reset_index(drop=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("model", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--fraction", type=float, default=1.0)
    p.add_argument("--epochs", type=int)
    p.add_argument("--draws", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--mode", choices=["local", "global"])
    p.add_argument("--lr", type=float)
    p.add_argument("--patch", type=int, help="patch side (global: the side the whole image is resized to)")
    p.add_argument("--label", default="")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    args.model, args.out = args.model.resolve(), args.out.resolve()
    os.chdir(args.run)  # the run's tables name their files relative to the run folder
    args.run = Path(".")
    torch.set_num_threads(args.threads)
    settings, inputs = settings_of_model_file(load_state(args.model))
    changes = {
        "epochs": args.epochs,
        "draws": args.draws,
        "seed": args.seed,
        "mode": args.mode,
        "patch": args.patch,
        "lr": args.lr,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})
    args.out.mkdir(parents=True, exist_ok=True)
    split = pd.read_csv(args.run / "results" / "splits" / "classification.tsv", sep="\t", dtype=str)
    thinned = thinned_split(split, args.fraction, seed=settings.seed)
    thinned.to_csv(args.out / "split.tsv", sep="\t", index=False)
    n_train = int((thinned["split"] == "train").sum())
    start = time.perf_counter()
    train_classifier(
        inputs_path=str(args.run / "results" / "classification" / "inputs.tsv"),
        split_path=str(args.out / "split.tsv"),
        settings=settings,
        input_settings=inputs,
        files=TrainingFiles(
            model=args.out / "model.pt",
            metadata=args.out / "metadata.json",
            history=args.out / "history.tsv",
            resume_dir=args.out / "resume",
        ),
        runtime=Runtime(),
    )
    seconds = time.perf_counter() - start
    pred = predict_split(
        args.out / "model.pt",
        args.run / "results" / "classification" / "inputs.tsv",
        args.out / "split.tsv",
        k=100,
        seed=settings.seed,
    )
    pred.to_csv(args.out / "predictions.tsv", sep="\t", index=False)
    names = list(load_state(args.out / "model.pt")["classes"])
    scores = pred[[f"prob_{n}" for n in names]].to_numpy(float)
    m = metrics_long(
        pred["true_index"].to_numpy(),
        pred["pred_hard_index"].to_numpy(),
        names,
        groups=pred["patient_id"].to_numpy(),
        n_boot=1000,
        scores=scores,
    ).set_index(["class", "metric"])
    acc, auc = m.loc[("accuracy", "recall")], m.loc[("tb", "auc")]
    line = {
        "arm": args.label or f"fraction {args.fraction}",
        "mode": settings.mode,
        "n_train": n_train,
        "epochs": settings.epochs,
        "draws": settings.draws,
        "patch": settings.patch,
        "lr": settings.lr,
        "n_test": len(pred),
        "accuracy": f"{acc['value']:.3f} [{acc['ci_low']:.3f}, {acc['ci_high']:.3f}]",
        "auc_tb": f"{auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]",
        "train_s": round(seconds),
    }
    (args.out / "result.json").write_text(json.dumps(line, indent=1))
    print("\t".join(f"{k}={v}" for k, v in line.items()))


if __name__ == "__main__":
    main()

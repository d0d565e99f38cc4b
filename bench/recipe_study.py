"""The training-recipe study (issue 26): train a classifier of a finished run's inputs
with the configuration's settings and some changed, and score it on the run's
*validation* films only (choices are made there; the test films stay unseen).

    python bench/recipe_study.py RUN OUT --config config/config.yaml config/real.yaml \\
        [--mode local|global] [--backbone NAME] [--recipe NAME] [--weights ROUTE [PATH]] \\
        [--set KEY=VALUE ...] [--label NAME] [--precision fp32|bf16] [--threads 2]

``RUN`` is a run folder (its ``results/classification/inputs.tsv`` and
``results/splits/classification.tsv``); the settings are those the workflow would train
with (``--config`` files merged as Snakemake merges them, the chosen recipe over
``classification.train``), then ``--backbone``, ``--recipe`` and every ``--set`` (a value
in YAML: ``--set lr=2e-3 --set schedule=cosine``). ``--weights registry`` takes
``RUN/resources/weights/<backbone>-imagenet-registry.pth`` unless a path follows.

Appends one row to ``OUT/study.tsv`` and prints it: the training loss of the first, middle
and last epoch (ln C is chance), the kept epoch, the validation ROC AUC and log loss of
the last epoch (no selection) and of the kept epoch's model voting with K patches, the
validation accuracy of that vote, and the training time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from patchcxr.classification.predict import predict_split
from patchcxr.classification.settings import InputSettings, recipe_settings, settings_from
from patchcxr.classification.train import train_classifier, validation_scores
from patchcxr.io import read_tsv
from patchcxr.models.state import Runtime
from patchcxr.models.weights import weights_file_name
from patchcxr.training import TrainingFiles


def merged(files: list[Path]) -> dict[str, Any]:
    """Configuration files merged key by key, later files winning (as Snakemake does)."""

    def update(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        for k, v in b.items():
            a[k] = update(dict(a.get(k) or {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    out: dict[str, Any] = {}
    for f in files:
        out = update(out, yaml.safe_load(f.read_text()) or {})
    return out


def value(text: str) -> Any:
    """A ``--set`` value: YAML, except that ``1e-5`` is a number (YAML 1.1, which PyYAML
    reads, needs ``1.0e-5``)."""
    v = yaml.safe_load(text)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--config", type=Path, nargs="+", required=True)
    p.add_argument("--mode", choices=["local", "global"], default="local")
    p.add_argument("--backbone")
    p.add_argument("--recipe")
    p.add_argument("--weights", nargs="+", default=["none"], help="route [path]")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE (YAML value), a classifier setting")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--k", type=int, default=100, help="patches per validation film of the final vote")
    p.add_argument("--label", default="")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    cfg = merged([c.resolve() for c in args.config])
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    os.chdir(args.run)  # the run's tables name their files relative to the run folder
    torch.set_num_threads(args.threads)

    cls = dict(cfg["classification"])
    cls.setdefault("recipes", {"paper": {}})
    if args.backbone:
        cls["backbone"] = args.backbone
    if args.recipe:
        cls["recipe"] = args.recipe
    changes = {k: value(v) for k, v in (s.split("=", 1) for s in args.set)}
    settings = settings_from(recipe_settings(cls, args.seed, args.mode) | changes)
    route = args.weights[0]
    path = args.weights[1] if len(args.weights) > 1 else ""
    if route in ("registry", "torchvision") and not path:
        path = f"resources/weights/{weights_file_name(settings.backbone, route)}"
    # the input settings the workflow wrote beside the cached inputs
    inputs = InputSettings.read("results/classification/inputs.json")
    label = args.label or ",".join(f"{k}={v}" for k, v in changes.items()) or "as configured"
    work = args.out / label.replace("/", "_").replace(" ", "_")
    t0 = time.perf_counter()
    train_classifier(
        inputs_path="results/classification/inputs.tsv",
        split_path="results/splits/classification.tsv",
        settings=settings,
        input_settings=inputs,
        files=TrainingFiles(
            model=work / "model.pt",
            metadata=work / "metadata.json",
            history=work / "history.tsv",
            resume_dir=work / "r",
        ),
        runtime=Runtime(device="cpu", precision=args.precision),
        weights={"route": route, "path": path, "sha256": ""},
    )
    seconds = time.perf_counter() - t0
    hist = read_tsv(work / "history.tsv")
    pred = predict_split(
        work / "model.pt",
        "results/classification/inputs.tsv",
        "results/splits/classification.tsv",
        k=args.k,
        part="val",
        runtime=Runtime(device="cpu", precision=args.precision),
        seed=args.seed,
    )
    names = list(settings.classes)
    probs = pred[[f"prob_{n}" for n in names]].to_numpy()
    scores = validation_scores(pred["true_index"].to_numpy(), pred["pred_hard_index"].to_numpy(), probs)
    meta = json.loads((work / "metadata.json").read_text())
    n_present = len(set(pred["true_index"]))
    losses = hist["train_loss"].astype(float).to_numpy()
    row = {
        "label": label,
        "mode": settings.mode,
        "backbone": settings.backbone,
        "initialisation": meta.get("initialisation_label", ""),
        "recipe": settings.recipe,
        "epochs": len(hist),
        "draws_per_epoch": settings.draws_for(int(meta["n_train"])),
        "chance_loss": round(math.log(n_present), 3),
        "loss_first": round(float(losses[0]), 3),
        "loss_mid": round(float(losses[len(losses) // 2]), 3),
        "loss_last": round(float(losses[-1]), 3),
        "last_val_auc": round(float(hist["val_auc"].iloc[-1]), 3),
        "last_val_loss": round(float(hist["val_loss"].iloc[-1]), 3),
        "kept_epoch": int(meta["best_epoch"]),
        "select": settings.select,
        "n_val": len(pred),
        "val_auc_k": round(scores["val_auc"], 3),
        "val_loss_k": round(scores["val_loss"], 3),
        "val_accuracy_k": round(scores["val_accuracy"], 3),
        "k": args.k,
        "seconds": round(seconds),
        "precision": args.precision,
        "settings": json.dumps(changes, sort_keys=True),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
    }
    table = args.out / "study.tsv"
    df = pd.DataFrame([row])
    df.to_csv(table, sep="\t", index=False, mode="a", header=not table.exists())
    print("\t".join(f"{k}={v}" for k, v in row.items()), flush=True)
    np.savetxt(work / "train_loss.txt", losses, fmt="%.4f")


if __name__ == "__main__":
    main()

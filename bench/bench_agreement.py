"""Benchmark (issue 31 §2): the default precision ``auto`` against exact fp32 on a trained
local classifier, on the films of one split part, in one run.

Plain script::

    python bench/bench_agreement.py --results RUN/results [--seed 2020] [--part test]

where ``RUN`` is a finished workflow run (``results/classification/local/seed_<seed>/
model.pt``, ``results/classification/inputs.tsv``, ``results/splits/classification.tsv``).
Both precisions draw the same K patch positions per film (one generator per film), so only
the arithmetic differs. Prints the machine, the precision ``auto`` resolves to here, and:

- hard-vote and soft-vote agreement with fp32 (the share of films decided alike);
- accuracy of the hard vote and the macro one-vs-rest AUC of the mean patch probabilities
  (with two classes: the binary AUC) under each, and auto minus fp32 with a 95 % interval
  from a paired bootstrap over patients (both figures on the same resampled patients);
- probabilistic Grad-CAM of the first ``--saliency-images`` films of the saliency class:
  Pearson and Spearman rank correlation with fp32's map over the lung;
- seconds per film of each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from inputs import film_map, trained_run_parser  # bench/inputs.py
from machine import machine
from scipy.stats import pearsonr, spearmanr

from patchcxr.classification.data import load_input
from patchcxr.classification.predict import load_classifier, predict_probs
from patchcxr.evaluation.metrics import auc_by_class
from patchcxr.io import read_tsv
from patchcxr.models.classifier import vote
from patchcxr.models.state import Runtime
from patchcxr.stats import bootstrap_resamples, percentile_interval


def figures(y: np.ndarray, hard: np.ndarray, mean: np.ndarray, names: list[str]) -> tuple[float, float]:
    """(accuracy of the hard vote, macro one-vs-rest AUC of the mean probabilities)."""
    return float(np.mean(hard == y)), auc_by_class(y, mean, names)["macro"]


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    root = results.parent  # the run's folder: inputs.tsv's paths are relative to it
    auto = Runtime(device="cpu", precision="auto").precision
    print(f"machine: {machine()}; precision auto resolves to {auto} here")
    if auto == "fp32":
        raise SystemExit("auto is fp32 on this machine: nothing to compare")
    clf = load_classifier(results / "classification" / "local" / f"seed_{args.seed}" / "model.pt", "cpu")
    model, settings, names, dev = clf.model, clf.settings, clf.classes, clf.device
    inputs = read_tsv(results / "classification" / "inputs.tsv")
    split = read_tsv(results / "splits" / "classification.tsv")
    scored = split if args.part == "all" else split[split["split"] == args.part]
    rows = inputs.merge(scored[["image_id"]], on="image_id").sort_values("image_id")
    if args.images < len(rows):  # a random subset of the films, not the first by name (sources sort together)
        rows = rows.sample(n=args.images, random_state=args.seed).sort_values("image_id")
    print(
        f"model: {results}/classification/local/seed_{args.seed}/model.pt ({', '.join(names)}; patches of "
        f"{settings.patch}² on {clf.inputs.size}² inputs; trained in {clf_precision(results, args.seed)}); "
        f"K = {args.k}, batch {args.batch}"
    )

    def film(r: Any) -> tuple[torch.Tensor, np.ndarray]:
        return load_input(str(root / r.input_path), str(root / r.lung_path))

    precisions = ("fp32", auto)
    means: dict[str, list[np.ndarray]] = {p: [] for p in precisions}
    hards: dict[str, list[int]] = {p: [] for p in precisions}
    softs: dict[str, list[int]] = {p: [] for p in precisions}
    seconds = dict.fromkeys(precisions, 0.0)
    for i, r in enumerate(rows.itertuples()):
        img, lung = film(r)
        for p in precisions:
            rng = np.random.default_rng([args.seed, i])  # the same patches for both
            t = time.perf_counter()
            probs, _ = predict_probs(
                model, img, lung, settings, k=args.k, rng=rng, device=dev, batch=args.batch, precision=p
            )
            seconds[p] += time.perf_counter() - t
            v = vote(probs.float())
            means[p].append(v["mean_prob"].numpy())
            hards[p].append(int(v["hard"]))
            softs[p].append(int(v["soft"]))
    n = len(rows)
    y = np.array([names.index(t) for t in rows[settings.labels]])
    patients = rows["patient_id"].to_numpy()
    mean = {p: np.stack(m) for p, m in means.items()}
    hard = {p: np.array(h) for p, h in hards.items()}
    point = {p: figures(y, hard[p], mean[p], names) for p in precisions}
    draws = []
    for idx in bootstrap_resamples(n, patients, n_boot=args.boot, seed=args.seed):
        a, b = (figures(y[idx], hard[p][idx], mean[p][idx], names) for p in (auto, "fp32"))
        draws.append([a[0] - b[0], a[1] - b[1]])
    lo, hi = percentile_interval(np.array(draws, float))
    agree_hard = float(np.mean(hard[auto] == hard["fp32"]))
    agree_soft = float(np.mean(np.array(softs[auto]) == np.array(softs["fp32"])))
    print(f"\nagreement on {n} {args.part} films of {len(set(patients))} patients (same patches per film)")
    print(f"   hard vote {agree_hard:.4f} ({round(agree_hard * n)}/{n}); soft vote {agree_soft:.4f}")
    print(f"   max |Δ mean probability| {np.abs(mean[auto] - mean['fp32']).max():.4f}")
    print("   figure     fp32     " + f"{auto:5s}    {auto} - fp32 [95 % paired patient bootstrap, {args.boot}]")
    for j, label in enumerate(("accuracy", "macro AUC")):
        d = point[auto][j] - point["fp32"][j]
        print(f"   {label:9s}  {point['fp32'][j]:.4f}   {point[auto][j]:.4f}   {d:+.4f} [{lo[j]:+.4f}, {hi[j]:+.4f}]")
    print(f"   s/film: fp32 {seconds['fp32'] / n:.3f}, {auto} {seconds[auto] / n:.3f}")

    target = args.target or names[-1]
    cams = rows[rows[settings.labels] == target].head(args.saliency_images)
    pearson, spearman = [], []

    def cam_run(i: int) -> dict[str, Any]:
        return {"target": names.index(target), "seed": [args.seed, i], "k": args.k, "device": dev, "batch": args.batch}

    for i, r in enumerate(cams.itertuples()):
        img, lung = film(r)
        maps = {p: film_map(model, img, lung, settings, precision=p, **cam_run(i)) for p in precisions}
        pearson.append(float(pearsonr(maps[auto][lung], maps["fp32"][lung])[0]))
        spearman.append(float(spearmanr(maps[auto][lung], maps["fp32"][lung])[0]))
    if cams.empty and args.saliency_images:
        print(f"   no {target} film among them: no saliency comparison")
    elif not cams.empty:
        print(
            f"   probabilistic Grad-CAM of {len(cams)} {target} films over the lung: Pearson r median "
            f"{np.median(pearson):.5f} (min {min(pearson):.5f}), Spearman rank r median {np.median(spearman):.5f} "
            f"(min {min(spearman):.5f})"
        )


def clf_precision(results: Path, seed: int) -> str:
    """The precision the model was trained in, as its metadata records it."""
    import json

    meta = results / "classification" / "local" / f"seed_{seed}" / "metadata.json"
    return str(json.loads(meta.read_text()).get("precision", "fp32")) if meta.is_file() else "unknown"


if __name__ == "__main__":
    ap = trained_run_parser(__doc__)
    ap.add_argument("--boot", type=int, default=1000)
    main(ap.parse_args())

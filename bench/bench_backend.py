"""Benchmark (issue 19 §2): the inference backend of the K-patch vote and probabilistic
Grad-CAM on a *trained* local classifier, in one run.

Plain script::

    python bench/bench_backend.py --results RUN/results [--seed 2020] [--part test]

where ``RUN`` is a finished workflow run (``results/classification/local/seed_<seed>/
model.pt``, ``results/classification/inputs.tsv``, ``results/splits/classification.tsv``).

1. Agreement with exact fp32, on every film of split part ``--part`` (at most
   ``--images``), each backend drawing the same K patch positions (one generator per
   film), so only the arithmetic differs: hard-vote and soft-vote agreement, Pearson r of
   the films' mean class probabilities and their largest difference; for the first
   ``--saliency-images`` films of the saliency class, Pearson r of the probabilistic
   Grad-CAM maps over the lung. Seconds per film of each backend at the model's own
   settings.
2. Speed at the paper's geometry (K patches of 224² on a 1024² masked input; the trained
   weights, whose input size the network does not fix): the official-style loop (the
   cached input read again for every patch, batch 1, NCHW fp32), ours in fp32
   ``channels_last`` (the default) and each backend; best of ``--repeats``.

Backends: ``bf16`` and ``fp16`` autocast (``patchcxr.models.state.autocast``, the
``precision`` resource of the workflow and ``patchcxr predict --precision``), and
``int8``: post-training static quantisation of the whole network by PyTorch's FX graph mode
with the x86 backend, calibrated on patches of the training split (the vote only:
the quantised graph has no ``layer4`` to take Grad-CAM gradients at, and torch 2.14 marks
the API deprecated). Prints the machine, the table and the ratios.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from inputs import cached_film, film_map, official_vote, trained_run_parser  # bench/inputs.py
from machine import machine
from torch import nn

from patchcxr.classification.data import load_input, to_network
from patchcxr.classification.patches import extract, sample_centres, windows
from patchcxr.classification.predict import image_batch, load_classifier, predict_probs
from patchcxr.io import read_tsv
from patchcxr.models.classifier import vote

BACKENDS = ("fp32", "bf16", "fp16", "int8")


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def quantised(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """An int8 copy of ``model`` (FX graph mode, x86 backend) calibrated on ``calibration``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    net = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notices of torch.ao.quantization
        prepared = prepare_fx(net, get_default_qconfig_mapping("x86"), (to_network(calibration[:2], "resnet18"),))
        with torch.inference_mode():
            for i in range(0, len(calibration), 25):
                prepared(to_network(calibration[i : i + 25], "resnet18"))
        return convert_fx(prepared)


def int8_probs(net: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat(
            [torch.softmax(net(to_network(x[i : i + batch], "resnet18")), 1) for i in range(0, len(x), batch)]
        )


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    root = results.parent  # the run's folder: inputs.tsv's paths are relative to it

    def film(r: Any) -> tuple[torch.Tensor, np.ndarray]:
        return load_input(str(root / r.input_path), str(root / r.lung_path))

    clf = load_classifier(results / "classification" / "local" / f"seed_{args.seed}" / "model.pt", "cpu")
    model, settings, names, dev = clf.model, clf.settings, clf.classes, clf.device
    if settings.mode != "local":
        raise SystemExit("bench_backend needs a local (patch) classifier")
    inputs = read_tsv(results / "classification" / "inputs.tsv")
    split = read_tsv(results / "splits" / "classification.tsv")
    scored = split if args.part == "all" else split[split["split"] == args.part]
    rows = inputs.merge(scored[["image_id"]], on="image_id").sort_values("image_id")
    rows = rows.head(args.images)
    train = inputs.merge(split[split["split"] == "train"][["image_id"]], on="image_id").sort_values("image_id")
    print(f"machine: {machine()}")
    print(
        f"model: {results}/classification/local/seed_{args.seed}/model.pt ({', '.join(names)}; "
        f"patches of {settings.patch}² on {clf.inputs.size}² inputs); K = {args.k}, batch {args.batch}"
    )
    # int8: calibrated on patches of training films (never on the films it is scored on)
    calib = []
    for i, r in enumerate(train.head(args.calibration_images).itertuples()):
        img, lung = film(r)
        calib.append(image_batch(img, lung, settings, 10, rng=np.random.default_rng([args.seed, 10_000 + i]))[0])
    int8 = quantised(model, torch.cat(calib))

    # 1. agreement with fp32 on the split's films
    probs: dict[str, list[np.ndarray]] = {b: [] for b in BACKENDS}
    seconds: dict[str, float] = dict.fromkeys(BACKENDS, 0.0)
    for i, r in enumerate(rows.itertuples()):
        img, lung = film(r)
        for b in BACKENDS:
            rng = np.random.default_rng([args.seed, i])  # the same patches for every backend
            t = time.perf_counter()
            if b == "int8":
                x, _ = image_batch(img, lung, settings, args.k, rng=rng)
                p = int8_probs(int8, x, args.batch)
            else:
                p, _ = predict_probs(
                    model, img, lung, settings, k=args.k, rng=rng, device=dev, batch=args.batch, precision=b
                )
            seconds[b] += time.perf_counter() - t
            probs[b].append(p.float().numpy())
    n = len(rows)
    votes = {b: [vote(torch.from_numpy(p)) for p in ps] for b, ps in probs.items()}
    print(f"\n1. agreement with fp32 on {n} {args.part} films (same patches per film)")
    print("   backend  s/film  hard-vote  soft-vote  mean-prob r  max |Δ mean prob|")
    mean = {b: np.stack([v["mean_prob"].numpy() for v in vs]) for b, vs in votes.items()}
    for b in BACKENDS:
        hard = np.mean([int(v["hard"]) == int(f["hard"]) for v, f in zip(votes[b], votes["fp32"], strict=True)])
        soft = np.mean([int(v["soft"]) == int(f["soft"]) for v, f in zip(votes[b], votes["fp32"], strict=True)])
        print(
            f"   {b:7s}  {seconds[b] / n:6.3f}  {hard:9.3f}  {soft:9.3f}  {pearson(mean[b], mean['fp32']):11.5f}"
            f"  {np.abs(mean[b] - mean['fp32']).max():.4f}"
        )
    # saliency maps of the first films of the saliency class (the autocast backends)
    target = args.target or names[-1]
    cams = rows[rows[settings.labels] == target].head(args.saliency_images)
    rs: dict[str, list[float]] = {b: [] for b in ("bf16", "fp16")}
    cam_seconds: dict[str, float] = dict.fromkeys(("fp32", "bf16", "fp16"), 0.0)

    def cam_run(i: int) -> dict[str, Any]:
        return {"target": names.index(target), "seed": [args.seed, i], "k": args.k, "device": dev, "batch": args.batch}

    for i, r in enumerate(cams.itertuples()):
        img, lung = film(r)
        maps = {}
        for b in cam_seconds:
            t = time.perf_counter()
            maps[b] = film_map(model, img, lung, settings, precision=b, **cam_run(i))
            cam_seconds[b] += time.perf_counter() - t
        for b in rs:
            rs[b].append(pearson(maps[b][lung], maps["fp32"][lung]))
    m = max(len(cams), 1)
    print(f"   probabilistic Grad-CAM of {len(cams)} {target} films, Pearson r with fp32 over the lung:")
    print(f"   fp32  {cam_seconds['fp32'] / m:.3f} s/film")
    for b, r_ in rs.items():
        vals = np.array(r_, float)
        print(
            f"   {b}  {cam_seconds[b] / m:.3f} s/film  r median {np.nanmedian(vals) if len(vals) else float('nan'):.5f}"
            f"  min {np.nanmin(vals) if len(vals) else float('nan'):.5f}"
        )

    # 2. speed at the paper's geometry with the trained weights
    patch, size, k = 224, 1024, args.k
    official_net = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ip, lp = cached_film(Path(tmp), size, seed=1)
        img, lung = load_input(ip, lp)
        paper = dataclasses.replace(settings, patch=patch)
        big_calib = extract(
            img, windows(sample_centres(lung, 50, np.random.default_rng(1)), img.shape[-2:], patch), patch
        )
        int8_big = quantised(model, big_calib)

        def official() -> None:
            official_vote(official_net, ip, lp, k=k, patch=patch, device=torch.device("cpu"))

        def ours(precision: str) -> Callable[[], None]:
            def run() -> None:
                im, lu = load_input(ip, lp)
                p, _ = predict_probs(
                    model,
                    im,
                    lu,
                    paper,
                    k=k,
                    rng=np.random.default_rng(0),
                    device=dev,
                    batch=args.batch,
                    precision=precision,
                )
                vote(p)

            return run

        def ours_int8() -> None:
            im, lu = load_input(ip, lp)
            x, _ = image_batch(im, lu, paper, k, rng=np.random.default_rng(0))
            vote(int8_probs(int8_big, x, args.batch))

        for fn in (official, ours("fp32"), ours("bf16"), ours_int8):
            fn()  # warm-up
        t_off = best(official, args.repeats)
        timed = {b: best(ours(b), args.repeats) for b in ("fp32", "bf16", "fp16")}
        timed["int8"] = best(ours_int8, args.repeats)
    print(f"\n2. K = {k} patches of {patch}² on a {size}² input, trained weights, s per film (best of {args.repeats})")
    print(f"   official style (reload + batch 1, NCHW fp32): {t_off:.3f}")
    for b in BACKENDS:
        label = "ours fp32 channels_last (default)" if b == "fp32" else f"ours {b}"
        print(
            f"   {label:34s}  {timed[b]:.3f}   {t_off / timed[b]:.2f}x the official loop, "
            f"{timed['fp32'] / timed[b]:.2f}x fp32"
        )


if __name__ == "__main__":
    ap = trained_run_parser(__doc__)
    ap.add_argument("--calibration-images", type=int, default=20, help="training films of the int8 calibration")
    ap.add_argument("--repeats", type=int, default=3)
    main(ap.parse_args())

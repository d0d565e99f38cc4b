"""Benchmark (issue 8 c): shared-trunk K-patch inference and saliency against the exact
method — speed, and agreement with a trained classifier.

Plain script:
    python bench/bench_shared_trunk.py [--k 100] [--size 1024] [--patch 224]
    python bench/bench_shared_trunk.py --model results/classification/local/model.pt \\
        --inputs results/classification/inputs.tsv --split results/splits/classification.tsv

Speed: one 1024² synthetic masked input, random-weight ResNet-18; exact = our batched K
crops (bench_kpatch's "ours"); shared = one trunk pass over the whole image, each patch's
logits from the average of its 7×7 feature window (patchcxr.classification.shared_trunk);
the same for probabilistic Grad-CAM.

Agreement (with ``--model``): for the test images of a trained local classifier, the same K
windows through both: hard-vote agreement, Pearson correlation of the per-image mean
probabilities and of the saliency maps within the lung (target: the model's last class).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from inputs import cached_film  # bench/inputs.py
from machine import machine

from patchcxr.classification.data import load_input, to_network
from patchcxr.classification.explain import image_saliency, shared_saliency
from patchcxr.classification.patches import extract, sample_centres, windows
from patchcxr.classification.predict import predict_probs
from patchcxr.classification.settings import ClassifierSettings
from patchcxr.classification.shared_trunk import shared_predict
from patchcxr.models.classifier import network, vote
from patchcxr.models.state import resolve_device
from patchcxr.saliency import aggregate, patch_gradcams


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def speed(k: int, size: int, patch: int, batch: int, repeats: int, dev: torch.device) -> None:
    torch.manual_seed(0)
    model = network("resnet18", 4).to(dev, memory_format=torch.channels_last).eval()  # as load_classifier
    settings = ClassifierSettings(patch=patch)
    with tempfile.TemporaryDirectory() as tmp:
        img, lung = load_input(*cached_film(Path(tmp), size, seed=1))
    wins = windows(sample_centres(lung, k, np.random.default_rng(0)), img.shape[-2:], patch)
    x3 = to_network(img[None], "resnet18").to(dev)
    model(x3[:, :, :patch, :patch])  # warm-up
    rng = np.random.default_rng
    t_exact = timed(
        lambda: vote(predict_probs(model, img, lung, settings, k=k, rng=rng(0), device=dev, batch=batch)[0]), repeats
    )
    t_shared = timed(lambda: vote(shared_predict(model, x3, wins, patch)[0]), repeats)
    s_exact = timed(
        lambda: image_saliency(model, img, lung, settings, k=k, target=3, rng=rng(0), device=dev, batch=batch), repeats
    )
    s_shared = timed(lambda: shared_saliency(model, img, wins, patch=patch, target=3, device=dev), repeats)
    print(f"K = {k} patches of {patch}² on a {size}² input, best of {repeats}, s per image")
    print(f"  vote:     exact batched {t_exact:.3f}   shared trunk {t_shared:.3f}   speed-up {t_exact / t_shared:.1f}x")
    print(f"  Grad-CAM: exact batched {s_exact:.3f}   shared trunk {s_shared:.3f}   speed-up {s_exact / s_shared:.1f}x")


def agreement(model_path: str, inputs_path: str, split_path: str, k: int, batch: int, dev: torch.device) -> None:
    from patchcxr.classification.predict import load_classifier
    from patchcxr.io import read_tsv

    model, settings, names, _ = load_classifier(model_path, str(dev))
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    rows = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id").sort_values("image_id")
    target = len(names) - 1
    same, p_exact, p_shared, sal_r = [], [], [], []
    for i, r in enumerate(rows.itertuples()):
        img, lung = load_input(r.input_path, r.lung_path)
        wins = windows(sample_centres(lung, k, np.random.default_rng([0, i])), img.shape[-2:], settings.patch)
        with torch.inference_mode():
            xs = to_network(extract(img, wins, settings.patch), "resnet18").to(dev)
            exact = torch.cat([torch.softmax(model(xs[j : j + batch]), 1) for j in range(0, k, batch)]).cpu()
        shared, _, _ = shared_predict(model, to_network(img[None], "resnet18").to(dev), wins, settings.patch)
        same.append(int(vote(exact)["hard"]) == int(vote(shared.cpu())["hard"]))
        p_exact += exact.mean(0).tolist()
        p_shared += shared.cpu().mean(0).tolist()
        cams, probs = [], []
        for j in range(0, k, batch):
            c, p = patch_gradcams(model, xs[j : j + batch], target)
            cams.append(c.cpu())
            probs.append(p.cpu())
        m_exact = aggregate(torch.cat(cams), torch.cat(probs), wins, img.shape[-2:])
        m_shared, _ = shared_saliency(model, img, wins, patch=settings.patch, target=target, device=dev)
        sal_r.append(float(np.corrcoef(m_exact[lung], m_shared[lung])[0, 1]))
    print(f"agreement on {len(rows)} test images ({model_path}; patch {settings.patch}, K {k}):")
    print(f"  hard-vote agreement {np.mean(same):.3f} ({sum(same)}/{len(same)})")
    print(f"  mean-probability Pearson r {np.corrcoef(p_exact, p_shared)[0, 1]:.3f}")
    print(f"  saliency Pearson r within the lung: median {np.median(sal_r):.3f}, min {np.min(sal_r):.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--patch", type=int, default=224)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", help="a trained local classifier (model.pt) for the agreement study")
    ap.add_argument("--inputs", default="results/classification/inputs.tsv")
    ap.add_argument("--split", default="results/splits/classification.tsv")
    a = ap.parse_args()
    device = resolve_device(a.device)
    print(f"machine: {machine()}; device {device}")
    if a.model:
        agreement(a.model, a.inputs, a.split, a.k, a.batch, device)
    else:
        speed(a.k, a.size, a.patch, a.batch, a.repeats, device)

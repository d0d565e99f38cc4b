"""Benchmark (issue 8 d): the classifier's training input pipeline against the model step.

Plain script: ``python bench/bench_input_pipeline.py [--images 32] [--steps 10] [--patch 224]``.

(full) training steps as the trainer runs them: class-balanced draws, one lung-centred
patch per draw cut from the cached 1024² inputs (loaded once, as ``train_classifier`` does),
flip and rotation, normalisation, then forward, backward and Adam step; (model) the same
number of steps on ready-made tensors. Prints patches per second of both and their ratio
(goal ≥ 0.9: the input pipeline must not be what limits training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from inputs import cached_film  # bench/inputs.py
from machine import machine

from patchcxr.classification.data import load_input
from patchcxr.classification.settings import ClassifierSettings
from patchcxr.classification.train import make_batches
from patchcxr.models.classifier import network
from patchcxr.models.state import resolve_device


def main(n_images: int, steps: int, patch: int, size: int, batch: int, device: str) -> None:
    dev = resolve_device(device)
    print(f"machine: {machine()}; device {dev}")
    settings = ClassifierSettings(patch=patch, batch_size=batch, draws=steps * batch)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [cached_film(Path(tmp), size, seed=i, label=("normal", "covid19")[i % 2]) for i in range(n_images)]
        loaded = [load_input(*p) for p in pairs]
    images, lungs = [i for i, _ in loaded], [lu for _, lu in loaded]
    targets = np.array([i % 2 for i in range(n_images)])
    torch.manual_seed(0)
    model = network("resnet18", 2).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    batches = make_batches(images, lungs, targets, n_classes=2, settings=settings, device=dev)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    ready = [(x.clone(), y.clone()) for x, y in batches(0)]
    step(*ready[0])  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for x, y in batches(1):
        step(x, y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    full = time.perf_counter() - t
    t = time.perf_counter()
    for x, y in ready:
        step(x, y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    alone = time.perf_counter() - t
    n = steps * batch
    print(f"{steps} steps of {batch} patches of {patch}² from {n_images} cached {size}² inputs")
    print(f"  with sampling, cropping, augmentation: {n / full:.1f} patches/s")
    print(f"  model step alone on ready tensors:     {n / alone:.1f} patches/s")
    print(f"  ratio (goal >= 0.9): {alone / full:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--patch", type=int, default=224)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    main(a.images, a.steps, a.patch, a.size, a.batch, a.device)

"""Benchmark (issue 8 a, b): K-patch vote and probabilistic Grad-CAM for one 1024² masked
image, ours against the official code's pattern and against the lower bound.

Plain script: ``python bench/bench_kpatch.py [--k 100] [--repeats 3] [--device auto]
[--precision auto]``. Ours runs at ``--precision`` (default ``auto``, the workflow's
default: bf16 autocast where the device computes bf16 natively, else fp32; the resolved
precision is printed); the official-style loops stay fp32, as the official code.

a. K-patch vote: (i) official style — for every patch the cached image is read again and
   one forward runs at batch 1; (ours) the image read once, K centres drawn, the K crops in
   batched forwards (``batch``), hard and soft vote; (bound) one batched forward of K
   ready-made patches, no sampling or voting.
b. Probabilistic Grad-CAM: per patch (one full forward and backward each, the official
   code's loop) against ours (batched; the trunk without autograd and only the head
   differentiated, aggregation on the canvas), and the bound of one batched forward+backward
   of the K patches (which ours may beat: it does not backpropagate through the trunk).

c. A training epoch: ``--steps`` optimiser steps of ResNet-18 on batches of 16 patches
   (the paper's batch), in fp32 and at the resolved precision.

Random-weight ResNet-18 (the timing does not depend on the weights); the official style
runs it in PyTorch's default NCHW layout, ours and the bounds in ``channels_last`` as
``load_classifier`` sets it up for inference. Prints the machine,
seconds per image (best of ``repeats``) and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from inputs import cached_film, official_vote  # bench/inputs.py
from machine import machine

from patchcxr.classification.data import load_input, to_network
from patchcxr.classification.explain import image_saliency
from patchcxr.classification.patches import extract, sample_centres, windows
from patchcxr.classification.predict import predict_probs
from patchcxr.classification.settings import ClassifierSettings
from patchcxr.models.classifier import network, vote
from patchcxr.models.state import Runtime, autocast, resolve_device
from patchcxr.saliency import aggregate, patch_gradcams_reference


def best(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def main(k: int, repeats: int, device: str, batch: int, size: int, patch: int, precision: str, steps: int) -> None:
    dev = resolve_device(device)
    prec = Runtime(device=device, precision=precision).precision
    print(f"machine: {machine()}; device {dev}; precision {precision} resolves to {prec}")
    print(f"K = {k} patches of {patch}² on a {size}² masked input, batch {batch}, best of {repeats}")
    torch.manual_seed(0)
    model = network("resnet18", 4).to(dev).eval()  # the official code's layout (NCHW)
    # ours and the bound: the layout load_classifier gives inference models
    fast = network("resnet18", 4).to(dev, memory_format=torch.channels_last).eval()
    fast.load_state_dict(model.state_dict())
    settings = ClassifierSettings(patch=patch)
    with tempfile.TemporaryDirectory() as tmp:
        ip, lp = cached_film(Path(tmp), size, seed=1)
        img, lung = load_input(ip, lp)
        wins = windows(sample_centres(lung, k, np.random.default_rng(0)), img.shape[-2:], patch)
        ready = to_network(extract(img, wins, patch), "resnet18").to(dev)
        ready_cl = ready.contiguous(memory_format=torch.channels_last)

        def official() -> None:
            official_vote(model, ip, lp, k=k, patch=patch, device=dev)

        def ours() -> None:
            im, lu = load_input(ip, lp)
            vote(
                predict_probs(
                    fast, im, lu, settings, k=k, rng=np.random.default_rng(0), device=dev, batch=batch, precision=prec
                )[0]
            )

        def bound() -> None:
            with torch.inference_mode(), autocast(dev, prec):
                for i in range(0, k, batch):
                    fast(ready_cl[i : i + batch])

        model(ready[:2])  # warm-up
        fast(ready_cl[:2])
        t_off, t_ours, t_bound = (best(f, repeats, dev) for f in (official, ours, bound))
        print(f"\na. K-patch vote, s per image (ours and the bound at {prec})")
        print(f"   (i) official style (reload + batch 1): {t_off:.3f}")
        print(f"   ours (read once, batched, vote):       {t_ours:.3f}")
        print(f"   (ii) bound (one batched forward):      {t_bound:.3f}")
        print(f"   speed-up over (i): {t_off / t_ours:.2f}x   share of the bound: {t_bound / t_ours:.2f}")

        def cam_loop() -> None:
            cams, probs = [], []
            for j in range(k):  # the official loop: a full forward and backward per patch
                c, p = patch_gradcams_reference(model, ready[j : j + 1], 3)
                cams.append(c.cpu())
                probs.append(p.cpu())
            aggregate(torch.cat(cams), torch.cat(probs), wins, img.shape[-2:])

        def cam_ours() -> None:
            image_saliency(
                fast,
                img,
                lung,
                settings,
                k=k,
                target=3,
                rng=np.random.default_rng(0),
                device=dev,
                batch=batch,
                precision=prec,
            )

        def cam_bound() -> None:
            for i in range(0, k, batch):
                x = ready_cl[i : i + batch].clone().requires_grad_(True)
                fast(x)[:, 3].sum().backward()
            fast.zero_grad(set_to_none=True)

        c_loop, c_ours, c_bound = (best(f, repeats, dev) for f in (cam_loop, cam_ours, cam_bound))
        print(f"\nb. probabilistic Grad-CAM, s per image (ours at {prec}, the loop in fp32)")
        print(f"   per patch (full forward+backward):   {c_loop:.3f}")
        print(f"   ours (batched, aggregated):          {c_ours:.3f}")
        print(f"   bound (batched forward+backward):    {c_bound:.3f}")
        print(f"   speed-up over per patch: {c_loop / c_ours:.2f}x   share of the bound: {c_bound / c_ours:.2f}")

    # c. a training epoch's steps, fp32 against the resolved precision
    x = torch.randn(16, 3, patch, patch, device=dev).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 4, (16,), device=dev)

    def epoch(p: str) -> Callable[[], None]:
        net = network("resnet18", 4).to(dev, memory_format=torch.channels_last).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-5)

        def run() -> None:
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                with autocast(dev, p):
                    loss = torch.nn.functional.cross_entropy(net(x), target)
                loss.backward()
                opt.step()

        return run

    runs = {p: epoch(p) for p in dict.fromkeys(("fp32", prec))}
    for fn in runs.values():
        fn()  # warm-up
    timed = {p: best(fn, repeats, dev) / steps for p, fn in runs.items()}
    print(f"\nc. training, s per step of 16 patches of {patch}² (best of {repeats} x {steps} steps)")
    for p, t in timed.items():
        print(f"   {p}: {t:.3f}" + (f"   {timed['fp32'] / t:.2f}x fp32" if p != "fp32" else ""))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--patch", type=int, default=224)
    ap.add_argument("--precision", default="auto", help="ours: auto (the default), fp32, bf16 or fp16")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timing of part c")
    a = ap.parse_args()
    main(a.k, a.repeats, a.device, a.batch, a.size, a.patch, a.precision, a.steps)

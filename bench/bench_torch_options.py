"""Benchmark (issue 8 §2): which PyTorch options speed up the K-patch forward on this machine.

Plain script: ``python bench/bench_torch_options.py [--k 100] [--patch 224]``.

The same batched forward of K random patches (ResNet-18, eval, inference_mode, batch 25)
with: the default (contiguous NCHW float32); ``channels_last`` memory format; bf16
autocast on top of it (the ``precision`` resource, :func:`patchcxr.models.state.autocast`)
with its largest probability difference from fp32; and ``torch.compile`` (inductor;
compile time reported separately). Then one training step (forward, backward, Adam) of a
batch of 16 patches in fp32 and under bf16 autocast. Prints seconds (best of 3) and the
ratio to the default.
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import machine

from patchcxr.models.classifier import network
from patchcxr.models.state import autocast, resolve_device


def timed(model: torch.nn.Module, x: torch.Tensor, batch: int, repeats: int = 3) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                model(x[i : i + batch])
        out.append(time.perf_counter() - t)
    return min(out)


def main(k: int, patch: int, batch: int, device: str) -> None:
    dev = resolve_device(device)
    print(f"machine: {machine()}; device {dev}")
    torch.manual_seed(0)
    model = network("resnet18", 4).to(dev).eval()
    x = torch.randn(k, 3, patch, patch, device=dev)
    with torch.inference_mode():
        model(x[:batch])
    base = timed(model, x, batch)
    print(f"K = {k} patches of {patch}², batch {batch}: s per K patches (best of 3)")
    print(f"  default (NCHW float32):   {base:.3f}")
    cl_model = network("resnet18", 4).to(dev).eval().to(memory_format=torch.channels_last)
    cl_model.load_state_dict(model.state_dict())
    xc = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        cl_model(xc[:batch])
    cl = timed(cl_model, xc, batch)
    print(f"  channels_last:            {cl:.3f}   ratio {base / cl:.2f}")
    with autocast(dev, "bf16"):
        with torch.inference_mode():
            cl_model(xc[:batch])
        bf = timed(cl_model, xc, batch)
        with torch.inference_mode():
            p_bf = torch.softmax(cl_model(xc[:batch]).float(), 1)
    with torch.inference_mode():
        p_fp = torch.softmax(cl_model(xc[:batch]), 1)
    gap = float((p_bf - p_fp).abs().max())
    print(f"  channels_last + bf16:     {bf:.3f}   ratio {base / bf:.2f}   (largest probability difference {gap:.4f})")
    try:
        compiled = torch.compile(model)
        t = time.perf_counter()
        with torch.inference_mode():
            compiled(x[:batch])
        compile_s = time.perf_counter() - t
        comp = timed(compiled, x, batch)
        print(f"  torch.compile (inductor): {comp:.3f}   ratio {base / comp:.2f}   (compile {compile_s:.1f} s)")
    except Exception as err:  # no compiler, unsupported platform: say so, keep the other figures
        print(f"  torch.compile: unavailable here ({type(err).__name__}: {str(err)[:200]})")
    train = network("resnet18", 4).to(dev).train()
    opt = torch.optim.Adam(train.parameters(), lr=1e-4)
    xb, yb = x[:16], torch.arange(16, device=dev) % 4

    def step(precision: str) -> float:
        out = []
        for _ in range(3):
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast(dev, precision):
                loss = torch.nn.functional.cross_entropy(train(xb), yb)
            loss.backward()
            opt.step()
            out.append(time.perf_counter() - t)
        return min(out)

    fp32, bf16 = step("fp32"), step("bf16")
    print(
        f"training step, 16 patches of {patch}²: fp32 {fp32:.3f} s, bf16 autocast {bf16:.3f} s, ratio {fp32 / bf16:.2f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--patch", type=int, default=224)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    main(a.k, a.patch, a.batch, a.device)

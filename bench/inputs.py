"""Classifier inputs for the benchmarks: synthetic films made into the workflow's masked
inputs (preprocessed, resized, multiplied by the lung mask) and cached as the workflow
caches them (8-bit PNGs); and the official code's style of K-patch vote, the reference the
benchmarks time ours against."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from patchcxr.classification.data import load_input, masked_input, to_network
from patchcxr.classification.explain import image_saliency
from patchcxr.classification.patches import extract, sample_centres, windows
from patchcxr.classification.settings import InputSettings
from patchcxr.models.classifier import backbone_of, vote
from patchcxr.synthetic import render, sample_spec
from patchcxr.synthetic.exposure import EXPOSURES, expose


def masked_film(size: int, seed: int, label: str = "covid19") -> tuple[np.ndarray, np.ndarray]:
    """(masked input uint8, lung mask bool) of one synthetic film at ``size``²."""
    rng = np.random.default_rng(seed)
    d = render(sample_spec(rng, label), size, size)
    pixels = np.round(expose(d.density, rng, EXPOSURES["cohen"]) * 255).astype(np.uint8)
    return masked_input(pixels, "cohen", d.labels, InputSettings(size=size))


def cached_film(root: Path, size: int, seed: int, label: str = "covid19") -> tuple[str, str]:
    """The same, written as the workflow's cached PNG pair; returns their paths."""
    img, lung = masked_film(size, seed, label)
    ip, lp = root / f"film{seed}.png", root / f"film{seed}.lung.png"
    Image.fromarray(img).save(ip)
    Image.fromarray(lung.astype(np.uint8) * 255).save(lp)
    return str(ip), str(lp)


def official_vote(
    model: nn.Module, input_path: str, lung_path: str, *, k: int, patch: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """The K-patch vote as the official code runs it: the cached input read again for
    every patch, one patch per forward (in whatever memory layout ``model`` has)."""
    rng = np.random.default_rng(0)
    probs = []
    for _ in range(k):
        im, lu = load_input(input_path, lung_path)
        w = windows(sample_centres(lu, 1, rng), im.shape[-2:], patch)
        with torch.inference_mode():
            x = to_network(extract(im, w, patch), backbone_of(model).name).to(device)
            probs.append(torch.softmax(model(x), 1).cpu())
    return vote(torch.cat(probs))


def film_map(
    model: nn.Module, img: torch.Tensor, lung: np.ndarray, settings: Any, *, target: int, seed: list[int], **run: Any
) -> np.ndarray:
    """One film's probabilistic Grad-CAM map as the workflow computes it, its K patches drawn
    from ``seed`` (the same patches for every precision compared); ``run``: ``k``,
    ``device``, ``batch``, ``precision``."""
    return image_saliency(model, img, lung, settings, target=target, rng=np.random.default_rng(seed), **run)[0]


def trained_run_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of a benchmark on a finished run's trained local classifier (its run, seed,
    films, saliency films, K, batch, threads); each script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="a finished run's results/ folder")
    ap.add_argument("--seed", type=int, default=2020, help="the classifier seed (results/…/seed_<seed>)")
    ap.add_argument("--part", default="test", help="split part of the films compared (train, val, test or all)")
    ap.add_argument("--images", type=int, default=10_000, help="at most this many of those films")
    ap.add_argument("--saliency-images", type=int, default=10)
    ap.add_argument("--target", default=None, help="class of the saliency maps (default: the last class)")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    return ap

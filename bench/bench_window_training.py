"""Study (issue 8 c): does training on feature-map windows close the shared-trunk gap?

Plain script (needs the classifier inputs and split of a run, e.g. ``make demo``):
    python bench/bench_window_training.py --inputs results/classification/inputs.tsv \\
        --split results/splits/classification.tsv --patch 64 --epochs 20 --draws 640

A classifier trained on crops (the paper) sees zero padding at every crop border; in the
shared-trunk mode (patchcxr.classification.shared_trunk) each patch's logits come from its
window of the whole image's ``layer4`` map, where the window sees its real neighbourhood.
Three ResNet-18s are trained from scratch on the same draws, for the same number of steps:

* ``crops``   — the paper: ``CE(f(crop_k), y)``;
* ``windows`` — the shared trunk's own model: ``CE(W · mean_{ω_k} A(image) + b, y)``,
  several windows per image from one trunk pass;
* ``both``    — the sum of the two losses on the same windows, which asks one network to
  give the same answer both ways.

Each is evaluated on the test images with the same K windows in both inference modes:
accuracy of the hard vote in each mode, vote agreement between the modes, Pearson r of
the per-image mean probabilities, and the median Pearson r of the probabilistic Grad-CAM
maps within the lung (target: the last class, viral/COVID-19).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from machine import machine  # bench/machine.py
from torch import nn

from patchcxr.classification.data import as_unit, to_network
from patchcxr.classification.explain import shared_saliency
from patchcxr.classification.patches import extract
from patchcxr.classification.predict import patch_windows
from patchcxr.classification.settings import ClassifierSettings
from patchcxr.classification.shared_trunk import feature_windows, shared_predict, window_logits
from patchcxr.classification.train import balanced_weights, epoch_draws, load_split_inputs
from patchcxr.data.labels import class_names
from patchcxr.io import read_tsv
from patchcxr.models.classifier import BACKBONES, features, network, vote
from patchcxr.saliency import aggregate, patch_gradcams
from patchcxr.training import seed_everything

REGIMES = ("crops", "windows", "both")


def train(
    regime: str,
    images: list[torch.Tensor],
    lungs: list[np.ndarray],
    targets: np.ndarray,
    n_classes: int,
    settings: ClassifierSettings,
    per_image: int,
) -> tuple[nn.Module, float]:
    """A model trained ``settings.epochs`` epochs of ``settings.draws`` windows each; every
    regime sees the same windows (``per_image`` per drawn image). Returns it and the seconds."""
    seed_everything(settings.seed)
    model = network("resnet18", n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n_images = max(1, (settings.draws or len(targets)) // per_image)
    t0 = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        rng = np.random.default_rng([settings.seed, epoch])
        gen = torch.Generator().manual_seed(settings.seed + epoch)
        losses = []
        drawn, _ = epoch_draws(balanced_weights(targets, n_classes), n_images, settings.seed, epoch)
        per_batch = max(1, settings.batch_size // per_image)
        for picks in (drawn[i : i + per_batch] for i in range(0, n_images, per_batch)):
            whole, crops, corners, image_of, y = [], [], [], [], []
            for b, j in enumerate(picks):
                img, lung = as_unit(images[j]), lungs[j]
                if float(torch.rand(1, generator=gen)) < settings.flip:  # flip image and lung together
                    img, lung = torch.flip(img, dims=[-1]), lung[:, ::-1].copy()
                wins = patch_windows(lung, img.shape[-2:], settings, per_image, rng=rng)
                whole.append(img)
                crops.append(extract(img, wins, settings.patch))
                stride = BACKBONES["resnet18"].stride
                fshape = (img.shape[-2] // stride, img.shape[-1] // stride)
                corners.append(feature_windows(wins, fshape, settings.patch, stride))
                image_of += [b] * per_image
                y += [int(targets[j])] * per_image
            yt = torch.tensor(y)
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros(())
            if regime in ("crops", "both"):
                loss = loss + F.cross_entropy(model(to_network(torch.cat(crops), "resnet18")), yt)
            if regime in ("windows", "both"):
                fmap = features(model, to_network(torch.stack(whole), "resnet18"))
                logits = window_logits(
                    model, fmap, np.concatenate(corners), settings.patch, image_of=np.array(image_of)
                )
                loss = loss + F.cross_entropy(logits, yt)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        print(f"  {regime}: epoch {epoch}/{settings.epochs} loss {np.mean(losses):.4f}", flush=True)
    return model.eval(), time.perf_counter() - t0


def evaluate(
    model: nn.Module,
    images: list[torch.Tensor],
    lungs: list[np.ndarray],
    targets: np.ndarray,
    settings: ClassifierSettings,
    k: int,
) -> dict[str, float]:
    """Both inference modes on the same K windows per test image."""
    target = int(model.fc.out_features) - 1
    hit_exact, hit_shared, same, p_exact, p_shared, sal_r = [], [], [], [], [], []
    for i, (img, lung) in enumerate(zip(images, lungs, strict=True)):
        wins = patch_windows(lung, img.shape[-2:], settings, k, rng=np.random.default_rng([0, i]))
        xs = to_network(extract(img, wins, settings.patch), "resnet18")
        with torch.inference_mode():
            exact = torch.softmax(model(xs), 1)
        shared, _, _ = shared_predict(model, to_network(as_unit(img)[None], "resnet18"), wins, settings.patch)
        e, s_ = int(vote(exact)["hard"]), int(vote(shared)["hard"])
        hit_exact.append(e == targets[i])
        hit_shared.append(s_ == targets[i])
        same.append(e == s_)
        p_exact += exact.mean(0).tolist()
        p_shared += shared.mean(0).tolist()
        cams, probs = patch_gradcams(model, xs, target)
        m_exact = aggregate(cams, probs, wins, img.shape[-2:])
        m_shared, _ = shared_saliency(model, img, wins, patch=settings.patch, target=target, device=torch.device("cpu"))
        if m_exact[lung].std() > 0 and m_shared[lung].std() > 0:
            sal_r.append(float(np.corrcoef(m_exact[lung], m_shared[lung])[0, 1]))
    return {
        "accuracy_exact": float(np.mean(hit_exact)),
        "accuracy_shared": float(np.mean(hit_shared)),
        "vote_agreement": float(np.mean(same)),
        "agree": int(np.sum(same)),
        "n": len(same),
        "prob_r": float(np.corrcoef(p_exact, p_shared)[0, 1]),
        "saliency_r": float(np.median(sal_r)) if sal_r else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", default="results/classification/inputs.tsv")
    ap.add_argument("--split", default="results/splits/classification.tsv")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--draws", type=int, default=640, help="windows per epoch")
    ap.add_argument("--per-image", type=int, default=8, help="windows per drawn image (one trunk pass)")
    ap.add_argument("--batch", type=int, default=16, help="windows per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2020, help="seed of the initialisation and the draws")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    settings = ClassifierSettings(
        patch=a.patch,
        epochs=a.epochs,
        draws=a.draws,
        batch_size=a.batch,
        lr=a.lr,
        weight_decay=0.0,
        l1=0.0,
        rotate=0,
        seed=a.seed,
    )  # augmentation: the horizontal flip only, of the image and its lung mask together (a
    # rotation would move the windows off the feature grid of the whole-image pass)
    inputs, split = read_tsv(a.inputs), read_tsv(a.split)
    tr_img, tr_lung, tr_y, _ = load_split_inputs(inputs, split, "train", settings.labels)
    te_img, te_lung, te_y, _ = load_split_inputs(inputs, split, "test", settings.labels)
    print(f"machine: {machine()}")
    print(
        f"{len(tr_y)} training and {len(te_y)} test images at {tr_img[0].shape[-1]}², patch {a.patch}, "
        f"{a.epochs} epochs x {a.draws} windows ({a.per_image} per image), batch {a.batch}, K {a.k}, from scratch, "
        f"seed {a.seed}"
    )
    rows = []
    for regime in a.regimes:
        model, seconds = train(regime, tr_img, tr_lung, tr_y, len(class_names(settings.labels)), settings, a.per_image)
        r = evaluate(model, te_img, te_lung, te_y, settings, a.k)
        rows.append((regime, seconds, r))
        print(f"  {regime}: trained in {seconds:.0f} s", flush=True)
    print("regime   train s  acc exact  acc shared  vote agreement  prob r  saliency r (median)")
    for regime, seconds, r in rows:
        print(
            f"{regime:8s} {seconds:7.0f}  {r['accuracy_exact']:9.3f}  {r['accuracy_shared']:10.3f}  "
            f"{r['vote_agreement']:.3f} ({r['agree']}/{r['n']})  {r['prob_r']:6.3f}  {r['saliency_r']:.3f}"
        )


if __name__ == "__main__":
    main()

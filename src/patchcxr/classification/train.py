"""Training of the classifier (method.md §5.4; its validation votes as §5.5).

Local (the paper's): each time an image is drawn, one random lung-centred patch of it is
the sample; class-balanced drawing (weights ``1 / n_class``, with replacement) on the
*training* split only — the official code also oversampled validation, which biases model
selection. Global (the baseline): the whole masked image resized to the patch size, through
the same trainer. Augmentation: horizontal flip (p 0.5) and a rotation by an integer angle
in ``[-5°, +5°]``. Loss: cross-entropy plus ``λ Σ|θ|`` (L1 on every parameter, λ 1e-5).
Model selection: macro-F1 on the validation split, each image decided by a K-patch vote.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.metrics import f1_score
from torch import nn

from patchcxr.classification.data import load_input, to_network
from patchcxr.classification.predict import image_batch, predict_probs
from patchcxr.classification.settings import ClassifierSettings, InputSettings, model_file_fields
from patchcxr.data.labels import class_names
from patchcxr.io import read_tsv
from patchcxr.models.classifier import initialise_resnet18, vote
from patchcxr.models.state import resolve_device, to_device
from patchcxr.training import TrainingFiles, TrainingRun, seed_everything

log = logging.getLogger(__name__)


def balanced_weights(targets: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-sample drawing weights ``1 / n_class`` (every class drawn equally often)."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    return torch.from_numpy(1.0 / counts[targets])


def augment(x: torch.Tensor, gen: torch.Generator, flip: float, degrees: int) -> torch.Tensor:
    """Horizontal flip with probability ``flip`` and a rotation by a random integer angle in
    ``[-degrees, degrees]``, per sample."""
    from torchvision.transforms.functional import rotate

    out = []
    for sample in x:
        if float(torch.rand(1, generator=gen)) < flip:
            sample = torch.flip(sample, dims=[-1])
        angle = int(torch.randint(-degrees, degrees + 1, (1,), generator=gen))
        out.append(rotate(sample, angle) if angle else sample)
    return torch.stack(out)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    total = torch.zeros(())
    for p in model.parameters():
        total = total + p.abs().sum()
    return total


def epoch_draws(weights: torch.Tensor, n: int, seed: int, epoch: int) -> tuple[np.ndarray, torch.Generator]:
    """The ``n`` images (indices) drawn in ``epoch`` with ``weights``, with replacement, and
    the epoch's generator after the draw (augmentation continues from it)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.multinomial(weights, n, replacement=True, generator=gen).numpy(), gen


def batch_starts(n: int, batch_size: int) -> list[int]:
    """First draw of each batch of ``n`` draws in batches of ``batch_size``; a remainder of
    one draw is merged into the batch before it, so no batch holds a single draw (unless
    ``n`` is 1)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


def make_batches(
    images: list[torch.Tensor],
    lungs: list[np.ndarray],
    targets: np.ndarray,
    *,
    n_classes: int,
    settings: ClassifierSettings,
    device: torch.device,
) -> Any:
    """``batches(epoch)`` for the trainer: class-balanced draws, one patch per draw.
    Batches of ``settings.batch_size`` draws; a last batch of a single draw joins the one
    before it (batch norm cannot train on one patch whose ``layer4`` map is 1 × 1)."""
    weights = balanced_weights(targets, n_classes)
    n = settings.draws or len(targets)
    if n < 2:
        raise ValueError(f"{n} training draw per epoch: batch norm needs at least 2 (more training films or draws)")
    starts = batch_starts(n, settings.batch_size)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        picks, gen = epoch_draws(weights, n, settings.seed, epoch)
        rng = np.random.default_rng([settings.seed, epoch])
        for a, b in itertools.pairwise([*starts, n]):
            xs = [image_batch(images[j], lungs[j], settings, 1, rng=rng)[0] for j in picks[a:b]]
            x = augment(torch.cat(xs), gen, settings.flip, settings.rotate)
            y = torch.from_numpy(targets[picks[a:b]])
            yield to_device(to_network(x), device), to_device(y, device)

    return batches


def load_split_inputs(
    inputs: Any, split: Any, which: str, labels: str, *, names: Sequence[str] | None = None
) -> tuple[list[torch.Tensor], list[np.ndarray], np.ndarray, list[str]]:
    """Cached inputs, lung masks and class indices (in ``names``, default the scheme's
    classes) of the split part ``which``; ``labels`` is the column holding the class."""
    names = list(names) if names is not None else list(class_names(labels))
    rows = inputs.merge(split[split["split"] == which][["image_id"]], on="image_id").sort_values("image_id")
    images, lungs = [], []
    for r in rows.itertuples():
        img, lung = load_input(r.input_path, r.lung_path)
        images.append(img)
        lungs.append(lung)
    targets = np.array([names.index(v) for v in rows[labels]], dtype=np.int64)
    return images, lungs, targets, rows["image_id"].tolist()


def train_classifier(
    *,
    inputs_path: str,
    split_path: str,
    settings: ClassifierSettings,
    input_settings: InputSettings,
    files: TrainingFiles,
    device: str = "auto",
    weights: Mapping[str, Any] | None = None,
    tracking: Mapping[str, Any] | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Train the local (patch) or global classifier; keep the best epoch by validation
    macro-F1 (K-patch hard vote per image). ``input_settings`` says how the cached inputs
    were made; the model file records it with ``settings``; ``precision`` (a machine's
    setting: ``fp32``, ``bf16`` or ``fp16`` autocast) goes into the metadata. Returns the
    metadata written."""
    # data
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    names = list(settings.classes)
    tr_img, tr_lung, tr_y, _ = load_split_inputs(inputs, split, "train", settings.labels, names=names)
    va_img, va_lung, va_y, _ = load_split_inputs(inputs, split, "val", settings.labels, names=names)
    if not len(tr_y) or not len(va_y):
        raise ValueError(f"{split_path}: the classifier needs training and validation images with inputs")
    if int(tr_img[0].shape[-1]) != input_settings.size:
        raise ValueError(f"{inputs_path}: inputs of {tr_img[0].shape[-1]}², expected {input_settings.size}²")

    # model
    seed_everything(settings.seed)
    dev = resolve_device(device)
    w = dict(weights or {})
    network, initialisation = initialise_resnet18(
        len(names), w.get("path") or None, w.get("sha256") or None, bool(w.get("download", False))
    )
    model = network.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    batches = make_batches(tr_img, tr_lung, tr_y, n_classes=len(names), settings=settings, device=dev)

    # loss and validation
    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1]) + settings.l1 * l1_penalty(model)

    def validate(model: nn.Module) -> dict[str, float]:
        rng = np.random.default_rng([settings.seed, 999])
        pred = [
            int(vote(predict_probs(model, img, lung, settings, k=settings.k_val, rng=rng, device=dev)[0])["hard"])
            for img, lung in zip(va_img, va_lung, strict=True)
        ]
        # macro over the classes the validation films hold (as the evaluation's macro): a
        # class absent from them, e.g. two of four in a normal-vs-TB cohort, is not a 0
        return {
            "val_macro_f1": float(f1_score(va_y, pred, average="macro", labels=sorted(set(va_y)), zero_division=0)),
            "val_accuracy": float(np.mean(np.array(pred) == va_y)),
        }

    # run
    cfg = {
        "classifier": asdict(settings),
        "inputs": input_settings.to_dict(),
        "weights": {k: v for k, v in w.items() if k != "sha256"},
        "classes": names,
    }
    run = TrainingRun(
        name=f"classifier-{settings.mode}-seed_{settings.seed}",
        settings=cfg,
        data=(len(tr_y), [float(i.sum()) for i in tr_img[:5]]),
        inputs={"inputs": inputs_path, "classification_split": split_path},
        counts={"n_train": len(tr_y), "n_val": len(va_y)},
        files=files,
        tracking=tracking,
    )
    return run.fit(
        model=model,
        optimizer=opt,
        scheduler=None,
        batches=batches,
        loss=loss,
        validate=validate,
        select_metric="val_macro_f1",
        epochs=settings.epochs,
        seed=settings.seed,
        patience=settings.patience,
        device=dev,
        model_file={**model_file_fields(settings, input_settings), "initialisation": initialisation},
        metadata={"initialisation": initialisation},
        precision=precision,
    )

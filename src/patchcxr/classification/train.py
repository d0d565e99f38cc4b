"""Training of the classifier (method.md §5.4; its validation votes as §5.5).

Local (the paper's): each time an image is drawn, one random lung-centred patch of it is
the sample; class-balanced drawing (weights ``1 / n_class``, with replacement) on the
*training* split only — the official code also oversampled validation, which biases model
selection. Global (the baseline): the whole masked image resized to the patch size, through
the same trainer. Augmentation: horizontal flip (p 0.5) and a rotation by an integer angle
in ``[-5°, +5°]`` (a recipe may add an intensity jitter). Loss: cross-entropy (optionally
label-smoothed) plus ``λ Σ|θ|`` (L1 on every parameter, λ 1e-5). Optimiser: Adam (the paper)
or AdamW, one learning rate or a smaller one for a pretrained trunk, constant (the paper)
or warm-up and cosine decay per step; a pretrained trunk may first stay frozen for some
epochs, and its batch-norm statistics may stay frozen throughout. Model selection: on the
validation split, each image decided by a K-patch vote (macro-F1 of the hard vote, as the
paper, or the soft vote's ROC AUC or log loss).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.metrics import f1_score, roc_auc_score
from torch import nn

from patchcxr.classification.data import load_input, to_network
from patchcxr.classification.predict import image_batch, predict_probs
from patchcxr.classification.settings import ClassifierSettings, InputSettings, model_file_fields
from patchcxr.data.labels import class_names
from patchcxr.io import read_tsv
from patchcxr.models.classifier import backbone, vote
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime, to_device
from patchcxr.models.weights import initialise
from patchcxr.training import TrainingFiles, TrainingRun, seed_everything

log = logging.getLogger(__name__)


def balanced_weights(targets: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-sample drawing weights ``1 / n_class`` (every class drawn equally often)."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    return torch.from_numpy(1.0 / counts[targets])


def augment(
    x: torch.Tensor, gen: torch.Generator, flip: float, degrees: int, *, intensity: float = 0.0
) -> torch.Tensor:
    """Per sample: the grey levels (in [0, 1]) raised to ``exp(u)``, ``u`` uniform in
    ``[-intensity, intensity]`` (no draw when 0, so the paper's stream of draws is kept), a
    horizontal flip with probability ``flip`` and a rotation by a random integer angle in
    ``[-degrees, degrees]``."""
    from torchvision.transforms.functional import rotate

    out = []
    for sample in x:
        if intensity > 0:
            u = (2 * float(torch.rand(1, generator=gen)) - 1) * intensity
            sample = sample.clamp_min(0) ** math.exp(u)
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
    n = settings.draws_for(len(targets))
    if n < 2:
        raise ValueError(f"{n} training draw per epoch: batch norm needs at least 2 (more training films or draws)")
    starts = batch_starts(n, settings.batch_size)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        picks, gen = epoch_draws(weights, n, settings.seed, epoch)
        rng = np.random.default_rng([settings.seed, epoch])
        for a, b in itertools.pairwise([*starts, n]):
            xs = [image_batch(images[j], lungs[j], settings, 1, rng=rng)[0] for j in picks[a:b]]
            x = augment(torch.cat(xs), gen, settings.flip, settings.rotate, intensity=settings.intensity)
            y = torch.from_numpy(targets[picks[a:b]])
            yield to_device(to_network(x, settings.backbone), device), to_device(y, device)

    return batches


def load_split_inputs(
    inputs: Any, split: Any, which: str, labels: str, *, names: Sequence[str] | None = None
) -> tuple[list[torch.Tensor], list[np.ndarray], np.ndarray, list[str]]:
    """Cached inputs (uint8, :func:`patchcxr.classification.data.load_input`'s compact form),
    lung masks and class indices (in ``names``, default the scheme's classes) of the split
    part ``which``; ``labels`` is the column holding the class."""
    names = list(names) if names is not None else list(class_names(labels))
    rows = inputs.merge(split[split["split"] == which][["image_id"]], on="image_id").sort_values("image_id")
    images, lungs = [], []
    for r in rows.itertuples():
        img, lung = load_input(r.input_path, r.lung_path, compact=True)
        images.append(img)
        lungs.append(lung)
    targets = np.array([names.index(v) for v in rows[labels]], dtype=np.int64)
    return images, lungs, targets, rows["image_id"].tolist()


def head_and_trunk(model: nn.Module, name: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The parameters of the backbone's final linear layer, and all the others."""
    head_prefix = backbone(name).head_layer + "."
    head: list[nn.Parameter] = []
    trunk: list[nn.Parameter] = []
    for key, p in model.named_parameters():
        (head if key.startswith(head_prefix) else trunk).append(p)
    return head, trunk


def make_optimiser(model: nn.Module, settings: ClassifierSettings) -> torch.optim.Optimizer:
    """Adam (the paper: weight decay added to the gradient) or AdamW (decoupled decay), the
    head at ``lr`` and the trunk at ``trunk_lr`` (default ``lr``) in two parameter groups."""
    head, trunk = head_and_trunk(model, settings.backbone)
    trunk_lr = settings.trunk_lr if settings.trunk_lr is not None else settings.lr
    groups = [{"params": trunk, "lr": trunk_lr}, {"params": head, "lr": settings.lr}]
    cls = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=settings.lr, weight_decay=settings.weight_decay)


def lr_factor(step: int, *, steps_per_epoch: int, settings: ClassifierSettings) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0-based): a linear warm-up
    over ``warmup_epochs`` (from 1/warm-up steps to 1), then 1 (constant) or a cosine decay
    to 0 at the last step of ``epochs``."""
    warm = settings.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if settings.schedule == "constant":
        return 1.0
    total = max(1, settings.epochs * steps_per_epoch - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / total)))


def epoch_setup(model: nn.Module, settings: ClassifierSettings) -> Callable[[int], None]:
    """What each epoch does to the network after ``model.train()``: the trunk frozen (no
    gradients) for the first ``freeze_epochs``, and with ``batch_norm: frozen`` the trunk's
    batch-norm layers kept in eval mode (their statistics fixed)."""
    _, trunk = head_and_trunk(model, settings.backbone)
    head_prefix = backbone(settings.backbone).head_layer
    norms = [
        m
        for key, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not key.startswith(head_prefix)
    ]

    def setup(epoch: int) -> None:
        for p in trunk:
            p.requires_grad_(epoch > settings.freeze_epochs)
        if settings.batch_norm == "frozen":
            for m in norms:
                m.eval()

    return setup


def validation_scores(true: np.ndarray, hard: np.ndarray, mean_probs: np.ndarray) -> dict[str, float]:
    """Macro-F1 and accuracy of the hard vote, the soft vote's macro one-vs-rest ROC AUC and
    its log loss, all over the classes the validation films hold (a class absent from them,
    e.g. two of four in a normal-vs-TB cohort, is not a 0)."""
    present = sorted(set(true.tolist()))
    aucs = [
        float(roc_auc_score(true == c, mean_probs[:, c])) for c in present if 0 < int((true == c).sum()) < len(true)
    ]
    if len(present) == 2:  # two classes: one curve (its two one-vs-rest AUCs are equal)
        aucs = aucs[:1]
    p_true = np.clip(mean_probs[np.arange(len(true)), true], 1e-7, 1.0)
    return {
        "val_macro_f1": float(f1_score(true, hard, average="macro", labels=present, zero_division=0)),
        "val_accuracy": float(np.mean(hard == true)),
        "val_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "val_loss": float(-np.mean(np.log(p_true))),
    }


def train_classifier(
    *,
    inputs_path: str,
    split_path: str,
    settings: ClassifierSettings,
    input_settings: InputSettings,
    files: TrainingFiles,
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
    synthetic: Sequence[str] = (),
    tracking: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the local (patch) or global classifier of ``settings.backbone``; keep the best
    epoch by ``settings.select`` on the validation films (K-patch votes). ``weights``: the
    initialisation, ``route`` (none, torchvision, file, registry) with the ``path`` of a
    torchvision-format file and its ``sha256`` (:func:`patchcxr.models.weights.initialise`).
    ``input_settings`` says how the cached inputs were made; the model file records it with
    ``settings`` and the initialisation; ``runtime``'s precision (a machine's setting:
    ``fp32``, ``bf16`` or ``fp16`` autocast) goes into the metadata. ``synthetic``: the
    sources of the training films that are synthetic phantoms (recorded in the model file:
    prediction warns that such a model measures nothing). Returns the metadata written."""
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
    dev = runtime.torch_device
    w = dict(weights or {})
    network, init = initialise(
        settings.backbone,
        len(names),
        route=str(w.get("route", "none")),
        path=str(w.get("path", "") or ""),
        sha256=str(w.get("sha256", "") or ""),
    )
    model = network.to(dev)
    opt = make_optimiser(model, settings)
    batches = make_batches(tr_img, tr_lung, tr_y, n_classes=len(names), settings=settings, device=dev)
    steps = len(batch_starts(settings.draws_for(len(tr_y)), settings.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, steps_per_epoch=steps, settings=settings)
    )

    # loss and validation
    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ce = F.cross_entropy(model(batch[0]), batch[1], label_smoothing=settings.label_smoothing)
        return ce + settings.l1 * l1_penalty(model) if settings.l1 else ce

    def validate(model: nn.Module) -> dict[str, float]:
        rng = np.random.default_rng([settings.seed, 999])
        votes = [
            vote(predict_probs(model, img, lung, settings, k=settings.k_val, rng=rng, device=dev)[0])
            for img, lung in zip(va_img, va_lung, strict=True)
        ]
        hard = np.array([int(v["hard"]) for v in votes])
        probs = np.stack([v["mean_prob"].numpy() for v in votes])
        return validation_scores(va_y, hard, probs)

    # run
    cfg = {
        "classifier": asdict(settings),
        "inputs": input_settings.to_dict(),
        "weights": init.to_dict(),
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
        scheduler=scheduler,
        scheduler_per_step=True,
        epoch_setup=epoch_setup(model, settings),
        batches=batches,
        loss=loss,
        validate=validate,
        select_metric=settings.select,
        minimise=settings.select == "val_loss",
        epochs=settings.epochs,
        seed=settings.seed,
        patience=settings.patience,
        device=dev,
        model_file={
            **model_file_fields(settings, input_settings),
            "initialisation": init.to_dict(),
            "synthetic_sources": list(synthetic),
        },
        metadata={
            "initialisation": init.to_dict(),
            "initialisation_label": init.label(),
            "synthetic_sources": list(synthetic),
        },
        precision=runtime.precision,
    )

"""Training of a segmentation network (method.md §4.3).

Paper settings (config ``segmentation.train``): Adam, learning rate 1e-4, weight decay
1e-6, MultiStepLR at epochs 70/80/90 with γ 0.1, batch 2, 100 epochs, cross-entropy with
weight 0.5 for the background class and 1 for the others, no augmentation; the checkpoint
kept is the one with the best mean validation Jaccard over heart, left and right lung —
measured here on the validation part of the *training* split (the official code selected
on part of its test set).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch convention)

from patchcxr.data.splits import fold_view
from patchcxr.io import read_tsv
from patchcxr.models.segmentation import build_segmentation_model, count_parameters, training_options
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime, to_device
from patchcxr.preprocess import PreprocessSettings
from patchcxr.segmentation.data import BG_OR_HEART, N_CLASSES, load_examples, network_size, split_rows
from patchcxr.segmentation.metrics import mean_jaccard
from patchcxr.segmentation.predict import predict_batches
from patchcxr.training import TrainingFiles, TrainingRun, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SegmentationTrainSettings:
    """One training run's settings: config ``segmentation.train`` with the run's ``seed``
    (one of ``segmentation.train.seeds``) in place of the list. The defaults are the
    paper's (§4.3) and equal config/config.yaml's values (tests/test_defaults.py); the
    workflow gives every key (:meth:`from_config`).

    Attributes:
        epochs: epochs in all (paper: 100).
        batch_size: images per optimiser step (paper: 2).
        lr: Adam's learning rate (paper: 1e-4).
        weight_decay: Adam's weight decay (paper: 1e-6).
        milestones: epochs after which MultiStepLR multiplies the rate by ``lr_gamma``.
        lr_gamma: that factor (paper: 0.1).
        background_weight: cross-entropy weight of the background class (paper: 0.5).
        augment: small affine transforms (not in the paper).
        patience: stop after this many epochs without a better validation Jaccard; ``None``:
            never (not in the paper).
        seed: the run's seed (paper: 407).
    """

    epochs: int = 100
    batch_size: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-6
    milestones: tuple[int, ...] = (70, 80, 90)
    lr_gamma: float = 0.1
    background_weight: float = 0.5
    augment: bool = False
    patience: int | None = None
    seed: int = 407

    def __post_init__(self) -> None:
        # a list read from the configuration or a JSON record
        object.__setattr__(self, "milestones", tuple(self.milestones))
        for f in fields(self):
            value = getattr(self, f.name)
            if not _of_kind(value, str(f.type)):
                raise ValueError(f"segmentation.train.{f.name}: {value!r} is not of the setting's kind ({f.type})")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SegmentationTrainSettings:
        """From one run's mapping: the keys of config ``segmentation.train`` with ``seed``
        (one seed) in place of ``seeds``. Values are kept as given (the record of the run,
        :meth:`to_dict`, is the mapping itself).

        Raises:
            ValueError: a key that is no setting, or a setting missing (the configuration
                holds every one: config/config.yaml).
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            hint = " (one run takes `seed`, one of segmentation.train.seeds)" if "seeds" in unknown else ""
            raise ValueError(
                f"segmentation.train: unknown setting(s) {', '.join(unknown)}{hint}; "
                f"the settings are {', '.join(known)}"
            )
        missing = [k for k in known if k not in cfg]
        if missing:
            raise ValueError(f"segmentation.train: setting(s) {', '.join(missing)} missing")
        return cls(**{k: cfg[k] for k in known})

    def to_dict(self) -> dict[str, Any]:
        """The run's record (metadata, tracking parameters, resume fingerprint): plain
        containers, keys sorted as the workflow's parameters are."""
        record = asdict(self) | {"milestones": list(self.milestones)}
        return {k: record[k] for k in sorted(record)}


def _of_kind(value: Any, kind: str) -> bool:
    """Whether ``value`` fits a field annotated ``kind`` (int, float, bool, their ``| None``
    forms and ``tuple[int, ...]``); an integer fits a float."""
    if kind.endswith(" | None"):
        return value is None or _of_kind(value, kind.removesuffix(" | None"))
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "tuple[int, ...]":
        return isinstance(value, tuple) and all(_of_kind(v, "int") for v in value)
    raise TypeError(f"no kind check for {kind}")


def partial_cross_entropy(logits: torch.Tensor, target: torch.Tensor, background_weight: float = 0.5) -> torch.Tensor:
    """Class-weighted cross-entropy that accepts lung-only annotations.

    For a pixel with label ``t`` the loss is ``-w_t log p_t``; for a pixel marked
    :data:`BG_OR_HEART` it is ``-w_0 log(p_0 + p_1)``, the likelihood of the annotation
    "not lung" (marginalising over background and heart). The mean is weighted,
    ``Σ w_i ℓ_i / Σ w_i``, as PyTorch's weighted cross-entropy. Weights: background
    ``background_weight`` (paper 0.5), others 1.
    """
    logp = F.log_softmax(logits, dim=1)
    weights = torch.ones(N_CLASSES, device=logits.device, dtype=logits.dtype)
    weights[0] = background_weight
    unsure = target == BG_OR_HEART
    sure_t = torch.where(unsure, torch.zeros_like(target), target)
    nll_sure = -logp.gather(1, sure_t[:, None]).squeeze(1)
    nll_unsure = -torch.logsumexp(logp[:, :2], dim=1)
    nll = torch.where(unsure, nll_unsure, nll_sure)
    w = torch.where(unsure, weights[0], weights[sure_t])
    return (w * nll).sum() / w.sum()


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random small affine transform (±5°, scale 0.9–1.1, shift ±5 %) applied identically
    to images and targets (nearest for targets); not in the paper (config option)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 10 - 5) * torch.pi / 180
    scale = torch.rand(n, generator=gen) * 0.2 + 0.9
    shift = torch.rand(n, 2, generator=gen) * 0.1 - 0.05
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    xa = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ya = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return xa, ya[:, 0].long()


def train_segmentation(
    *,
    manifest_path: Path | str,
    split_path: Path | str,
    model_name: str,
    model_cfg: Mapping[str, Any],
    train: SegmentationTrainSettings,
    prep: PreprocessSettings,
    files: TrainingFiles,
    runtime: Runtime = DEFAULT_RUNTIME,
    tracking: Mapping[str, Any] | None = None,
    fold: int = 0,
) -> dict[str, Any]:
    """Train one segmentation network and save the best checkpoint with its metadata
    (``train``: the run's training settings; ``prep``: its preprocessing, with the network
    input size; ``runtime``: the device, precision (fp32, or bf16/fp16 autocast) and an
    FC-DenseNet's recomputation (``memory_efficient``): machine settings). ``fold``: the
    cross-fitting fold the network holds out (:func:`patchcxr.data.splits.fold_view`; the
    split's own train and val films where it has no folds).

    Returns:
        The metadata written to ``files.metadata``.
    """
    # data
    manifest, split = read_tsv(manifest_path), read_tsv(split_path)
    crossfitted = "fold" in split and bool((split["fold"].astype(int) >= 0).any())
    split = fold_view(split, fold)
    train_rows, val_rows = split_rows(manifest, split, ["train"]), split_rows(manifest, split, ["val"])
    if train_rows.empty:
        raise ValueError(f"{split_path}: no training images with masks")
    if val_rows.empty:
        raise ValueError(
            f"{split_path}: no validation images for model selection; raise splits.segmentation.val_fraction"
        )
    size = network_size(prep)
    seed = int(train.seed)
    seed_everything(seed)
    dev = runtime.torch_device
    log.info(
        "loading %d training and %d validation images at %d² (equalise=%s)",
        len(train_rows),
        len(val_rows),
        size,
        prep.equalise,
    )
    x_train, y_train = load_examples(train_rows, prep)
    x_val, y_val = load_examples(val_rows, prep)
    val_heart = [str(h) == "1" for h in val_rows["has_heart_mask"]]

    # model
    arch = model_cfg["arch"]
    options = training_options(arch, model_cfg, runtime.memory_efficient)
    model = build_segmentation_model(arch, N_CLASSES, **options).to(dev)
    log.info("%s (%s): %d parameters, device %s", model_name, arch, count_parameters(model), dev)
    opt = torch.optim.Adam(
        model.parameters(),
        lr=float(train.lr),
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=float(train.weight_decay),
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(train.milestones), gamma=float(train.lr_gamma))
    batch_size = int(train.batch_size)
    bg_weight = float(train.background_weight)

    # loss and validation
    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x, y = x_train[idx], y_train[idx]
            if train.augment:
                x, y = augment(x, y, gen)
            yield to_device(x, dev), to_device(y, dev)

    def loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return partial_cross_entropy(model(batch[0]), batch[1], bg_weight)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        pred = predict_batches(model, x_val, dev, max(batch_size, 8))
        truth = y_val.numpy()
        scores = [mean_jaccard(p, t, h) for p, t, h in zip(pred, truth, val_heart, strict=True)]
        return {"val_mean_jaccard": float(np.mean(scores))}

    # run
    settings = {
        "model": model_name,
        "fold": int(fold),
        "arch": arch,
        "options": options,
        "train": train.to_dict(),
        "preprocessing": prep.to_dict(),
    }
    run = TrainingRun(
        name=f"segmentation-{model_name}-{'equalised' if prep.equalise else 'minmax'}-seed_{seed}"
        + (f"-f{fold}" if crossfitted else ""),
        settings=settings,
        data=(len(x_train), float(x_train.sum()), len(x_val)),
        inputs={"manifest": manifest_path, "segmentation_split": split_path},
        counts={"n_train": len(x_train), "n_val": len(x_val)},
        files=files,
        tracking=tracking,
    )
    return run.fit(
        model=model,
        optimizer=opt,
        scheduler=sched,
        batches=batches,
        loss=loss,
        validate=validate,
        select_metric="val_mean_jaccard",
        epochs=int(train.epochs),
        seed=seed,
        patience=train.patience,
        device=dev,
        model_file={
            "arch": arch,
            "options": json.dumps(options),
            "n_classes": N_CLASSES,
            "preprocessing": json.dumps(prep.to_dict()),
        },
        metadata={"parameters": count_parameters(model)},
        precision=runtime.precision,
    )

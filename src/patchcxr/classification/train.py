"""Training and K-patch inference of the classifier (method.md §5.4–5.5).

Local (the paper's): each time an image is drawn, one random lung-centred patch of it is
the sample; class-balanced drawing (weights ``1 / n_class``, with replacement) on the
*training* split only — the official code also oversampled validation, which biases model
selection. Global (the baseline): the whole masked image resized to the patch size, through
the same trainer. Augmentation: horizontal flip (p 0.5) and a rotation by an integer angle
in ``[-5°, +5°]``. Loss: cross-entropy plus ``λ Σ|θ|`` (L1 on every parameter, λ 1e-5).
Model selection: macro-F1 on the validation split, each image decided by a K-patch vote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from patchcxr.classification.data import load_input, memory_format, to_network
from patchcxr.classification.patches import extract, sample_centres, windows
from patchcxr.models.classifier import vote

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierSettings:
    """Config ``classification.train`` (paper values as defaults)."""

    mode: str = "local"  # local (patches) | global (whole image)
    labels: str = "label4"  # label4 (paper: viral and COVID-19 merged) | label5
    patch: int = 224
    centre: str = "joint"
    border: str = "shift"
    batch_size: int = 16
    epochs: int = 100
    lr: float = 1e-5
    weight_decay: float = 0.1
    l1: float = 1e-5
    flip: float = 0.5
    rotate: int = 5
    k_val: int = 20
    patience: int | None = 50
    seed: int = 2020
    #: images drawn per epoch (one patch each); None = the number of training images (the
    #: paper's epoch). More draws give a small cohort enough steps per epoch.
    draws: int | None = None


def class_names(labels: str) -> list[str]:
    if labels == "label4":
        return ["normal", "bacterial", "tb", "viral_covid19"]
    if labels == "label5":
        return ["normal", "bacterial", "tb", "viral", "covid19"]
    raise ValueError(f"labels must be label4 or label5, got {labels!r}")


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


def patch_windows(
    lung: np.ndarray, shape: tuple[int, ...], settings: ClassifierSettings, k: int, rng: np.random.Generator
) -> np.ndarray:
    """The windows of ``k`` lung-centred patches, drawn as configured (centre mode, border)."""
    return windows(sample_centres(lung, k, rng, settings.centre), shape, settings.patch, settings.border)


def image_batch(
    img: torch.Tensor, lung: np.ndarray, settings: ClassifierSettings, k: int, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray]:
    """The network inputs of one image: ``k`` patches (local) or the whole image (global),
    and their windows on the image."""
    if settings.mode == "global":
        whole = F.interpolate(img[None], size=(settings.patch, settings.patch), mode="area")
        return whole, np.array([[0, 0, img.shape[-2], img.shape[-1]]])
    wins = patch_windows(lung, img.shape[-2:], settings, k, rng)
    return extract(img, wins, settings.patch), wins


def predict_probs(
    model: nn.Module,
    img: torch.Tensor,
    lung: np.ndarray,
    settings: ClassifierSettings,
    k: int,
    rng: np.random.Generator,
    device: torch.device,
    batch: int = 50,
) -> tuple[torch.Tensor, np.ndarray]:
    """Class probabilities ``(K, C)`` of K patches of one image, in batched forwards."""
    x, wins = image_batch(img, lung, settings, k, rng)
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = to_network(x[i : i + batch]).to(device, memory_format=memory_format(model))
            out.append(torch.softmax(model(xb), dim=1).cpu())
    return torch.cat(out), wins


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters())  # type: ignore[return-value]


def epoch_draws(weights: torch.Tensor, n: int, seed: int, epoch: int) -> tuple[np.ndarray, torch.Generator]:
    """The ``n`` images (indices) drawn in ``epoch`` with ``weights``, with replacement, and
    the epoch's generator after the draw (augmentation continues from it)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.multinomial(weights, n, replacement=True, generator=gen).numpy(), gen


def make_batches(
    images: list[torch.Tensor],
    lungs: list[np.ndarray],
    targets: np.ndarray,
    n_classes: int,
    settings: ClassifierSettings,
    device: torch.device,
) -> Any:
    """``batches(epoch)`` for the trainer: class-balanced draws, one patch per draw."""
    weights = balanced_weights(targets, n_classes)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        picks, gen = epoch_draws(weights, settings.draws or len(targets), settings.seed, epoch)
        rng = np.random.default_rng([settings.seed, epoch])
        for i in range(0, len(picks), settings.batch_size):
            xs = [image_batch(images[j], lungs[j], settings, 1, rng)[0] for j in picks[i : i + settings.batch_size]]
            x = augment(torch.cat(xs), gen, settings.flip, settings.rotate)
            yield to_network(x).to(device), torch.from_numpy(targets[picks[i : i + settings.batch_size]]).to(device)

    return batches


def load_split_inputs(
    inputs: Any, split: Any, which: str, labels: str
) -> tuple[list[torch.Tensor], list[np.ndarray], np.ndarray, list[str]]:
    """Cached inputs, lung masks and class indices of the split part ``which``."""
    names = class_names(labels)
    rows = inputs.merge(split[split["split"] == which][["image_id"]], on="image_id").sort_values("image_id")
    images, lungs = [], []
    for r in rows.itertuples():
        img, lung = load_input(r.input_path, r.lung_path)
        images.append(img)
        lungs.append(lung)
    targets = np.array([names.index(v) for v in rows[labels]], dtype=np.int64)
    return images, lungs, targets, rows["image_id"].tolist()


def settings_from(cfg: Mapping[str, Any]) -> ClassifierSettings:
    known = {k: cfg[k] for k in asdict(ClassifierSettings()) if k in cfg}
    return ClassifierSettings(**known)


def train_classifier(
    inputs_path: str,
    split_path: str,
    settings: ClassifierSettings,
    out_model: str,
    out_metadata: str,
    out_history: str,
    resume_dir: str,
    device: str = "auto",
    weights: Mapping[str, Any] | None = None,
    tracking: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the local (patch) or global classifier; keep the best epoch by validation
    macro-F1 (K-patch hard vote per image). Returns the metadata written."""
    import json
    from pathlib import Path

    from sklearn.metrics import f1_score

    from patchcxr.data.harmonise import read_tsv
    from patchcxr.models.classifier import resnet18_classifier
    from patchcxr.segmentation.train import fingerprint
    from patchcxr.tracking import artefact_metadata, mlflow_run
    from patchcxr.training import Trainer, resolve_device, save_training, seed_everything

    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    names = class_names(settings.labels)
    tr_img, tr_lung, tr_y, _ = load_split_inputs(inputs, split, "train", settings.labels)
    va_img, va_lung, va_y, _ = load_split_inputs(inputs, split, "val", settings.labels)
    if not len(tr_y) or not len(va_y):
        raise ValueError(f"{split_path}: the classifier needs training and validation images with inputs")
    seed_everything(settings.seed)
    dev = resolve_device(device)
    w = dict(weights or {})
    model = resnet18_classifier(
        len(names), w.get("path") or None, w.get("sha256") or None, bool(w.get("download", False))
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    batches = make_batches(tr_img, tr_lung, tr_y, len(names), settings, dev)

    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1]) + settings.l1 * l1_penalty(model)

    def validate(model: nn.Module) -> dict[str, float]:
        rng = np.random.default_rng([settings.seed, 999])
        pred = [
            int(vote(predict_probs(model, img, lung, settings, settings.k_val, rng, dev)[0])["hard"])
            for img, lung in zip(va_img, va_lung, strict=True)
        ]
        return {
            "val_macro_f1": float(
                f1_score(va_y, pred, average="macro", labels=list(range(len(names))), zero_division=0)
            ),
            "val_accuracy": float(np.mean(np.array(pred) == va_y)),
        }

    cfg = {"classifier": asdict(settings), "weights": {k: v for k, v in w.items() if k != "sha256"}, "classes": names}
    fp = fingerprint(cfg, len(tr_y), [float(i.sum()) for i in tr_img[:5]])
    resume = Path(resume_dir)
    resume.mkdir(parents=True, exist_ok=True)
    with mlflow_run(
        tracking or {"enabled": False},
        f"classifier-{settings.mode}",
        cfg | {"n_train": len(tr_y)},
        resume / "mlflow_run_id",
    ) as tracker:
        result = Trainer(
            model,
            opt,
            None,
            batches,
            loss,
            validate,
            "val_macro_f1",
            settings.epochs,
            settings.seed,
            resume / "state.pt",
            fp,
            patience=settings.patience,
            tracker=tracker,
        ).fit()
        metadata = artefact_metadata(
            cfg,
            {"inputs": inputs_path, "classification_split": split_path},
            best_epoch=result.best_epoch,
            best_val_macro_f1=result.best_score,
            epochs_run=result.epochs_run,
            n_train=len(tr_y),
            n_val=len(va_y),
            device=str(dev),
        )
        model_file = {
            "arch": "resnet18",
            "classes": names,
            "input_size": int(tr_img[0].shape[-1]),
            "settings": json.dumps(asdict(settings)),
        }
        save_training(result, model_file, metadata, out_model, out_metadata, out_history, resume, tracker)
    return metadata

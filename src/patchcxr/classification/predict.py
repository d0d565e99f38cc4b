"""K-patch prediction (method.md §5.5): every image decided by K lung-centred patches in
batched forwards, by hard majority vote (the paper) and by soft vote (mean probability);
per-image probabilities are kept. The global baseline reads the whole masked image.

The settings (patch size, centre and border modes, input size and preprocessing) come from
the model file (:func:`load_classifier`), never from the caller.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from patchcxr.classification.data import as_unit, load_input, memory_format, to_network
from patchcxr.classification.patches import extract, film_rng, sample_centres, windows
from patchcxr.classification.settings import ClassifierSettings, settings_of_model_file
from patchcxr.classification.shared_trunk import shared_predict
from patchcxr.io import read_tsv
from patchcxr.models.classifier import network, vote
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime, autocast, load_state, resolve_device

log = logging.getLogger(__name__)


def patch_windows(
    lung: np.ndarray, shape: tuple[int, ...], settings: ClassifierSettings, k: int, *, rng: np.random.Generator
) -> np.ndarray:
    """The windows of ``k`` lung-centred patches, drawn as configured (centre mode, border)."""
    return windows(sample_centres(lung, k, rng, settings.centre), shape, settings.patch, settings.border)


def image_batch(
    img: torch.Tensor, lung: np.ndarray, settings: ClassifierSettings, k: int, *, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray]:
    """The network inputs of one image: ``k`` patches (local) or the whole image (global),
    and their windows on the image."""
    if settings.mode == "global":
        whole = F.interpolate(as_unit(img)[None], size=(settings.patch, settings.patch), mode="area")
        return whole, np.array([[0, 0, img.shape[-2], img.shape[-1]]])
    wins = patch_windows(lung, img.shape[-2:], settings, k, rng=rng)
    return extract(img, wins, settings.patch), wins


def predict_probs(
    model: nn.Module,
    img: torch.Tensor,
    lung: np.ndarray,
    settings: ClassifierSettings,
    *,
    k: int,
    rng: np.random.Generator,
    device: torch.device,
    batch: int = 50,
    precision: str = "fp32",
) -> tuple[torch.Tensor, np.ndarray]:
    """Class probabilities ``(K, C)`` of K patches of one image, in batched forwards
    (under ``precision``'s autocast; the probabilities come back in fp32)."""
    x, wins = image_batch(img, lung, settings, k, rng=rng)
    out = []
    with torch.inference_mode(), autocast(device, precision):
        for i in range(0, len(x), batch):
            xb = to_network(x[i : i + batch], settings.backbone).to(device, memory_format=memory_format(model))
            out.append(torch.softmax(model(xb).float(), dim=1).cpu())
    return torch.cat(out), wins


def shared_probs(
    model: nn.Module,
    img: torch.Tensor,
    lung: np.ndarray,
    settings: ClassifierSettings,
    *,
    k: int,
    rng: np.random.Generator,
    device: torch.device,
) -> torch.Tensor:
    """K patch probabilities of one image by the shared trunk (the windows drawn as the
    exact method draws them; :mod:`patchcxr.classification.shared_trunk`)."""
    wins = patch_windows(lung, img.shape[-2:], settings, k, rng=rng)
    x = to_network(as_unit(img)[None], settings.backbone).to(device)
    return shared_predict(model, x, wins, settings.patch)[0].cpu()


class LoadedClassifier:
    """A classifier file loaded for prediction: the network of the backbone it records
    (eval mode, ``channels_last``: 1.32x faster on this CPU, bench/RESULTS.md), its classes,
    the settings it was trained with, how its inputs were made and what it was initialised
    from."""

    def __init__(self, path: Path | str, device: str = "auto") -> None:
        state = load_state(path)
        self.device = resolve_device(device)
        self.settings, self.inputs = settings_of_model_file(state)
        self.classes: list[str] = list(state["classes"])
        #: the precision it was trained in (None: a file from before it was recorded)
        self.trained_precision: str | None = state.get("precision")
        init = state.get("initialisation") or {}
        # files before the backbone switch record a label (``scratch``) instead of a record
        self.initialisation: dict[str, str] = dict(init) if isinstance(init, dict) else {"label": str(init)}
        #: the training films' sources that were synthetic phantoms (empty: real films, or a
        #: file from before this was recorded)
        self.synthetic_sources: list[str] = [str(s) for s in state.get("synthetic_sources") or []]
        model = network(self.settings.backbone, len(self.classes))
        model.load_state_dict(state["state_dict"])
        # Module.to takes memory_format at run time; torch's overloads of `to` omit it
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]


def load_classifier(path: Path | str, device: str = "auto") -> LoadedClassifier:
    """A saved classifier (``weights_only`` load) ready for prediction."""
    return LoadedClassifier(path, device)


def predict_split(
    model_path: Path | str,
    inputs_path: Path | str,
    split_path: Path | str,
    *,
    k: int,
    part: str = "test",
    runtime: Runtime = DEFAULT_RUNTIME,
    batch: int = 50,
    seed: int = 0,
    mode: str = "exact",
) -> pd.DataFrame:
    """Predictions of every image of split part ``part``: true class, hard and soft votes,
    vote counts and mean probabilities. ``mode`` ``shared_trunk`` reads the same K windows'
    logits from one trunk pass (:mod:`patchcxr.classification.shared_trunk`; local only);
    ``runtime``'s precision is the exact vote's autocast (a machine's setting)."""
    clf = load_classifier(model_path, runtime.device)
    model, settings, names, dev = clf.model, clf.settings, clf.classes, clf.device
    precision = runtime.for_inference(clf.trained_precision)
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    rows = inputs.merge(split[split["split"] == part][["image_id"]], on="image_id").sort_values("image_id")
    out = []
    for i, r in enumerate(rows.itertuples()):
        img, lung = load_input(r.input_path, r.lung_path)
        if img.shape[-1] != clf.inputs.size:
            raise ValueError(
                f"{r.input_path}: input of {img.shape[-1]}², the classifier was trained on {clf.inputs.size}²"
            )
        rng = film_rng(seed, r.image_id)
        if mode == "shared_trunk" and settings.mode == "local":
            probs = shared_probs(model, img, lung, settings, k=k, rng=rng, device=dev)
        else:
            probs, _ = predict_probs(
                model, img, lung, settings, k=k, rng=rng, device=dev, batch=batch, precision=precision
            )
        v = vote(probs)
        true = getattr(r, settings.labels)
        out.append(
            {
                "image_id": r.image_id,
                "patient_id": r.patient_id,
                "source": r.source,
                "mask_source": r.mask_source,
                "age_group": "paediatric" if str(r.paediatric) == "1" else "adult",
                "true": true,
                "true_index": names.index(true),
                "pred_hard": names[int(v["hard"])],
                "pred_hard_index": int(v["hard"]),
                "pred_soft": names[int(v["soft"])],
                "pred_soft_index": int(v["soft"]),
                "k": len(probs),
                # the precision the vote computed in (a requested `auto`, resolved)
                "precision": precision if mode == "exact" or settings.mode != "local" else "fp32",
                **{f"votes_{n}": int(c) for n, c in zip(names, v["votes"].tolist(), strict=True)},
                **{f"prob_{n}": float(p) for n, p in zip(names, v["mean_prob"].tolist(), strict=True)},
            }
        )
        if (i + 1) % 25 == 0:
            log.info("predicted %d/%d images", i + 1, len(rows))
    return pd.DataFrame(out)

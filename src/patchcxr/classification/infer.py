"""K-patch inference (method.md §5.5): every test image decided by K lung-centred patches
in batched forwards, by hard majority vote (the paper) and by soft vote (mean probability);
per-image probabilities are kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from patchcxr.classification.data import load_input
from patchcxr.classification.train import ClassifierSettings, predict_probs
from patchcxr.data.harmonise import read_tsv
from patchcxr.models.classifier import resnet18_classifier, vote
from patchcxr.training import load_state, resolve_device

log = logging.getLogger(__name__)


def load_classifier(
    path: Path | str, device: str = "auto"
) -> tuple[torch.nn.Module, ClassifierSettings, list[str], torch.device]:
    state = load_state(path)
    dev = resolve_device(device)
    names = list(state["classes"])
    model = resnet18_classifier(len(names))
    model.load_state_dict(state["state_dict"])
    return model.to(dev).eval(), ClassifierSettings(**json.loads(state["settings"])), names, dev


def predict_split(
    model_path: Path | str,
    inputs_path: Path | str,
    split_path: Path | str,
    k: int,
    part: str = "test",
    device: str = "auto",
    batch: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """Predictions of every image of split part ``part``: true class, hard and soft votes,
    vote counts and mean probabilities."""
    model, settings, names, dev = load_classifier(model_path, device)
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    rows = inputs.merge(split[split["split"] == part][["image_id"]], on="image_id").sort_values("image_id")
    out = []
    for i, r in enumerate(rows.itertuples()):
        img, lung = load_input(r.input_path, r.lung_path)
        probs, _ = predict_probs(model, img, lung, settings, k, np.random.default_rng([seed, i]), dev, batch)
        v = vote(probs)
        true = getattr(r, settings.labels)
        out.append(
            {
                "image_id": r.image_id,
                "source": r.source,
                "true": true,
                "true_index": names.index(true),
                "pred_hard": names[int(v["hard"])],
                "pred_hard_index": int(v["hard"]),
                "pred_soft": names[int(v["soft"])],
                "pred_soft_index": int(v["soft"]),
                "k": len(probs),
                **{f"votes_{n}": int(c) for n, c in zip(names, v["votes"].tolist(), strict=True)},
                **{f"prob_{n}": float(p) for n, p in zip(names, v["mean_prob"].tolist(), strict=True)},
            }
        )
        if (i + 1) % 25 == 0:
            log.info("predicted %d/%d images", i + 1, len(rows))
    return pd.DataFrame(out)

"""K-patch inference (method.md §5.5): every test image decided by K lung-centred patches
in batched forwards, by hard majority vote (the paper) and by soft vote (mean probability);
per-image probabilities are kept."""

from __future__ import annotations

import functools
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from patchcxr.classification.data import load_input
from patchcxr.classification.train import ClassifierSettings, patch_windows, predict_probs
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
    # channels_last: the convolutions run 1.32x faster on this CPU (bench/RESULTS.md)
    model = model.to(dev, memory_format=torch.channels_last).eval()
    return model, ClassifierSettings(**json.loads(state["settings"])), names, dev


def predict_split(
    model_path: Path | str,
    inputs_path: Path | str,
    split_path: Path | str,
    k: int,
    part: str = "test",
    device: str = "auto",
    batch: int = 50,
    seed: int = 0,
    mode: str = "exact",
) -> pd.DataFrame:
    """Predictions of every image of split part ``part``: true class, hard and soft votes,
    vote counts and mean probabilities. ``mode`` ``shared_trunk`` reads the same K windows'
    logits from one trunk pass (:mod:`patchcxr.classification.shared_trunk`; local only)."""
    model, settings, names, dev = load_classifier(model_path, device)
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    rows = inputs.merge(split[split["split"] == part][["image_id"]], on="image_id").sort_values("image_id")
    out = []
    for i, r in enumerate(rows.itertuples()):
        img, lung = load_input(r.input_path, r.lung_path)
        rng = np.random.default_rng([seed, i])
        if mode == "shared_trunk" and settings.mode == "local":
            probs = shared_probs(model, img, lung, settings, k, rng, dev)
        else:
            probs, _ = predict_probs(model, img, lung, settings, k, rng, dev, batch)
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


def shared_probs(
    model: torch.nn.Module,
    img: torch.Tensor,
    lung: np.ndarray,
    settings: ClassifierSettings,
    k: int,
    rng: np.random.Generator,
    dev: torch.device,
) -> torch.Tensor:
    """K patch probabilities of one image by the shared trunk (the windows drawn as the
    exact method draws them)."""
    from patchcxr.classification.data import to_network
    from patchcxr.classification.shared_trunk import shared_predict

    wins = patch_windows(lung, img.shape[-2:], settings, k, rng)
    return shared_predict(model, to_network(img[None]).to(dev), wins, settings.patch)[0].cpu()


@functools.lru_cache(maxsize=16)
def _lesions(path: str) -> pd.DataFrame:
    """A source's lesion table, read once however many of its images are mapped."""
    if not Path(path).is_file():
        return pd.DataFrame(columns=["image_id", "x0", "y0", "x1", "y1"])
    return read_tsv(path)


def lesion_boxes_on_input(
    truth_root: Path | str, image_id: str, pixels: np.ndarray, fmt: str, size: int, crop_band: bool
) -> np.ndarray:
    """Ground-truth lesion boxes of a synthetic image on its classifier input canvas
    (after the blank-band crop and the resize to ``size``); empty when there are none."""
    from patchcxr.preprocess import blank_band_start

    source, stem = image_id.split("/", 1)
    les = _lesions(str(Path(truth_root) / source / "lesions.tsv"))
    les = les[les["image_id"] == stem]
    h, w = pixels.shape[:2]
    cut = blank_band_start(pixels) if crop_band and fmt != "jsrt" else None
    h = cut or h
    sy, sx = size / h, size / w
    boxes = [
        [int(int(r.y0) * sy), int(int(r.x0) * sx), int(np.ceil(int(r.y1) * sy)), int(np.ceil(int(r.x1) * sx))]
        for r in les.itertuples()
    ]
    return np.array(boxes, int).reshape(-1, 4)


#: one row per test image of the saliency target; boxes ``top,left,bottom,right`` on the
#: input canvas separated by ``;``; the peak is the map's maximum within the lung
SALIENCY_COLUMNS = [
    "image_id",
    "overlay",
    "mean_probability",
    "peak_row",
    "peak_col",
    "n_lesions",
    "lesion_boxes",
    "pointing_hit",
]


def saliency_for_split(
    model_path: Path | str,
    inputs_path: Path | str,
    split_path: Path | str,
    manifest_path: Path | str,
    out_dir: Path | str,
    k: int,
    target: str,
    max_images: int,
    truth_root: str = "",
    crop_band: bool = True,
    device: str = "auto",
    batch: int = 25,
    seed: int = 0,
    mode: str = "exact",
) -> pd.DataFrame:
    """Probabilistic Grad-CAM maps (``.npy``) and overlays (``.png``) of the test images of
    class ``target`` (at most ``max_images``), with the pointing game where ground-truth
    lesions are known (synthetic sources): the map's maximum *within the lung* (the input
    is zero elsewhere) must fall in a lesion box. ``mode`` ``shared_trunk`` takes the maps
    from one trunk pass (:func:`patchcxr.classification.shared_trunk.shared_saliency`)."""
    from patchcxr.io import atomic_write_bytes
    from patchcxr.saliency import image_saliency, overlay_png, pointing_hit
    from patchcxr.segmentation.data import read_png

    model, settings, names, dev = load_classifier(model_path, device)
    if target not in names:
        raise ValueError(f"saliency target {target!r} is not one of the classifier's classes {names}")
    inputs, split, manifest = read_tsv(inputs_path), read_tsv(split_path), read_tsv(manifest_path)
    rows = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id")
    rows = rows[rows[settings.labels] == target].sort_values("image_id").head(max_images)
    info = manifest.set_index("image_id")
    out_dir = Path(out_dir)
    out = []
    for i, r in enumerate(rows.itertuples()):
        img, lung = load_input(r.input_path, r.lung_path)
        rng = np.random.default_rng([seed, i])
        if mode == "shared_trunk":
            from patchcxr.classification.shared_trunk import shared_saliency

            wins = patch_windows(lung, img.shape[-2:], settings, k, rng)
            sal, probs = shared_saliency(model, img, wins, settings.patch, names.index(target), dev)
        else:
            sal, probs = image_saliency(model, img, lung, settings, k, names.index(target), rng, dev, batch)
        buf = io.BytesIO()
        np.save(buf, sal.astype(np.float32))
        atomic_write_bytes(out_dir / f"{r.image_id}.npy", buf.getvalue())
        atomic_write_bytes(out_dir / f"{r.image_id}.png", overlay_png(img[0].numpy(), sal))
        boxes = np.zeros((0, 4), int)
        if truth_root:
            m = info.loc[r.image_id]
            boxes = lesion_boxes_on_input(
                truth_root, r.image_id, read_png(m["image_path"]), m["format"], img.shape[-1], crop_band
            )
        inside = np.where(lung, sal, -1.0)
        peak = np.unravel_index(int(np.argmax(inside)), inside.shape)
        out.append(
            {
                "image_id": r.image_id,
                "overlay": str(out_dir / f"{r.image_id}.png"),
                "mean_probability": float(probs.mean()),
                "peak_row": int(peak[0]),
                "peak_col": int(peak[1]),
                "n_lesions": len(boxes),
                "lesion_boxes": ";".join(",".join(str(int(v)) for v in box) for box in boxes.tolist()),
                "pointing_hit": int(pointing_hit(inside, boxes)) if len(boxes) else "",
            }
        )
    return pd.DataFrame(out, columns=SALIENCY_COLUMNS)

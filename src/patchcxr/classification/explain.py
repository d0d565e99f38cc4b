"""Probabilistic Grad-CAM of a trained classifier (method.md §6.2): the saliency
primitives (:mod:`patchcxr.saliency`) applied to the patches the classifier draws, the maps
and overlays of a split's test images, and the pointing game where lesion boxes are known
(synthetic sources), beside its uniform-in-lung chance. The sanity checks of these maps are
in :mod:`patchcxr.classification.sanity`."""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from patchcxr.classification.data import as_unit, load_input, memory_format, to_network
from patchcxr.classification.patches import film_rng
from patchcxr.classification.predict import image_batch, load_classifier, patch_windows
from patchcxr.classification.settings import ClassifierSettings
from patchcxr.classification.shared_trunk import shared_gradcams, shared_predict, snapped_windows
from patchcxr.figures import saliency_overlay_png
from patchcxr.io import atomic_write_bytes, read_png, read_tsv
from patchcxr.models.classifier import backbone_of
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime
from patchcxr.preprocess import PreprocessSettings
from patchcxr.saliency import (
    aggregate,
    coverage,
    head_gradcam_maps,
    in_boxes,
    peak,
    peak_region,
    pointing_chance,
)

log = logging.getLogger(__name__)


def image_saliency_maps(
    model: nn.Module,
    img: torch.Tensor,
    lung: np.ndarray,
    settings: ClassifierSettings,
    *,
    k: int,
    target: int,
    rng: np.random.Generator,
    device: torch.device,
    batch: int = 25,
    precision: str = "fp32",
    rectify: Sequence[str] = ("relu",),
) -> tuple[dict[str, np.ndarray], torch.Tensor, np.ndarray]:
    """Probabilistic Grad-CAM of one masked input (1, S, S) for class ``target``: K patches
    in chunks of ``batch`` (one forward and the head's backward per chunk), aggregated on
    the canvas; one map per ``rectify`` (:data:`patchcxr.saliency.RECTIFICATIONS`: ``relu``
    is the method) from the same passes; ``precision`` bf16/fp16 runs the trunk under
    autocast (a machine's setting).

    Returns the maps (S, S), the patch probabilities of ``target`` and the windows."""
    x, wins = image_batch(img, lung, settings, k, rng=rng)
    cams: dict[str, list[torch.Tensor]] = {r: [] for r in rectify}
    probs = []
    layout = memory_format(model)
    for i in range(0, len(x), batch):
        xb = to_network(x[i : i + batch], settings.backbone).to(device, memory_format=layout)
        c, p = head_gradcam_maps(model, xb, target, precision=precision, rectify=rectify)
        for r in rectify:
            cams[r].append(c[r].cpu())
        probs.append(p.cpu())
    p_all = torch.cat(probs)
    return {r: aggregate(torch.cat(c), p_all, wins, img.shape[-2:]) for r, c in cams.items()}, p_all, wins


def image_saliency(
    model: nn.Module,
    img: torch.Tensor,
    lung: np.ndarray,
    settings: ClassifierSettings,
    *,
    k: int,
    target: int,
    rng: np.random.Generator,
    device: torch.device,
    batch: int = 25,
    precision: str = "fp32",
) -> tuple[np.ndarray, torch.Tensor]:
    """The method's map (:func:`image_saliency_maps`, Grad-CAM's ReLU) of one masked input
    (1, S, S) and the patch probabilities of ``target``."""
    maps, probs, _ = image_saliency_maps(
        model, img, lung, settings, k=k, target=target, rng=rng, device=device, batch=batch, precision=precision
    )
    return maps["relu"], probs


def _shared_saliency(
    model: nn.Module, img: torch.Tensor, wins: np.ndarray, *, patch: int, target: int, device: torch.device
) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    spec = backbone_of(model)
    probs, fmap, corners = shared_predict(model, to_network(as_unit(img)[None], spec.name).to(device), wins, patch)
    cams = shared_gradcams(model, fmap, corners, patch, target=target)
    placed = snapped_windows(corners, patch, (int(img.shape[-2]), int(img.shape[-1])), spec.stride)
    return aggregate(cams.cpu(), probs[:, target].cpu(), placed, img.shape[-2:]), probs[:, target].cpu(), placed


def shared_saliency(
    model: nn.Module, img: torch.Tensor, wins: np.ndarray, *, patch: int, target: int, device: torch.device
) -> tuple[np.ndarray, torch.Tensor]:
    """Probabilistic Grad-CAM of one masked input (1, S, S) from one trunk pass
    (:mod:`patchcxr.classification.shared_trunk`): the map (S, S) and the patch
    probabilities of ``target``."""
    sal, probs, _ = _shared_saliency(model, img, wins, patch=patch, target=target, device=device)
    return sal, probs


@functools.lru_cache(maxsize=16)
def _lesions(path: str) -> pd.DataFrame:
    """A source's lesion table, read once however many of its images are mapped."""
    if not Path(path).is_file():
        return pd.DataFrame(columns=["image_id", "x0", "y0", "x1", "y1"])
    return read_tsv(path)


def lesion_boxes_on_input(
    truth_root: Path | str,
    image_id: str,
    pixels: np.ndarray,
    *,
    fmt: str,
    size: int,
    preprocessing: PreprocessSettings,
) -> np.ndarray:
    """Ground-truth lesion boxes of a synthetic image on its classifier input canvas
    (after the blank-band crop and the resize to ``size``); empty when there are none."""
    source, stem = image_id.split("/", 1)
    les = _lesions(str(Path(truth_root) / source / "lesions.tsv"))
    les = les[les["image_id"] == stem]
    h = preprocessing.kept_rows(pixels, fmt)
    w = pixels.shape[1]
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
    "lung_mass",
    "lung_mass_even",
    "n_lesions",
    "lesion_boxes",
    "pointing_hit",
    "pointing_chance",
]
"""``lung_mass_even``: the lung mass of a map spread evenly over the windows (every patch
map 1, every probability equal): what the lung-centred windows alone give.
``pointing_chance``: the hit probability of a peak drawn uniformly from the pixels the peak
is looked for in (lung pixels above the coverage floor)."""


def lung_mass(saliency: np.ndarray, lung: np.ndarray) -> float:
    """Share of a map's mass inside the lung mask (NaN for a map without mass): how much
    of what the classifier looked at is lung."""
    total = float(saliency.sum())
    return float(saliency[lung].sum()) / total if total > 0 else float("nan")


def film_peak(saliency: np.ndarray, lung: np.ndarray, wins: np.ndarray, floor: float) -> tuple[int, int]:
    """A map's peak within the lung pixels that clear the coverage floor
    (:func:`patchcxr.saliency.peak_region`)."""
    return peak(saliency, peak_region(lung, coverage(wins, saliency.shape), floor))


def saliency_for_split(
    model_path: Path | str,
    inputs_path: Path | str,
    split_path: Path | str,
    manifest_path: Path | str,
    *,
    out_dir: Path | str,
    k: int,
    target: str,
    max_images: int,
    truth_root: str = "",
    runtime: Runtime = DEFAULT_RUNTIME,
    batch: int = 25,
    seed: int = 0,
    mode: str = "exact",
    peak_coverage: float = 0.5,
) -> pd.DataFrame:
    """Probabilistic Grad-CAM maps (``.npy``) and overlays (``.png``) of the test images of
    class ``target`` (at most ``max_images``), with the pointing game where ground-truth
    lesions are known (synthetic sources): the map's maximum within the lung, among the
    pixels covered by at least ``peak_coverage`` times the median lung coverage
    (:func:`patchcxr.saliency.peak_region`), must fall in a lesion box; beside it the hit
    probability of a peak drawn uniformly from the same pixels. ``mode`` ``shared_trunk``
    takes the maps from one trunk pass; ``runtime``'s precision is the exact method's
    autocast (a machine's setting). Patches and the input canvas follow the settings the
    model file records."""
    clf = load_classifier(model_path, runtime.device)
    model, settings, names, dev = clf.model, clf.settings, clf.classes, clf.device
    if target not in names:
        raise ValueError(f"saliency target {target!r} is not one of the classifier's classes {names}")
    inputs, split, manifest = read_tsv(inputs_path), read_tsv(split_path), read_tsv(manifest_path)
    rows = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id")
    rows = rows[rows[settings.labels] == target].sort_values("image_id").head(max_images)
    info = manifest.set_index("image_id")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # also when the test split has no such image
    out = []
    for r in rows.itertuples():
        img, lung = load_input(r.input_path, r.lung_path)
        rng = film_rng(seed, r.image_id)
        if mode == "shared_trunk":
            wins = patch_windows(lung, img.shape[-2:], settings, k, rng=rng)
            sal, probs, wins = _shared_saliency(
                model, img, wins, patch=settings.patch, target=names.index(target), device=dev
            )
        else:
            maps, probs, wins = image_saliency_maps(
                model,
                img,
                lung,
                settings,
                k=k,
                target=names.index(target),
                rng=rng,
                device=dev,
                batch=batch,
                precision=runtime.for_inference(clf.trained_precision),
            )
            sal = maps["relu"]
        buf = io.BytesIO()
        np.save(buf, sal.astype(np.float32))
        atomic_write_bytes(out_dir / f"{r.image_id}.npy", buf.getvalue())
        atomic_write_bytes(out_dir / f"{r.image_id}.png", saliency_overlay_png(img[0].numpy(), sal))
        boxes = np.zeros((0, 4), int)
        if truth_root:
            m = info.loc[r.image_id]
            boxes = lesion_boxes_on_input(
                truth_root,
                r.image_id,
                read_png(m["image_path"]),
                fmt=m["format"],
                size=img.shape[-1],
                preprocessing=clf.inputs.preprocessing,
            )
        covered = coverage(wins, sal.shape)
        region = peak_region(lung, covered, peak_coverage)
        top = peak(sal, region)
        out.append(
            {
                "image_id": r.image_id,
                "overlay": str(out_dir / f"{r.image_id}.png"),
                "mean_probability": float(probs.mean()),
                "peak_row": top[0],
                "peak_col": top[1],
                "lung_mass": lung_mass(sal, lung),
                "lung_mass_even": lung_mass((covered > 0).astype(float), lung),
                "n_lesions": len(boxes),
                "lesion_boxes": boxes_text(boxes),
                "pointing_hit": int(bool(in_boxes(sal.shape, boxes)[top])) if len(boxes) else "",
                "pointing_chance": pointing_chance(region, boxes) if len(boxes) else float("nan"),
            }
        )
    return pd.DataFrame(out, columns=SALIENCY_COLUMNS)


def boxes_text(boxes: np.ndarray) -> str:
    """Boxes as the saliency table writes them: ``top,left,bottom,right`` joined by ``;``."""
    return ";".join(",".join(str(int(v)) for v in box) for box in boxes.tolist())


def boxes_of(text: object) -> np.ndarray:
    """The boxes of :func:`boxes_text` (none for an empty or missing cell)."""
    cells = [c for c in str(text).split(";") if c.strip() and str(text) != "nan"]
    return np.array([[int(v) for v in c.split(",")] for c in cells], int).reshape(-1, 4)

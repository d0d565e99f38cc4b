"""Probabilistic Grad-CAM of a trained classifier (method.md §6.2): the saliency
primitives (:mod:`patchcxr.saliency`) applied to the patches the classifier draws, the maps
and overlays of a split's test images, and the pointing game where lesion boxes are known
(synthetic sources)."""

from __future__ import annotations

import copy
import functools
import io
import logging
from collections.abc import Mapping, Sequence
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
from patchcxr.saliency import aggregate, patch_gradcams, pointing_hit
from patchcxr.stats import bootstrap_interval

log = logging.getLogger(__name__)


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
    """Probabilistic Grad-CAM of one masked input (1, S, S) for class ``target``: K patches
    in chunks of ``batch`` (one forward and backward per chunk), aggregated on the canvas;
    ``precision`` bf16/fp16 runs the trunk under autocast (a machine's setting).

    Returns the map (S, S) and the patch probabilities of ``target``.
    """
    x, wins = image_batch(img, lung, settings, k, rng=rng)
    cams, probs = [], []
    layout = memory_format(model)
    for i in range(0, len(x), batch):
        xb = to_network(x[i : i + batch], settings.backbone).to(device, memory_format=layout)
        c, p = patch_gradcams(model, xb, target, precision=precision)
        cams.append(c.cpu())
        probs.append(p.cpu())
    return aggregate(torch.cat(cams), torch.cat(probs), wins, img.shape[-2:]), torch.cat(probs)


def shared_saliency(
    model: nn.Module, img: torch.Tensor, wins: np.ndarray, *, patch: int, target: int, device: torch.device
) -> tuple[np.ndarray, torch.Tensor]:
    """Probabilistic Grad-CAM of one masked input (1, S, S) from one trunk pass
    (:mod:`patchcxr.classification.shared_trunk`): the map (S, S) and the patch
    probabilities of ``target``."""
    spec = backbone_of(model)
    probs, fmap, corners = shared_predict(model, to_network(as_unit(img)[None], spec.name).to(device), wins, patch)
    cams = shared_gradcams(model, fmap, corners, patch, target=target)
    placed = snapped_windows(corners, patch, (int(img.shape[-2]), int(img.shape[-1])), spec.stride)
    return aggregate(cams.cpu(), probs[:, target].cpu(), placed, img.shape[-2:]), probs[:, target].cpu()


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
    "n_lesions",
    "lesion_boxes",
    "pointing_hit",
]


def lung_mass(saliency: np.ndarray, lung: np.ndarray) -> float:
    """Share of a map's mass inside the lung mask (NaN for a map without mass): how much
    of what the classifier looked at is lung."""
    total = float(saliency.sum())
    return float(saliency[lung].sum()) / total if total > 0 else float("nan")


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
) -> pd.DataFrame:
    """Probabilistic Grad-CAM maps (``.npy``) and overlays (``.png``) of the test images of
    class ``target`` (at most ``max_images``), with the pointing game where ground-truth
    lesions are known (synthetic sources): the map's maximum *within the lung* (the input
    is zero elsewhere) must fall in a lesion box. ``mode`` ``shared_trunk`` takes the maps
    from one trunk pass (:func:`shared_saliency`); ``runtime``'s precision is the exact
    method's autocast (a machine's setting). Patches and the input canvas follow the settings the
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
            sal, probs = shared_saliency(model, img, wins, patch=settings.patch, target=names.index(target), device=dev)
        else:
            sal, probs = image_saliency(
                model,
                img,
                lung,
                settings,
                k=k,
                target=names.index(target),
                rng=rng,
                device=dev,
                batch=batch,
                precision=runtime.precision,
            )
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
        inside = np.where(lung, sal, -1.0)
        peak = np.unravel_index(int(np.argmax(inside)), inside.shape)
        out.append(
            {
                "image_id": r.image_id,
                "overlay": str(out_dir / f"{r.image_id}.png"),
                "mean_probability": float(probs.mean()),
                "peak_row": int(peak[0]),
                "peak_col": int(peak[1]),
                "lung_mass": lung_mass(sal, lung),
                "n_lesions": len(boxes),
                "lesion_boxes": ";".join(",".join(str(int(v)) for v in box) for box in boxes.tolist()),
                "pointing_hit": int(pointing_hit(inside, boxes)) if len(boxes) else "",
            }
        )
    return pd.DataFrame(out, columns=SALIENCY_COLUMNS)


def randomisation_cascade(model: nn.Module) -> tuple[tuple[str, ...], ...]:
    """The model-parameter randomisation cascade (Adebayo et al., NeurIPS 2018) of a
    network: its head first, then the head and the backbone's last stage (ResNet-18:
    ``fc``, then ``fc`` and ``layer4``)."""
    spec = backbone_of(model)
    return ((spec.head_layer,), (spec.head_layer, *spec.last_stage))


#: ``empty``: the randomised map is constant over the lung (Grad-CAM's ReLU left nothing,
#: as when the random head's class weights point against every activation); its Spearman
#: is then 0
RANDOMISATION_COLUMNS = ["image_id", "patient_id", "randomised", "spearman", "empty"]


def randomised_copy(model: nn.Module, layers: Sequence[str], *, seed: int) -> nn.Module:
    """A copy of ``model`` with the named layers (dotted module paths) re-initialised (every
    submodule's ``reset_parameters``, batch-norm statistics included) from ``seed``; the
    rest unchanged."""
    out = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layers:
            for module in out.get_submodule(name).modules():
                reset = getattr(module, "reset_parameters", None)  # batch norm: its statistics too
                if callable(reset):
                    reset()
    return out.eval()


def rank_correlation(reference: np.ndarray, other: np.ndarray, where: np.ndarray) -> float:
    """Spearman's rank correlation of two maps over the pixels ``where``. NaN when the
    reference map is constant there (nothing to rank); 0 when only ``other`` is: a map
    without structure (a randomised Grad-CAM whose ReLU left nothing) shares no ranking."""
    from scipy.stats import spearmanr

    x, y = reference[where].ravel(), other[where].ravel()
    if x.size < 3 or np.ptp(x) == 0:
        return float("nan")
    if np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def randomisation_test(
    model_path: Path | str,
    inputs_path: Path | str,
    split_path: Path | str,
    *,
    target: str,
    max_images: int,
    k: int,
    runtime: Runtime = DEFAULT_RUNTIME,
    batch: int = 25,
    seed: int = 0,
) -> pd.DataFrame:
    """The model-parameter randomisation test of probabilistic Grad-CAM on the first
    ``max_images`` test images of ``target`` (those :func:`saliency_for_split` maps): each
    image's map from the trained classifier against its map after each step of
    :func:`randomisation_cascade`, same patches, Spearman's rank correlation over the lung.
    A map that depends on what the network learnt decorrelates; one that stays close to
    the trained map shows the input (or the method), not the model. ``runtime``: as
    :func:`saliency_for_split`'s."""
    clf = load_classifier(model_path, runtime.device)
    model, settings, names, dev = clf.model, clf.settings, clf.classes, clf.device
    if target not in names:
        raise ValueError(f"saliency target {target!r} is not one of the classifier's classes {names}")
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    rows = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id")
    rows = rows[rows[settings.labels] == target].sort_values("image_id").head(max_images)
    cascade = [(layers, randomised_copy(model, layers, seed=seed + 1)) for layers in randomisation_cascade(model)]
    out = []
    for i, r in enumerate(rows.itertuples()):
        img, lung = load_input(r.input_path, r.lung_path)

        maps = [
            image_saliency(
                net,
                img,
                lung,
                settings,
                k=k,
                target=names.index(target),
                rng=film_rng(seed, r.image_id),  # the same patches for every network
                device=dev,
                batch=batch,
                precision=runtime.precision,
            )[0]
            for net in (model, *(net for _, net in cascade))
        ]
        for (layers, _), randomised in zip(cascade, maps[1:], strict=True):
            out.append(
                {
                    "image_id": r.image_id,
                    "patient_id": r.patient_id,
                    "randomised": "+".join(layers),
                    "spearman": rank_correlation(maps[0], randomised, lung),
                    "empty": int(np.ptp(randomised[lung]) == 0) if lung.any() else 1,
                }
            )
        log.info("randomisation test %d/%d: %s", i + 1, len(rows), r.image_id)
    return pd.DataFrame(out, columns=RANDOMISATION_COLUMNS)


def _mean_at(values: np.ndarray, idx: np.ndarray) -> float:
    return float(np.mean(values[idx]))


SANITY_COLUMNS = ["check", "n", "n_patients", "value", "ci_low", "ci_high"]


def saliency_sanity(
    randomisation: pd.DataFrame, saliency: pd.DataFrame, patients: Mapping[str, str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """The saliency checks with 95 % intervals from a bootstrap over patients: mean
    Spearman correlation of the trained map with each randomised one (randomisation test;
    ``randomised <layers>``), the pointing game's hit rate where lesion boxes are known, and
    the mean share of the map's mass inside the lung, and the share of randomised maps
    left empty (counted as correlation 0). ``patients``: image → patient."""
    checks: list[tuple[str, pd.DataFrame, str]] = []
    for layers, part in randomisation.groupby("randomised", sort=False):
        checks += [(f"spearman, randomised {layers}", part, "spearman")]
        # a randomised Grad-CAM the ReLU emptied counts as rank correlation 0: say how often
        checks += [(f"empty maps, randomised {layers}", part, "empty")]
    hits = saliency[saliency["pointing_hit"].astype(str).isin(["0", "1"])]
    checks += [("pointing game hit rate", hits.assign(hit=hits["pointing_hit"].astype(float)), "hit")]
    checks += [("lung mass", saliency.assign(mass=pd.to_numeric(saliency["lung_mass"], errors="coerce")), "mass")]
    rows = []
    for name, part, column in checks:
        values = part[column].to_numpy(float)
        keep = np.isfinite(values)
        values, ids = values[keep], part["image_id"].astype(str).to_numpy()[keep]
        groups = np.array([patients.get(i, i) for i in ids])
        lo, hi = bootstrap_interval(
            functools.partial(_mean_at, values),
            len(values),
            groups,
            n_boot=n_boot,
            seed=seed,
        )
        rows.append(
            {
                "check": name,
                "n": len(values),
                "n_patients": len(np.unique(groups)),
                "value": float(np.mean(values)) if len(values) else float("nan"),
                "ci_low": float(lo[0]),
                "ci_high": float(hi[0]),
            }
        )
    return pd.DataFrame(rows, columns=SANITY_COLUMNS)

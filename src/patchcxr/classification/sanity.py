"""Sanity checks of probabilistic Grad-CAM (Adebayo et al., NeurIPS 2018; not in the paper).

- **Model-parameter randomisation**, as a *cascade* (the head, then the head and the trunk's
  last stage, … down to the first convolution: :attr:`patchcxr.models.classifier.Backbone.stages`)
  and *independently* (one stage at a time, the rest trained). At the last feature map of a
  network that pools and then applies one linear layer, Grad-CAM is CAM, so the first steps
  nearly pass by construction; the deeper steps are the test.
- **Label permutation**: the same network trained, at a small scale, on the training films
  with their labels permuted (:func:`permuted_labels`): a map that stays close to the
  trained model's shows the input, not what the labels taught.
- The rank correlations are taken on the method's map (Grad-CAM's ReLU) and on the absolute
  pre-ReLU map: a randomised Grad-CAM the ReLU emptied has no ranking, so it is counted apart
  (``n_empty``), never as correlation 0.
- The pointing game beside a peak drawn uniformly from the same lung pixels and beside the
  fully randomised model's peak; the lung mass beside that of a map spread evenly over the
  windows.

Every figure has a 95 % interval from a bootstrap over patients, and none below
``statistics.min_patients``.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from patchcxr.classification.data import load_input
from patchcxr.classification.explain import boxes_of, image_saliency_maps
from patchcxr.classification.patches import film_rng
from patchcxr.classification.predict import load_classifier
from patchcxr.io import read_tsv
from patchcxr.models.classifier import backbone_of
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime
from patchcxr.saliency import RECTIFICATIONS, coverage, peak, peak_region
from patchcxr.stats import bootstrap_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One randomised network of the test: ``variant`` cascade, independent or
    label-permuted; ``block`` the stage it reaches (cascade) or re-initialises
    (independent); ``layers`` every module re-initialised; ``depth`` 1 for the head, 2 for
    the head and the last stage, …"""

    variant: str
    block: str
    layers: tuple[str, ...]
    depth: int


def randomisation_steps(model: nn.Module) -> list[Step]:
    """The cascade from the head down to the first convolution, then each trunk stage
    re-initialised alone (the head alone is the cascade's first step)."""
    spec = backbone_of(model)
    steps = [Step("cascade", spec.head_layer, (spec.head_layer,), 1)]
    for i, stage in enumerate(spec.stages):
        steps.append(Step("cascade", "+".join(stage), (*steps[-1].layers, *stage), i + 2))
    steps += [Step("independent", "+".join(stage), stage, i + 2) for i, stage in enumerate(spec.stages)]
    return steps


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
    """Spearman's rank correlation of two maps over the pixels ``where``; NaN when either is
    constant there (nothing to rank: an emptied map is reported apart, not as 0)."""
    from scipy.stats import spearmanr

    x, y = reference[where].ravel(), other[where].ravel()
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def permuted_labels(inputs: pd.DataFrame, split: pd.DataFrame, labels: str, *, seed: int) -> pd.DataFrame:
    """``inputs`` with the class column ``labels`` permuted among the training films and,
    apart, among the validation films (each part keeps its class counts); test films and
    films outside the split unchanged."""
    out = inputs.copy()
    part = out["image_id"].map(dict(zip(split["image_id"], split["split"], strict=True)))
    rng = np.random.default_rng([seed, 7919])
    for which in ("train", "val"):
        idx = np.flatnonzero((part == which).to_numpy())
        out.loc[out.index[idx], labels] = out[labels].to_numpy()[idx][rng.permutation(len(idx))]
    return out


#: one row per film, randomised network and map; ``empty``: the randomised map is constant
#: over the lung (Grad-CAM's ReLU left nothing), its Spearman NaN; the peak (method's map
#: only) within the lung pixels above the coverage floor
RANDOMISATION_COLUMNS = [
    "image_id",
    "patient_id",
    "variant",
    "block",
    "depth",
    "map",
    "spearman",
    "empty",
    "peak_row",
    "peak_col",
]


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
    peak_coverage: float = 0.5,
    permuted_model: Path | str | None = None,
) -> pd.DataFrame:
    """The randomisation tests on the first ``max_images`` test films of ``target`` (those
    :func:`patchcxr.classification.explain.saliency_for_split` maps first): each film's maps
    from the trained classifier against its maps from every :func:`randomisation_steps`
    network and, when given, the model trained on permuted labels — the same patches
    throughout, Spearman's rank correlation over the lung, on the method's and the absolute
    map. ``runtime``: as ``saliency_for_split``'s."""
    clf = load_classifier(model_path, runtime.device)
    model, settings, names, dev = clf.model, clf.settings, clf.classes, clf.device
    if target not in names:
        raise ValueError(f"saliency target {target!r} is not one of the classifier's classes {names}")
    inputs, split = read_tsv(inputs_path), read_tsv(split_path)
    rows = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id")
    rows = rows[rows[settings.labels] == target].sort_values("image_id").head(max_images)
    films = [(r, *load_input(r.input_path, r.lung_path)) for r in rows.itertuples()]

    def maps_of(net: nn.Module) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
        out = []
        for r, img, lung in films:
            maps, _, wins = image_saliency_maps(
                net,
                img,
                lung,
                settings,
                k=k,
                target=names.index(target),
                rng=film_rng(seed, r.image_id),  # the same patches for every network
                device=dev,
                batch=batch,
                precision=runtime.for_inference(clf.trained_precision),
                rectify=RECTIFICATIONS,
            )
            out.append((maps, wins))
        return out

    trained = maps_of(model)
    networks: list[tuple[Step, nn.Module | None]] = [(s, None) for s in randomisation_steps(model)]
    if permuted_model:
        networks.append((Step("label-permuted", "all (trained on permuted labels)", (), 0), None))
    out = []
    for step, _ in networks:
        if step.variant == "label-permuted":
            net = load_classifier(permuted_model, runtime.device).model  # type: ignore[arg-type]
        else:
            net = randomised_copy(model, step.layers, seed=seed + 1)
        for (r, _img, lung), (ref, wins), (maps, _) in zip(films, trained, maps_of(net), strict=True):
            region = peak_region(lung, coverage(wins, lung.shape), peak_coverage)
            for kind in RECTIFICATIONS:
                empty = int(np.ptp(maps[kind][lung]) == 0) if lung.any() else 1
                top = peak(maps[kind], region) if kind == "relu" and not empty else (-1, -1)
                out.append(
                    {
                        "image_id": r.image_id,
                        "patient_id": r.patient_id,
                        "variant": step.variant,
                        "block": step.block,
                        "depth": step.depth,
                        "map": kind,
                        "spearman": rank_correlation(ref[kind], maps[kind], lung),
                        "empty": empty,
                        "peak_row": top[0],
                        "peak_col": top[1],
                    }
                )
        log.info("randomisation test: %s %s on %d films", step.variant, step.block, len(films))
    return pd.DataFrame(out, columns=RANDOMISATION_COLUMNS)


def _mean_at(values: np.ndarray, idx: np.ndarray) -> float:
    return float(np.mean(values[idx]))


SANITY_COLUMNS = ["check", "block", "map", "n", "n_patients", "n_empty", "value", "ci_low", "ci_high", "note"]


def _check(
    check: str,
    values: np.ndarray,
    ids: Sequence[str],
    patients: Mapping[str, str],
    *,
    n_boot: int,
    seed: int,
    min_patients: int,
    block: str = "",
    kind: str = "",
    n_empty: int = 0,
) -> dict[str, object]:
    """One figure: the films' mean with its patient-bootstrap interval, NaN below the
    minimum number of patients (with the reason)."""
    keep = np.isfinite(values)
    values, ids_kept = values[keep], np.asarray(ids, dtype=str)[keep]
    groups = np.array([patients.get(i, i) for i in ids_kept])
    n_patients = len(np.unique(groups))
    row: dict[str, object] = {
        "check": check,
        "block": block,
        "map": kind,
        "n": len(values),
        "n_patients": n_patients,
        "n_empty": n_empty,
        "value": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "note": "",
    }
    if n_patients < min_patients:
        return row | {"note": f"{n_patients} patients < statistics.min_patients ({min_patients})"}
    lo, hi = bootstrap_interval(functools.partial(_mean_at, values), len(values), groups, n_boot=n_boot, seed=seed)
    return row | {"value": float(np.mean(values)), "ci_low": float(lo[0]), "ci_high": float(hi[0])}


def _hits(peaks: pd.DataFrame, boxes: Mapping[str, np.ndarray], chance: Mapping[str, float]) -> np.ndarray:
    """Whether each row's peak (``peak_row``, ``peak_col``) falls in its film's boxes; a map
    without a peak (-1: emptied by the ReLU, its arg-max arbitrary) scores the film's
    uniform-in-lung chance, the expected hit of an arbitrary pixel; NaN for a film without
    boxes."""
    out = []
    for r in peaks.itertuples():
        b = boxes.get(str(r.image_id), np.zeros((0, 4), int))
        y, x = int(r.peak_row), int(r.peak_col)
        if not len(b):
            out.append(np.nan)
        elif y < 0:
            out.append(float(chance.get(str(r.image_id), np.nan)))
        else:
            out.append(float(any(t <= y < bt and lf <= x < rt for t, lf, bt, rt in b.tolist())))
    return np.array(out, float)


def saliency_sanity(
    randomisation: pd.DataFrame,
    saliency: pd.DataFrame,
    patients: Mapping[str, str],
    *,
    n_boot: int,
    seed: int,
    min_patients: int,
) -> pd.DataFrame:
    """The saliency checks (:data:`SANITY_COLUMNS`), each a mean over films with a 95 %
    interval from a bootstrap over patients: the rank correlation of the trained map with
    each randomised one (emptied maps counted apart), the pointing game of the trained model
    beside a uniform-in-lung peak and the fully randomised model (and the paired
    differences; an emptied randomised map scores the chance), the lung mass beside an
    evenly spread map. ``patients``: image → patient."""
    check = functools.partial(_check, patients=patients, n_boot=n_boot, seed=seed, min_patients=min_patients)
    rows = []
    for (variant, block, kind), part in randomisation.groupby(["variant", "block", "map"], sort=False):
        rows.append(
            check(
                f"spearman, {variant}",
                part["spearman"].to_numpy(float),
                part["image_id"].astype(str).tolist(),
                block=str(block),
                kind=str(kind),
                n_empty=int(part["empty"].astype(int).sum()),
            )
        )
    ids = saliency["image_id"].astype(str).tolist()
    boxes = {i: boxes_of(b) for i, b in zip(ids, saliency["lesion_boxes"], strict=True)}
    chance = pd.to_numeric(saliency["pointing_chance"], errors="coerce").to_numpy(float)
    chance_of = dict(zip(ids, chance, strict=True))
    trained = _hits(saliency, boxes, chance_of)
    rows.append(check("pointing game, trained model", trained, ids, kind="relu"))
    rows.append(check("pointing game, uniform in lung", chance, ids))
    rows.append(check("pointing game, trained minus uniform", trained - chance, ids, kind="relu"))
    deepest = randomisation[(randomisation["variant"] == "cascade") & (randomisation["map"] == "relu")]
    if len(deepest):
        deepest = deepest[deepest["depth"] == deepest["depth"].max()]
        randomised = _hits(deepest, boxes, chance_of)
        r_ids = deepest["image_id"].astype(str).tolist()
        block = str(deepest["block"].iloc[0])
        by_id = dict(zip(ids, trained, strict=True))
        paired = np.array([by_id.get(i, np.nan) for i in r_ids]) - randomised
        rows.append(check("pointing game, randomised model", randomised, r_ids, block=block, kind="relu"))
        rows.append(check("pointing game, trained minus randomised", paired, r_ids, block=block, kind="relu"))
    mass = pd.to_numeric(saliency["lung_mass"], errors="coerce").to_numpy(float)
    even = pd.to_numeric(saliency["lung_mass_even"], errors="coerce").to_numpy(float)
    rows.append(check("lung mass, trained model", mass, ids, kind="relu"))
    rows.append(check("lung mass, evenly spread", even, ids))
    rows.append(check("lung mass, trained minus evenly spread", mass - even, ids, kind="relu"))
    return pd.DataFrame(rows, columns=SANITY_COLUMNS)

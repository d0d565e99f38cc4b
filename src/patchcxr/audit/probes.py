"""The confound audit's source probes (:mod:`patchcxr.audit`): each probe's view of the
films, its training and test predictions (the classifier's own trainer, on the source), and
its scores: accuracy, balanced accuracy and its chance-adjusted form with patient-bootstrap
intervals, and a patient-level permutation test."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from patchcxr.classification.data import INPUT_COLUMNS, masked_input
from patchcxr.classification.predict import predict_split
from patchcxr.classification.settings import ClassifierSettings, InputSettings
from patchcxr.classification.train import train_classifier
from patchcxr.data.labels import LabelValue
from patchcxr.data.splits import grouped_folds
from patchcxr.io import read_png, read_tsv, write_png, write_tsv
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime
from patchcxr.stats import bootstrap_interval, cluster_permutation_p, interval_columns, with_intervals
from patchcxr.training import TrainingFiles

log = logging.getLogger(__name__)

PROBE_VIEWS = ("lung", "outside", "mask")
#: columns of the probe table (one row per classifier mode and view; :func:`summarise` adds
#: ``reads_source``)
PROBE_COLUMNS = [
    *("mode", "view", "n", "n_patients", "n_sources", "chance"),
    *("accuracy", *interval_columns("accuracy")),
    *("balanced_accuracy", *interval_columns("balanced_accuracy")),
    # (balanced accuracy − chance) / (1 − chance): 0 at chance, 1 when every source is named
    *("adjusted_balanced_accuracy", *interval_columns("adjusted_balanced_accuracy")),
    "p_permutation",
]
#: the states of a probe (:func:`probe_states`) and of the verdict (:func:`verdict`)


def probe_view(
    inputs: pd.DataFrame, manifest: pd.DataFrame, view: str, out_dir: Path | str, *, settings: InputSettings
) -> pd.DataFrame:
    """The classifier-input table of one probe view (:data:`PROBE_VIEWS`).

    ``lung``: the cached masked inputs as they are. ``mask``: the lung mask as the image
    (white lung on black). ``outside``: the film, preprocessed as the inputs are, with the
    lung blacked out; its patches are drawn from outside the lung (``lung_path`` is the
    complement there), so no patch sees lung tissue.
    """
    if view not in PROBE_VIEWS:
        raise ValueError(f"probe view must be one of {PROBE_VIEWS}, got {view!r}")
    if view == "lung":
        return inputs[INPUT_COLUMNS].copy()
    out_dir = Path(out_dir)
    films = manifest.set_index("image_id")
    rows = []
    for r in inputs.itertuples():
        lung = read_png(r.lung_path) > 0
        image = out_dir / f"{r.image_id}.png"
        where = r.lung_path
        if view == "mask":
            write_png(image, (lung * 255).astype(np.uint8))
        else:
            film = films.loc[r.image_id]
            pixels = read_png(film["image_path"])  # the harmonised film, as the inputs were made
            everything = np.full(pixels.shape[:2], int(LabelValue.LEFT_LUNG), np.uint8)
            full, _ = masked_input(pixels, str(film["format"]), everything, settings)
            write_png(image, np.where(lung, 0, full).astype(np.uint8))
            where = str(out_dir / f"{r.image_id}.outside.png")
            write_png(where, ~lung)
        rows.append({**r._asdict(), "input_path": str(image), "lung_path": where})
    return pd.DataFrame(rows, columns=[*INPUT_COLUMNS])


def balanced_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``true`` (NaN without films)."""
    classes = np.unique(true)
    return float(np.mean([np.mean(pred[true == c] == c) for c in classes])) if len(classes) else float("nan")


def probe_scores(predictions: pd.DataFrame, *, n_boot: int, seed: int, n_perm: int = 999) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the sources present) and balanced
    accuracy adjusted for chance of a probe's test predictions, each with a 95 % interval
    resampling patients; chance is one over the number of sources present.

    ``p_permutation``: one-sided p of "the probe names the source no better than chance",
    from ``n_perm`` permutations of the true sources between patients (a patient keeps one
    source for all its films; a patient whose films come from two sources, as two renditions
    of one film can, counts as one unit per source), the predictions held fixed."""
    y = predictions["true"].astype(str).to_numpy()
    p = predictions["pred_hard"].astype(str).to_numpy()
    groups = predictions["patient_id"].astype(str).to_numpy()
    n_sources = len(np.unique(y))
    chance = 1.0 / n_sources if n_sources else float("nan")

    def scores(idx: np.ndarray) -> tuple[float, float]:
        return float(np.mean(y[idx] == p[idx])), balanced_accuracy(y[idx], p[idx])

    acc, bal = scores(np.arange(len(y)))
    lo, hi = bootstrap_interval(scores, len(y), groups, n_boot=n_boot, seed=seed, width=2)
    if n_sources >= 2:
        units = np.char.add(np.char.add(groups.astype(str), "\x1f"), y.astype(str))
        p_perm = cluster_permutation_p(lambda labels: balanced_accuracy(labels, p), y, units, n_perm=n_perm, seed=seed)
    else:
        p_perm = float("nan")

    def adjust(x: float) -> float:
        return (x - chance) / (1 - chance) if n_sources >= 2 else float("nan")

    return {
        "n": len(y),
        "n_patients": len(np.unique(groups)),
        "n_sources": n_sources,
        "chance": chance,
        **with_intervals(("accuracy", "balanced_accuracy"), (acc, bal), lo, hi),
        **with_intervals(("adjusted_balanced_accuracy",), (adjust(bal),), (adjust(lo[1]),), (adjust(hi[1]),)),
        "p_permutation": p_perm,
    }


def fold_splits(inputs: pd.DataFrame, folds: int, *, seed: int) -> list[pd.DataFrame]:
    """The ``folds`` splits of a k-fold probe over every film of ``inputs``, grouped by
    patient and stratified by source (:func:`~patchcxr.data.splits.grouped_folds`): split
    ``f`` tests fold ``f``, selects its epoch on fold ``f + 1`` and trains on the rest, so
    every film is a test film once, predicted by a probe that never saw its patient. Needs
    ``folds`` >= 3 (with 2 nothing would be left to train on)."""
    if folds < 3:
        raise ValueError(f"a k-fold probe needs 3 folds or more (test, val, train), got {folds}")
    assignment = grouped_folds(inputs, folds, by="source", seed=seed)
    fold = assignment["fold"].to_numpy(int)
    return [
        assignment[["image_id", "patient_id"]].assign(
            split=np.where(fold == f, "test", np.where(fold == (f + 1) % folds, "val", "train"))
        )
        for f in range(folds)
    ]


def _train_and_predict(
    table: Path,
    split_path: Path,
    settings: ClassifierSettings,
    input_settings: InputSettings,
    out_dir: Path,
    *,
    k: int,
    runtime: Runtime,
    weights: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """One probe network: trained on ``split_path``'s train films (epoch chosen on its val
    films), its test films predicted by a K-patch vote; files under ``out_dir``."""
    train_classifier(
        inputs_path=str(table),
        split_path=str(split_path),
        settings=settings,
        input_settings=input_settings,
        files=TrainingFiles(
            model=out_dir / "model.pt",
            metadata=out_dir / "metadata.json",
            history=out_dir / "history.tsv",
            resume_dir=out_dir / "resume",
        ),
        runtime=runtime,
        weights=weights,
    )
    return predict_split(out_dir / "model.pt", table, split_path, k=k, runtime=runtime, seed=settings.seed)


def run_probe(
    *,
    inputs: pd.DataFrame,
    split_path: Path | str,
    settings: ClassifierSettings,
    input_settings: InputSettings,
    out_dir: Path | str,
    k: int,
    folds: int,
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Train the classifier of ``settings`` (from ``weights``, the classifier's
    initialisation: ``classification.weights``) to predict the source from ``inputs`` (one
    view's table) and predict held-out patients (K-patch vote).

    ``folds`` ≥ 2 (``audit.folds``): a probe per fold of every classified film
    (:func:`fold_splits`, files under ``out_dir/fold_<f>/``), every film predicted once by
    a probe that never saw its patient: the whole cohort scored. ``folds`` 1: one probe
    trained on the classification split's training patients and scored on its test
    patients. Writes the view's input table and ``predictions.tsv`` (with its ``fold``;
    -1 for the classification split) under ``out_dir``; returns the predictions. Inputs
    from one source train nothing: each film gets its one source (a probe at chance, 1.0)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "inputs.tsv"
    write_tsv(table, inputs)
    sources = tuple(sorted(inputs["source"].astype(str).unique()))
    if len(sources) < 2:
        # one source: there is nothing to tell apart and no network to train; every scored
        # film is "predicted" its one source, so the probe scores at chance (1.0)
        log.info("source probe %s: the inputs come from one source (%s), nothing to probe", out_dir, sources)
        if folds >= 2:
            scored = inputs.sort_values("image_id")
        else:
            split = read_tsv(split_path)
            scored = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id").sort_values("image_id")
        pred = pd.DataFrame(
            {"image_id": scored["image_id"], "patient_id": scored["patient_id"], "source": scored["source"]}
        ).assign(true=scored["source"].to_numpy(), pred_hard=scored["source"].to_numpy(), fold=-1 if folds < 2 else 0)
        write_tsv(out_dir / "predictions.tsv", pred)
        return pred
    probe = replace(settings, labels="source", targets=sources)
    train = functools.partial(
        _train_and_predict, table, settings=probe, input_settings=input_settings, k=k, runtime=runtime, weights=weights
    )
    if folds < 2:
        pred = train(Path(split_path), out_dir=out_dir).assign(fold=-1)
    else:
        parts = []
        for f, split in enumerate(fold_splits(inputs, folds, seed=settings.seed)):
            fold_dir = out_dir / f"fold_{f}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            write_tsv(fold_dir / "split.tsv", split)
            parts.append(train(fold_dir / "split.tsv", out_dir=fold_dir).assign(fold=f))
            log.info("source probe %s: fold %d of %d predicted (%d films)", out_dir, f + 1, folds, len(parts[-1]))
        pred = pd.concat(parts, ignore_index=True).sort_values("image_id", kind="stable").reset_index(drop=True)
    write_tsv(out_dir / "predictions.tsv", pred)
    return pred


def probe_source(
    *,
    inputs_path: Path | str,
    manifest_path: Path | str,
    split_path: Path | str,
    view: str,
    settings: ClassifierSettings,
    input_settings: InputSettings,
    out_dir: Path | str,
    k: int,
    folds: int,
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One probe of the audit (one workflow job): the ``view`` of every classifier input
    (:func:`probe_view`, images under ``out_dir/view/``) and the classifier of ``settings``
    trained on it to predict the source (:func:`run_probe`, ``folds`` of every film or the
    classification split). Returns the scored films' predictions."""
    out_dir = Path(out_dir)
    view_dir = out_dir / "view"
    view_dir.mkdir(parents=True, exist_ok=True)
    inputs = read_tsv(inputs_path)
    # one source: run_probe trains nothing, so the view's images are not made (they cost a
    # pass over every film: 76 s of the 643 Shenzhen films)
    view_inputs = (
        inputs[INPUT_COLUMNS].copy()
        if inputs["source"].nunique() < 2
        else probe_view(inputs, read_tsv(manifest_path), view, view_dir, settings=input_settings)
    )
    return run_probe(
        inputs=view_inputs,
        split_path=split_path,
        settings=settings,
        input_settings=input_settings,
        out_dir=out_dir,
        k=k,
        folds=folds,
        runtime=runtime,
        weights=weights,
    )


def probe_table(
    predictions: Mapping[tuple[str, str], pd.DataFrame], *, n_boot: int, seed: int, n_perm: int = 999
) -> pd.DataFrame:
    """The probe table (:data:`PROBE_COLUMNS`): one row per (mode, view) of ``predictions``,
    scored by :func:`probe_scores`."""
    rows = []
    for (mode, view), pred in predictions.items():
        scores = probe_scores(pred, n_boot=n_boot, seed=seed, n_perm=n_perm)
        log.info(
            "source probe %s/%s: accuracy %.3f [%.3f, %.3f], balanced %.3f [%.3f, %.3f], chance %.3f "
            "(n %d, %d patients)",
            mode,
            view,
            *(scores[k] for k in ("accuracy", "accuracy_ci_low", "accuracy_ci_high")),
            *(scores[k] for k in ("balanced_accuracy", "balanced_accuracy_ci_low", "balanced_accuracy_ci_high")),
            scores["chance"],
            scores["n"],
            scores["n_patients"],
        )
        rows.append({"mode": mode, "view": view, **scores})
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)

"""Confound audit (method.md §5.6): does the classifier read the disease or the source?

COVID-19 CXR classifiers are known to learn the hospital, scanner or processing of each
source when each class comes from its own sources (DeGrave, Janizek & Lee, Nat Mach Intell
2021). The paper's cohort is built that way (bacterial and most normal films paediatric
Kermany, TB Montgomery, viral/COVID-19 Cohen). The audit measures both halves of a shortcut:

* **class × source**: how each class is spread over the sources (counts, the share of each
  class from its main source) and Cramér's V of the two; V = 1 when the source alone gives
  the class.
* **source probe**: the same classifier (local patches or global image, same trainer,
  same patient split) trained to predict the *source* from three views of each film — the
  masked lung input (what the classifier sees), the film outside the lung (the mask's
  complement) and the binary lung mask alone (the shape the masked input's border shows).
  Accuracy and balanced accuracy on the test patients with patient-bootstrap intervals,
  against chance (one over the number of sources).

The verdict (:func:`verdict`): the labels are *confounded with the source* when a probe
reads the source (the lower end of its balanced-accuracy interval more than ``margin`` above
chance) and class and source are associated (V ≥ ``association``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
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
from patchcxr.io import atomic_write_text, read_png, read_tsv, write_png, write_tsv
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime
from patchcxr.stats import bootstrap_interval, interval_columns, with_intervals
from patchcxr.training import TrainingFiles

log = logging.getLogger(__name__)

#: the probe's views of a film: the masked lung input, the film outside the lung, the mask
PROBE_VIEWS = ("lung", "outside", "mask")
#: columns of the probe table (one row per classifier mode and view; :func:`summarise` adds
#: ``reads_source``)
PROBE_COLUMNS = [
    *("mode", "view", "n", "n_patients", "n_sources", "chance"),
    *("accuracy", *interval_columns("accuracy")),
    *("balanced_accuracy", *interval_columns("balanced_accuracy")),
]


def class_source_table(cohort: pd.DataFrame, labels: str = "label4") -> pd.DataFrame:
    """Films per class and source, with each cell's share of its class and, per class, its
    main source and the share of the class that source holds (``main_share``)."""
    counts = cohort.groupby([labels, "source"]).size().rename("n").reset_index()
    counts = counts.rename(columns={labels: "class"})
    totals = counts.groupby("class")["n"].transform("sum")
    counts["share_of_class"] = counts["n"] / totals
    main = counts.sort_values(["class", "n", "source"], ascending=[True, False, True]).drop_duplicates("class")
    counts = counts.merge(
        main[["class", "source", "share_of_class"]].rename(
            columns={"source": "main_source", "share_of_class": "main_share"}
        ),
        on="class",
    )
    return counts.sort_values(["class", "source"]).reset_index(drop=True)


def cramers_v(table: pd.DataFrame) -> float:
    """Cramér's V of class and source from :func:`class_source_table` (0: independent, 1:
    either determines the other); NaN with one class or one source."""
    m = table.pivot_table(index="class", columns="source", values="n", aggfunc="sum", fill_value=0).to_numpy(float)
    k = min(m.shape) - 1
    if k < 1 or m.sum() == 0:
        return float("nan")
    expected = m.sum(1, keepdims=True) * m.sum(0, keepdims=True) / m.sum()
    chi2 = float(((m - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (m.sum() * k)))


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


def probe_scores(predictions: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, float]:
    """Accuracy and balanced accuracy (mean recall over the sources present) of a probe's
    test predictions, each with a 95 % interval resampling patients; chance is one over the
    number of sources present."""
    y = predictions["true"].astype(str).to_numpy()
    p = predictions["pred_hard"].astype(str).to_numpy()
    groups = predictions["patient_id"].astype(str).to_numpy()

    def scores(idx: np.ndarray) -> tuple[float, float]:
        yt, pt = y[idx], p[idx]
        recalls = [float(np.mean(pt[yt == s] == s)) for s in np.unique(yt)]
        return float(np.mean(yt == pt)), float(np.mean(recalls))

    acc, bal = scores(np.arange(len(y)))
    lo, hi = bootstrap_interval(scores, len(y), groups, n_boot=n_boot, seed=seed, width=2)
    n_sources = len(np.unique(y))
    return {
        "n": len(y),
        "n_patients": len(np.unique(groups)),
        "n_sources": n_sources,
        "chance": 1.0 / n_sources if n_sources else float("nan"),
        **with_intervals(("accuracy", "balanced_accuracy"), (acc, bal), lo, hi),
    }


def run_probe(
    *,
    inputs: pd.DataFrame,
    split_path: Path | str,
    settings: ClassifierSettings,
    input_settings: InputSettings,
    out_dir: Path | str,
    k: int,
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Train the classifier of ``settings`` (from ``weights``, the classifier's
    initialisation: ``classification.weights``) to predict the source from ``inputs`` (one
    view's table) on the training patients and predict the test patients (K-patch vote).
    Writes the model, its metadata and history, the view's input table and
    ``predictions.tsv`` under ``out_dir``; returns the predictions. Inputs from one source
    train nothing: each test film gets its one source (a probe at chance, 1.0)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "inputs.tsv"
    write_tsv(table, inputs)
    sources = tuple(sorted(inputs["source"].astype(str).unique()))
    if len(sources) < 2:
        # one source: there is nothing to tell apart and no network to train; every test
        # film is "predicted" its one source, so the probe scores at chance (1.0)
        log.info("source probe %s: the inputs come from one source (%s), nothing to probe", out_dir, sources)
        split = read_tsv(split_path)
        test = inputs.merge(split[split["split"] == "test"][["image_id"]], on="image_id").sort_values("image_id")
        pred = pd.DataFrame(
            {"image_id": test["image_id"], "patient_id": test["patient_id"], "source": test["source"]}
        ).assign(true=test["source"].to_numpy(), pred_hard=test["source"].to_numpy())
        write_tsv(out_dir / "predictions.tsv", pred)
        return pred
    probe = replace(settings, labels="source", targets=sources)
    train_classifier(
        inputs_path=str(table),
        split_path=str(split_path),
        settings=probe,
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
    pred = predict_split(out_dir / "model.pt", table, split_path, k=k, runtime=runtime, seed=settings.seed)
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
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One probe of the audit (one workflow job): the ``view`` of every classifier input
    (:func:`probe_view`, images under ``out_dir/view/``) and the classifier of ``settings``
    trained on it to predict the source (:func:`run_probe`). Returns the test predictions."""
    out_dir = Path(out_dir)
    view_dir = out_dir / "view"
    view_dir.mkdir(parents=True, exist_ok=True)
    view_inputs = probe_view(read_tsv(inputs_path), read_tsv(manifest_path), view, view_dir, settings=input_settings)
    return run_probe(
        inputs=view_inputs,
        split_path=split_path,
        settings=settings,
        input_settings=input_settings,
        out_dir=out_dir,
        k=k,
        runtime=runtime,
        weights=weights,
    )


def probe_table(predictions: Mapping[tuple[str, str], pd.DataFrame], *, n_boot: int, seed: int) -> pd.DataFrame:
    """The probe table (:data:`PROBE_COLUMNS`): one row per (mode, view) of ``predictions``,
    scored by :func:`probe_scores`."""
    rows = []
    for (mode, view), pred in predictions.items():
        scores = probe_scores(pred, n_boot=n_boot, seed=seed)
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


def reads_source(probes: pd.DataFrame, margin: float) -> pd.Series:
    """Which probes read the source: the lower end of the balanced-accuracy interval more
    than ``margin`` above chance."""
    return probes["balanced_accuracy_ci_low"].astype(float) > probes["chance"].astype(float) + margin


def verdict(probes: pd.DataFrame, table: pd.DataFrame, *, margin: float, association: float) -> dict[str, Any]:
    """Whether the class labels are confounded with the source (module docstring), with the
    figures it rests on.

    A probe *reads the source* when the lower end of its balanced-accuracy interval lies
    more than ``margin`` above chance. The labels are ``confounded`` when some view's probe
    reads the source and class and source are associated (Cramér's V ≥ ``association``);
    ``input_carries_source`` says whether the lung view (the classifier's own input) is one
    of them — a source read only outside the lung is a shortcut the lung mask removes.
    """
    v = cramers_v(table)
    reading = probes[reads_source(probes, margin)]
    views = sorted(set(reading["view"]))
    tied = bool(np.isfinite(v) and v >= association)
    mains = table.drop_duplicates("class")[["class", "main_source", "main_share"]]
    return {
        "confounded": bool(views) and tied,
        "views_reading_source": views,
        "input_carries_source": "lung" in views,
        "class_tied_to_source": tied,
        "cramers_v": v,
        "margin": margin,
        "association": association,
        "main_source": {
            str(r["class"]): {"source": str(r["main_source"]), "share": float(r["main_share"])}
            for _, r in mains.iterrows()
        },
    }


def summarise(
    *,
    predictions: Mapping[tuple[str, str], Path | str],
    inputs_path: Path | str,
    cohort_path: Path | str,
    labels: str,
    n_boot: int,
    seed: int,
    margin: float,
    association: float,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The audit's tables from its probes' predictions (``(mode, view)`` → predictions.tsv):
    the class × source table of the classified films, the probe table (with
    ``reads_source``, 1 or 0, at ``margin``) and the verdict."""
    inputs = read_tsv(inputs_path)
    cohort = read_tsv(cohort_path)
    table = class_source_table(cohort[cohort["image_id"].isin(inputs["image_id"])], labels)
    probes = probe_table({key: read_tsv(path) for key, path in predictions.items()}, n_boot=n_boot, seed=seed)
    probes["reads_source"] = reads_source(probes, margin).astype(int)
    return table, probes, verdict(probes, table, margin=margin, association=association)


def write_summary(
    table: pd.DataFrame, probes: pd.DataFrame, result: Mapping[str, Any], out: Mapping[str, Path | str]
) -> None:
    """The audit's files: ``out["class_source"]``, ``out["probes"]`` (TSV) and
    ``out["verdict"]`` (JSON)."""
    write_tsv(out["class_source"], table)
    write_tsv(out["probes"], probes)

    def finite(value: Any) -> Any:  # JSON has no NaN: an undefined figure is null
        if isinstance(value, Mapping):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [finite(v) for v in value]
        return None if isinstance(value, float) and not np.isfinite(value) else value

    atomic_write_text(out["verdict"], json.dumps(finite(result), indent=2, sort_keys=True) + "\n")


def audit(
    *,
    inputs_path: Path | str,
    manifest_path: Path | str,
    cohort_path: Path | str,
    split_path: Path | str,
    settings: Mapping[str, ClassifierSettings],
    input_settings: InputSettings,
    out_dir: Path | str,
    views: Sequence[str] = PROBE_VIEWS,
    k: int,
    n_boot: int,
    margin: float,
    association: float,
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The whole audit in one call (the workflow runs its parts as jobs: one
    :func:`probe_source` per mode and view, then :func:`summarise`): the class × source
    table, one probe per classifier mode (``settings``: mode → its training settings) and
    view under ``out_dir/<mode>/<view>/``, and the verdict."""
    out_dir = Path(out_dir)
    predictions = {}
    for view in views:
        for mode, s in settings.items():
            where = out_dir / mode / view
            probe_source(
                inputs_path=inputs_path,
                manifest_path=manifest_path,
                split_path=split_path,
                view=view,
                settings=s,
                input_settings=input_settings,
                out_dir=where,
                k=k,
                runtime=runtime,
                weights=weights,
            )
            predictions[(mode, view)] = where / "predictions.tsv"
    first = next(iter(settings.values()), None)
    return summarise(
        predictions=predictions,
        inputs_path=inputs_path,
        cohort_path=cohort_path,
        labels=first.labels if first else "label4",
        n_boot=n_boot,
        seed=first.seed if first else 0,
        margin=margin,
        association=association,
    )

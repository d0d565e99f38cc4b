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

The verdict (:func:`verdict`) has three states, each with its reason:

* **confounded**: some class is tied to its sources — it comes from one source (that
  source's share of the class at least ``purity``: absent, or nearly, from every other
  source), or the *source-only rule*, which gives each film its source's main class,
  recalls the class and is right when it names it, both at least ``purity``
  (:func:`class_source_table`) — and some probe reads the source (a patient-level
  permutation test of its balanced accuracy, Holm across the probes, at ``alpha``);
* **not confounded**: no class is tied to its sources, or every probe is shown not to read
  the source (its balanced-accuracy upper bound below chance + ``equivalence``);
* **inconclusive**: a class is tied, yet no probe reads the source at ``alpha`` and not every
  probe is shown not to (too few test films to tell).

Cramér's V of class and source is reported, not used: a class that comes wholly from one
source among mixed ones can leave V low (0.29 in the review's example) while the source
gives that class away.
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
from patchcxr.stats import adjust_p, bootstrap_interval, cluster_permutation_p, interval_columns, with_intervals
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
    # (balanced accuracy − chance) / (1 − chance): 0 at chance, 1 when every source is named
    *("adjusted_balanced_accuracy", *interval_columns("adjusted_balanced_accuracy")),
    "p_permutation",
]
#: the states of a probe (:func:`probe_states`) and of the verdict (:func:`verdict`)
READS, SHOWN_NOT, INCONCLUSIVE, ONE_SOURCE = "reads the source", "shown not to", "inconclusive", "one source"
CONFOUNDED, NOT_CONFOUNDED = "confounded", "not confounded"


def class_source_table(cohort: pd.DataFrame, labels: str = "label4") -> pd.DataFrame:
    """Films per class and source, with each cell's share of its class and, per class, its
    main source, the share of the class that source holds (``main_share``), and the
    *source-only rule* (each film given its source's main class): its recall of the class
    (``source_recall``: the share of the class's films whose source's main class it is) and
    its precision (``source_precision``: of the films it calls the class, the share that are)."""
    counts = cohort.groupby([labels, "source"]).size().rename("n").reset_index()
    counts = counts.rename(columns={labels: "class"})
    totals = counts.groupby("class")["n"].transform("sum")
    counts["share_of_class"] = counts["n"] / totals
    # the source-only rule: each source's main class (ties: the first class by name)
    source_main = counts.sort_values(["source", "n", "class"], ascending=[True, False, True]).drop_duplicates("source")
    rule = dict(zip(source_main["source"], source_main["class"], strict=True))
    named = counts.assign(named=counts["source"].map(rule))
    hits = named[named["named"] == named["class"]].groupby("class")["n"].sum()
    called = named.groupby("named")["n"].sum()
    counts["source_recall"] = counts["class"].map(hits).fillna(0) / totals
    counts["source_precision"] = counts["class"].map(hits).fillna(0) / counts["class"].map(called).replace(0, np.nan)
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


def probe_states(probes: pd.DataFrame, *, alpha: float, equivalence: float) -> pd.DataFrame:
    """Each probe's state with its reason (columns ``p_holm``, ``state``, ``reason``,
    ``reads_source``): *reads the source* when its permutation p, Holm-adjusted across the
    probes, is below ``alpha``; *shown not to* when the upper end of its balanced-accuracy
    interval lies below chance + ``equivalence``; *inconclusive* otherwise; *one source*
    when its films come from one source (nothing to tell apart)."""
    out = probes.copy()
    out["p_holm"] = adjust_p(out["p_permutation"].astype(float).tolist(), "holm")
    states, reasons = [], []
    for r in out.itertuples():
        chance, high = float(r.chance), float(r.balanced_accuracy_ci_high)
        if int(r.n_sources) < 2:
            states.append(ONE_SOURCE)
            reasons.append("the probe's films come from one source")
        elif float(r.p_holm) < alpha:
            states.append(READS)
            reasons.append(f"permutation p {float(r.p_holm):.3g} (Holm over {len(out)} probes) < {alpha:g}")
        elif high < chance + equivalence:
            states.append(SHOWN_NOT)
            reasons.append(f"balanced accuracy at most {high:.3f} < chance {chance:.3f} + {equivalence:g}")
        else:
            states.append(INCONCLUSIVE)
            reasons.append(
                f"permutation p {float(r.p_holm):.3g} (Holm) and balanced accuracy up to {high:.3f} "
                f"(chance {chance:.3f} + {equivalence:g}) on {int(r.n)} films"
            )
    out["state"], out["reason"] = states, reasons
    out["reads_source"] = (out["state"] == READS).astype(int)
    return out


def verdict(
    probes: pd.DataFrame, table: pd.DataFrame, *, alpha: float, equivalence: float, purity: float
) -> dict[str, Any]:
    """Whether the class labels are confounded with the source, in three states with the
    reason (module docstring), and the figures it rests on. ``probes``: :func:`probe_states`'s
    table; ``table``: :func:`class_source_table`'s."""
    v = cramers_v(table)
    classes = table.drop_duplicates("class")
    one_source = classes["main_share"] >= purity
    named = (classes["source_recall"] >= purity) & (classes["source_precision"].fillna(0) >= purity)
    tied = classes[one_source | named]
    tied_names = sorted(str(c) for c in tied["class"])
    reading = probes[probes["state"] == READS]
    views = sorted(set(reading["view"]))
    informative = probes[probes["state"] != ONE_SOURCE]
    all_shown_not = len(informative) > 0 and bool((informative["state"] == SHOWN_NOT).all())

    def rule(r: pd.Series) -> str:
        if not np.isfinite(float(r["source_precision"])):
            return "the source-only rule never names it"
        return f"source-only rule recall {r['source_recall']:.2f}, precision {r['source_precision']:.2f}"

    def ties() -> str:
        return "; ".join(
            f"{r['class']} from {r['main_source']} ({r['main_share']:.0%} of the class; {rule(r)})"
            for _, r in tied.iterrows()
        )

    if len(classes) < 2:
        state, reason = NOT_CONFOUNDED, "one class: there is no class for the source to stand in for"
        tied_names, tied = [], tied.iloc[0:0]
    elif not tied_names:
        state = NOT_CONFOUNDED
        reason = (
            f"no class is tied to its sources (no class has {purity:.0%} of its films from one source, "
            f"and the source-only rule neither recalls nor names any class at {purity:g})"
        )
    elif views:
        state = CONFOUNDED
        reason = f"{ties()}; the source is read from {', '.join(views)} (permutation, Holm, < {alpha:g})"
    elif all_shown_not:
        state = NOT_CONFOUNDED
        reason = f"{ties()}; every probe's balanced accuracy is shown below chance + {equivalence:g}"
    else:
        state = INCONCLUSIVE
        open_views = sorted(set(informative[informative["state"] == INCONCLUSIVE]["view"]))
        reason = (
            f"{ties()}; no probe reads the source at {alpha:g}, and {', '.join(open_views)} cannot be shown "
            f"below chance + {equivalence:g} on these test films"
        )
    total = float(table["n"].sum())
    source_main = table.sort_values(["source", "n", "class"], ascending=[True, False, True]).drop_duplicates("source")
    return {
        "verdict": state,
        "reason": reason,
        "confounded": {CONFOUNDED: True, NOT_CONFOUNDED: False}.get(state),
        "classes_tied_to_source": tied_names,
        "class_tied_to_source": bool(tied_names),
        "views_reading_source": views,
        "input_carries_source": "lung" in views,
        "source_only_accuracy": float(source_main["n"].sum() / total) if total else float("nan"),
        "majority_accuracy": float(table.groupby("class")["n"].sum().max() / total) if total else float("nan"),
        "cramers_v": v,
        "alpha": alpha,
        "equivalence": equivalence,
        "purity": purity,
        "main_source": {
            str(r["class"]): {"source": str(r["main_source"]), "share": float(r["main_share"])}
            for _, r in classes.iterrows()
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
    n_perm: int,
    alpha: float,
    equivalence: float,
    purity: float,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The audit's tables from its probes' predictions (``(mode, view)`` → predictions.tsv):
    the class × source table of the classified films, the probe table (with each probe's
    state and reason, :func:`probe_states`) and the verdict."""
    inputs = read_tsv(inputs_path)
    cohort = read_tsv(cohort_path)
    table = class_source_table(cohort[cohort["image_id"].isin(inputs["image_id"])], labels)
    scored = probe_table(
        {key: read_tsv(path) for key, path in predictions.items()}, n_boot=n_boot, seed=seed, n_perm=n_perm
    )
    probes = probe_states(scored, alpha=alpha, equivalence=equivalence)
    return table, probes, verdict(probes, table, alpha=alpha, equivalence=equivalence, purity=purity)


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
    n_perm: int,
    alpha: float,
    equivalence: float,
    purity: float,
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
        n_perm=n_perm,
        alpha=alpha,
        equivalence=equivalence,
        purity=purity,
    )

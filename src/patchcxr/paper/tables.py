"""The computations of the paper's tables, each from the workflow's own tables (never from
models, so ``results/paper/`` is rebuilt in seconds after any upstream change), and the
README.md of ``results/paper/``. Which table reads which files, when it applies and its
caption: :mod:`patchcxr.paper.registry`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from patchcxr.data.labels import LABEL5_BY_LABEL4
from patchcxr.io import atomic_write_text
from patchcxr.stats import interval_columns


def data_table(cohort: pd.DataFrame) -> pd.DataFrame:
    """Images per source (rows) and class (columns, the paper's five), with totals and, when
    the cohort has the flag, how many of each source's images are paediatric."""
    counts = pd.crosstab(cohort["source"], cohort["label5"])
    counts = counts.reindex(columns=[c for c in LABEL5_BY_LABEL4 if c in counts.columns], fill_value=0)
    counts.loc["total"] = counts.sum()
    counts["total"] = counts.sum(axis=1)
    if "paediatric" in cohort.columns:
        children = cohort[cohort["paediatric"].astype(str) == "1"].groupby("source").size()
        counts["paediatric"] = children.reindex(counts.index, fill_value=0)
        counts.loc["total", "paediatric"] = int(children.sum())
        counts["paediatric"] = counts["paediatric"].astype(int)
    return counts.reset_index().rename(columns={"index": "source"})


def primary_family_table(tests: pd.DataFrame) -> pd.DataFrame:
    """The biomarker tests of the primary family (declared before the data: the paper's
    claims), with their Holm-adjusted p-values and effects."""
    keep = ["feature", "scope", "test", "group_a", "group_b", "n_a", "n_b", "p_value", "p_adjusted", "adjustment"]
    keep += ["effect", "effect_value", "ci_low", "ci_high"]
    primary = tests[tests["family"] == "primary"]
    return primary[[c for c in keep if c in primary.columns]].reset_index(drop=True)


def adult_only_table(
    metrics: Mapping[Run, pd.DataFrame], adult: Mapping[Run, pd.DataFrame], predictions: Mapping[Run, pd.DataFrame]
) -> pd.DataFrame:
    """Per classifier and seed: test images (all, adult), and accuracy and macro-F1 as
    ``value [low, high]`` (patient bootstrap) on the whole test split and on its adult films
    only (the models are the same: the analysis restricts the test)."""

    def cell(df: pd.DataFrame, cls: str, metric: str) -> str:
        hit = df[(df["class"] == cls) & (df["metric"] == metric)]
        if hit.empty:
            return ""
        r = hit.iloc[0]
        return _interval(float(r["value"]), float(r["ci_low"]), float(r["ci_high"]))

    rows = []
    for run, df in metrics.items():
        pred = predictions[run]
        grown = pred[pred["age_group"] == "adult"]
        rows.append(
            {
                "model": run[0],
                "seed": run[1],
                "n_test": len(pred),
                "n_adult": len(grown),
                "adult_classes": ",".join(sorted(grown["true"].unique())),
                "accuracy": cell(df, "accuracy", "recall"),
                "accuracy_adult": cell(adult[run], "accuracy", "recall"),
                "macro_f1": cell(df, "macro", "f1"),
                "macro_f1_adult": cell(adult[run], "macro", "f1"),
            }
        )
    return pd.DataFrame(rows)


def split_table(split: pd.DataFrame, label: str = "label4") -> pd.DataFrame:
    """Images per class (rows) in train / val / test (the paper's Table II)."""
    counts = pd.crosstab(split[label], split["split"]).reindex(columns=["train", "val", "test"], fill_value=0)
    counts.loc["total"] = counts.sum()
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index().rename(columns={label: "class"})


def _interval(value: float, low: float, high: float) -> str:
    """``value [low, high]``, as every interval of the paper's tables is written."""
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if pd.notna(sd) else f"{mean:.3f}"


def segmentation_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Jaccard and Dice per network, preprocessing, data set, scope (all held-out films, and
    the paper's Table I set) and structure: ``mean ± sd`` over images (of the
    seed-averaged scores), the mean with its 95 % patient-bootstrap interval, and
    ``mean ± sd`` over training seeds (``n_seeds`` runs)."""
    keys = ["model", "preprocessing", "dataset", "scope", "structure", "n", "n_patients", "n_seeds"]
    out = summary[[k for k in keys if k in summary.columns]].copy()
    for metric in ("jaccard", "dice"):
        means = summary[f"{metric}_mean"]
        out[metric] = [_mean_sd(m, s) for m, s in zip(means, summary[f"{metric}_sd"], strict=True)]
        if f"{metric}_ci_low" in summary.columns:
            lows, highs = summary[f"{metric}_ci_low"], summary[f"{metric}_ci_high"]
            out[f"{metric}_95ci"] = [_interval(m, lo, hi) for m, lo, hi in zip(means, lows, highs, strict=True)]
        if f"{metric}_seed_sd" in summary.columns:
            seed_sd = summary[f"{metric}_seed_sd"]
            out[f"{metric}_over_seeds"] = [_mean_sd(m, s) for m, s in zip(means, seed_sd, strict=True)]
    return out


Run = tuple[str, int | str]
"""A classifier: its model name (local, global) and training seed ('' for a rule that learns
no weights, the source-only baseline)."""


def initialisation_columns(metadata: Mapping[str, Any]) -> dict[str, str]:
    """A classifier's backbone, recipe and initialisation (route, weights file and the start
    of its sha256) from its metadata; older metadata that recorded a label only keep it."""
    init = metadata.get("initialisation", "")
    classifier = metadata.get("config", {}).get("classifier", {})
    if not isinstance(init, Mapping):
        return {"backbone": str(classifier.get("backbone", "resnet18")), "recipe": "", "initialisation": str(init)}
    route = str(init.get("route", ""))
    return {
        "backbone": str(init.get("backbone", "")),
        "recipe": str(classifier.get("recipe", "")),
        "initialisation": "scratch" if route == "none" else f"ImageNet ({route}: {init.get('file', '')})",
        "weights_sha256": str(init.get("sha256", ""))[:16],
    }


def classification_table(
    metrics: Mapping[Run, pd.DataFrame],
    initialisation: Mapping[Run, Mapping[str, str]] | None = None,
    mask_sources: Mapping[Run, str] | None = None,
) -> pd.DataFrame:
    """Per model, training seed and class: each metric as ``value [low, high]`` (bootstrap
    95 % over patients); a metric a class does not have (recall of an absent class) is left
    out. ``initialisation``: each network's backbone, recipe and what it started from
    (:func:`initialisation_columns` of its metadata: ImageNet by which route and file, with
    the file's sha256, or scratch); ``mask_sources``: the masks of its test images
    (``predicted 40, atlas 2``: an atlas fallback is an image whose predicted lung was
    empty)."""
    rows = []
    for (model, seed), df in metrics.items():
        for cls, part in df.groupby("class", sort=False):
            row = {
                "model": model,
                "seed": seed,
                **dict((initialisation or {}).get((model, seed), {"initialisation": ""})),
                "test_masks": (mask_sources or {}).get((model, seed), ""),
                "class": cls,
                "n": int(part["support"].iloc[0]),
            }
            for r in part.itertuples():
                row[r.metric] = _maybe_interval(r.value, r.ci_low, r.ci_high)
            rows.append(row)
    return pd.DataFrame(rows)


def source_only_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 5's rows of the source-only baseline (:mod:`patchcxr.evaluation.baselines`):
    its metrics as a classifier's, its rule where a network's initialisation stands."""
    rows = classification_table({("source_only", ""): metrics.drop(columns="rule")})
    rule = str(metrics["rule"].iloc[0]) if len(metrics) else ""
    return rows.assign(initialisation=f"the film's source alone ({rule}), learnt on the training films")


def seeds_table(over_seeds: pd.DataFrame) -> pd.DataFrame:
    """Per model and class: each metric as ``mean ± sd`` over the training seeds (the
    evaluation's ``over_seeds.tsv``), with the number of seeds and the seeds."""
    rows = []
    for (model, cls), part in over_seeds.groupby(["model", "class"], sort=False):
        row: dict[str, object] = {
            "model": model,
            "class": cls,
            "n": int(part["support"].iloc[0]),
            "n_seeds": int(part["n_seeds"].max()),
            "seeds": part["seeds"].iloc[0],
        }
        for r in part.itertuples():
            row[str(r.metric)] = _mean_sd(float(r.mean), float(r.sd))
        rows.append(row)
    return pd.DataFrame(rows)


def mask_source_counts(predictions: pd.DataFrame) -> str:
    """``predicted 40, atlas 2``: how many test images used each kind of mask."""
    counts = predictions["mask_source"].value_counts()
    return ", ".join(f"{kind} {int(n)}" for kind, n in sorted(counts.items()))


def source_probe_table(probes: pd.DataFrame, verdict: Mapping[str, Any]) -> pd.DataFrame:
    """Table 9: each source probe of the audit with its intervals, its permutation test and
    its state (reads the source, shown not to, inconclusive: ``probes.tsv``'s ``state``,
    :func:`patchcxr.audit.verdict.probe_states`), and the verdict with the source-only rule's accuracy
    and Cramér's V, repeated on every row."""
    v = verdict.get("cramers_v")
    rows = [
        {
            "model": r.mode,
            "view": r.view,
            "n": int(r.n),
            "n_patients": int(r.n_patients),
            "n_sources": int(r.n_sources),
            "chance": f"{float(r.chance):.3f}",
            "accuracy": _interval(r.accuracy, r.accuracy_ci_low, r.accuracy_ci_high),
            "balanced_accuracy": _interval(
                r.balanced_accuracy, r.balanced_accuracy_ci_low, r.balanced_accuracy_ci_high
            ),
            "adjusted_balanced_accuracy": _maybe_interval(
                r.adjusted_balanced_accuracy,
                r.adjusted_balanced_accuracy_ci_low,
                r.adjusted_balanced_accuracy_ci_high,
            ),
            "p_holm": "NaN" if not math.isfinite(float(r.p_holm)) else f"{float(r.p_holm):.3g}",
            "state": str(r.state),
            "source_only_accuracy": _number_text(verdict.get("source_only_accuracy")),
            "cramers_v": "NaN" if v is None else f"{float(v):.3f}",
            "verdict": str(verdict["verdict"]),
        }
        for r in probes.itertuples()
    ]
    return pd.DataFrame(rows)


def _number_text(x: object) -> str:
    """A figure of three decimals, or ``NaN`` for a missing one."""
    return "NaN" if x is None or not math.isfinite(float(str(x))) else f"{float(str(x)):.3f}"


def _number(x: object) -> float:
    try:
        return float(str(x))
    except ValueError:  # an empty cell: a figure not given
        return float("nan")


def _maybe_interval(value: object, low: object, high: object) -> str:
    """:func:`_interval`, or ``NaN`` for a figure too few films had (strata, external)."""
    v, lo, hi = (_number(x) for x in (value, low, high))
    return "NaN" if math.isnan(v) else _interval(v, lo, hi)


def calibration_table(calibration: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """Table 11: per classifier, seed and calibration (as it comes, temperature-scaled,
    prior-corrected and temperature-scaled) the temperature, the test films, NLL and Brier
    score ``value [low, high]`` with their paired differences from the uncalibrated
    probabilities, ECE with the band of a perfectly calibrated model (mean, 95th percentile)."""
    rows = []
    for (model, seed), df in calibration.items():
        for r in df.itertuples():
            row = {
                "model": model,
                "seed": seed,
                "calibration": r.calibration,
                "temperature": f"{float(r.temperature):.3f}",
                "n": int(r.n),
                "n_patients": int(r.n_patients),
            }
            for figure in ("nll", "nll_difference", "brier", "brier_difference", "ece"):
                row[figure] = _maybe_interval(*(getattr(r, c) for c in (figure, *interval_columns(figure))))
            row["ece_if_calibrated"] = (
                f"{_number(r.ece_null_mean):.3f} (95th percentile {_number(r.ece_null_high):.3f})"
                if math.isfinite(_number(r.ece_null_mean))
                else "NaN"
            )
            row["note"] = note if isinstance(note := getattr(r, "note", ""), str) else ""
            rows.append(row)
    return pd.DataFrame(rows)


def figures_table(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``keys`` columns of a strata-like table (strata, external summary) with its no-skill
    accuracy, accuracy, balanced accuracy and macro-F1 written ``value [low, high]`` (``NaN``
    where too few patients or, for macro-F1, not every class), the per-class recalls in one
    cell, and its note."""
    out = table[keys].copy()
    out["no_skill_accuracy"] = [_number_text(_number(v)) for v in table["no_skill_accuracy"]]
    for figure in ("accuracy", "balanced_accuracy", "macro_f1"):
        out[figure] = [_maybe_interval(*v) for v in table[[figure, *interval_columns(figure)]].to_numpy()]
    recalls = [c for c in table.columns if c.startswith("recall_")]
    out["recall"] = [
        ", ".join(
            f"{c.removeprefix('recall_')} {_number(v):.2f}"
            for c, v in zip(recalls, row, strict=True)
            if math.isfinite(_number(v))
        )
        for row in table[recalls].to_numpy()
    ]
    out["note"] = table["note"].fillna("").astype(str) if "note" in table else ""
    return out


def external_table(held_out: pd.DataFrame) -> pd.DataFrame:
    """Table 13: the leave-one-source-out summary (:func:`figures_table`) with the external
    minus internal accuracy on the same films."""
    out = figures_table(held_out, ["source", "model", "scheme", "n", "n_patients"])
    diff = [_maybe_interval(*v) for v in held_out[["difference", *interval_columns("difference")]].to_numpy()]
    out.insert(len(out.columns) - 1, "difference", [d if d != "NaN" else "" for d in diff])
    return out


def saliency_sanity_table(checks: pd.DataFrame) -> pd.DataFrame:
    """Table 14: each saliency check (:mod:`patchcxr.classification.sanity`) with the block
    it randomised, its map, films, patients, emptied maps apart, ``value [low, high]`` (NaN
    below the minimum number of patients) and the reason."""
    table = checks[["check", "block", "map", "n", "n_patients", "n_empty"]].copy()
    table["value"] = [_maybe_interval(*v) for v in checks[["value", "ci_low", "ci_high"]].to_numpy()]
    table["note"] = checks["note"].fillna("").astype(str)
    return table


def strata_paper_table(strata: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """Table 12: every stratum of each classifier's first seed (:func:`figures_table`)."""
    first: dict[str, tuple[int | str, pd.DataFrame]] = {}
    for (model, seed), df in strata.items():
        first.setdefault(model, (seed, df))
    parts = [
        figures_table(df, ["stratum", "group", "n", "n_patients", "classes"]).assign(model=model, seed=seed)
        for model, (seed, df) in first.items()
    ]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    return out[["model", "seed", *[c for c in out.columns if c not in ("model", "seed")]]]


def headline_metrics(
    summary: pd.DataFrame | None, over_seeds: pd.DataFrame | None, audit: Mapping[str, Any] | None = None
) -> dict[str, object]:
    """The numbers ``dvc metrics show`` compares between revisions: lung Jaccard (mean over
    seeds), each classifier's accuracy, macro-F1 and macro specificity as mean and sd over
    its training seeds, and the confound audit's call with Cramér's V."""
    out: dict[str, object] = {}
    if summary is not None:
        lungs = summary[summary["structure"] == "both lungs"]
        scope = lungs["scope"] if "scope" in lungs.columns else pd.Series("all", index=lungs.index)
        out["segmentation"] = {
            f"{r.model}/{r.preprocessing}/{r.dataset}" + ("" if s == "all" else f"/{s}"): {
                "jaccard": round(float(r.jaccard_mean), 6)
            }
            for r, s in zip(lungs.itertuples(), scope, strict=True)
        }
    classification: dict[str, dict[str, float | None]] = {}
    wanted = {
        "accuracy": ("accuracy", "recall"),
        "macro_f1": ("macro", "f1"),
        "macro_specificity": ("macro", "specificity"),
    }
    for model, df in over_seeds.groupby("model", sort=False) if over_seeds is not None else []:
        get = df.set_index(["class", "metric"])
        entry: dict[str, float | None] = {}
        for name, key in wanted.items():
            entry[name] = round(float(get.loc[key, "mean"]), 6)
            sd = float(get.loc[key, "sd"])
            entry[f"{name}_sd"] = None if math.isnan(sd) else round(sd, 6)  # one seed: spread unknown
        entry["n_seeds"] = int(get["n_seeds"].max())
        classification[str(model)] = entry
    out["classification"] = classification
    if audit is not None:
        v = audit.get("cramers_v")
        out["audit"] = {
            "verdict": str(audit["verdict"]),
            "confounded": audit["confounded"],  # null when inconclusive
            "input_carries_source": bool(audit["input_carries_source"]),
            "cramers_v": None if v is None else round(float(v), 6),
        }
    return out


def write_index(entries: Mapping[str, str], out: Path | str, banner: str = "") -> None:
    """``README.md`` of ``results/paper/``: the data banner when there is one
    (:func:`patchcxr.configuration.data_banner`), then each file with its caption (the
    report's)."""
    lines = ["# Figures and tables", ""]
    lines += [f"> **{banner}**", ""] if banner else []
    lines += ["Regenerate with `snakemake paper` (same configuration options).", ""]
    for name, caption in entries.items():
        lines += [f"## {name}", "", " ".join(caption.split()), ""]
    atomic_write_text(out, "\n".join(lines))

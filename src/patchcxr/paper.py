"""The paper's tables and figure set (``snakemake paper`` → ``results/paper/``).

Every table here is computed from the workflow's own TSV outputs, never from models, so
``results/paper/`` can be rebuilt in seconds after any upstream change:

* ``table1_data``: images per source and class (the paper's Table I);
* ``table2_splits``: images per class in train / val / test (Table II);
* ``table3_segmentation``: Jaccard and Dice (mean ± sd) per network, preprocessing and
  data set (Table III);
* ``table4_biomarker_tests``: biomarker tests between classes (Table IV), and
  ``table4_biomarker_primary``: the primary family alone (the paper's claims, Holm);
* ``table5_classification``: per-class precision, recall, F1 and specificity with 95 %
  intervals from a bootstrap over patients, for each classifier and training seed
  (Tables V–VI);
* ``table6_global_vs_local``: whole-image versus patch-vote classifier (the paper's claim),
  with the exact McNemar test and a paired patient bootstrap of the macro-F1 difference,
  for each training seed;
* ``table7_seeds``: each classifier's metrics as mean ± sd over its training seeds;
* ``table8_adult_only``: accuracy and macro-F1 on the whole test split and on its adult
  films only (the paper's sheet holds paediatric Kermany films), per classifier and seed;
* ``table9_source_probe``: the confound audit's source probes (accuracy and balanced
  accuracy with patient intervals against chance, whether each reads the source) with
  Cramér's V of class and source and the verdict (method.md §5.6), and
  ``table10_class_source``: films per class and source with each class's main source;
* ``table11_calibration``: the soft vote's calibration on the test split per classifier and
  seed, as it comes and temperature-scaled on the validation films (ECE with its patient
  interval, NLL, Brier);
* ``table12_strata``: accuracy and macro-F1 by source, view, age group and band, sex and
  mask source for the first seed of each classifier, with n and patient intervals;
* ``table13_external``: leave-one-source-out validation beside the internal test split
  (with ``external.leave_one_source_out``);
* ``table14_saliency_sanity``: the saliency checks (model-parameter randomisation test,
  pointing game, lung mass) with patient intervals;
* ``metrics.json``: the headline numbers for ``dvc metrics show``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from patchcxr.data.labels import LABEL5_BY_LABEL4
from patchcxr.io import atomic_write_text, read_tsv, write_tsv


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


Run = tuple[str, int]
"""A trained classifier: its model name (local, global) and training seed."""


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
                row[r.metric] = _interval(r.value, r.ci_low, r.ci_high)
            rows.append(row)
    return pd.DataFrame(rows)


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
    """Table 9: each source probe of the audit with its intervals, whether it reads the
    source (``probes.tsv``'s ``reads_source``, :func:`patchcxr.audit.reads_source`), and the
    verdict's Cramér's V and call, repeated on every row."""
    v = verdict.get("cramers_v")
    rows = [
        {
            "model": r.mode,
            "view": r.view,
            "n": int(r.n),
            "n_patients": int(r.n_patients),
            "n_sources": int(r.n_sources),
            "chance": f"{float(r.chance):.3f}",
            "accuracy": _interval(r.accuracy, r.accuracy_lo, r.accuracy_hi),
            "balanced_accuracy": _interval(r.balanced_accuracy, r.balanced_accuracy_lo, r.balanced_accuracy_hi),
            "reads_source": "yes" if int(r.reads_source) else "no",
            "cramers_v": "NaN" if v is None else f"{float(v):.3f}",
            "confounded": "yes" if verdict["confounded"] else "no",
        }
        for r in probes.itertuples()
    ]
    return pd.DataFrame(rows)


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
    """Table 11: per classifier, seed and calibration (as it comes, temperature-scaled) the
    temperature, the test films, ECE ``value [low, high]``, NLL and Brier score."""
    rows = []
    for (model, seed), df in calibration.items():
        for r in df.itertuples():
            rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "calibration": r.calibration,
                    "temperature": f"{float(r.temperature):.3f}",
                    "n": int(r.n),
                    "n_patients": int(r.n_patients),
                    "ece": _maybe_interval(r.ece, r.ece_lo, r.ece_hi),
                    "nll": f"{float(r.nll):.3f}",
                    "brier": f"{float(r.brier):.3f}",
                }
            )
    return pd.DataFrame(rows)


def figures_table(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``keys`` columns of a strata-like table (strata, external summary) with accuracy and
    macro-F1 written ``value [low, high]`` (``NaN`` where too few films)."""
    out = table[keys].copy()
    out["accuracy"] = [_maybe_interval(*v) for v in table[["accuracy", "accuracy_lo", "accuracy_hi"]].to_numpy()]
    out["macro_f1"] = [_maybe_interval(*v) for v in table[["macro_f1", "macro_f1_lo", "macro_f1_hi"]].to_numpy()]
    return out


def strata_paper_table(strata: Mapping[Run, pd.DataFrame]) -> pd.DataFrame:
    """Table 12: every stratum of each classifier's first seed (:func:`figures_table`)."""
    first: dict[str, tuple[int, pd.DataFrame]] = {}
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
            "confounded": bool(audit["confounded"]),
            "input_carries_source": bool(audit["input_carries_source"]),
            "cramers_v": None if v is None else round(float(v), 6),
        }
    return out


def write_tables(
    cohort_path: Path | str,
    split_path: Path | str,
    segmentation_summary: Path | str | None,
    biomarker_tests: Path | str | None,
    *,
    metrics_paths: Mapping[Run, Path | str],
    comparison_path: Path | str | None,
    seeds_path: Path | str | None,
    out: Mapping[str, Path | str],
    model_metadata: Mapping[Run, Path | str] | None = None,
    predictions: Mapping[Run, Path | str] | None = None,
    adult_metrics: Mapping[Run, Path | str] | None = None,
    audit: Mapping[str, Path | str] | None = None,
    calibration: Mapping[Run, Path | str] | None = None,
    strata: Mapping[Run, Path | str] | None = None,
    external: Path | str | None = None,
    sanity: Path | str | None = None,
) -> None:
    """Write the tables named in ``out`` (keys: data, splits, segmentation, biomarker_tests,
    biomarker_primary, classification, global_vs_local, seeds, adult_only, source_probe,
    class_source, calibration, strata, external, saliency_sanity, metrics) from the
    workflow's tables; the
    classifiers' inputs are keyed by run (model, seed); ``audit`` holds the audit's files
    (probes, class_source, verdict), ``external`` the leave-one-source-out summary."""

    def read(path: Path | str) -> pd.DataFrame:
        return read_tsv(path, typed=True)

    write_tsv(out["data"], data_table(read(cohort_path)))
    write_tsv(out["splits"], split_table(read(split_path)))
    summary = read(segmentation_summary) if segmentation_summary else None
    if "segmentation" in out and summary is not None:
        write_tsv(out["segmentation"], segmentation_table(summary))
    tests = read(biomarker_tests) if biomarker_tests else None
    if "biomarker_tests" in out and tests is not None:
        write_tsv(out["biomarker_tests"], tests)
    if "biomarker_primary" in out and tests is not None:
        write_tsv(out["biomarker_primary"], primary_family_table(tests))
    metrics = {run: read(p) for run, p in metrics_paths.items()}
    seeds = read(seeds_path) if seeds_path else None
    if "seeds" in out and seeds is not None:
        write_tsv(out["seeds"], seeds_table(seeds))
    preds = {run: read(p) for run, p in (predictions or {}).items()}
    if "classification" in out:
        init = {m: initialisation_columns(json.loads(Path(p).read_text())) for m, p in (model_metadata or {}).items()}
        masks = {run: mask_source_counts(df) for run, df in preds.items()}
        write_tsv(out["classification"], classification_table(metrics, init, masks))
    if "adult_only" in out and adult_metrics and preds:
        adult = {run: read(p) for run, p in adult_metrics.items()}
        write_tsv(out["adult_only"], adult_only_table(metrics, adult, preds))
    if "global_vs_local" in out and comparison_path:
        write_tsv(out["global_vs_local"], read(comparison_path))
    if "calibration" in out and calibration:
        write_tsv(out["calibration"], calibration_table({run: read(p) for run, p in calibration.items()}))
    if "strata" in out and strata:
        write_tsv(out["strata"], strata_paper_table({run: read(p) for run, p in strata.items()}))
    if "external" in out and external:
        keys = ["source", "model", "scheme", "n", "n_patients"]
        held_out = read(external)
        write_tsv(out["external"], figures_table(held_out, keys).assign(note=held_out["note"].fillna("")))
    if "saliency_sanity" in out and sanity:
        checks = read(sanity)
        table = checks[["check", "n", "n_patients"]].copy()
        table["value"] = [_maybe_interval(*v) for v in checks[["value", "ci_low", "ci_high"]].to_numpy()]
        write_tsv(out["saliency_sanity"], table)
    verdict = json.loads(Path(audit["verdict"]).read_text()) if audit else None
    if "source_probe" in out and audit and verdict is not None:
        write_tsv(out["source_probe"], source_probe_table(read(audit["probes"]), verdict))
    if "class_source" in out and audit:
        write_tsv(out["class_source"], read(audit["class_source"]))
    metrics_json = headline_metrics(summary, seeds, verdict)
    atomic_write_text(out["metrics"], json.dumps(metrics_json, indent=2, sort_keys=True) + "\n")


def write_index(entries: Mapping[str, str], out: Path | str) -> None:
    """``README.md`` of ``results/paper/``: each file with its caption (the report's)."""
    lines = ["# Figures and tables", "", "Regenerate with `snakemake paper` (same configuration options).", ""]
    for name, caption in entries.items():
        lines += [f"## {name}", "", " ".join(caption.split()), ""]
    atomic_write_text(out, "\n".join(lines))

"""The paper's tables and figure set (``snakemake paper`` → ``results/paper/``).

Every table here is computed from the workflow's own TSV outputs, never from models, so
``results/paper/`` can be rebuilt in seconds after any upstream change:

* ``table1_data``: images per source and class (the paper's Table I);
* ``table2_splits``: images per class in train / val / test (Table II);
* ``table3_segmentation``: Jaccard and Dice (mean ± sd) per network, preprocessing and
  data set (Table III);
* ``table4_biomarker_tests``: biomarker tests between classes (Table IV);
* ``table5_classification``: per-class precision, recall, F1 and specificity with 95 %
  intervals from a bootstrap over patients, for each classifier (Tables V–VI);
* ``table6_global_vs_local``: whole-image versus patch-vote classifier (the paper's claim),
  with the exact McNemar test and a paired patient bootstrap of the macro-F1 difference;
* ``metrics.json``: the headline numbers for ``dvc metrics show``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from patchcxr.data.labels import LABEL5_BY_LABEL4
from patchcxr.io import atomic_write_text, read_tsv, write_tsv


def data_table(cohort: pd.DataFrame) -> pd.DataFrame:
    """Images per source (rows) and class (columns, the paper's five), with totals."""
    counts = pd.crosstab(cohort["source"], cohort["label5"])
    counts = counts.reindex(columns=[c for c in LABEL5_BY_LABEL4 if c in counts.columns], fill_value=0)
    counts.loc["total"] = counts.sum()
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index().rename(columns={"index": "source"})


def split_table(split: pd.DataFrame, label: str = "label4") -> pd.DataFrame:
    """Images per class (rows) in train / val / test (the paper's Table II)."""
    counts = pd.crosstab(split[label], split["split"]).reindex(columns=["train", "val", "test"], fill_value=0)
    counts.loc["total"] = counts.sum()
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index().rename(columns={label: "class"})


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if pd.notna(sd) else f"{mean:.3f}"


def segmentation_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Jaccard and Dice as ``mean ± sd`` per network, preprocessing, data set, scope (all
    held-out films, and the paper's Table I set) and structure."""
    keys = ["model", "preprocessing", "dataset", "scope", "structure", "n"]
    out = summary[[k for k in keys if k in summary.columns]].copy()
    out["jaccard"] = [_mean_sd(m, s) for m, s in zip(summary["jaccard_mean"], summary["jaccard_sd"], strict=True)]
    out["dice"] = [_mean_sd(m, s) for m, s in zip(summary["dice_mean"], summary["dice_sd"], strict=True)]
    return out


def classification_table(
    metrics: Mapping[str, pd.DataFrame],
    initialisation: Mapping[str, str] | None = None,
    mask_sources: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per model and class: each metric as ``value [low, high]`` (bootstrap 95 % over
    patients); a metric a class does not have (recall of an absent class) is left out.
    ``initialisation``: what each network started from (its metadata), ImageNet or scratch;
    ``mask_sources``: the masks of its test images (``predicted 40, atlas 2``: an atlas
    fallback is an image whose predicted lung was empty)."""
    rows = []
    for model, df in metrics.items():
        for cls, part in df.groupby("class", sort=False):
            row = {
                "model": model,
                "initialisation": (initialisation or {}).get(model, ""),
                "test_masks": (mask_sources or {}).get(model, ""),
                "class": cls,
                "n": int(part["support"].iloc[0]),
            }
            for r in part.itertuples():
                row[r.metric] = f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
            rows.append(row)
    return pd.DataFrame(rows)


def mask_source_counts(predictions: pd.DataFrame) -> str:
    """``predicted 40, atlas 2``: how many test images used each kind of mask."""
    counts = predictions["mask_source"].value_counts()
    return ", ".join(f"{kind} {int(n)}" for kind, n in sorted(counts.items()))


def headline_metrics(summary: pd.DataFrame | None, metrics: Mapping[str, pd.DataFrame]) -> dict[str, object]:
    """The numbers ``dvc metrics show`` compares between revisions."""
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
    classification: dict[str, dict[str, float]] = {}
    for model, df in metrics.items():
        get = df.set_index(["class", "metric"])["value"]
        classification[model] = {
            "accuracy": round(float(get[("accuracy", "recall")]), 6),
            "macro_f1": round(float(get[("macro", "f1")]), 6),
            "macro_specificity": round(float(get[("macro", "specificity")]), 6),
        }
    out["classification"] = classification
    return out


def write_tables(
    cohort_path: Path | str,
    split_path: Path | str,
    segmentation_summary: Path | str | None,
    biomarker_tests: Path | str | None,
    *,
    metrics_paths: Mapping[str, Path | str],
    comparison_path: Path | str | None,
    out: Mapping[str, Path | str],
    model_metadata: Mapping[str, Path | str] | None = None,
    predictions: Mapping[str, Path | str] | None = None,
) -> None:
    """Write the tables named in ``out`` (keys: data, splits, segmentation, biomarker_tests,
    classification, global_vs_local, metrics) from the workflow's tables."""

    def read(path: Path | str) -> pd.DataFrame:
        return read_tsv(path, typed=True)

    write_tsv(out["data"], data_table(read(cohort_path)))
    write_tsv(out["splits"], split_table(read(split_path)))
    summary = read(segmentation_summary) if segmentation_summary else None
    if "segmentation" in out and summary is not None:
        write_tsv(out["segmentation"], segmentation_table(summary))
    if "biomarker_tests" in out and biomarker_tests:
        write_tsv(out["biomarker_tests"], read(biomarker_tests))
    metrics = {m: read(p) for m, p in metrics_paths.items()}
    if "classification" in out:
        init = {m: json.loads(Path(p).read_text()).get("initialisation", "") for m, p in (model_metadata or {}).items()}
        masks = {m: mask_source_counts(read(p)) for m, p in (predictions or {}).items()}
        write_tsv(out["classification"], classification_table(metrics, init, masks))
    if "global_vs_local" in out and comparison_path:
        write_tsv(out["global_vs_local"], read(comparison_path))
    atomic_write_text(out["metrics"], json.dumps(headline_metrics(summary, metrics), indent=2, sort_keys=True) + "\n")


def write_index(entries: Mapping[str, str], out: Path | str) -> None:
    """``README.md`` of ``results/paper/``: each file with its caption (the report's)."""
    lines = ["# Figures and tables", "", "Regenerate with `snakemake paper` (same configuration options).", ""]
    for name, caption in entries.items():
        lines += [f"## {name}", "", " ".join(caption.split()), ""]
    atomic_write_text(out, "\n".join(lines))

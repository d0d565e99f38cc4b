"""``results/paper/metrics.json``: the headline numbers for ``dvc metrics show`` (rule
``paper_metrics``, not a document of the index), their files under a plan and their text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchcxr.paper.builders import Inputs, read_one
from patchcxr.paper.plan import OVER_SEEDS, SEGMENTATION_SUMMARY, PaperPlan, audit_file
from patchcxr.paper.tables import headline_metrics

#: the headline numbers (its own rule: not a document of the index)
METRICS_FILE = "metrics.json"
#: the few of them ``dvc metrics show`` prints, one short column each (fits a terminal)
HEADLINE_FILE = "headline.json"


def metrics_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    """The files of the headline metrics: the segmentation summary, the classifiers' metrics
    over seeds (with classifiers) and the audit's verdict (with the audit)."""
    return {
        "summary": [SEGMENTATION_SUMMARY],
        "seeds": [OVER_SEEDS] if plan.models else [],
        "verdict": [audit_file("verdict.json")] if plan.audit else [],
    }


def metrics_text(inputs: Inputs, synthetic: list[str], banner: str) -> str:
    """``metrics.json`` (:func:`patchcxr.paper.tables.headline_metrics`) from
    :func:`metrics_inputs`' files, with where its films came from: the synthetic sources
    among the enabled ones and, when there are any, the banner that says the numbers
    measure nothing (:func:`patchcxr.configuration.data_banner`)."""
    seeds = read_one(inputs, "seeds") if inputs["seeds"] else None
    verdict = json.loads(Path(inputs["verdict"][0]).read_text()) if inputs["verdict"] else None
    metrics = headline_metrics(read_one(inputs, "summary"), seeds, verdict)
    metrics["data"] = {"synthetic": bool(synthetic), "synthetic_sources": list(synthetic), "note": banner}
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"


def headline(metrics: Mapping[str, Any], mask_model: str) -> dict[str, float]:
    """The numbers ``dvc metrics show`` compares between revisions, one short key each: each
    classifier's macro-F1 and accuracy (mean over seeds) and the lung Jaccard of the network
    that makes the classifiers' masks (the paper's preprocessing, mean over held-out data
    sets). The rest stays in ``metrics.json``."""
    out: dict[str, float] = {}
    for model, entry in dict(metrics.get("classification") or {}).items():
        out[f"{model}_f1"] = entry["macro_f1"]
        out[f"{model}_acc"] = entry["accuracy"]
    lungs = [
        float(v["jaccard"])
        for k, v in dict(metrics.get("segmentation") or {}).items()
        if k.startswith(f"{mask_model}/equalised/") and k.count("/") == 2
    ]
    if lungs:
        out["lung_jaccard"] = round(sum(lungs) / len(lungs), 6)
    return out

"""``results/paper/metrics.json``: the headline numbers for ``dvc metrics show`` (rule
``paper_metrics``, not a document of the index), their files under a plan and their text."""

from __future__ import annotations

import json
from pathlib import Path

from patchcxr.paper.builders import Inputs, read_one
from patchcxr.paper.plan import OVER_SEEDS, SEGMENTATION_SUMMARY, PaperPlan, audit_file
from patchcxr.paper.tables import headline_metrics

#: the headline numbers for ``dvc metrics show`` (its own rule: not a document of the index)
METRICS_FILE = "metrics.json"


def metrics_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    """The files of the headline metrics: the segmentation summary, the classifiers' metrics
    over seeds (with classifiers) and the audit's verdict (with the audit)."""
    return {
        "summary": [SEGMENTATION_SUMMARY],
        "seeds": [OVER_SEEDS] if plan.models else [],
        "verdict": [audit_file("verdict.json")] if plan.audit else [],
    }


def metrics_text(inputs: Inputs) -> str:
    """``metrics.json`` (:func:`patchcxr.paper.tables.headline_metrics`) from
    :func:`metrics_inputs`' files."""
    seeds = read_one(inputs, "seeds") if inputs["seeds"] else None
    verdict = json.loads(Path(inputs["verdict"][0]).read_text()) if inputs["verdict"] else None
    metrics = headline_metrics(read_one(inputs, "summary"), seeds, verdict)
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"

"""The paper's tables and figure set (``snakemake paper`` → ``results/paper/``).

:mod:`patchcxr.paper.registry` lists every table and figure, one entry each (its file,
caption, inputs, when it applies and its builder), under the plan the configuration makes of
them (:mod:`patchcxr.paper.plan`: the plan and the input paths); :mod:`patchcxr.paper.builders`
reads a table's inputs and :mod:`patchcxr.paper.tables` holds the tables' computations, each
from the workflow's own TSV outputs, never from models, so ``results/paper/`` can be rebuilt in
seconds after any upstream change. ``metrics.json`` holds the headline numbers for ``dvc metrics
show`` (:mod:`patchcxr.paper.metrics`).
"""

from patchcxr.paper.metrics import metrics_text
from patchcxr.paper.plan import PaperPlan
from patchcxr.paper.registry import REGISTRY, Entry, applicable, build_table, entry
from patchcxr.paper.tables import (
    Run,
    adult_only_table,
    calibration_table,
    classification_table,
    data_table,
    external_table,
    figures_table,
    headline_metrics,
    initialisation_columns,
    mask_source_counts,
    primary_family_table,
    saliency_sanity_table,
    seeds_table,
    segmentation_table,
    source_probe_table,
    split_table,
    strata_paper_table,
    write_index,
)

__all__ = [
    "REGISTRY",
    "Entry",
    "PaperPlan",
    "Run",
    "adult_only_table",
    "applicable",
    "build_table",
    "calibration_table",
    "classification_table",
    "data_table",
    "entry",
    "external_table",
    "figures_table",
    "headline_metrics",
    "initialisation_columns",
    "mask_source_counts",
    "metrics_text",
    "primary_family_table",
    "saliency_sanity_table",
    "seeds_table",
    "segmentation_table",
    "source_probe_table",
    "split_table",
    "strata_paper_table",
    "write_index",
]

"""The paper's tables and figure set (``snakemake paper`` → ``results/paper/``).

:mod:`patchcxr.paper.registry` lists every table and figure, one entry each (its file,
caption, inputs, when it applies and its builder), under the plan the configuration makes of
them (:mod:`patchcxr.paper.plan`: the plan and the input paths); :mod:`patchcxr.paper.builders`
reads a table's inputs and :mod:`patchcxr.paper.tables` holds the tables' computations, each
from the workflow's own TSV outputs, never from models, so ``results/paper/`` can be rebuilt in
seconds after any upstream change. ``metrics.json`` holds the headline numbers for ``dvc metrics
show`` (:mod:`patchcxr.paper.metrics`).
"""

"""The registry's table builders: each reads its entry's inputs (named lists of paths) and
hands the tables to its computation in :mod:`patchcxr.paper.tables`; inputs read per
classifier list one file per run, in ``PaperPlan.runs`` order."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from patchcxr.io import read_tsv
from patchcxr.paper.tables import (
    Run,
    adult_only_table,
    classification_table,
    initialisation_columns,
    mask_source_counts,
    source_only_rows,
    source_probe_table,
)

Inputs = Mapping[str, Sequence[str]]
"""An entry's input files: named lists of paths (relative to the workflow's folder)."""
Builder = Callable[[Inputs, Sequence[Run]], pd.DataFrame]
"""A table from its entry's inputs and the plan's runs (the order of per-classifier inputs)."""


def _read(path: str) -> pd.DataFrame:
    return read_tsv(path, typed=True)


def read_one(inputs: Inputs, name: str) -> pd.DataFrame:
    """The table of the input ``name``, which holds one file."""
    (path,) = inputs[name]
    return _read(path)


def read_by_run(inputs: Inputs, name: str, runs: Sequence[Run]) -> dict[Run, pd.DataFrame]:
    """The tables of the input ``name`` by run (one file per run, in the runs' order)."""
    return {run: _read(path) for run, path in zip(runs, inputs[name], strict=True)}


def as_is(name: str) -> Builder:
    """A workflow table as it is (the input ``name``)."""
    return lambda inputs, runs: read_one(inputs, name)


def build_classification(inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    """Table 5: per-class metrics, initialisation and mask sources of every run."""
    metadata = zip(runs, inputs["metadata"], strict=True)
    init = {run: initialisation_columns(json.loads(Path(path).read_text())) for run, path in metadata}
    masks = {run: mask_source_counts(df) for run, df in read_by_run(inputs, "predictions", runs).items()}
    table = classification_table(read_by_run(inputs, "metrics", runs), init, masks)
    return pd.concat([table, source_only_rows(read_one(inputs, "source_only"))], ignore_index=True)


def build_adult_only(inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    """Table 8: the whole test split beside its adult films, per run."""
    metrics, adult = read_by_run(inputs, "metrics", runs), read_by_run(inputs, "adult_metrics", runs)
    return adult_only_table(metrics, adult, read_by_run(inputs, "predictions", runs))


def build_source_probe(inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    """Table 9: the confound audit's source probes with its verdict."""
    (verdict,) = inputs["verdict"]
    return source_probe_table(read_one(inputs, "probes"), json.loads(Path(verdict).read_text()))

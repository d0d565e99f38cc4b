"""The paper's tables and figures, one :class:`Entry` each (``snakemake paper`` →
``results/paper/``): its file, its caption (a file of ``workflow/report/``), the workflow
results it reads under a :class:`PaperPlan`, when it applies and, for a table, its builder.

The workflow asks this registry for the paper's targets, each job's inputs and the captions
(``workflow/rules/common.smk``, paper section): one generic rule makes every table, one
copies every figure but figure 8 (drawn by ``paper_training_curves``), and
``results/paper/metrics.json`` holds the headline numbers (:func:`metrics_inputs`,
:func:`metrics_text`). A new table is one :class:`Entry` in :data:`REGISTRY`, its builder
(inputs, runs → table) and its caption file.

A builder receives its entry's inputs as named lists of paths (as the entry's ``inputs``
gives them) and the plan's runs: inputs read per classifier list one file per run, in
``PaperPlan.runs`` order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from patchcxr.io import read_tsv
from patchcxr.paper.tables import (
    Run,
    adult_only_table,
    calibration_table,
    classification_table,
    data_table,
    external_table,
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
)

#: the classifiers the paper reports, in its order (those of classification.models)
PAPER_MODELS = ("local", "global")
#: the headline numbers for ``dvc metrics show`` (its own rule: not a document of the index)
METRICS_FILE = "metrics.json"


@dataclass(frozen=True, kw_only=True)
class PaperPlan:
    """What the configuration asks of the paper, computed once (:meth:`from_config`)."""

    #: the paper's classifiers (of :data:`PAPER_MODELS`, in its order)
    models: tuple[str, ...]
    #: every (model, seed) of those classifiers: classification.models' order, then seeds
    runs: tuple[Run, ...]
    #: the first training seed of the classifiers and of the segmentation networks
    classification_seed: int
    segmentation_seed: int
    #: segmentation.train_models and the preprocessings they are trained on (figure 8)
    segmentation_networks: tuple[str, ...] = ()
    segmentation_preps: tuple[str, ...] = ("equalised",)
    #: whether the confound audit runs, and external.leave_one_source_out
    audit: bool = False
    external: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, audit: bool, segmentation_preps: Sequence[str]) -> PaperPlan:
        """The plan of a (validated) workflow configuration; ``audit``: whether the audit
        runs, ``segmentation_preps``: the preprocessings each network is trained on (both as
        the workflow decides them)."""
        classification = config["classification"]
        models = tuple(m for m in PAPER_MODELS if m in classification["models"])
        seeds = [int(s) for s in classification["train"]["seeds"]]
        return cls(
            models=models,
            runs=tuple((str(m), s) for m in classification["models"] if m in models for s in seeds),
            classification_seed=seeds[0],
            segmentation_seed=int(config["segmentation"]["train"]["seeds"][0]),
            segmentation_networks=tuple(config["segmentation"]["train_models"]),
            segmentation_preps=tuple(segmentation_preps),
            audit=audit,
            external=bool(config["external"]["leave_one_source_out"]),
        )


Inputs = Mapping[str, Sequence[str]]
"""An entry's input files: named lists of paths (relative to the workflow's folder)."""
Builder = Callable[[Inputs, Sequence[Run]], pd.DataFrame]
"""A table from its entry's inputs and the plan's runs (the order of per-classifier inputs)."""


def _always(plan: PaperPlan) -> bool:
    return True


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One table or figure of ``results/paper/``."""

    #: the file's name without its suffix (``table6_global_vs_local``)
    name: str
    kind: Literal["table", "figure"]
    #: its caption: a file of workflow/report/ (the report's and README.md's)
    caption: str
    #: what it holds
    about: str
    #: the plan → the files it reads, named lists of paths
    inputs: Callable[[PaperPlan], dict[str, list[str]]]
    #: whether the plan has it
    applies: Callable[[PaperPlan], bool] = _always
    #: a table's builder; a figure has none (a copy of its one input ``figure``, or drawn by
    #: the rule ``made_by``)
    build: Builder | None = None
    #: the rule that makes it when not the generic one of its kind
    made_by: str = ""

    @property
    def file(self) -> str:
        """Its file name in ``results/paper/``."""
        return f"{self.name}.tsv" if self.kind == "table" else f"{self.name}.png"


# ---------------------------------------------------------------------------- the inputs
COHORT = "results/data/cohort.tsv"
SPLIT = "results/splits/classification.tsv"
SEGMENTATION_SUMMARY = "results/segmentation/summary.tsv"
BIOMARKER_TESTS = "results/biomarkers/tests.tsv"
OVER_SEEDS = "results/evaluation/over_seeds.tsv"
GLOBAL_VS_LOCAL = "results/evaluation/global_vs_local.tsv"
EXTERNAL_SUMMARY = "results/external/summary.tsv"
SALIENCY_SANITY = "results/saliency/local/sanity.tsv"


def _audit(name: str) -> str:
    return f"results/audit/{name}"


def _evaluation(plan: PaperPlan, name: str) -> list[str]:
    """``results/evaluation/<model>/seed_<seed>/<name>`` of every run of the plan."""
    return [f"results/evaluation/{m}/seed_{s}/{name}" for m, s in plan.runs]


def _files(**named: str) -> Callable[[PaperPlan], dict[str, list[str]]]:
    """Inputs that do not depend on the plan: one file per name."""
    return lambda plan: {key: [path] for key, path in named.items()}


def _classifier_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    return {
        "metrics": _evaluation(plan, "metrics.tsv"),
        "metadata": [f"results/classification/{m}/seed_{s}/metadata.json" for m, s in plan.runs],
        "predictions": _evaluation(plan, "predictions.tsv"),
    }


def _adult_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    return {
        "metrics": _evaluation(plan, "metrics.tsv"),
        "adult_metrics": _evaluation(plan, "metrics_adult.tsv"),
        "predictions": _evaluation(plan, "predictions.tsv"),
    }


def _training_histories(plan: PaperPlan) -> dict[str, list[str]]:
    """The history of the first seed of each network (figure 8's panels)."""
    seg, cls = plan.segmentation_seed, plan.classification_seed
    out = {
        f"segmentation/{m}/{p}": [f"results/segmentation/{m}/{p}/seed_{seg}/history.tsv"]
        for m in plan.segmentation_networks
        for p in plan.segmentation_preps
    }
    return out | {f"classification/{m}": [f"results/classification/{m}/seed_{cls}/history.tsv"] for m in plan.models}


def _has_classifiers(plan: PaperPlan) -> bool:
    return bool(plan.models)


def _has_local(plan: PaperPlan) -> bool:
    return "local" in plan.models


# ---------------------------------------------------------------------------- the builders
def _read(path: str) -> pd.DataFrame:
    return read_tsv(path, typed=True)


def _one(inputs: Inputs, name: str) -> pd.DataFrame:
    (path,) = inputs[name]
    return _read(path)


def _by_run(inputs: Inputs, name: str, runs: Sequence[Run]) -> dict[Run, pd.DataFrame]:
    return {run: _read(path) for run, path in zip(runs, inputs[name], strict=True)}


def _as_is(name: str) -> Builder:
    """A workflow table as it is (the input ``name``)."""
    return lambda inputs, runs: _one(inputs, name)


def _classification(inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    metadata = zip(runs, inputs["metadata"], strict=True)
    init = {run: initialisation_columns(json.loads(Path(path).read_text())) for run, path in metadata}
    masks = {run: mask_source_counts(df) for run, df in _by_run(inputs, "predictions", runs).items()}
    return classification_table(_by_run(inputs, "metrics", runs), init, masks)


def _adult_only(inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    metrics, adult = _by_run(inputs, "metrics", runs), _by_run(inputs, "adult_metrics", runs)
    return adult_only_table(metrics, adult, _by_run(inputs, "predictions", runs))


def _source_probe(inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    (verdict,) = inputs["verdict"]
    return source_probe_table(_one(inputs, "probes"), json.loads(Path(verdict).read_text()))


# ---------------------------------------------------------------------------- the registry
def _confusion(model: str) -> Entry:
    return Entry(
        name=f"fig6_confusion_{model}",
        kind="figure",
        caption="confusion.rst",
        about=f"the {model} classifier's confusion matrix on the test split (its first training seed)",
        inputs=lambda plan: {"figure": [f"results/evaluation/{model}/seed_{plan.classification_seed}/confusion.png"]},
        applies=lambda plan: model in plan.models,
    )


#: every table and figure of ``results/paper/``, in the order of its README.md (table 6
#: after table 8, figure 8 last: the order the index had before the registry)
REGISTRY: tuple[Entry, ...] = (
    Entry(
        name="table1_data",
        kind="table",
        caption="paper_data.rst",
        about="images per source and class (the paper's Table I)",
        inputs=_files(cohort=COHORT),
        build=lambda inputs, runs: data_table(_one(inputs, "cohort")),
    ),
    Entry(
        name="table2_splits",
        kind="table",
        caption="paper_splits.rst",
        about="images per class in train / val / test (Table II)",
        inputs=_files(split=SPLIT),
        build=lambda inputs, runs: split_table(_one(inputs, "split")),
    ),
    Entry(
        name="table3_segmentation",
        kind="table",
        caption="paper_segmentation.rst",
        about="Jaccard and Dice (mean ± sd) per network, preprocessing and data set (Table III)",
        inputs=_files(summary=SEGMENTATION_SUMMARY),
        build=lambda inputs, runs: segmentation_table(_one(inputs, "summary")),
    ),
    Entry(
        name="table4_biomarker_tests",
        kind="table",
        caption="paper_biomarkers.rst",
        about="biomarker tests between classes (Table IV)",
        inputs=_files(tests=BIOMARKER_TESTS),
        build=_as_is("tests"),
    ),
    Entry(
        name="table4_biomarker_primary",
        kind="table",
        caption="paper_biomarkers_primary.rst",
        about="the primary family of biomarker tests alone (the paper's claims, Holm)",
        inputs=_files(tests=BIOMARKER_TESTS),
        build=lambda inputs, runs: primary_family_table(_one(inputs, "tests")),
    ),
    Entry(
        name="table5_classification",
        kind="table",
        caption="paper_classification.rst",
        about=(
            "per-class precision, recall, F1 and specificity with 95 % intervals from a bootstrap over "
            "patients, for each classifier and training seed (Tables V–VI)"
        ),
        inputs=_classifier_inputs,
        applies=_has_classifiers,
        build=_classification,
    ),
    Entry(
        name="table7_seeds",
        kind="table",
        caption="paper_seeds.rst",
        about="each classifier's metrics as mean ± sd over its training seeds",
        inputs=_files(over_seeds=OVER_SEEDS),
        applies=_has_classifiers,
        build=lambda inputs, runs: seeds_table(_one(inputs, "over_seeds")),
    ),
    Entry(
        name="table8_adult_only",
        kind="table",
        caption="paper_adult_only.rst",
        about=(
            "accuracy and macro-F1 on the whole test split and on its adult films only (the paper's sheet "
            "holds paediatric Kermany films), per classifier and seed"
        ),
        inputs=_adult_inputs,
        applies=_has_classifiers,
        build=_adult_only,
    ),
    Entry(
        name="table6_global_vs_local",
        kind="table",
        caption="paper_comparison.rst",
        about=(
            "whole-image versus patch-vote classifier (the paper's claim), with the exact McNemar test and "
            "a paired patient bootstrap of the macro-F1 difference, for each training seed"
        ),
        inputs=_files(comparison=GLOBAL_VS_LOCAL),
        applies=lambda plan: len(plan.models) == len(PAPER_MODELS),
        build=_as_is("comparison"),
    ),
    Entry(
        name="table9_source_probe",
        kind="table",
        caption="paper_source_probe.rst",
        about=(
            "the confound audit's source probes (accuracy and balanced accuracy with patient intervals "
            "against chance, whether each reads the source) with Cramér's V of class and source and the "
            "verdict (method.md §5.6)"
        ),
        inputs=_files(probes=_audit("probes.tsv"), verdict=_audit("verdict.json")),
        applies=lambda plan: plan.audit,
        build=_source_probe,
    ),
    Entry(
        name="table10_class_source",
        kind="table",
        caption="paper_class_source.rst",
        about="films per class and source with each class's main source (the confound audit)",
        inputs=_files(class_source=_audit("class_source.tsv")),
        applies=lambda plan: plan.audit,
        build=_as_is("class_source"),
    ),
    Entry(
        name="table11_calibration",
        kind="table",
        caption="paper_calibration.rst",
        about=(
            "the soft vote's calibration on the test split per classifier and seed, as it comes and "
            "temperature-scaled on the validation films (ECE with its patient interval, NLL, Brier)"
        ),
        inputs=lambda plan: {"calibration": _evaluation(plan, "calibration.tsv")},
        applies=_has_classifiers,
        build=lambda inputs, runs: calibration_table(_by_run(inputs, "calibration", runs)),
    ),
    Entry(
        name="table12_strata",
        kind="table",
        caption="paper_strata.rst",
        about=(
            "accuracy and macro-F1 by source, view, age group and band, sex and mask source for the first "
            "seed of each classifier, with n and patient intervals"
        ),
        inputs=lambda plan: {"strata": _evaluation(plan, "strata.tsv")},
        applies=_has_classifiers,
        build=lambda inputs, runs: strata_paper_table(_by_run(inputs, "strata", runs)),
    ),
    Entry(
        name="table13_external",
        kind="table",
        caption="paper_external.rst",
        about="leave-one-source-out validation beside the internal test split (external.leave_one_source_out)",
        inputs=_files(summary=EXTERNAL_SUMMARY),
        applies=lambda plan: plan.external,
        build=lambda inputs, runs: external_table(_one(inputs, "summary")),
    ),
    Entry(
        name="table14_saliency_sanity",
        kind="table",
        caption="paper_saliency_sanity.rst",
        about=(
            "the saliency checks (model-parameter randomisation test, pointing game, lung mass) with patient intervals"
        ),
        inputs=_files(sanity=SALIENCY_SANITY),
        applies=_has_local,
        build=lambda inputs, runs: saliency_sanity_table(_one(inputs, "sanity")),
    ),
    Entry(
        name="fig1_segmentation_jaccard",
        kind="figure",
        caption="segmentation_jaccard.rst",
        about="per-image Jaccard of every segmentation network, structure and held-out data set",
        inputs=_files(figure="results/segmentation/figures/jaccard.png"),
    ),
    Entry(
        name="fig2_segmentation_examples",
        kind="figure",
        caption="biomarkers_examples.rst",
        about="segmentation examples per class (heart and lungs of the mask model; the paper's Fig. 3)",
        inputs=_files(figure="results/biomarkers/figures/examples.png"),
    ),
    Entry(
        name="fig3_biomarkers",
        kind="figure",
        caption="biomarkers_features.rst",
        about="the lung biomarkers per class with their Holm-adjusted tests",
        inputs=_files(figure="results/biomarkers/figures/features.png"),
    ),
    Entry(
        name="fig4_cardiothoracic_ratio",
        kind="figure",
        caption="biomarkers_ctr_scatter.rst",
        about="cardiothoracic ratio against the sd of lung intensity, per class",
        inputs=_files(figure="results/biomarkers/figures/ctr_scatter.png"),
    ),
    Entry(
        name="fig5_lung_histograms",
        kind="figure",
        caption="biomarkers_histograms.rst",
        about="lung intensities per source before and after the universal preprocessing",
        inputs=_files(figure="results/biomarkers/figures/histograms.png"),
    ),
    *(_confusion(model) for model in PAPER_MODELS),
    Entry(
        name="fig7_saliency",
        kind="figure",
        caption="saliency.rst",
        about="probabilistic Grad-CAM of the local classifier (first training seed)",
        inputs=_files(figure="results/saliency/local/figure.png"),
        applies=_has_local,
    ),
    Entry(
        name="fig9_confound_audit",
        kind="figure",
        caption="audit.rst",
        about="the confound audit: films per class and source, and the source probes against chance",
        inputs=_files(figure=_audit("figure.png")),
        applies=lambda plan: plan.audit,
    ),
    Entry(
        name="fig8_training_curves",
        kind="figure",
        caption="training_curves.rst",
        about="validation score and training loss of every network (the first seed's runs)",
        inputs=_training_histories,
        made_by="paper_training_curves",
    ),
)
ENTRIES: dict[str, Entry] = {e.name: e for e in REGISTRY}
#: a name is a file name's stem and a part of a wildcard constraint (joined with "|")
NAME = re.compile(r"[a-z][a-z0-9_]*")


def entry(name: str) -> Entry:
    """The registry's entry ``name``."""
    try:
        return ENTRIES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a table or figure of the paper registry") from None


def applicable(plan: PaperPlan, kind: Literal["table", "figure"] | None = None) -> list[Entry]:
    """The entries the plan has (of ``kind``), in the registry's order."""
    return [e for e in REGISTRY if e.applies(plan) and kind in (None, e.kind)]


def generic_names(plan: PaperPlan, kind: Literal["table", "figure"]) -> list[str]:
    """The names the generic rule of ``kind`` makes under the plan: every table, every
    figure copied from its source (not those drawn by a rule of their own)."""
    return [e.name for e in applicable(plan, kind) if not e.made_by]


def documents(plan: PaperPlan) -> list[str]:
    """The file names of ``results/paper/`` the plan has, in README.md's order."""
    return [e.file for e in applicable(plan)]


def build_table(name: str, inputs: Inputs, runs: Sequence[Run]) -> pd.DataFrame:
    """Table ``name`` from its inputs (named lists of paths) and the plan's runs."""
    build = entry(name).build
    if build is None:
        raise ValueError(f"{name!r} is a figure, not a table")
    return build(inputs, [(str(m), int(s)) for m, s in runs])


def metrics_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    """The files of the headline metrics: the segmentation summary, the classifiers' metrics
    over seeds (with classifiers) and the audit's verdict (with the audit)."""
    return {
        "summary": [SEGMENTATION_SUMMARY],
        "seeds": [OVER_SEEDS] if plan.models else [],
        "verdict": [_audit("verdict.json")] if plan.audit else [],
    }


def metrics_text(inputs: Inputs) -> str:
    """``metrics.json`` (:func:`patchcxr.paper.tables.headline_metrics`) from
    :func:`metrics_inputs`' files."""
    seeds = _one(inputs, "seeds") if inputs["seeds"] else None
    verdict = json.loads(Path(inputs["verdict"][0]).read_text()) if inputs["verdict"] else None
    metrics = headline_metrics(_one(inputs, "summary"), seeds, verdict)
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"

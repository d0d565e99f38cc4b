"""The paper's tables and figures, one :class:`Entry` each (``snakemake paper`` →
``results/paper/``): its file, its caption (a file of ``workflow/report/``), the workflow
results it reads under a :class:`~patchcxr.paper.plan.PaperPlan`, when it applies and, for a
table, its builder.

The workflow asks this registry for the paper's targets, each job's inputs and the captions
(``workflow/rules/common.smk``, paper section): one generic rule makes every table, one
copies every figure but figure 8 (drawn by ``paper_training_curves``), and
``results/paper/metrics.json`` holds the headline numbers (:mod:`patchcxr.paper.metrics`).
A new table is one :class:`Entry` in :data:`REGISTRY`, its builder (inputs, runs → table)
and its caption file.

A builder receives its entry's inputs as named lists of paths (as the entry's ``inputs``
gives them) and the plan's runs: inputs read per classifier list one file per run, in
``PaperPlan.runs`` order. The plan and the input paths are :mod:`patchcxr.paper.plan`'s, the
readers :mod:`patchcxr.paper.builders`', the computations :mod:`patchcxr.paper.tables`'.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from patchcxr.paper.builders import (
    Builder,
    Inputs,
    as_is,
    build_adult_only,
    build_classification,
    build_source_probe,
    read_by_run,
    read_one,
)
from patchcxr.paper.plan import (
    BIOMARKER_TESTS,
    CLASSIFIED_DICE,
    COHORT,
    EXTERNAL_SUMMARY,
    GLOBAL_VS_LOCAL,
    OVER_SEEDS,
    PAPER_MODELS,
    SALIENCY_SANITY,
    SEGMENTATION_SUMMARY,
    SPLIT,
    PaperPlan,
    adult_inputs,
    audit_file,
    classifier_inputs,
    evaluation_files,
    files,
    has_classifiers,
    has_local,
    training_histories,
)
from patchcxr.paper.tables import (
    Run,
    calibration_table,
    data_table,
    external_table,
    primary_family_table,
    saliency_sanity_table,
    seeds_table,
    segmentation_table,
    split_table,
    strata_paper_table,
)


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
        inputs=files(cohort=COHORT),
        build=lambda inputs, runs: data_table(read_one(inputs, "cohort")),
    ),
    Entry(
        name="table2_splits",
        kind="table",
        caption="paper_splits.rst",
        about="images per class in train / val / test (Table II)",
        inputs=files(split=SPLIT),
        build=lambda inputs, runs: split_table(read_one(inputs, "split")),
    ),
    Entry(
        name="table3_segmentation",
        kind="table",
        caption="paper_segmentation.rst",
        about="Jaccard and Dice (mean ± sd) per network, preprocessing and data set (Table III)",
        inputs=files(summary=SEGMENTATION_SUMMARY),
        build=lambda inputs, runs: segmentation_table(read_one(inputs, "summary")),
    ),
    Entry(
        name="table4_biomarker_tests",
        kind="table",
        caption="paper_biomarkers.rst",
        about="biomarker tests between classes (Table IV)",
        inputs=files(tests=BIOMARKER_TESTS),
        build=as_is("tests"),
    ),
    Entry(
        name="table4_biomarker_primary",
        kind="table",
        caption="paper_biomarkers_primary.rst",
        about="the primary family of biomarker tests alone (the paper's claims, Holm)",
        inputs=files(tests=BIOMARKER_TESTS),
        build=lambda inputs, runs: primary_family_table(read_one(inputs, "tests")),
    ),
    Entry(
        name="table5_classification",
        kind="table",
        caption="paper_classification.rst",
        about=(
            "per-class precision, recall, F1 and specificity with 95 % intervals from a bootstrap over "
            "patients, for each classifier and training seed (Tables V–VI)"
        ),
        inputs=classifier_inputs,
        applies=has_classifiers,
        build=build_classification,
    ),
    Entry(
        name="table7_seeds",
        kind="table",
        caption="paper_seeds.rst",
        about="each classifier's metrics as mean ± sd over its training seeds",
        inputs=files(over_seeds=OVER_SEEDS),
        applies=has_classifiers,
        build=lambda inputs, runs: seeds_table(read_one(inputs, "over_seeds")),
    ),
    Entry(
        name="table8_adult_only",
        kind="table",
        caption="paper_adult_only.rst",
        about=(
            "accuracy and macro-F1 on the whole test split and on its adult films only (the paper's sheet "
            "holds paediatric Kermany films), per classifier and seed"
        ),
        inputs=adult_inputs,
        applies=has_classifiers,
        build=build_adult_only,
    ),
    Entry(
        name="table6_global_vs_local",
        kind="table",
        caption="paper_comparison.rst",
        about=(
            "whole-image versus patch-vote classifier (the paper's claim), with the exact McNemar test and "
            "a paired patient bootstrap of the macro-F1 difference, for each training seed"
        ),
        inputs=files(comparison=GLOBAL_VS_LOCAL),
        applies=lambda plan: len(plan.models) == len(PAPER_MODELS),
        build=as_is("comparison"),
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
        inputs=files(probes=audit_file("probes.tsv"), verdict=audit_file("verdict.json")),
        applies=lambda plan: plan.audit,
        build=build_source_probe,
    ),
    Entry(
        name="table10_class_source",
        kind="table",
        caption="paper_class_source.rst",
        about="films per class and source with each class's main source (the confound audit)",
        inputs=files(class_source=audit_file("class_source.tsv")),
        applies=lambda plan: plan.audit,
        build=as_is("class_source"),
    ),
    Entry(
        name="table11_calibration",
        kind="table",
        caption="paper_calibration.rst",
        about=(
            "the soft vote's calibration on the test split per classifier and seed, as it comes and "
            "temperature-scaled on the validation films (ECE with its patient interval, NLL, Brier)"
        ),
        inputs=lambda plan: {"calibration": evaluation_files(plan, "calibration.tsv")},
        applies=has_classifiers,
        build=lambda inputs, runs: calibration_table(read_by_run(inputs, "calibration", runs)),
    ),
    Entry(
        name="table12_strata",
        kind="table",
        caption="paper_strata.rst",
        about=(
            "accuracy and macro-F1 by source, view, age group and band, sex and mask source for the first "
            "seed of each classifier, with n and patient intervals"
        ),
        inputs=lambda plan: {"strata": evaluation_files(plan, "strata.tsv")},
        applies=has_classifiers,
        build=lambda inputs, runs: strata_paper_table(read_by_run(inputs, "strata", runs)),
    ),
    Entry(
        name="table13_external",
        kind="table",
        caption="paper_external.rst",
        about="leave-one-source-out validation beside the internal test split (external.leave_one_source_out)",
        inputs=files(summary=EXTERNAL_SUMMARY),
        applies=lambda plan: plan.external,
        build=lambda inputs, runs: external_table(read_one(inputs, "summary")),
    ),
    Entry(
        name="table14_saliency_sanity",
        kind="table",
        caption="paper_saliency_sanity.rst",
        about=(
            "the saliency checks (model-parameter randomisation test, pointing game, lung mass) with patient intervals"
        ),
        inputs=files(sanity=SALIENCY_SANITY),
        applies=has_local,
        build=lambda inputs, runs: saliency_sanity_table(read_one(inputs, "sanity")),
    ),
    Entry(
        name="table15_within_class",
        kind="table",
        caption="paper_within_class.rst",
        about=(
            "each class found in two or more sources: the audited classifiers' recall and predicted classes "
            "per source, with a permutation test of 'the call is independent of the source given the class'"
        ),
        inputs=files(within=audit_file("within_class.tsv")),
        applies=lambda plan: plan.audit and bool(plan.models),
        build=as_is("within"),
    ),
    Entry(
        name="table16_mask_dice",
        kind="table",
        caption="paper_mask_dice.rst",
        about="the mask network's lung Dice on the classified films, by class, with a permutation test",
        inputs=files(dice=CLASSIFIED_DICE),
        build=as_is("dice"),
    ),
    Entry(
        name="fig1_segmentation_jaccard",
        kind="figure",
        caption="segmentation_jaccard.rst",
        about="per-image Jaccard of every segmentation network, structure and held-out data set",
        inputs=files(figure="results/segmentation/figures/jaccard.png"),
    ),
    Entry(
        name="fig2_segmentation_examples",
        kind="figure",
        caption="biomarkers_examples.rst",
        about="segmentation examples per class (heart and lungs of the mask model; the paper's Fig. 3)",
        inputs=files(figure="results/biomarkers/figures/examples.png"),
    ),
    Entry(
        name="fig3_biomarkers",
        kind="figure",
        caption="biomarkers_features.rst",
        about="the lung biomarkers per class with their Holm-adjusted tests",
        inputs=files(figure="results/biomarkers/figures/features.png"),
    ),
    Entry(
        name="fig4_cardiothoracic_ratio",
        kind="figure",
        caption="biomarkers_ctr_scatter.rst",
        about="cardiothoracic ratio against the sd of lung intensity, per class",
        inputs=files(figure="results/biomarkers/figures/ctr_scatter.png"),
    ),
    Entry(
        name="fig5_lung_histograms",
        kind="figure",
        caption="biomarkers_histograms.rst",
        about="lung intensities per source before and after the universal preprocessing",
        inputs=files(figure="results/biomarkers/figures/histograms.png"),
    ),
    *(_confusion(model) for model in PAPER_MODELS),
    Entry(
        name="fig7_saliency",
        kind="figure",
        caption="saliency.rst",
        about="probabilistic Grad-CAM of the local classifier (first training seed)",
        inputs=files(figure="results/saliency/local/figure.png"),
        applies=has_local,
    ),
    Entry(
        name="fig9_confound_audit",
        kind="figure",
        caption="audit.rst",
        about="the confound audit: films per class and source, and the source probes against chance",
        inputs=files(figure=audit_file("figure.png")),
        applies=lambda plan: plan.audit,
    ),
    Entry(
        name="fig8_training_curves",
        kind="figure",
        caption="training_curves.rst",
        about="validation score and training loss of every network (the first seed's runs)",
        inputs=training_histories,
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

"""What the configuration asks of the paper (:class:`PaperPlan`, computed once) and the
workflow results the registry's entries read under it: the input paths and the functions
that name them per plan, and the plan's conditions (:mod:`patchcxr.paper.registry`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcxr.data.splits import segmentation_runs, segmenter_count
from patchcxr.paper.tables import Run

#: the classifiers the paper reports, in its order (those of classification.models)
PAPER_MODELS = ("local", "global")


@dataclass(frozen=True, kw_only=True)
class PaperPlan:
    """What the configuration asks of the paper, computed once (:meth:`from_config`)."""

    #: the paper's classifiers (of :data:`PAPER_MODELS`, in its order)
    models: tuple[str, ...]
    #: every (model, seed) of those classifiers: classification.models' order, then seeds
    runs: tuple[Run, ...]
    #: the first training seed of the classifiers; the first run of the segmentation
    #: networks (their first seed, or its first fold when cross-fitted: its folder name)
    classification_seed: int
    segmentation_run: str
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
            segmentation_run=first_segmentation_run(config),
            segmentation_networks=tuple(config["segmentation"]["train_models"]),
            segmentation_preps=tuple(segmentation_preps),
            audit=audit,
            external=bool(config["external"]["leave_one_source_out"]),
        )


def first_segmentation_run(config: Mapping[str, Any]) -> str:
    """The run label of the first segmentation seed (its first fold when cross-fitted)."""
    seg = config["splits"]["segmentation"]
    count = segmenter_count(seg["classified"], int(seg["folds"]))
    return segmentation_runs(int(config["segmentation"]["train"]["seeds"][0]), count)[0]


# ---------------------------------------------------------------------------- the inputs
COHORT = "results/data/cohort.tsv"
SPLIT = "results/splits/classification.tsv"
SEGMENTATION_SUMMARY = "results/segmentation/summary.tsv"
BIOMARKER_TESTS = "results/biomarkers/tests.tsv"
OVER_SEEDS = "results/evaluation/over_seeds.tsv"
GLOBAL_VS_LOCAL = "results/evaluation/global_vs_local.tsv"
EXTERNAL_SUMMARY = "results/external/summary.tsv"
SALIENCY_SANITY = "results/saliency/local/sanity.tsv"
SOURCE_ONLY_METRICS = "results/evaluation/source_only/metrics.tsv"
CLASSIFIED_DICE = "results/segmentation/classified_dice.tsv"


def audit_file(name: str) -> str:
    """``results/audit/<name>``."""
    return f"results/audit/{name}"


def evaluation_files(plan: PaperPlan, name: str) -> list[str]:
    """``results/evaluation/<model>/seed_<seed>/<name>`` of every run of the plan."""
    return [f"results/evaluation/{m}/seed_{s}/{name}" for m, s in plan.runs]


def files(**named: str) -> Callable[[PaperPlan], dict[str, list[str]]]:
    """Inputs that do not depend on the plan: one file per name."""
    return lambda plan: {key: [path] for key, path in named.items()}


def classifier_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    """Every run's metrics, model metadata and predictions (table 5)."""
    return {
        "metrics": evaluation_files(plan, "metrics.tsv"),
        "metadata": [f"results/classification/{m}/seed_{s}/metadata.json" for m, s in plan.runs],
        "predictions": evaluation_files(plan, "predictions.tsv"),
        # the source-only baseline, beside the classifiers
        "source_only": [SOURCE_ONLY_METRICS],
    }


def adult_inputs(plan: PaperPlan) -> dict[str, list[str]]:
    """Every run's metrics, adult-only metrics and predictions (table 8)."""
    return {
        "metrics": evaluation_files(plan, "metrics.tsv"),
        "adult_metrics": evaluation_files(plan, "metrics_adult.tsv"),
        "predictions": evaluation_files(plan, "predictions.tsv"),
    }


def training_histories(plan: PaperPlan) -> dict[str, list[str]]:
    """The history of the first seed of each network (figure 8's panels)."""
    seg, cls = plan.segmentation_run, plan.classification_seed
    out = {
        f"segmentation/{m}/{p}": [f"results/segmentation/{m}/{p}/seed_{seg}/history.tsv"]
        for m in plan.segmentation_networks
        for p in plan.segmentation_preps
    }
    return out | {f"classification/{m}": [f"results/classification/{m}/seed_{cls}/history.tsv"] for m in plan.models}


# ---------------------------------------------------------------------------- the conditions
def has_classifiers(plan: PaperPlan) -> bool:
    """Whether the plan has any of the paper's classifiers."""
    return bool(plan.models)


def has_local(plan: PaperPlan) -> bool:
    """Whether the plan has the local (patch-vote) classifier."""
    return "local" in plan.models

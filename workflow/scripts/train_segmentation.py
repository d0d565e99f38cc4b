"""Rule train_segmentation: one network, with or without the paper's preprocessing."""

from typing import TYPE_CHECKING, Any

from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime
from patchcxr.preprocess import PreprocessSettings
from patchcxr.segmentation.train import SegmentationTrainSettings, train_segmentation
from patchcxr.tracking import run_settings
from patchcxr.training import TrainingFiles

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    split: str,
    model: str,
    model_cfg: dict[str, Any],
    train: dict[str, Any],
    fold: int,
    preprocessing: dict[str, Any],
    tracking: dict[str, Any],
    pipeline: str,
    outputs: dict[str, str],
    resume_dir: str,
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    # typed settings: an unknown or a missing key of segmentation.train stops the job, naming it
    settings = SegmentationTrainSettings.from_config(train)
    # the preprocessing with the network size and this run's arm (equalised or min-max)
    prep = PreprocessSettings(**preprocessing)
    train_segmentation(
        manifest_path=manifest,
        split_path=split,
        fold=fold,
        model_name=model,
        model_cfg=model_cfg,
        train=settings,
        prep=prep,
        files=TrainingFiles(resume_dir=resume_dir, **outputs),
        runtime=runtime,
        tracking=run_settings(
            tracking, pipeline, {"manifest": manifest, "segmentation_split": split}, rule=snakemake.rule
        ),
    )


main(
    snakemake.input.manifest,
    snakemake.input.split,
    snakemake.wildcards.model,
    dict(snakemake.params.model_cfg),
    dict(snakemake.params.train),
    int(snakemake.params.fold),
    dict(snakemake.params.preprocessing),
    dict(snakemake.params.tracking),
    snakemake.input.get("pipeline", ""),
    {k: snakemake.output[k] for k in ("model", "metadata", "history")},
    snakemake.params.resume_dir,
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
